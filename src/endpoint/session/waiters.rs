//! CSeq numbering and the requests waiting for their responses: a response is matched to
//! its request by the CSeq it carries back.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::TunnelResponse;
use super::failure::Failure;

/// Where a request's response (or the reason there is none) is delivered.
pub(super) type Waiter = oneshot::Sender<Result<TunnelResponse, Failure>>;

/// The requests sent and not yet answered, by CSeq.
pub(super) struct Waiters {
    next_cseq: u64,
    waiting: HashMap<u64, Waiter>,
}

impl Waiters {
    /// No request yet; the first gets CSeq 1.
    pub(super) fn new() -> Self {
        Waiters {
            next_cseq: 1,
            waiting: HashMap::new(),
        }
    }

    /// Number a new request and remember who waits for its response.
    pub(super) fn add(&mut self, waiter: Waiter) -> u64 {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        self.waiting.insert(cseq, waiter);
        cseq
    }

    /// Whoever waits for the response with `cseq`, if anyone still does.
    pub(super) fn take(&mut self, cseq: u64) -> Option<Waiter> {
        self.waiting.remove(&cseq)
    }

    /// Everyone waiting, to fail them all when their tunnel is gone.
    pub(super) fn take_all(&mut self) -> HashMap<u64, Waiter> {
        std::mem::take(&mut self.waiting)
    }
}
