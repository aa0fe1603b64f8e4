//! A request that arrived over the tunnel, waiting to be served.

use bytes::Bytes;

/// A request that arrived over the tunnel, to be answered with
/// [`Session::respond`](super::Session::respond).
#[derive(Debug)]
pub struct Incoming {
    /// The registration it arrived on; a response for an older one is dropped.
    pub generation: u64,
    /// The CSeq the proxy gave it (the response must carry it).
    pub cseq: u64,
    /// The whole message: head then body.
    pub message: Bytes,
    /// Where the body starts in `message`.
    pub head_len: usize,
}
