//! The shard-side half of one public-ingress connection: the mailbox where the answer to its
//! current request is delivered (by the shard's request path, from whichever shard the answer
//! came) — one whole answer, or a streamed one piece by piece — and the ingress task waits
//! for it. A streamed answer is bounded by its credit: the ingress grants more only as it
//! writes to the caller.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use crate::proxy::messages::{OutFrame, Progress};

/// The shard-side half of one ingress connection: where its answer is delivered.
#[derive(Debug, Default)]
pub struct HttpCaller {
    state: RefCell<CallerState>,
}

#[derive(Debug, Default)]
struct CallerState {
    /// The CSeq of the request being answered (0: none).
    awaiting: u64,
    /// What arrived for it and is not written yet, in order.
    parts: VecDeque<(OutFrame, Progress)>,
    waker: Option<Waker>,
}

impl HttpCaller {
    /// A piece of the answer to request `cseq`; anything for another request (stale) is
    /// dropped.
    pub fn deliver(&self, cseq: u64, frame: OutFrame, progress: Progress) {
        let mut st = self.state.borrow_mut();
        if st.awaiting != cseq || cseq == 0 {
            return;
        }
        if matches!(progress, Progress::Ends | Progress::Broken) {
            st.awaiting = 0;
        }
        st.parts.push_back((frame, progress));
        if let Some(waker) = st.waker.take() {
            waker.wake();
        }
    }

    /// Get ready for the answer to request `cseq`.
    pub fn expect(&self, cseq: u64) {
        let mut st = self.state.borrow_mut();
        st.awaiting = cseq;
        st.parts.clear();
    }

    /// The next piece of the answer, once it is there.
    pub fn poll_part(&self, cx: &mut Context<'_>) -> Poll<(OutFrame, Progress)> {
        let mut st = self.state.borrow_mut();
        match st.parts.pop_front() {
            Some(part) => Poll::Ready(part),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
