//! One exchange's stream state on one tunnel link, shared by the reader (which delivers the
//! far side's data, end, credit and reset) and the exchange's local halves (the
//! [`BodyWriter`](super::BodyWriter) sending our body, the [`InboundBody`](super::InboundBody)
//! taking theirs).
//!
//! The rules kept here: our body never goes past the credit the far side granted; we grant
//! theirs as it is consumed, so that what is held for it never passes the window; each
//! direction ends exactly once, with `end` or with the exchange's one reset (sent or
//! received), and a tunnel that drops fails both. An exchange leaves the link's table once
//! both directions are over.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::error::BodyError;
use super::table::StreamTable;
use super::{GRANT_BATCH_BYTES, MAX_RECEIVE_WINDOW_BYTES};
use crate::endpoint::session::{Outgoing, Queues};
use crate::proto::stream::{self, Direction, ResetReason, STREAM_WINDOW, Verb};

/// How a direction of the exchange starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Its head has not been sent or received yet (a served request's response, a call's
    /// response).
    Waiting,
    /// It streams from the start (the head said `Httpws-Stream: body`), with this declared
    /// length if any.
    Streaming(Option<u64>),
    /// It was whole, or is over.
    Done,
}

/// Our body's direction.
#[derive(Debug)]
enum Send {
    /// Not begun (no head sent yet).
    Waiting,
    /// Streaming, with this much credit left.
    Open { credit: u64 },
    /// Ended (`end` sent) or never a stream.
    Done,
    /// Stopped before its end, for this reason.
    Closed(BodyError),
}

/// Their body's direction.
#[derive(Debug)]
enum Recv {
    /// Its head has not arrived yet.
    Waiting,
    /// Streaming, `left` bytes of a declared length still to come.
    Open { left: Option<u64> },
    /// Ended (`end` received) or whole.
    Done,
    /// Stopped before its end, for this reason.
    Failed(BodyError),
}

struct State {
    send: Send,
    recv: Recv,
    send_waker: Option<Waker>,
    recv_waker: Option<Waker>,
    /// Their data, not yet taken by the consumer.
    queue: VecDeque<Bytes>,
    /// The length their body declared (`Content-Length` on its stream head).
    declared: Option<u64>,
    /// Their body bytes received so far.
    received: u64,
    /// What they may have sent so far: the initial window plus every grant.
    allowed: u64,
    /// Bytes the consumer is done with but not yet granted back.
    released: u64,
    /// What they may have in flight: the initial window, grown while the consumer keeps up
    /// (at most [`MAX_RECEIVE_WINDOW_BYTES`]).
    window: u64,
    /// A served request's body whose consumer went away before its end: the rest of it is
    /// discarded as it arrives (and granted back), the answer still to go.
    unwanted: bool,
    /// A reset was sent or received, or the tunnel dropped: nothing more goes out.
    over: bool,
}

impl State {
    fn finished(&self) -> bool {
        self.over
            || (!matches!(self.send, Send::Waiting | Send::Open { .. })
                && !matches!(self.recv, Recv::Waiting | Recv::Open { .. }))
    }

    /// Stop both directions for `why` (what each local half will be told).
    fn fail(&mut self, why: BodyError) {
        self.over = true;
        self.queue.clear();
        if matches!(self.recv, Recv::Waiting | Recv::Open { .. }) {
            self.recv = Recv::Failed(why.clone());
        }
        if matches!(self.send, Send::Waiting | Send::Open { .. }) {
            self.send = Send::Closed(why);
        }
    }

    fn take_wakers(&mut self) -> [Option<Waker>; 2] {
        [self.send_waker.take(), self.recv_waker.take()]
    }
}

/// One exchange with a streamed direction, on one link.
pub(crate) struct Exchange {
    /// The mark our messages for it carry: `>` for our calls, `<` for requests we serve.
    dir: Direction,
    /// Its CSeq in that numbering.
    cseq: u64,
    queues: Queues,
    table: Arc<StreamTable>,
    /// How long our body may wait for credit before the exchange is reset (`timeout`).
    credit_timeout: Duration,
    state: Mutex<State>,
}

