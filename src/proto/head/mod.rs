//! HTTP/1.1 head inspection and rewriting for relayed messages (docs/protocol.md §2).
//!
//! Every WebSocket message carries one HTTP/1.1 message. The proxy looks only at the head:
//! [`inspect`] finds the head's end, the CSeq, the Host (requests) or status (responses) and
//! the lines the proxy must rewrite; [`write_head`] copies the head for the next endpoint with
//! the CSeq renumbered and `Httpws-From` stamped; [`write_http_head`] writes a response for a
//! plain HTTP client of the public ingress. The body is never looked at or copied here:
//! callers forward `&msg[info.head_len..]` as is. Everything is pure and allocation-free on
//! the hot path; the HTTP/1.1 rules themselves (framing, chunking, hop-by-hop headers) are
//! [`crate::proto::http1`]'s.

mod inspect;
mod rewrite;
mod to_http;

pub use inspect::{
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS, HeadError, HeadInfo, HeadKind, HeadLimits,
    MAX_HOP_LINES, MAX_REMOVED_LINES, inspect,
};
pub use rewrite::{rewritten_head_len, write_head, write_whole_head};
pub use to_http::{HttpBodyFraming, HttpHeadError, write_http_head, write_http_stream_head};

#[cfg(test)]
mod tests;
