//! Cross-shard routing: one lock-free queue per (from, to) shard pair, drained in batches,
//! with a sleeping shard woken once per batch of work rather than once per message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;

use crate::proto::address::VirtualAddress;
use crate::proto::frame::OpCode;
use crate::proto::handshake::UpgradeRequest;
use crate::proto::head::HeadInfo;
use crate::proxy::pending::ReplyAs;
use crate::proxy::transport::DetachedTransport;

/// Queue slots each shard has for messages from all other shards together; split evenly
/// between the sources so that the total stays the same however many shards run.
pub const INBOUND_SLOTS_PER_SHARD: usize = 4096;
/// Fewest slots one (from, to) queue gets.
const MIN_SLOTS_PER_QUEUE: usize = 64;

/// A connection's key inside its shard's slab: index plus generation, so a stale key (the
/// connection closed and the slot was reused) never reaches the wrong connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub index: u32,
    pub generation: u32,
}

/// Which of a shard's connection slabs a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallerKind {
    /// A registered endpoint's WebSocket.
    WebSocket,
    /// A plain HTTP client of the public ingress.
    Http,
}

/// A connection anywhere in the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub shard: u16,
    pub kind: CallerKind,
    pub key: ConnKey,
}

/// One outbound WebSocket frame as it will be written: the frame header with the (rewritten)
/// HTTP head in one piece, and the body handed on untouched (zero-copy, maybe empty).
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub head: Bytes,
    pub body: Bytes,
}

impl OutFrame {
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request on its way to the shard that owns its target address.
#[derive(Debug)]
pub struct RelayRequest {
    pub origin: ConnRef,
    pub origin_cseq: u64,
    /// The caller's address, stamped as `Httpws-From`; `None` for an internet caller. (The
    /// target is re-read from the head's Host on the owner shard.)
    pub from: Option<VirtualAddress>,
    /// The frame opcode towards the target.
    pub opcode: OpCode,
    /// The request head (`info` describes it); anything after `info.head_len` is ignored.
    pub message: Bytes,
    pub info: HeadInfo,
    /// The body, handed on untouched.
    pub body: Bytes,
    /// How the caller wants its answer.
    pub reply: ReplyAs,
}

/// The answer to one request, on its way back to the caller's connection.
#[derive(Debug)]
pub struct Delivery {
    pub to: ConnKey,
    pub kind: CallerKind,
    pub origin_cseq: u64,
    pub frame: OutFrame,
}

/// A freshly upgraded connection travelling to the shard that owns its address.
#[derive(Debug)]
pub struct Handoff {
    pub transport: DetachedTransport,
    pub request: UpgradeRequest,
    pub address: VirtualAddress,
    /// Bytes the client sent after its handshake head.
    pub leftover: Bytes,
}

/// A public-ingress connection travelling to the shard that owns its first request's target.
#[derive(Debug)]
pub struct HttpHandoff {
    pub transport: DetachedTransport,
    pub peer: std::net::IpAddr,
    /// What was read and not yet handled: the first request (or part of it) and anything after.
    pub buffered: Bytes,
}

/// Everything one shard can ask of another.
#[derive(Debug)]
pub enum ShardMessage {
    Adopt(Box<Handoff>),
    AdoptHttp(Box<HttpHandoff>),
    Request(RelayRequest),
    Respond(Delivery),
}

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

    fn delivery(cseq: u64) -> ShardMessage {
        ShardMessage::Respond(Delivery {
            to: ConnKey {
                index: 0,
                generation: 0,
            },
            kind: CallerKind::WebSocket,
            origin_cseq: cseq,
            frame: OutFrame {
                head: Bytes::new(),
                body: Bytes::new(),
            },
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
