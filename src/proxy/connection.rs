//! One registered WebSocket connection: its state, and the single task that drives it
//! (flush queued frames with vectored writes, read frames, hand each event to the relay).
//!
//! Reads are readiness-based (monoio `poll-io`): the bytes land in the shard's shared read
//! buffer, and only the tail of a partial frame is kept per connection, so an idle
//! connection holds no read buffer at all.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proto::address::VirtualAddress;
use crate::proto::frame::{self, Event, FrameError, MAX_HEADER_LEN, MessageDecoder};
use crate::proxy::pending::{InflightSet, PendingTable};
use crate::proxy::router::{ConnKey, OutFrame};
use crate::proxy::shard::Shard;
use crate::proxy::transport::Transport;

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// Reads one connection may do in a row before it lets the other tasks of its shard run.
const READS_PER_TURN: usize = 16;
/// Smallest room offered to a read that continues a partial frame.
const MIN_PARTIAL_READ: usize = 4 * 1024;
/// What one queued piece costs beyond its bytes (its queue slot, with the queue's growth, and
/// its allocation), counted
/// against `--max-queued-bytes` so that a flood of tiny frames (pongs) is bounded too.
pub const QUEUE_SLOT_BYTES: usize = 80;
/// Pieces smaller than this are copied into a buffer of their own when they have to wait
/// (the socket is full): as views they would pin a whole 64 KiB read or arena block each,
/// shared with frames long gone, and the queue would hold far more than it counts. A larger
/// piece holds at most twice its size.
pub const COPY_WHEN_WAITING_BYTES: usize = 32 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// A close frame is queued; the connection ends once it is written.
    Closing {
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
    waker: Option<Waker>,
    pub phase: Phase,
    /// Requests sent to this connection, waiting for its responses.
    pub pending: PendingTable,
    /// CSeqs of requests this connection sent, waiting for responses.
    pub inflight: InflightSet,
    /// Whether this connection is listed in the shard's set of connections with pending requests.
    pub in_timed_set: bool,
    decoder: MessageDecoder,
    partial: BytesMut,
    pub last_seen: Instant,
    pub ping_sent: Option<Instant>,
}

/// A registered connection, shared by its driver task and the shard.
#[derive(Debug)]
pub struct Conn {
    pub key: ConnKey,
    pub address: VirtualAddress,
    /// Registered with `?public=1`: takes calls from the internet (public ingress).
    pub public: bool,
    pub state: RefCell<ConnState>,
}

impl Conn {
    pub fn new(key: ConnKey, address: VirtualAddress, public: bool, leftover: BytesMut) -> Self {
        Self {
            key,
            address,
            public,
            state: RefCell::new(ConnState {
                out: VecDeque::new(),
                out_bytes: 0,
                stalled: false,
                waker: None,
                phase: Phase::Open,
                pending: PendingTable::default(),
                inflight: InflightSet::new(),
                in_timed_set: false,
                decoder: MessageDecoder::new(),
                partial: leftover,
                last_seen: Instant::now(),
                ping_sent: None,
            }),
        }
    }

    /// Queue a frame for writing, unless the queue would then hold more than `limit` bytes
    /// (counted as [`ConnState::held_bytes`]): the peer is not reading, and the caller drops
    /// the connection. Frames queued after the close frame are dropped.
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

