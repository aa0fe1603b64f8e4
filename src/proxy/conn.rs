//! One registered WebSocket connection's state: its address, its outbound queue (every byte
//! it holds counted against the queue limit), the requests it owes and is owed, and its
//! frame decoder. The task that drives it is [`crate::proxy::conn_driver`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::task::Waker;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::proto::address::VirtualAddress;
use crate::proto::frame::MessageDecoder;
use crate::proto::handshake::Protocol;
use crate::proxy::ids::ConnKey;
use crate::proxy::messages::OutFrame;
use crate::proxy::pending::{InflightSet, PendingTable};
use crate::proxy::streams::{OutgoingStreams, StreamTable};

/// What one queued piece costs beyond its bytes (its queue slot, with the queue's growth, and
/// its allocation), counted against `--max-queued-bytes` so that a flood of tiny frames
/// (pongs) is bounded too.
pub const QUEUE_SLOT_BYTES: usize = 80;
/// Pieces smaller than this are copied into a buffer of their own when they have to wait
/// (the socket is full): as views they would pin a whole 64 KiB read or arena block each,
/// shared with frames long gone, and the queue would hold far more than it counts. A larger
/// piece holds at most twice its size.
pub const COPY_WHEN_WAITING_BYTES: usize = 32 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Registered and relaying.
    Open,
    /// A close frame is queued; the connection ends once it is written.
    Closing {
        /// When the close frame was queued: the connection is killed if it is still here
        /// [`CLOSE_FLUSH_TIMEOUT`](crate::proxy::config::CLOSE_FLUSH_TIMEOUT) later.
        since: Instant,
    },
    /// End now, whatever is queued (dead peer, too slow, shutdown deadline).
    Kill,
}

/// The mutable part of a connection. Everything in it is empty (and unallocated) while the
/// connection is idle.
#[derive(Debug)]
pub struct ConnState {
    out: VecDeque<Bytes>,
    /// Bytes in `out` still to be written.
    out_bytes: usize,
    /// The socket refused more bytes and `out` has not emptied since: whatever is queued now
    /// waits for the peer, so it is copied out of the shard's shared blocks.
    stalled: bool,
    pub(crate) waker: Option<Waker>,
    /// Where the connection is in its life.
    pub phase: Phase,
    /// Requests sent to this connection, waiting for its responses.
    pub pending: PendingTable,
    /// CSeqs of requests this connection sent, waiting for responses.
    pub inflight: InflightSet,
    /// Exchanges streaming to this connection as a target (protocol 2), by proxy CSeq.
    pub streams: StreamTable,
    /// This connection's own streaming exchanges (as a caller): CSeq → the shard that holds
    /// the stream's state.
    pub outgoing: OutgoingStreams,
    /// Whether this connection is listed in the shard's set of connections with streams.
    pub in_stream_set: bool,
    /// Whether this connection is listed in the shard's set of connections with pending requests.
    pub in_timed_set: bool,
    pub(crate) decoder: MessageDecoder,
    /// The bytes of a frame that arrived in part (empty, and unallocated, otherwise).
    pub(crate) partial: BytesMut,
    /// When bytes last arrived: after `idle_timeout` of silence the connection is pinged.
    pub last_seen: Instant,
    /// When the proxy pinged the connection; anything arriving clears it, and with nothing
    /// within `pong_timeout` the connection is dropped.
    pub ping_sent: Option<Instant>,
}

/// A registered connection, shared by its driver task and the shard.
#[derive(Debug)]
pub struct Conn {
    /// Its key in the shard's slab of WebSocket connections.
    pub key: ConnKey,
    /// The address it registered under.
    pub address: VirtualAddress,
    /// Registered with `?public=1`: takes calls from the internet (public ingress).
    pub public: bool,
    /// The protocol it negotiated at the handshake (protocol 2 streams).
    pub protocol: Protocol,
    /// What changes as it runs; a `RefCell`, since the shard and the driver task share one thread.
    pub state: RefCell<ConnState>,
}

impl Conn {
    /// A new open connection; `leftover` holds what the peer sent behind its handshake head.
    pub fn new(
        key: ConnKey,
        address: VirtualAddress,
        public: bool,
        protocol: Protocol,
        leftover: BytesMut,
    ) -> Self {
        Self {
            key,
            address,
            public,
            protocol,
            state: RefCell::new(ConnState {
                out: VecDeque::new(),
                out_bytes: 0,
                stalled: false,
                waker: None,
                phase: Phase::Open,
                pending: PendingTable::default(),
                inflight: InflightSet::new(),
                streams: StreamTable::new(),
                outgoing: OutgoingStreams::new(),
                in_stream_set: false,
                in_timed_set: false,
                decoder: MessageDecoder::new(),
                partial: leftover,
                last_seen: Instant::now(),
                ping_sent: None,
            }),
        }
    }

