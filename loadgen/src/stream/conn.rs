//! One stream-mode connection and its task: the streams it calls and serves, the order its
//! bytes go out in, and the loop that reads, keeps the schedule (events, small requests,
//! phase changes) and writes.
//!
//! Whatever is due goes into `out` first (heads, credits, events, resets, small requests
//! and their answers); body data is cut from the streams that have both data and credit,
//! round-robin, only while `out` holds less than [`WRITE_BATCH`]. So a small message waits
//! behind at most one batch of this sender's data, and head-of-line blocking measured by the
//! mixed mode is the relay's (and the credit window's), not loadgen's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use httpws::proto::frame::{self, Event, FrameError, MessageDecoder, OpCode};
use httpws::proto::head::{self, HeadKind};
use httpws::proto::indication::{self, Indication};
use httpws::proto::stream::{self, Direction, STREAM_WINDOW, Verb};
use tokio::io::{Interest, Ready};
use tokio::net::TcpStream;

use super::wire::{self, Ask};
use super::worker::Shared;
use crate::clock::{PreciseTimer, now_ns};
use crate::stats::bump;
use crate::wire::{CLOSE_NORMAL, put_control};

/// Nanoseconds in a second.
const NS_PER_S: u128 = 1_000_000_000;
/// Most body bytes a rate-limited stream may send at once after falling behind its rate.
const MAX_PACE_BURST: u64 = 64 * 1024;
/// Body bytes a reader consumes before it grants them back in one `~credit` (a quarter of
/// the initial window: few credit messages, and the sender never waits for one).
pub(super) const GRANT_BYTES: u64 = STREAM_WINDOW / 4;
/// Outgoing bytes queued before body data stops being cut (one write's worth).
pub(super) const WRITE_BATCH: usize = 64 * 1024;
/// Room made before each read (large: a bulk stream fills it).
const READ_CHUNK: usize = 256 * 1024;
/// Reads one connection handles before it writes and lets the other tasks run.
const READS_PER_TURN: usize = 8;
/// How long closing waits for the server's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// The reason of loadgen's own close frames.
const CLOSE_REASON: &str = "loadgen done";

/// Why a connection's task gave it up.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("the server closed the TCP connection")]
    Eof,
    #[error("the server closed the WebSocket")]
    Closed,
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("WebSocket protocol error: {0}")]
    Protocol(#[from] FrameError),
}

/// The sending side of a stream body: what is left and the credit to send it with.
#[derive(Debug)]
pub(super) struct Sending {
    /// Bytes still to send; `None` until the caller resets the stream.
    pub(super) left: Option<u64>,
    /// Bytes the receiver has granted and we have not used.
    pub(super) credit: u64,
    /// Listed in [`Conn::sending`].
    pub(super) queued: bool,
    /// A body sent at a fixed rate, not as fast as the credit allows.
    pub(super) pace: Option<Pace>,
}

/// A body's rate limit: `rate` bytes per second since `start_ns`.
#[derive(Debug)]
pub(super) struct Pace {
    pub(super) rate: u64,
    pub(super) start_ns: u64,
    /// Bytes counted against the rate: those sent, and after a stall those skipped.
    pub(super) sent: u64,
    /// Listed in [`Conn::paced`], waiting for its time.
    pub(super) waiting: bool,
}

impl Pace {
    /// Bytes the rate allows by `now` beyond what was sent, at most [`MAX_PACE_BURST`]: after
    /// a stall the body goes on at its rate instead of catching up in one burst.
    fn budget(&mut self, now: u64) -> u64 {
        let allowed =
            u128::from(self.rate) * u128::from(now.saturating_sub(self.start_ns)) / NS_PER_S;
        let allowed = u64::try_from(allowed).unwrap_or(u64::MAX);
        if allowed.saturating_sub(self.sent) > MAX_PACE_BURST {
            self.sent = allowed - MAX_PACE_BURST;
        }
        allowed.saturating_sub(self.sent)
    }