    /// The socket is full: copy what waits out of the shard's shared blocks, once per stall
    /// (everything queued while stalled is copied as it comes).
    fn stall(&mut self) {
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

/// How much room to add to a partial frame's buffer: enough for the rest of the frame, but
/// never more than the bytes already received (plus a minimum), so memory grows with what the
/// peer actually sent rather than with the length its header claims.
fn partial_growth(partial: &BytesMut, max_frame: usize) -> usize {
    let remaining = frame::frame_len_hint(partial)
        .and_then(|n| usize::try_from(n).ok())
        .map_or(MIN_PARTIAL_READ, |n| {
            n.min(max_frame).saturating_sub(partial.len())
        });
    remaining.min(partial.len().max(MIN_PARTIAL_READ)).max(1)
}

/// Read from `io` into the spare capacity of `buf` (the caller reserves room first).
pub fn poll_read_buf(
    io: &mut Transport,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let mut read_buf = ReadBuf::uninit(spare);
    match Pin::new(io).poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => {
            let n = read_buf.filled().len();
            let len = buf.len();
            // SAFETY: `ReadBuf` counts as filled only bytes the read initialized, and those
            // are the first `n` bytes of `buf`'s spare capacity.
            unsafe { buf.set_len(len + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Most pieces [`write_all`] takes: an ingress response is head, end of head, body.
const MAX_PIECES: usize = 3;

/// Write every byte of `pieces` (at most [`MAX_PIECES`]) with vectored writes, then flush
/// (TLS holds ciphertext otherwise). Nothing is allocated. Used where a connection has no
/// driver: refusals, handshakes and the public ingress.
pub async fn write_all(io: &mut Transport, pieces: &[&[u8]]) -> io::Result<()> {
    let mut parts: [&[u8]; MAX_PIECES] = [&[]; MAX_PIECES];
    let count = pieces.len().min(MAX_PIECES);
    parts[..count].copy_from_slice(&pieces[..count]);
    let mut first = 0;
    loop {
        while first < count && parts[first].is_empty() {
            first += 1;
        }
        if first == count {
            break;
        }
        let mut slices = [IoSlice::new(&[]); MAX_PIECES];
        for (slice, part) in slices.iter_mut().zip(&parts[first..count]) {
            *slice = IoSlice::new(part);
        }
        let live = &slices[..count - first];
        let n = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, live)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 && first < count {
            let len = parts[first].len();
            if len <= left {
                left -= len;
                first += 1;
            } else {
                parts[first] = &parts[first][left..];
                left = 0;
            }
        }
    }
    std::future::poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
}

/// The task that drives `conn` until it ends, then lets the shard clean up after it. The
/// returned future is spawned as is (no async wrapper), so the task holds nothing but it.
pub fn drive(shard: Rc<Shard>, conn: Rc<Conn>, io: Transport) -> Driver {
    Driver {
        shard,
        conn,
        io,
        fresh: true,
    }
}

pub struct Driver {
    shard: Rc<Shard>,
    conn: Rc<Conn>,
    io: Transport,
    /// Not polled yet: bytes buffered during the handshake still need decoding.
    fresh: bool,
}

enum Input {
    /// Bytes arrived (or were already buffered) and were decoded.
    Progress,
    /// The peer closed its side.
    Eof,
    Pending,
}

impl Driver {
    /// Write queued frames until the queue is empty (Ready) or the socket is full (Pending).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut st = self.conn.state.borrow_mut();
            if st.out.is_empty() {
                // Give the queue's buffer back as soon as it drains: most connections are
                // idle most of the time, and re-creating a small queue costs one allocation
                // per burst, next to a writev per burst.
                if st.out.capacity() > 0 {
                    st.out = VecDeque::new();
                }
                st.stalled = false;
                drop(st);
                // A plain socket has nothing to flush; TLS may still hold ciphertext.
                return Pin::new(&mut self.io).poll_flush(cx);
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = st
                .out
                .iter()
                .zip(slices.iter_mut())
                .map(|(b, s)| *s = IoSlice::new(b))
                .count();
            let written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    st.stall();
                    return Poll::Pending;
                }
            };
            st.out_bytes -= written;
            let mut left = written;
            while left > 0 {
                let Some(front) = st.out.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    st.out.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
    }

    /// Read once and decode whatever complete frames that produced.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> io::Result<Input> {
        let shard = &self.shard;
        let max_frame = shard.config.max_message_bytes + MAX_HEADER_LEN;
        let has_partial = !self.conn.state.borrow().partial.is_empty();
        let read = if has_partial {
            let mut st = self.conn.state.borrow_mut();
            let partial = &mut st.partial;
            if partial.capacity() == partial.len() {
                partial.reserve(partial_growth(partial, max_frame));
            }
            poll_read_buf(&mut self.io, cx, partial)
        } else {
            let mut buf = shard.read_buf.borrow_mut();
            shard.prepare_read_buf(&mut buf);
            poll_read_buf(&mut self.io, cx, &mut buf)
        };
        match read {
            Poll::Pending => return Ok(Input::Pending),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(0)) => return Ok(Input::Eof),
            Poll::Ready(Ok(_)) => {}
        }
        self.conn.state.borrow_mut().last_seen = Instant::now();
        self.decode_buffered(has_partial);
        Ok(Input::Progress)
    }

    /// Decode every complete frame buffered for this connection and hand each to the relay.
    /// No borrow is held while the relay runs: it may queue frames on this very connection.
    fn decode_buffered(&mut self, from_partial: bool) {
        let shard = self.shard.clone();
        let config = shard.decoder_config;
        loop {
            if !self.conn.is_open() {
                break;
            }
            let decoded = {
                let mut st = self.conn.state.borrow_mut();
                let st = &mut *st;
                if from_partial {
                    st.decoder.decode(&mut st.partial, &config)
                } else {
                    let mut buf = shard.read_buf.borrow_mut();
                    st.decoder.decode(&mut buf, &config)
                }
            };
            match decoded {
                Ok(Some(event)) => self.on_event(event),
                Ok(None) => break,
                Err(e) => {
                    self.on_protocol_error(&e);
                    break;
                }
            }
        }
        let mut st = self.conn.state.borrow_mut();
        if from_partial {
            if st.partial.is_empty() {
                // Drop the block the partial frame lived in.
                st.partial = BytesMut::new();
            }
        } else {
            // Keep a copy of only the incomplete frame's bytes: a view would pin the shard's
            // whole read block for as long as the peer takes to send the rest.
            let mut buf = shard.read_buf.borrow_mut();
            if !buf.is_empty() && st.phase == Phase::Open {
                let max_frame = shard.config.max_message_bytes + MAX_HEADER_LEN;
                let mut partial = BytesMut::with_capacity(buf.len());
                partial.extend_from_slice(&buf);
                let growth = partial_growth(&partial, max_frame);
                partial.reserve(growth);
                st.partial = partial;
            }
            buf.clear();
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message { opcode, payload } => {
                self.shard.on_message(&self.conn, opcode, payload)
            }
            Event::Ping(payload) => {
                let pong = self.shard.control_frame(frame::OpCode::Pong, &payload);
                self.shard.queue(
                    &self.conn,
                    OutFrame {
                        head: pong,
                        body: Bytes::new(),
                    },
                );
            }
            Event::Pong(_) => self.conn.state.borrow_mut().ping_sent = None,
            Event::Close { code, .. } => {
                // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty one.
                let payload = code.map_or(Bytes::new(), |c| frame::close_payload(c, ""));
                let close = self.shard.control_frame(frame::OpCode::Close, &payload);
                self.shard.close_connection(&self.conn, close);
            }
        }
    }

    fn on_protocol_error(&mut self, error: &FrameError) {
        tracing::debug!(address = %self.conn.address, %error, "protocol violation");
        if let FrameError::MessageTooLarge { .. } = error {
            self.shard.send_indication(
                &self.conn,
                crate::proto::indication::IndicationError::MessageTooLarge,
                &error.to_string(),
            );
        }
        let payload = frame::close_payload(error.close_code(), &error.to_string());
        let close = self.shard.control_frame(frame::OpCode::Close, &payload);
        self.shard.close_connection(&self.conn, close);
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let outcome = match this.poll_connection(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        match outcome {
            Ok(()) => tracing::debug!(address = %this.conn.address, "connection closed"),
            Err(e) => {
                tracing::debug!(address = %this.conn.address, error = %e, "connection failed")
            }
        }
        this.shard.connection_ended(&this.conn);
        Poll::Ready(())
    }
}

impl Driver {
    fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self;
        {
            let mut st = this.conn.state.borrow_mut();
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
        }
        // Bytes that arrived right behind the handshake are decoded before the first read.
        if this.fresh {
            this.fresh = false;
            if !this.conn.state.borrow().partial.is_empty() {
                this.decode_buffered(true);
            }
        }
        for _ in 0..READS_PER_TURN {
            let phase = this.conn.state.borrow().phase;
            if phase == Phase::Kill {
                return Poll::Ready(Ok(()));
            }
            let flushed = this.poll_flush(cx)?.is_ready();
            if let Phase::Closing { .. } = phase {
                if flushed {
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    return Poll::Ready(Ok(()));
                }
                // Still flushing the last frames; reading more would only add work.
                return Poll::Pending;
            }
            match this.poll_input(cx)? {
                Input::Progress => continue,
                Input::Eof => return Poll::Ready(Ok(())),
                Input::Pending => return Poll::Pending,
            }
        }
        // Used up this turn's reads: yield so the shard's other connections get theirs.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
