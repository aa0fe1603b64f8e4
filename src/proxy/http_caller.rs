//! The shard-side half of one public-ingress connection: a one-slot mailbox where the answer
//! to its current request is delivered (by the shard's request path, from whichever shard
//! the answer came), and the ingress task waits for it.

use std::cell::RefCell;
use std::task::{Context, Poll, Waker};

use crate::proxy::messages::OutFrame;

/// The shard-side half of one ingress connection: where its answer is delivered.
#[derive(Debug, Default)]
pub struct HttpCaller {
    state: RefCell<CallerState>,
}

#[derive(Debug, Default)]
struct CallerState {
    /// The CSeq of the request being answered (0: none).
    awaiting: u64,
    reply: Option<OutFrame>,
    waker: Option<Waker>,
}

impl HttpCaller {
    /// The answer to request `cseq`; anything else (a stale answer) is dropped.
    pub fn deliver(&self, cseq: u64, frame: OutFrame) {
        let mut st = self.state.borrow_mut();
        if st.awaiting != cseq || st.reply.is_some() {
            return;
        }
        st.reply = Some(frame);
        if let Some(waker) = st.waker.take() {
            waker.wake();
        }
    }

    /// Get ready for the answer to request `cseq`.
    pub fn expect(&self, cseq: u64) {
        let mut st = self.state.borrow_mut();
        st.awaiting = cseq;
        st.reply = None;
    }

    /// The answer, once it is there.
    pub fn poll_reply(&self, cx: &mut Context<'_>) -> Poll<OutFrame> {
        let mut st = self.state.borrow_mut();
        match st.reply.take() {
            Some(frame) => {
                st.awaiting = 0;
                Poll::Ready(frame)
            }
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
