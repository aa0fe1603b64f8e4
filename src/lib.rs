#![warn(missing_docs)]

//! httpws: an HTTP-over-WebSocket relay.
//!
//! Endpoints inside private networks each hold one outbound WebSocket to a public proxy and
//! are known there by a virtual address. Any endpoint calls any other with a plain HTTP/1.1
//! request whose `Host:` is the target's address; the proxy relays request and response over
//! the two WebSockets, matching them by `CSeq`. `docs/protocol.md` is the wire contract,
//! `docs/design.md` records how the proxy is built and why.
//!
//! # Layout
//!
//! In dependency order: each module uses only the ones above it.
//!
//! - [`proto`]: the wire format, pure and without I/O (byte slices in, byte slices out).
//!   - [`proto::address`]: virtual addresses, their grammar, and the shard that owns each.
//!   - [`proto::answer_error`]: the `Httpws-Error` tokens, each with its one status.
//!   - [`proto::frame`]: the RFC 6455 frame codec: headers, masking, message reassembly.
//!   - [`proto::indication`]: the `:host` and `:error` messages that are never HTTP.
//!   - [`proto::http1`]: the HTTP/1.1 rules every side shares:
//!     - [`proto::http1::decimal`]: decimal numbers in heads, read strictly.
//!     - [`proto::http1::status`]: reason phrases.
//!     - [`proto::http1::head_scanner`]: where a head ends, found as its bytes arrive.
//!     - [`proto::http1::header_name`]: the headers httpws stamps, in every spelling.
//!     - [`proto::http1::hop`]: the headers that belong to one connection.
//!     - [`proto::http1::chunked`]: the chunked coding, scanned or decoded as it arrives.
//!     - [`proto::http1::framing`]: how long a body is (RFC 9112 §6.3), ambiguity refused.
//!     - [`proto::http1::write`](mod@proto::http1::write): status lines, header lines, and
//!       the heads of the answers httpws makes.
//!   - [`proto::handshake`]: the opening handshake, the proxy's side and the endpoint's.
//!   - [`proto::head`]: a relayed message's head: [inspected](proto::head::inspect),
//!     [rewritten](proto::head::write_head) for the target, or
//!     [written for a plain HTTP client](proto::head::write_http_head).
//!   - [`proto::public_request`]: an internet caller's request: its route, its checks, the
//!     head relayed for it.
//!   - [`proto::origin`]: browser origins and the `--allowed-origins` lists.
//! - [`tls`]: PEM certificates, the crypto provider and the ALPN protocol, shared by the
//!   proxy's `wss://` listener and the endpoint's `wss://` client.
//! - [`proxy`]: the relay, one pinned `monoio` runtime per shard:
//!   - [`proxy::config`]: settings and their defaults, one per flag.
//!   - [`proxy::ids`]: how connections are named across shards.
//!   - [`proxy::tls`]: the `wss://` server configuration, and rustls over a shard's socket.
//!   - [`proxy::transport`]: the byte stream under a connection, plain or TLS.
//!   - [`proxy::messages`]: what travels between connections and between shards.
//!   - [`proxy::slab`]: a shard's connection slots, by generational key.
//!   - [`proxy::table`]: a shard's slice of the address table, and who may claim an address.
//!   - [`proxy::pending`]: the CSeq remapping, and each caller's CSeqs in flight.
//!   - [`proxy::router`]: the lock-free queues between shards.
//!   - [`proxy::access`]: the tokens file: who may register which names, and call whom.
//!   - [`proxy::conn`]: one registered WebSocket's state and its counted outbound queue.
//!   - [`proxy::http_caller`]: a public-ingress caller's one-answer mailbox.
//!   - [`proxy::control`]: what all shards share: shutdown, access policy, TLS configuration.
//!   - [`proxy::shard`]: one shard's state and its operations.
//!     - [`proxy::shard::relay`]: the request path: message → route → target → answer →
//!       caller.
//!   - [`proxy::conn_driver`]: the task that reads and writes one registered connection.
//!   - [`proxy::pages`]: the proxy's own pages (`/httpws.js`, the WebRTC demo).
//!   - [`proxy::registration`]: a connection registered on the shard that owns its address.
//!   - [`proxy::public_ingress`]: plain HTTP callers from the internet.
//!   - [`proxy::admission`]: an accepted connection until it is known what it is.
//!   - [`proxy::runtime`]: a shard's thread, accept loops, inbox, sweeper and shutdown.
//!   - [`proxy::server`]: starting every shard, and stopping them.
//! - [`endpoint`]: the client library and the `httpws endpoint` agent, on tokio:
//!   - [`endpoint::config`]: settings and their defaults.
//!   - [`endpoint::refusal`]: why the proxy refused a registration; can a retry heal it.
//!   - [`endpoint::http1`]: HTTP/1.1 reading and framing for the agent's local sides.
//!   - [`endpoint::tls_diagnosis`]: what a TLS failure means, and what to do about it.
//!   - [`endpoint::cert_validity`]: a certificate's validity period, read from its DER.
//!   - [`endpoint::pinned`]: a `--ca` certificate trusted as itself.
//!   - [`endpoint::tls`]: `wss://` to the proxy.
//!   - [`endpoint::session`]: the tunnel: register, CSeq matching, pings, reconnect.
//!   - [`endpoint::client`]: [`endpoint::Endpoint`], the library's face.
//!   - [`endpoint::listener`]: the `--listen` server that sends requests into the tunnel.
//!   - [`endpoint::service`]: requests from the tunnel to the `--serve` service, its
//!     keep-alive pool, and the base path they are confined under.
//!   - [`endpoint::agent`]: all of it on one tunnel.

pub mod endpoint;
pub mod proto;
pub mod proxy;
pub mod tls;
