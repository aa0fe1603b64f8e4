#![warn(missing_docs)]

//! httpws: an HTTP-over-WebSocket relay.
//!
//! Endpoints inside private networks each hold one outbound WebSocket to a public proxy and
//! are known there by a virtual address. Any endpoint calls any other with a plain HTTP/1.1
//! request whose `Host:` is the target's address; the proxy relays request and response over
//! the two WebSockets, matching them by `CSeq`. `docs/protocol.md` is the wire contract.
//!
//! # Layout
//!
//! - [`proto`]: the wire format, pure and without I/O: the RFC 6455 server handshake
//!   ([`proto::handshake`]), the frame codec ([`proto::frame`]), HTTP head inspection and
//!   rewriting ([`proto::head`]), virtual addresses ([`proto::address`]) and indications
//!   ([`proto::indication`]).
//! - [`proxy`]: the relay. One [`proxy::shard`] per core, each a pinned `monoio` runtime
//!   owning a slice of the address table ([`proxy::table`]); connections
//!   ([`proxy::connection`]) live on the shard that owns their address; cross-shard traffic
//!   goes over lock-free queues ([`proxy::router`]); CSeq remapping lives in
//!   [`proxy::pending`]; limits and defaults in [`proxy::config`].
//! - [`endpoint`]: the endpoint agent and client library (its own issue).
//! - [`tls`]: PEM loading and the crypto provider shared by the proxy's `wss://` listener
//!   and the endpoint's `wss://` client.

pub mod endpoint;
pub mod proto;
pub mod proxy;
pub mod tls;