    /// Queue a frame for writing, unless the queue would then hold more than `limit` bytes
    /// (counted the way [`queued_bytes`](Self::queued_bytes) counts): the peer is not reading,
    /// and the caller drops the connection. Frames queued after the close frame are dropped.
    pub fn enqueue(&self, frame: OutFrame, limit: usize) -> Queued {
        let mut st = self.state.borrow_mut();
        if st.phase != Phase::Open {
            return Queued::Ok;
        }
        let pieces = if frame.body.is_empty() { 1 } else { 2 };
        if st.held_bytes() + frame.len() + pieces * QUEUE_SLOT_BYTES > limit {
            return Queued::OverLimit;
        }
        st.out_bytes += frame.len();
        if st.stalled && frame.len() < COPY_WHEN_WAITING_BYTES {
            let mut own = Vec::with_capacity(frame.len());
            own.extend_from_slice(&frame.head);
            own.extend_from_slice(&frame.body);
            st.out.push_back(Bytes::from(own));
        } else {
            st.out.push_back(frame.head);
            if !frame.body.is_empty() {
                st.out.push_back(frame.body);
            }
        }
        wake(&mut st);
        Queued::Ok
    }

    /// Queue the close frame (after anything already queued) and stop taking new frames.
    pub fn begin_close(&self, close_frame: Bytes) {
        let mut st = self.state.borrow_mut();
        if st.phase != Phase::Open {
            return;
        }
        st.out_bytes += close_frame.len();
        st.out.push_back(close_frame);
        st.phase = Phase::Closing {
            since: Instant::now(),
        };
        wake(&mut st);
    }

    /// End the connection without flushing.
    pub fn kill(&self) {
        let mut st = self.state.borrow_mut();
        st.phase = Phase::Kill;
        wake(&mut st);
    }

    /// What the outbound queue holds, as counted against `--max-queued-bytes`.
    pub fn queued_bytes(&self) -> usize {
        self.state.borrow().held_bytes()
    }

    /// Still relaying: no close frame queued and not killed.
    pub fn is_open(&self) -> bool {
        self.state.borrow().phase == Phase::Open
    }

    /// Give back memory a burst of traffic left behind (called for idle connections).
    pub fn compact(&self) {
        let mut st = self.state.borrow_mut();
        if st.out.is_empty() {
            st.out = VecDeque::new();
        }
        if st.inflight.is_empty() {
            st.inflight = InflightSet::new();
        }
        if st.partial.is_empty() {
            st.partial = BytesMut::new();
        }
    }
}

/// Whether [`Conn::enqueue`] took a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Queued {
    /// Queued (or, once the connection is closing, quietly dropped).
    Ok,
    /// The queue is full: the peer does not read what it is sent.
    OverLimit,
}

impl ConnState {
    /// Every byte the outbound queue holds: the bytes still to write plus a slot's cost per
    /// piece (pieces that could pin a shared block are copied out of it once they wait).
    fn held_bytes(&self) -> usize {
        self.out_bytes + self.out.len() * QUEUE_SLOT_BYTES
    }

    pub(crate) fn queue_is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The queue has drained: give its buffer back (most connections are idle most of the
    /// time, and re-creating a small queue costs one allocation per burst, next to a writev
    /// per burst), and the socket is no longer full.
    pub(crate) fn release_queue(&mut self) {
        if self.out.capacity() > 0 {
            self.out = VecDeque::new();
        }
        self.stalled = false;
    }

    /// Point `slices` at the front of the queue, for one vectored write; how many are used.
    pub(crate) fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.out
            .iter()
            .zip(slices.iter_mut())
            .map(|(b, s)| *s = IoSlice::new(b))
            .count()
    }

    /// `n` bytes from the front of the queue were written.
    pub(crate) fn written(&mut self, n: usize) {
        self.out_bytes -= n;
        let mut left = n;
        while left > 0 {
            let Some(front) = self.out.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                self.out.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }

    /// The socket is full: copy what waits out of the shard's shared blocks, once per stall
    /// (everything queued while stalled is copied as it comes).
    pub(crate) fn stall(&mut self) {
        if self.stalled {
            return;
        }
        self.stalled = true;
        for piece in self.out.iter_mut() {
            if piece.len() < COPY_WHEN_WAITING_BYTES {
                *piece = Bytes::copy_from_slice(piece);
            }
        }
    }
}

fn wake(st: &mut ConnState) {
    if let Some(waker) = st.waker.take() {
        waker.wake();
    }
}