    /// When the rate allows `n` more bytes.
    fn time_for(&self, n: u64) -> u64 {
        let ns = u128::from(self.sent.saturating_add(n)) * NS_PER_S / u128::from(self.rate.max(1));
        self.start_ns
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// The receiving side of a stream body.
#[derive(Debug, Default)]
pub(super) struct Receiving {
    /// Body bytes received.
    pub(super) got: u64,
    /// Received and consumed, not yet granted back.
    pub(super) ungranted: u64,
    /// Bytes the sender may still send (the credit we gave less what came).
    pub(super) allowed: u64,
    /// The body's length, when its head declared one.
    pub(super) len: Option<u64>,
}

impl Receiving {
    /// A body about to be received, with the initial window of credit.
    pub(super) fn new(len: Option<u64>) -> Receiving {
        Receiving {
            allowed: STREAM_WINDOW,
            len,
            ..Receiving::default()
        }
    }

    /// `n` body bytes came and were consumed; false if they were beyond the credit.
    pub(super) fn consume(&mut self, n: u64) -> bool {
        let within = n <= self.allowed;
        self.allowed = self.allowed.saturating_sub(n);
        self.got += n;
        self.ungranted += n;
        within
    }

    /// The credit to grant now, if any: what was consumed, once it is [`GRANT_BYTES`], and
    /// never more than the declared length still needs (a grant after the last byte would
    /// cross the sender's `~end`, for an exchange the proxy has already closed).
    pub(super) fn grant(&mut self) -> Option<u64> {
        if self.ungranted < GRANT_BYTES {
            return None;
        }
        let grant = match self.len {
            Some(total) => self
                .ungranted
                .min(total.saturating_sub(self.got.saturating_add(self.allowed))),
            None => self.ungranted,
        };
        self.ungranted = 0;
        self.allowed += grant;
        (grant > 0).then_some(grant)
    }
}

/// A request this connection sent (numbered in its own CSeq space).
#[derive(Debug)]
pub(super) struct Call {
    pub(super) ask: Ask,
    /// When it was sent, or (small requests) meant to be.
    pub(super) sent_ns: u64,
    pub(super) recv: Receiving,
    /// An upload's body.
    pub(super) send: Option<Sending>,
}

/// What a served request streams back.
#[derive(Debug)]
pub(super) enum Serving {
    Events {
        interval_ns: u64,
        bytes: usize,
        seq: u64,
        /// The intended time of an event waiting for credit.
        pending: Option<u64>,
    },
    Bytes,
    Sink,
}

/// A request this connection serves (numbered in the proxy's CSeq space for it).
#[derive(Debug)]
pub(super) struct Served {
    pub(super) serving: Serving,
    /// The response body (events and downloads).
    pub(super) send: Option<Sending>,
    /// The request body (uploads).
    pub(super) recv: Receiving,
}

/// A stream whose body this connection sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key {
    Call(u64),
    Served(u64),
}

pub(super) struct Conn {
    /// Its rank among the callers, if it calls.
    pub(super) caller_rank: Option<usize>,
    /// The connection it calls.
    pub(super) target: usize,
    /// Streams it keeps open as a caller.
    pub(super) my_streams: usize,
    stream: TcpStream,
    rbuf: BytesMut,
    decoder: MessageDecoder,
    pub(super) out: BytesMut,
    pub(super) tag: BytesMut,
    pub(super) scratch: Vec<u8>,
    rng: fastrand::Rng,
    pub(super) next_cseq: u64,
    pub(super) calls: HashMap<u64, Call>,
    pub(super) served: HashMap<u64, Served>,
    /// Streams with body and credit, in the order they get their next chunk.
    pub(super) sending: VecDeque<Key>,
    /// Events due, by intended time: (time, served CSeq).
    pub(super) events: BinaryHeap<Reverse<(u64, u64)>>,
    /// Rate-limited bodies waiting for their next chunk's time: (time, served CSeq).
    paced: BinaryHeap<Reverse<(u64, u64)>>,
    /// The next small request's number (mixed).
    pub(super) small_k: u64,
    /// The caller's streams were opened (at t0; mixed: the bulk streams at the bulk phase).
    pub(super) opened: bool,
    /// The end of the traffic was handled (transfers in progress cancelled).
    pub(super) stopped: bool,
    /// Our close frame went out; the server's answer ends the task.
    closing: bool,
}

impl Conn {
    pub(super) fn new(index: usize, stream: TcpStream, leftover: BytesMut, sh: &Shared) -> Conn {
        let (caller_rank, target) = sh.role_of(index);
        let my_streams = caller_rank.map_or(0, |rank| {
            let callers = sh.callers();
            sh.plan.streams / callers + usize::from(rank < sh.plan.streams % callers)
        });
        Conn {
            caller_rank,
            target,
            my_streams,
            stream,
            rbuf: leftover,
            decoder: MessageDecoder::new(),
            out: BytesMut::new(),
            tag: BytesMut::new(),
            scratch: Vec::with_capacity(256),
            rng: fastrand::Rng::with_seed(index as u64 ^ now_ns()),
            next_cseq: 1,
            calls: HashMap::new(),
            served: HashMap::new(),
            sending: VecDeque::new(),
            events: BinaryHeap::new(),
            paced: BinaryHeap::new(),
            small_k: 0,
            opened: false,
            stopped: false,
            closing: false,
        }
    }