impl Exchange {
    /// A new exchange; `send` is our body's direction, `recv` theirs.
    pub(crate) fn new(
        (dir, cseq): (Direction, u64),
        queues: Queues,
        table: Arc<StreamTable>,
        credit_timeout: Duration,
        send: Start,
        recv: Start,
    ) -> Arc<Exchange> {
        Arc::new(Exchange {
            dir,
            cseq,
            queues,
            table,
            credit_timeout,
            state: Mutex::new(State {
                send: match send {
                    Start::Waiting => Send::Waiting,
                    Start::Streaming(_) => Send::Open {
                        credit: STREAM_WINDOW,
                    },
                    Start::Done => Send::Done,
                },
                recv: match recv {
                    Start::Waiting => Recv::Waiting,
                    Start::Streaming(left) => Recv::Open { left },
                    Start::Done => Recv::Done,
                },
                send_waker: None,
                recv_waker: None,
                queue: VecDeque::new(),
                declared: match recv {
                    Start::Streaming(length) => length,
                    _ => None,
                },
                received: 0,
                allowed: STREAM_WINDOW,
                released: 0,
                window: STREAM_WINDOW,
                unwanted: false,
                over: false,
            }),
        })
    }

    /// Our mark for it.
    pub(crate) fn dir(&self) -> Direction {
        self.dir
    }

    /// Its CSeq.
    pub(crate) fn cseq(&self) -> u64 {
        self.cseq
    }

    /// How long our body may wait for credit.
    pub(crate) fn credit_timeout(&self) -> Duration {
        self.credit_timeout
    }

