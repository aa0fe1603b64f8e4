//! Cross-shard routing: one lock-free queue per (from, to) shard pair, drained in batches,
//! with a sleeping shard woken once per batch of work rather than once per message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use crate::proxy::messages::ShardMessage;

/// Queue slots each shard has for messages from all other shards together; split evenly
/// between the sources so that the total stays the same however many shards run.
pub const INBOUND_SLOTS_PER_SHARD: usize = 4096;
/// Fewest slots one (from, to) queue gets.
const MIN_SLOTS_PER_QUEUE: usize = 64;

struct Inbox {
    waker: AtomicWaker,
    /// Set by the first producer after the consumer last looked; later producers see it set
    /// and skip the wake-up (an eventfd write when the shard sleeps).
    notified: AtomicBool,
}

/// The shared routing fabric of one proxy: `shards × shards` queues and one inbox per shard.
pub struct ShardRouter {
    shards: usize,
    queues: Box<[ArrayQueue<ShardMessage>]>,
    inboxes: Box<[Inbox]>,
}

impl std::fmt::Debug for ShardRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardRouter")
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl ShardRouter {
    /// Queues for `shards` shards (at least one), each with its share of
    /// [`INBOUND_SLOTS_PER_SHARD`] (never fewer than 64 slots).
    pub fn new(shards: usize) -> Self {
        let shards = shards.max(1);
        let slots = (INBOUND_SLOTS_PER_SHARD / shards).max(MIN_SLOTS_PER_QUEUE);
        let queues = (0..shards * shards)
            .map(|_| ArrayQueue::new(slots))
            .collect();
        let inboxes = (0..shards)
            .map(|_| Inbox {
                waker: AtomicWaker::new(),
                notified: AtomicBool::new(false),
            })
            .collect();
        Self {
            shards,
            queues,
            inboxes,
        }
    }

    /// How many shards the proxy runs: an address's owner is its hash modulo this.
    pub fn shards(&self) -> usize {
        self.shards
    }

    fn queue(&self, from: usize, to: usize) -> &ArrayQueue<ShardMessage> {
        &self.queues[from * self.shards + to]
    }

    /// Queue `msg` from shard `from` to shard `to`. Gives the message back when that queue is
    /// full; the caller decides whether to hold it or refuse the work. (The message is given
    /// back by value on purpose: boxing it would cost an allocation per relayed request.)
    #[allow(clippy::result_large_err)]
    pub fn send(&self, from: usize, to: usize, msg: ShardMessage) -> Result<(), ShardMessage> {
        self.queue(from, to).push(msg)?;
        self.notify(to);
        Ok(())
    }

    /// Wake shard `to` if nobody has since it last looked at its queues.
    pub fn notify(&self, to: usize) {
        let inbox = &self.inboxes[to];
        if !inbox.notified.swap(true, Ordering::AcqRel) {
            inbox.waker.wake();
        }
    }

    /// Pop up to `max` messages for shard `me`, taking from each source in turn so that one
    /// busy shard cannot starve the others. Returns how many were handled.
    pub fn drain(&self, me: usize, max: usize, mut handle: impl FnMut(ShardMessage)) -> usize {
        let mut handled = 0;
        loop {
            let mut round = 0;
            for from in 0..self.shards {
                if handled == max {
                    return handled;
                }
                if let Some(msg) = self.queue(from, me).pop() {
                    handle(msg);
                    handled += 1;
                    round += 1;
                }
            }
            if round == 0 {
                return handled;
            }
        }
    }

    /// Whether every queue into shard `me` is empty right now.
    pub fn inbox_empty(&self, me: usize) -> bool {
        (0..self.shards).all(|from| self.queue(from, me).is_empty())
    }

    /// Ready when shard `me` may have messages waiting (or was explicitly notified).
    pub fn poll_inbox(&self, me: usize, cx: &mut Context<'_>) -> Poll<()> {
        let inbox = &self.inboxes[me];
        inbox.waker.register(cx.waker());
        if inbox.notified.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        if self.inbox_empty(me) {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ids::{CallerKind, ConnKey};
    use crate::proxy::messages::{Delivery, OutFrame, Progress};

    fn delivery(cseq: u64) -> ShardMessage {
        ShardMessage::Respond(Delivery {
            to: ConnKey {
                index: 0,
                generation: 0,
            },
            kind: CallerKind::WebSocket,
            origin_cseq: cseq,
            frame: OutFrame::empty(),
            progress: Progress::Ends,
        })
    }

    #[test]
    fn drains_round_robin_in_order_per_source() {
        let router = ShardRouter::new(3);
        for cseq in 0..3 {
            router.send(0, 2, delivery(cseq)).expect("room");
            router.send(1, 2, delivery(100 + cseq)).expect("room");
        }
        let mut seen = Vec::new();
        router.drain(2, usize::MAX, |m| {
            if let ShardMessage::Respond(d) = m {
                seen.push(d.origin_cseq);
            }
        });
        assert_eq!(seen, vec![0, 100, 1, 101, 2, 102]);
    }

    #[test]
    fn full_queue_gives_message_back() {
        let router = ShardRouter::new(1);
        let mut sent = 0;
        while router.send(0, 0, delivery(sent)).is_ok() {
            sent += 1;
            assert!(sent <= INBOUND_SLOTS_PER_SHARD as u64);
        }
        assert_eq!(sent, INBOUND_SLOTS_PER_SHARD as u64);
    }

    #[test]
    fn wakes_once_until_consumer_looks_again() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        use std::task::{Wake, Waker};
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let router = ShardRouter::new(2);
        assert!(router.poll_inbox(1, &mut cx).is_pending());
        for cseq in 0..10 {
            router.send(0, 1, delivery(cseq)).expect("room");
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "ten messages, one wake-up"
        );
        assert!(router.poll_inbox(1, &mut cx).is_ready());
        assert_eq!(router.drain(1, 4, |_| {}), 4);
        assert!(router.poll_inbox(1, &mut cx).is_ready(), "six still queued");
        assert_eq!(router.drain(1, 100, |_| {}), 6);
        assert!(router.poll_inbox(1, &mut cx).is_pending());
    }
}
