//! HTTP/1.1 rules, written once and used by every side that speaks HTTP/1: the relay's head
//! inspection, the proxy's public ingress, its handshake reader, and the endpoint agent's
//! local listener and service client.
//!
//! - [`head_scanner`]: where a head ends, found as its bytes arrive (each byte once).
//! - [`parse`](mod@parse): httparse into header slots that start uninitialized.
//! - [`framing`]: how long a body is (RFC 9112 §6.3), strictly: ambiguity is refused.
//! - [`chunked`]: the chunked coding, scanned or decoded as it arrives.
//! - [`hop`]: which headers belong to one connection and stop at a hop.
//! - [`header_name`]: the headers httpws stamps, matched in every spelling.
//! - [`decimal`]: decimal numbers in heads, read strictly and written without allocating.
//! - [`status`]: reason phrases.
//! - [`write`](mod@write): status lines, header lines and the heads of the answers httpws makes.
//!
//! Parsing itself is `httparse`'s; what is hand-written here is what it leaves to its users
//! (framing, chunk boundaries found incrementally, the connection's own headers), and the
//! reason is given where each is.

pub mod chunked;
pub mod decimal;
pub mod framing;
pub mod head_scanner;
pub mod header_name;
pub mod hop;
pub mod parse;
pub mod status;
pub mod write;