    /// A fresh masking key for the next frame.
    pub(super) fn mask(&mut self) -> [u8; 4] {
        self.rng.u32(..).to_ne_bytes()
    }

    /// A uniformly random number below `n` (n > 0).
    pub(super) fn random_below(&mut self, n: u64) -> u64 {
        self.rng.u64(..n.max(1))
    }

    /// Run the connection until loadgen closes it or it breaks.
    pub(super) async fn run(mut self, sh: Rc<Shared>) {
        let result = self.traffic(&sh).await;
        let mut stats = sh.stats.borrow_mut();
        stats.unfinished += self.calls.len() as u64;
        match result {
            Ok(()) => {}
            Err(e) => {
                if !sh.closing.get() {
                    stats.conns_dropped += 1;
                    if matches!(e, ConnError::Protocol(_)) {
                        stats.protocol_errors += 1;
                    }
                    sh.note_failure(&e.to_string());
                }
            }
        }
        drop(stats);
        sh.forget_calls(self.calls.len());
        sh.live.set(sh.live.get() - 1);
    }

    /// The traffic loop, then the closing handshake.
    async fn traffic(&mut self, sh: &Shared) -> Result<(), ConnError> {
        let timer = PreciseTimer::new()?;
        let mut armed: Option<u64> = None;
        // Bytes that came right behind the registration.
        self.process(sh)?;
        while !sh.closing.get() {
            let now = now_ns();
            self.tick(sh, now);
            self.flush(sh)?;
            let wake = self.next_wake(sh);
            if wake != armed {
                if let Some(t) = wake {
                    timer.arm(t)?;
                }
                armed = wake;
            }
            let interest = if self.out.is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            tokio::select! {
                biased;
                _ = sh.close.notified() => {}
                ready = self.stream.ready(interest) => {
                    if ready?.is_readable() {
                        self.read(sh)?;
                    }
                }
                r = timer.wait_armed(wake.unwrap_or(u64::MAX)), if wake.is_some() => {
                    r?;
                    armed = None;
                }
            }
        }
        self.close(sh).await
    }

    /// The earliest time something is due on this connection.
    fn next_wake(&self, sh: &Shared) -> Option<u64> {
        let p = &sh.phases;
        let mut wake = self.events.peek().map(|Reverse((t, _))| *t);
        let mut at = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        if let Some(Reverse((t, _))) = self.paced.peek() {
            at(*t);
        }
        if self.caller_rank.is_some() {
            if !self.opened {
                at(sh.open_time());
            }
            if !self.stopped {
                at(p.end);
            }
            if let Some(t) = self.next_small_time(sh).filter(|&t| t < p.end) {
                at(t);
            }
        }
        wake
    }

