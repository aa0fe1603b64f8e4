//! A request that arrived over the tunnel, waiting to be served.

use std::sync::Arc;

use bytes::Bytes;

use crate::endpoint::stream::{Exchange, InboundBody};

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
    /// For a request whose body streams: its exchange, reset if the request is dropped
    /// without an answer.
    pub(crate) _unanswered: Option<Unanswered>,
}

/// A served request's exchange, reset (`cancel`) if whoever serves it gives it up without
/// answering (the code serving it returned or panicked): a body left unread does not end
/// the exchange (its answer may still go), so without this the caller would hear only at the
/// proxy's deadline.
pub(crate) struct Unanswered(pub(crate) Arc<Exchange>);

impl std::fmt::Debug for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Unanswered").field(&self.0.cseq()).finish()
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.0.unanswered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::session::Outgoing;
    use crate::endpoint::stream::test_support::served;

    fn resets(ends: &mut crate::endpoint::session::QueueEnds) -> Vec<String> {
        ends.drain()
            .into_iter()
            .filter_map(|o| match o {
                Outgoing::Message { head, .. } if head.starts_with(b"~reset") => {
                    Some(String::from_utf8_lossy(&head).into_owned())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_served_request_given_up_unanswered_is_reset() {
        let (exchange, mut link) = served();
        drop(Unanswered(Arc::clone(&exchange)));
        assert_eq!(resets(&mut link.ends), ["~reset <1 cancel\n"]);
        // Answered first: nothing more to say.
        let (exchange, mut link) = served();
        exchange.responded(false);
        drop(Unanswered(Arc::clone(&exchange)));
        assert!(resets(&mut link.ends).is_empty());
    }
}
