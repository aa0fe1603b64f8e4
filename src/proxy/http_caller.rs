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
    /// Credit for the request body granted and not taken yet: summed rather than queued, so
    /// that a target granting a byte at a time costs nothing.
    credit: u64,
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
        match progress {
            Progress::Credit(n) => st.credit = st.credit.saturating_add(n),
            Progress::Ends | Progress::Broken => {
                st.awaiting = 0;
                st.parts.push_back((frame, progress));
            }
            Progress::Opens { .. } | Progress::Continues | Progress::AnswerEnds => {
                st.parts.push_back((frame, progress));
            }
        }
        if let Some(waker) = st.waker.take() {
            waker.wake();
        }
    }

    /// Get ready for the answer to request `cseq`.
    pub fn expect(&self, cseq: u64) {
        let mut st = self.state.borrow_mut();
        st.awaiting = cseq;
        st.parts.clear();
        st.credit = 0;
    }

    /// Whether no piece of the answer is waiting to be written (the caller keeps up with
    /// what the target sends).
    pub fn caught_up(&self) -> bool {
        self.state.borrow().parts.is_empty()
    }

    /// The next piece of the answer once it is there, or the credit granted meanwhile (as
    /// one `Progress::Credit`, with an empty frame).
    pub fn poll_part(&self, cx: &mut Context<'_>) -> Poll<(OutFrame, Progress)> {
        let mut st = self.state.borrow_mut();
        if let Some(part) = st.parts.pop_front() {
            return Poll::Ready(part);
        }
        if st.credit > 0 {
            let n = std::mem::take(&mut st.credit);
            return Poll::Ready((OutFrame::empty(), Progress::Credit(n)));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