    /// Read what the socket has (a few reads), handling every complete frame.
    fn read(&mut self, sh: &Shared) -> Result<(), ConnError> {
        for _ in 0..READS_PER_TURN {
            self.rbuf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => return Err(ConnError::Eof),
                Ok(_) => self.process(sh)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            if self.closing {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Handle every complete frame in the read buffer.
    fn process(&mut self, sh: &Shared) -> Result<(), ConnError> {
        let now = now_ns();
        loop {
            match self.decoder.decode(&mut self.rbuf, &sh.decoder_config)? {
                Some(Event::Message { payload, .. }) => self.on_message(sh, &payload, now),
                Some(Event::Ping(payload)) => {
                    let mask = self.mask();
                    put_control(&mut self.out, OpCode::Pong, &payload, mask);
                }
                Some(Event::Pong(_)) => {}
                Some(Event::Close { code, .. }) => {
                    if self.closing {
                        return Ok(());
                    }
                    let mask = self.mask();
                    let payload = frame::close_payload(code.unwrap_or(CLOSE_NORMAL), "");
                    put_control(&mut self.out, OpCode::Close, &payload, mask);
                    let _ = self.write_now();
                    return Err(ConnError::Closed);
                }
                None => return Ok(()),
            }
        }
    }

    /// One complete message, received at `now`: an indication, a stream message (about a
    /// request we sent, `>`, or one we serve, `<`), a request to serve or a response.
    fn on_message(&mut self, sh: &Shared, msg: &[u8], now: u64) {
        if indication::is_indication(msg) {
            let token = match indication::parse(msg) {
                Ok(Indication::Error { token, .. }) => token,
                Ok(Indication::Host(_)) => return,
                Ok(Indication::Other(_)) | Err(_) => "other".to_string(),
            };
            bump(&mut sh.stats.borrow_mut().indications, &token);
            return;
        }
        if let Some(parsed) = stream::parse_if_stream(msg) {
            let Ok(m) = parsed else {
                sh.stats.borrow_mut().unknown += 1;
                return;
            };
            // Direct: the echo sends our own messages back unflipped, so a body we sent as
            // a server (`<`) comes back to us as the caller, and our credit the other way.
            let dir = if sh.config.direct {
                m.dir.flipped()
            } else {
                m.dir
            };
            let payload = &msg[m.payload_at..];
            match dir {
                Direction::Outgoing => self.on_call_stream(sh, m.cseq, m.verb, payload, now),
                Direction::Incoming => self.on_served_stream(sh, m.cseq, m.verb, payload),
            }
            return;
        }
        match head::inspect(msg, &sh.head_limits) {
            Ok(info) if info.kind == HeadKind::Request => self.serve(sh, msg, &info, now),
            Ok(info) => self.on_response(sh, msg, &info, now),
            Err(_) => sh.stats.borrow_mut().unknown += 1,
        }
    }

    /// Write what is queued, cutting body data while there is room and credit; returns
    /// when everything is written or the socket is full.
    fn flush(&mut self, sh: &Shared) -> Result<(), ConnError> {
        loop {
            self.fill(sh);
            if self.out.is_empty() {
                return Ok(());
            }
            if !self.write_now()? {
                return Ok(());
            }
        }
    }

    /// One write of `out`; false when the socket took nothing more.
    fn write_now(&mut self) -> Result<bool, ConnError> {
        match self.stream.try_write(&self.out) {
            Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => {
                self.out.advance(n);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Cut body data from the sending streams, round-robin, one chunk each, while `out`
    /// holds less than a batch.
    fn fill(&mut self, sh: &Shared) {
        let now = now_ns();
        // Rate-limited bodies whose time has come.
        while let Some(&Reverse((t, cseq))) = self.paced.peek() {
            if t > now {
                break;
            }
            self.paced.pop();
            if let Some(pace) = self
                .served
                .get_mut(&cseq)
                .and_then(|s| s.send.as_mut())
                .and_then(|s| s.pace.as_mut())
            {
                pace.waiting = false;
            }
            self.queue_send(Key::Served(cseq));
        }
        while self.out.len() < WRITE_BATCH {
            let Some(key) = self.sending.pop_front() else {
                return;
            };
            let (dir, cseq) = match key {
                Key::Call(c) => (Direction::Outgoing, c),
                Key::Served(c) => (Direction::Incoming, c),
            };
            let mask = self.mask();
            let send = match key {
                Key::Call(c) => self.calls.get_mut(&c).and_then(|c| c.send.as_mut()),
                Key::Served(c) => self.served.get_mut(&c).and_then(|s| s.send.as_mut()),
            };
            // A stream that ended since it was listed.
            let Some(send) = send else { continue };
            send.queued = false;
            let mut n = (sh.plan.chunk as u64)
                .min(send.credit)
                .min(send.left.unwrap_or(u64::MAX));
            if let Some(pace) = send.pace.as_mut() {
                if pace.budget(now) < n {
                    // Not yet: listed again when the rate allows a whole chunk.
                    if !pace.waiting {
                        pace.waiting = true;
                        self.paced.push(Reverse((pace.time_for(n), cseq)));
                    }
                    n = 0;
                } else {
                    pace.sent += n;
                }
            }
            if n == 0 && send.left != Some(0) {
                continue;
            }
            send.credit -= n;
            if let Some(left) = send.left.as_mut() {
                *left -= n;
            }
            let finished = send.left == Some(0);
            let more = !finished && send.credit > 0;
            if more {
                send.queued = true;
            }
            if n > 0 {
                let body = &sh.body[..n as usize];
                wire::put_stream(
                    &mut self.out,
                    &mut self.tag,
                    Verb::Data,
                    dir,
                    cseq,
                    body,
                    mask,
                );
            }
            if more {
                self.sending.push_back(key);
            }
            if finished {
                let mask = self.mask();
                wire::put_stream(
                    &mut self.out,
                    &mut self.tag,
                    Verb::End,
                    dir,
                    cseq,
                    &[],
                    mask,
                );
                self.body_sent(key);
            }
        }
    }

    /// List `key` for body data if it has data and credit and is not listed yet.
    pub(super) fn queue_send(&mut self, key: Key) {
        let send = match key {
            Key::Call(c) => self.calls.get_mut(&c).and_then(|c| c.send.as_mut()),
            Key::Served(c) => self.served.get_mut(&c).and_then(|s| s.send.as_mut()),
        };
        if let Some(send) = send {
            if !send.queued && send.credit > 0 && send.left != Some(0) {
                send.queued = true;
                self.sending.push_back(key);
            }
        }
    }

    /// The whole body of `key` went out with its `~end`.
    fn body_sent(&mut self, key: Key) {
        match key {
            // An upload now waits for its answer.
            Key::Call(c) => {
                if let Some(call) = self.calls.get_mut(&c) {
                    call.send = None;
                }
            }
            // A download is over for the server.
            Key::Served(c) => {
                self.served.remove(&c);
            }
        }
    }

    /// Send a close frame, and wait (bounded) for the server's answer.
    async fn close(&mut self, sh: &Shared) -> Result<(), ConnError> {
        self.closing = true;
        self.sending.clear();
        let mask = self.mask();
        let payload = frame::close_payload(CLOSE_NORMAL, CLOSE_REASON);
        put_control(&mut self.out, OpCode::Close, &payload, mask);
        let answered = async {
            loop {
                let interest = if self.out.is_empty() {
                    Interest::READABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                };
                let ready: Ready = self.stream.ready(interest).await?;
                if ready.is_writable() && !self.out.is_empty() {
                    self.write_now()?;
                }
                if ready.is_readable() {
                    self.rbuf.reserve(READ_CHUNK);
                    match self.stream.try_read_buf(&mut self.rbuf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {
                            // Frames before the close answer are dropped: the run is over.
                            if self.drain_to_close(sh)? {
                                return Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(ConnError::from(e)),
                    }
                }
            }
        };
        match tokio::time::timeout(CLOSE_WAIT, answered).await {
            Ok(r) => r,
            // No answer in time: the run is over anyway.
            Err(_) => Ok(()),
        }
    }

    /// Decode after our close: true once the server's close came.
    fn drain_to_close(&mut self, sh: &Shared) -> Result<bool, ConnError> {
        loop {
            match self.decoder.decode(&mut self.rbuf, &sh.decoder_config)? {
                Some(Event::Close { .. }) => return Ok(true),
                Some(_) => {}
                None => return Ok(false),
            }
        }
    }
}
