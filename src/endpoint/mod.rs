//! The endpoint role: the client library ([`Endpoint`]) and the `httpws endpoint` agent
//! built on it — the patent's "connection manager", which turns ordinary HTTP into tunnel
//! messages and back.
//!
//! - [`session`]: the tunnel itself (register, CSeq matching, pings, reconnect); [`refusal`]:
//!   the proxy's reasons for refusing a registration, and which ones a retry can heal.
//! - [`client`]: [`Endpoint`], `http::Request` in, `http::Response` out, and `serve`.
//! - [`listener`]: the local HTTP/1.1 server (`--listen`) that sends requests into the tunnel.
//! - [`service`]: requests from the tunnel to a local service (`--serve`), over a keep-alive
//!   pool, confined under its base path.
//! - [`http1`]: HTTP/1.1 framing for both local sides; `tunnel_headers`: the `CSeq` and
//!   `Httpws-*` lines they keep out of the tunnel and out of local messages; `scheme`: URL
//!   schemes, matched as RFC 3986 says; [`config`]: settings and defaults.
//! - [`tls`]: `wss://` to the proxy (trust anchors and the stream); [`pinned`] and
//!   [`cert_validity`]: a `--ca` certificate trusted as itself; [`tls_diagnosis`]: what a
//!   TLS failure means and what to do about it.
//! - [`agent`]: all of it on one tunnel.
//!
//! The endpoint runs on tokio rather than the proxy's monoio: it holds one tunnel, not a
//! hundred thousand, and a library has to live inside the runtime its users already have.

pub mod agent;
pub mod body;
pub mod body_reader;
pub mod cert_validity;
pub mod client;
pub mod config;
pub mod http1;
pub mod listener;
pub mod pinned;
mod pump;
pub mod refusal;
mod scheme;
pub mod service;
pub mod session;
pub mod stream;
mod timed_write;
pub mod tls;
pub mod tls_diagnosis;
mod tunnel_headers;

pub use client::{Endpoint, EndpointBuilder, httpws_error, httpws_target_error};
pub use session::{Failure, Fatal, Session, Status};
