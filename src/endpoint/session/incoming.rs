//! A request that arrived over the tunnel, waiting to be served.

use bytes::Bytes;

use crate::endpoint::stream::InboundBody;

/// A request that arrived over the tunnel, to be answered with
/// [`Session::respond`](super::Session::respond) or
/// [`Session::respond_streaming`](super::Session::respond_streaming).
#[derive(Debug)]
pub struct Incoming {
    /// The registration it arrived on; a response for an older one is dropped.
    pub generation: u64,
    /// The CSeq the proxy gave it (the response must carry it).
    pub cseq: u64,
    /// The whole message: head then body (only the head when the body streams).
    pub message: Bytes,
    /// Where the body starts in `message`.
    pub head_len: usize,
    /// The body, when it streams (a stream head, protocol 2); `None` when it is in `message`.
    pub body: Option<InboundBody>,
}