    /// Our body waited for credit past [`credit_timeout`](Self::credit_timeout): the exchange
    /// is reset (`timeout`), and what our body's sender is told.
    pub(crate) fn credit_timed_out(&self) -> BodyError {
        let why = BodyError::Reset(ResetReason::Timeout);
        self.reset_for(ResetReason::Timeout, why.clone());
        why
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tag line of a message of ours about this exchange.
    fn tag(&self, verb: Verb) -> Bytes {
        let mut tag = BytesMut::with_capacity(stream::tag_len(verb, self.cseq));
        stream::write_tag(&mut tag, verb, self.dir, self.cseq);
        tag.freeze()
    }

    fn message(&self, verb: Verb, payload: Bytes) -> Outgoing {
        Outgoing::Message {
            head: self.tag(verb),
            body: payload,
        }
    }

    /// After a change under the lock: wake whoever waits, and leave the table when both
    /// directions are over.
    fn settle(&self, mut state: MutexGuard<'_, State>) {
        let finished = state.finished();
        let wakers = state.take_wakers();
        drop(state);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
        if finished {
            self.table.remove(self);
        }
    }

    /// Reset the exchange from this side with `reason`, once: the far side is told, both
    /// local halves stop. A reset that cannot wait for the ordered queue goes as a control
    /// frame (it may then overtake our own data, which the proxy drops).
    pub(crate) fn reset(&self, reason: ResetReason) {
        self.reset_for(reason, BodyError::Cancelled);
    }

    fn reset_for(&self, reason: ResetReason, why: BodyError) {
        let mut state = self.lock();
        if state.over {
            return;
        }
        state.fail(why);
        let message = self.message(Verb::Reset(reason), Bytes::new());
        if let Err(full) = self.queues.out.try_send(message) {
            let message = match full {
                tokio::sync::mpsc::error::TrySendError::Full(m)
                | tokio::sync::mpsc::error::TrySendError::Closed(m) => m,
            };
            self.queues.control(message);
        }
        self.settle(state);
    }

    // ---- what the reader delivers ------------------------------------------------------

    /// Their data.
    pub(crate) fn on_data(&self, payload: Bytes) {
        let mut state = self.lock();
        let len = payload.len() as u64;
        let Recv::Open { left } = &mut state.recv else {
            // Late (after a reset or an end the proxy has already judged): dropped.
            return;
        };
        if left.is_some_and(|l| len > l) {
            drop(state);
            let reason = ResetReason::TooLarge;
            return self.reset_for(reason, BodyError::Violation(reason));
        }
        if let Some(l) = left {
            *l -= len;
        }
        state.received += len;
        if state.received > state.allowed {
            drop(state);
            let reason = ResetReason::FlowControl;
            return self.reset_for(reason, BodyError::Violation(reason));
        }
        if payload.is_empty() {
            return;
        }
        if state.unwanted {
            return self.grant(state, payload.len());
        }
        // The payload is a view of the reader's read block, which may be many times its size
        // (a block grown for a large whole message is read into afterwards): kept as it is,
        // a piece counted as its own bytes against the window could hold the whole block for
        // as long as the consumer leaves it waiting. Copied, it holds exactly its bytes.
        state.queue.push_back(Bytes::copy_from_slice(&payload));
        self.settle(state);
    }

    /// Their `end`.
    pub(crate) fn on_end(&self) {
        let mut state = self.lock();
        match state.recv {
            Recv::Open { left: Some(l) } if l > 0 => {
                drop(state);
                let reason = ResetReason::TooLarge;
                self.reset_for(reason, BodyError::Violation(reason));
            }
            Recv::Open { .. } => {
                state.recv = Recv::Done;
                self.settle(state);
            }
            _ => {}
        }
    }

    /// Their grant of `n` more bytes of our body.
    pub(crate) fn on_credit(&self, n: u64) {
        let mut state = self.lock();
        if let Send::Open { credit } = &mut state.send {
            *credit = credit.saturating_add(n);
            self.settle(state);
        }
    }

    /// Their reset (or the proxy's).
    pub(crate) fn on_reset(&self, reason: ResetReason) {
        let mut state = self.lock();
        if state.over {
            return;
        }
        state.fail(BodyError::Reset(reason));
        self.settle(state);
    }

    /// The tunnel dropped (the link has already let go of the exchange).
    pub(crate) fn lost(&self) {
        self.stop(BodyError::TunnelLost);
    }

    /// Another exchange took this one's CSeq on the link (a proxy that gave a CSeq still open
    /// again): nothing more can reach this one, so both its halves stop now, rather than
    /// wait for ever. Nothing is sent: the CSeq is the other exchange's now.
    pub(crate) fn displaced(&self) {
        self.stop(BodyError::Violation(ResetReason::Protocol));
    }

    fn stop(&self, why: BodyError) {
        let mut state = self.lock();
        if state.over {
            return;
        }
        state.fail(why);
        self.settle(state);
    }

    /// The head of their answer (a call) or of our answer (served) decides how the
    /// exchange goes on.
    ///
    /// A call's response head: `Some(length)` for a stream head, `None` for a whole answer,
    /// which ends the exchange (the rest of our request body is not wanted).
    pub(crate) fn response_arrived(&self, stream: Option<Option<u64>>) {
        let mut state = self.lock();
        if state.over {
            return;
        }
        match stream {
            Some(left) => {
                state.declared = left;
                state.recv = Recv::Open { left };
            }
            None => {
                state.recv = Recv::Done;
                if matches!(state.send, Send::Waiting | Send::Open { .. }) {
                    state.send = Send::Closed(BodyError::Answered);
                }
            }
        }
        self.settle(state);
    }

    /// We answered a served request: with a stream head (our body opens with the window) or
    /// whole (which ends the exchange: the rest of their request body is not wanted).
    pub(crate) fn responded(&self, streaming: bool) {
        let mut state = self.lock();
        if state.over {
            return;
        }
        if streaming {
            state.send = Send::Open {
                credit: STREAM_WINDOW,
            };
        } else {
            state.send = Send::Done;
            if matches!(state.recv, Recv::Waiting | Recv::Open { .. }) {
                state.recv = Recv::Failed(BodyError::Answered);
                state.queue.clear();
            }
        }
        self.settle(state);
    }

    // ---- our body ----------------------------------------------------------------------

    /// Credit available for our body (at least one byte), or why our body must stop.
    pub(crate) fn poll_credit(&self, cx: &mut Context<'_>) -> Poll<Result<u64, BodyError>> {
        let mut state = self.lock();
        match &state.send {
            Send::Open { credit } if *credit > 0 => Poll::Ready(Ok(*credit)),
            Send::Open { .. } | Send::Waiting => {
                state.send_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Send::Closed(why) => Poll::Ready(Err(why.clone())),
            Send::Done => Poll::Ready(Err(BodyError::Cancelled)),
        }
    }

    /// Ready once our body must stop (reset, answered whole, tunnel gone): for a sender
    /// that waits on something else meanwhile (a local peer's next bytes).
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<BodyError> {
        let mut state = self.lock();
        match &state.send {
            Send::Closed(why) => Poll::Ready(why.clone()),
            Send::Done => Poll::Ready(BodyError::Cancelled),
            Send::Open { .. } | Send::Waiting => {
                state.send_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Take `n` bytes of credit and queue them as a data message (`n` at most what
    /// [`poll_credit`](Self::poll_credit) said).
    pub(crate) async fn send_data(&self, payload: Bytes) -> Result<(), BodyError> {
        {
            let mut state = self.lock();
            match &mut state.send {
                Send::Open { credit } if *credit >= payload.len() as u64 => {
                    *credit -= payload.len() as u64;
                }
                Send::Closed(why) => return Err(why.clone()),
                _ => return Err(BodyError::Cancelled),
            }
        }
        let message = self.message(Verb::Data, payload);
        self.queues
            .out
            .send(message)
            .await
            .map_err(|_| BodyError::TunnelLost)
    }

    /// Our body is complete: `end`, after all its data.
    pub(crate) async fn end_send(&self) -> Result<(), BodyError> {
        {
            let mut state = self.lock();
            match &state.send {
                Send::Open { .. } => state.send = Send::Done,
                Send::Closed(why) => return Err(why.clone()),
                _ => return Ok(()),
            }
            // Leaves the table (if their side is over too) only after `end` is queued.
            drop(state);
        }
        let message = self.message(Verb::End, Bytes::new());
        let sent = self.queues.out.send(message).await;
        let state = self.lock();
        self.settle(state);
        sent.map_err(|_| BodyError::TunnelLost)
    }

    /// Our body's sender went away: unless it ended, the exchange is reset (`cancel`), so
    /// the far side never takes a cut-off body for a whole one.
    pub(crate) fn drop_send(&self) {
        let open = matches!(self.lock().send, Send::Open { .. });
        if open {
            self.reset(ResetReason::Cancel);
        }
    }

    // ---- their body --------------------------------------------------------------------

    /// Their next piece of data; `None` at their `end`; the error if the stream stopped.
    pub(crate) fn poll_chunk(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        let mut state = self.lock();
        if let Some(chunk) = state.queue.pop_front() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        match &state.recv {
            Recv::Open { .. } | Recv::Waiting => {
                state.recv_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Recv::Done => Poll::Ready(None),
            Recv::Failed(why) => Poll::Ready(Some(Err(why.clone()))),
        }
    }

    /// The consumer is done with `n` bytes of their data: grant them back (in batches of
    /// [`GRANT_BATCH_BYTES`], so that a trickle of small events does not cost a message each).
    pub(crate) fn release(&self, n: usize) {
        let state = self.lock();
        if !matches!(state.recv, Recv::Open { .. }) {
            return;
        }
        self.grant(state, n);
    }

    /// Count `n` bytes of their data as done with, and grant a batch once there is one —
    /// twice over while nothing of their body waits to be taken, growing the window.
    fn grant(&self, mut state: MutexGuard<'_, State>, n: usize) {
        state.released += n as u64;
        if state.released < GRANT_BATCH_BYTES {
            return;
        }
        let mut grant = std::mem::take(&mut state.released);
        // (A body being discarded is not worth a larger window.)
        if state.queue.is_empty() && !state.unwanted {
            let growth = grant.min(MAX_RECEIVE_WINDOW_BYTES.saturating_sub(state.window));
            state.window += growth;
            grant += growth;
        }
        state.allowed += grant;
        drop(state);
        self.queues
            .control(self.message(Verb::Credit(grant), Bytes::new()));
    }

    /// The length their body declared, if it did.
    pub(crate) fn declared(&self) -> Option<u64> {
        self.lock().declared
    }

    /// Bytes of their data still to come, when they declared a length.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.lock().recv {
            Recv::Open { left } => left,
            _ => Some(0),
        }
    }

    /// Whether their body is over (ended, whole or failed) and nothing of it is queued.
    pub(crate) fn recv_over(&self) -> bool {
        let state = self.lock();
        state.queue.is_empty() && !matches!(state.recv, Recv::Open { .. } | Recv::Waiting)
    }

    /// A request we serve was given up without an answer: the exchange is reset (`cancel`)
    /// unless an answer went (or it is over).
    pub(crate) fn unanswered(&self) {
        let waiting = matches!(self.lock().send, Send::Waiting);
        if waiting {
            self.reset(ResetReason::Cancel);
        }
    }

    /// Their body's consumer gives the exchange up: unless their body ended, it is reset
    /// (`cancel`).
    pub(crate) fn cancel_recv(&self) {
        let open = matches!(self.lock().recv, Recv::Open { .. });
        if open {
            self.reset(ResetReason::Cancel);
        }
    }

    /// Their body's consumer went away before its end. A call's response is not wanted any
    /// more: the exchange is reset (`cancel`). A served request's body may be left unread by
    /// whoever answers it (an early `413`, a handler that ignores the body): a reset would
    /// lose that answer, or cut off the tail of one already sent while it is still on its way
    /// to the caller, so the rest of the body is discarded as it arrives (granted back, so
    /// that the caller can end it) and the exchange ends as the answer and the body do.
    pub(crate) fn drop_recv(&self) {
        let mut state = self.lock();
        if !matches!(state.recv, Recv::Open { .. }) {
            return;
        }
        if self.dir == Direction::Outgoing {
            drop(state);
            return self.reset(ResetReason::Cancel);
        }
        state.unwanted = true;
        let queued = state.queue.drain(..).map(|piece| piece.len()).sum();
        self.grant(state, queued);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::task::Waker;

    use super::*;
    use crate::endpoint::session::QueueEnds;

    /// How long the exchanges made here wait for credit.
    pub(crate) const CREDIT_TIMEOUT: Duration = Duration::from_secs(120);

    /// The far ends of an exchange's link: its table and the writer's ends of its queues.
    pub(crate) struct Link {
        pub(crate) table: Arc<StreamTable>,
        pub(crate) ends: QueueEnds,
    }

    /// An exchange (one of our calls, CSeq 1) on a link of its own, in its table.
    pub(crate) fn exchange(send: Start, recv: Start) -> (Arc<Exchange>, Link) {
        exchange_waiting(send, recv, CREDIT_TIMEOUT)
    }

    /// [`exchange`], its body waiting for credit at most `credit_timeout`.
    pub(crate) fn exchange_waiting(
        send: Start,
        recv: Start,
        credit_timeout: Duration,
    ) -> (Arc<Exchange>, Link) {
        let (queues, ends) = Queues::new(16);
        let table = Arc::new(StreamTable::default());
        let exchange = Exchange::new(
            (Direction::Outgoing, 1),
            queues,
            Arc::clone(&table),
            credit_timeout,
            send,
            recv,
        );
        assert!(table.insert(&exchange));
        let link = Link { table, ends };
        (exchange, link)
    }

    /// A request we serve (CSeq 1, not answered yet) whose body streams, on a link of its
    /// own, in its table.
    pub(crate) fn served() -> (Arc<Exchange>, Link) {
        let (call, link) = exchange(Start::Done, Start::Done);
        let served = Exchange::new(
            (Direction::Incoming, 1),
            call.queues.clone(),
            Arc::clone(&link.table),
            CREDIT_TIMEOUT,
            Start::Waiting,
            Start::Streaming(None),
        );
        assert!(link.table.insert(&served));
        (served, link)
    }

    /// Another exchange with `exchange`'s link and CSeq, not yet in the table.
    pub(crate) fn same_cseq(exchange: &Exchange, send: Start, recv: Start) -> Arc<Exchange> {
        Exchange::new(
            (exchange.dir, exchange.cseq),
            exchange.queues.clone(),
            Arc::clone(&exchange.table),
            exchange.credit_timeout,
            send,
            recv,
        )
    }

    /// The stream messages queued for the writer so far, as their tag lines.
    fn queued(link: &mut Link) -> Vec<String> {
        link.ends
            .drain()
            .into_iter()
            .filter_map(|o| match o {
                Outgoing::Message { head, .. } => Some(String::from_utf8_lossy(&head).into_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_served_body_left_unread_keeps_its_answer_and_is_discarded() {
        let (served, mut link) = served();
        served.on_data(Bytes::from(vec![1u8; 48 * 1024]));
        drop(crate::endpoint::stream::InboundBody::new(Arc::clone(
            &served,
        )));
        assert!(
            queued(&mut link)
                .iter()
                .all(|tag| !tag.starts_with("~reset")),
            "a body left unread reset the exchange: its answer would be lost"
        );
        // What still comes is not held, and is granted back so the caller can end it.
        served.on_data(Bytes::from(vec![2u8; 48 * 1024]));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(served.poll_chunk(&mut cx).is_pending());
        assert_eq!(queued(&mut link), ["~credit <1 98304\n"]);
        // The answer goes, whole: the exchange is over and leaves the table.
        served.responded(false);
        assert!(link.table.get(Direction::Incoming, 1).is_none());
        assert!(queued(&mut link).is_empty());
    }

    #[test]
    fn the_receive_window_grows_only_while_the_consumer_keeps_up() {
        let (served, mut link) = served();
        let batch = GRANT_BATCH_BYTES as usize;
        let mut cx = Context::from_waker(Waker::noop());
        // Taken as it comes: each batch is granted twice over, up to the maximum window.
        let mut granted = 0u64;
        let mut grants = Vec::new();
        while granted < MAX_RECEIVE_WINDOW_BYTES * 2 {
            served.on_data(Bytes::from(vec![0u8; batch]));
            let Poll::Ready(Some(Ok(chunk))) = served.poll_chunk(&mut cx) else {
                panic!("the chunk is there");
            };
            served.release(chunk.len());
            for tag in queued(&mut link) {
                let n: u64 = tag
                    .trim_end()
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a credit");
                granted += n;
                grants.push(n);
            }
        }
        assert_eq!(grants[0], 2 * GRANT_BATCH_BYTES, "doubled while keeping up");
        assert_eq!(
            *grants.last().expect("grants"),
            GRANT_BATCH_BYTES,
            "then only what it took"
        );
        let received = (grants.len() * batch) as u64;
        assert_eq!(
            STREAM_WINDOW + granted - received,
            MAX_RECEIVE_WINDOW_BYTES,
            "in flight: the maximum window, no more"
        );
        // Behind: two batches wait when one is taken, and it is granted only once.
        served.on_data(Bytes::from(vec![0u8; batch]));
        served.on_data(Bytes::from(vec![0u8; batch]));
        let Poll::Ready(Some(Ok(chunk))) = served.poll_chunk(&mut cx) else {
            panic!("the chunk is there");
        };
        served.release(chunk.len());
        assert_eq!(
            queued(&mut link),
            [format!("~credit <1 {GRANT_BATCH_BYTES}\n")]
        );
    }

    #[tokio::test]
    async fn a_body_granted_nothing_for_the_credit_timeout_resets_its_stream() {
        let limit = Duration::from_millis(50);
        let (call, mut link) = exchange_waiting(Start::Streaming(None), Start::Waiting, limit);
        let mut writer = crate::endpoint::stream::BodyWriter::new(Arc::clone(&call));
        // The whole first window goes; then nothing more is granted.
        let window = Bytes::from(vec![0u8; STREAM_WINDOW as usize]);
        writer.send(window).await.expect("the first window goes");
        let waited = tokio::time::timeout(Duration::from_secs(5), writer.credit()).await;
        assert!(
            matches!(waited, Ok(Err(BodyError::Reset(ResetReason::Timeout)))),
            "{waited:?}"
        );
        let tags = queued(&mut link);
        assert_eq!(tags.last().map(String::as_str), Some("~reset >1 timeout\n"));
        assert!(link.table.get(Direction::Outgoing, 1).is_none());
    }

    #[test]
    fn a_response_body_dropped_resets_the_call() {
        let (call, mut link) = exchange(Start::Done, Start::Streaming(None));
        drop(crate::endpoint::stream::InboundBody::new(Arc::clone(&call)));
        assert_eq!(queued(&mut link), ["~reset >1 cancel\n"]);
        assert!(link.table.get(Direction::Outgoing, 1).is_none());
    }

    #[test]
    fn a_queued_piece_holds_only_its_own_bytes() {
        // A read block much larger than the data message read into it (a block grown for a
        // large whole message, say), and that message, as the reader hands it on: a view.
        let block = Bytes::from(vec![7u8; 4 << 20]);
        let range = block.as_ptr() as usize..block.as_ptr() as usize + block.len();
        let (exchange, _link) = exchange(Start::Done, Start::Streaming(None));
        exchange.on_data(block.slice(1024..1024 + 64 * 1024));
        drop(block);
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Some(Ok(piece))) = exchange.poll_chunk(&mut cx) else {
            panic!("the piece is queued");
        };
        assert_eq!(piece.len(), 64 * 1024);
        assert!(
            !range.contains(&(piece.as_ptr() as usize)),
            "the queued piece is a view of the 4 MiB block: it keeps all of it alive"
        );
    }
}
