//! One worker thread: a single-threaded tokio runtime owning a slice of the connections.
//!
//! Everything a request touches lives on one thread (its connection, its outstanding-CSeq
//! window, the histogram), so the hot path has no locks and no atomics. Each connection has
//! one task that reads, decodes, answers and flushes; whatever is produced while handling one
//! read (responses to serve, closed-loop follow-up requests) goes out in one write. The
//! open-loop pacer writes its requests straight to the sockets, gathering every request due
//! on a connection into one write, and only wakes a connection's task when the socket is full.
//!
//! The main thread talks to the workers only at phase changes: the ramp counters (atomics,
//! read for the progress bar), "ramp done", "start at t0" and the final [`ThreadStats`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use httpws::proto::frame::{self, DecoderConfig, Event, MessageDecoder, OpCode, Role};
use httpws::proto::handshake;
use httpws::proto::head::{self, HeadKind, HeadLimits};
use httpws::proto::indication::{self, Indication};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::args::{Config, Pattern, Traffic};
use crate::clock::{self, PreciseTimer, now_ns};
use crate::stats::{ThreadStats, bump};
use crate::track::{Settle, Tracker};
use crate::wire::{self, Host};

/// Room made before each read.
const READ_CHUNK: usize = 64 * 1024;
/// Largest message accepted from the server.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024 + 64 * 1024;
/// Largest handshake response head.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;
/// Reads one connection handles before letting the other tasks run.
const READS_PER_TURN: usize = 8;
/// Requests the pacer issues in one go before yielding (when far behind schedule).
const PACER_BATCH: usize = 4096;
/// Connection attempts in progress at once per thread, whatever --connect-rate says.
const MAX_PENDING_CONNECTS: usize = 2048;
/// Timer slack for worker threads (the default is 50 µs).
const TIMER_SLACK_NS: u64 = 1_000;
/// How long closing waits for the server to answer our close frames.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Which resource stopped the ramp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// EMFILE: this process's open-files limit.
    OpenFiles,
    /// ENFILE: the system-wide open-files limit.
    SystemFiles,
    /// EADDRNOTAVAIL / EADDRINUSE: no local port left for a source → proxy pair.
    Ports,
}

impl Limit {
    fn of(e: &io::Error) -> Option<Limit> {
        match e.raw_os_error()? {
            libc::EMFILE => Some(Limit::OpenFiles),
            libc::ENFILE => Some(Limit::SystemFiles),
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => Some(Limit::Ports),
            _ => None,
        }
    }
}

/// State shared with the main thread during the ramp (never touched per request).
#[derive(Debug, Default)]
pub struct Ramp {
    pub established: AtomicU64,
    pub failed: AtomicU64,
    /// Set when a limit is hit: no thread starts new connections after that.
    pub stop: AtomicBool,
    pub limit: Mutex<Option<(Limit, String)>>,
    /// Failure reasons other than limits, with counts.
    pub failures: Mutex<BTreeMap<String, u64>>,
}

impl Ramp {
    fn fail(&self, reason: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        *failures.entry(reason).or_default() += 1;
    }

    fn hit_limit(&self, limit: Limit, error: &io::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self.limit.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some((limit, error.to_string()));
        }
    }
}

/// When the traffic phases begin and end, as [`now_ns`] times (common to all threads).
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    pub t0: u64,
    pub measure: u64,
    pub end: u64,
}

pub enum Start {
    Go(Phases),
    Abort,
}

pub struct WorkerHandle {
    pub thread: std::thread::JoinHandle<ThreadStats>,
    pub start: oneshot::Sender<Start>,
}

/// Start worker `id` for the connections `lo..hi`. It ramps up at once and sends its id on
/// `ramp_done` when every connection attempt has finished.
pub fn spawn(
    id: usize,
    config: Arc<Config>,
    ramp: Arc<Ramp>,
    lo: usize,
    hi: usize,
    ramp_done: mpsc::Sender<usize>,
) -> io::Result<WorkerHandle> {
    let (start_tx, start_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("loadgen-{id}"))
        .spawn(move || {
            clock::set_timer_slack(TIMER_SLACK_NS);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    ramp.hit_limit(Limit::OpenFiles, &e);
                    let _ = ramp_done.send(id);
                    return ThreadStats::default();
                }
            };
            let worker = Rc::new(Worker::new(id, config, ramp, lo, hi));
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, worker.run(start_rx, ramp_done))
        })?;
    Ok(WorkerHandle {
        thread,
        start: start_tx,
    })
}

/// One connection (endpoint).
struct Conn {
    /// Global index: the endpoint is `<prefix>-<index>`.
    index: usize,
    stream: RefCell<TcpStream>,
    /// Frames waiting to be written.
    out: RefCell<BytesMut>,
    /// A partial frame left over from the last read (empty almost always).
    partial: RefCell<BytesMut>,
    decoder: RefCell<MessageDecoder>,
    track: RefCell<Tracker>,
    /// The connection task's waker, for the pacer when the socket is full, and for closing.
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
    /// Listed in the current batch of connections to flush.
    touched: Cell<bool>,
}

impl Conn {
    fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }
}

struct Worker {
    id: usize,
    config: Arc<Config>,
    ramp: Arc<Ramp>,
    lo: usize,
    hi: usize,
    /// Established connections, by `index - lo`.
    conns: RefCell<Vec<Option<Rc<Conn>>>>,
    stats: RefCell<ThreadStats>,
    phases: Cell<Option<Phases>>,
    /// Closed loop: issue a new request whenever one is settled, until the end.
    closed_loop: bool,
    /// Set once loadgen itself starts closing: closes seen after that are not drops.
    closing: Cell<bool>,
    live_tasks: Cell<usize>,
    pending_connects: Cell<usize>,
    rng: RefCell<fastrand::Rng>,
    body: Vec<u8>,
    scratch: RefCell<Vec<u8>>,
    read_buf: RefCell<BytesMut>,
    touched: RefCell<Vec<Rc<Conn>>>,
    decoder_config: DecoderConfig,
    head_limits: HeadLimits,
}

impl Worker {
    fn new(id: usize, config: Arc<Config>, ramp: Arc<Ramp>, lo: usize, hi: usize) -> Worker {
        let closed_loop = matches!(config.traffic, Traffic::Closed { .. });
        let body = vec![b'x'; config.payload];
        Worker {
            id,
            ramp,
            lo,
            hi,
            conns: RefCell::new(vec![None; hi - lo]),
            stats: RefCell::default(),
            phases: Cell::new(None),
            closed_loop,
            closing: Cell::new(false),
            live_tasks: Cell::new(0),
            pending_connects: Cell::new(0),
            rng: RefCell::new(fastrand::Rng::with_seed(
                0x9e37_79b9_7f4a_7c15 ^ (id as u64) ^ now_ns(),
            )),
            body,
            scratch: RefCell::new(Vec::with_capacity(256)),
            read_buf: RefCell::new(BytesMut::new()),
            touched: RefCell::new(Vec::new()),
            decoder_config: DecoderConfig {
                role: Role::Client,
                max_message_bytes: MAX_MESSAGE_BYTES,
            },
            head_limits: HeadLimits {
                max_head_bytes: 64 * 1024,
                ..HeadLimits::default()
            },
            config,
        }
    }

    async fn run(
        self: Rc<Self>,
        start: oneshot::Receiver<Start>,
        ramp_done: mpsc::Sender<usize>,
    ) -> ThreadStats {
        self.ramp_up().await;
        let _ = ramp_done.send(self.id);
        let phases = match start.await {
            Ok(Start::Go(phases)) => phases,
            Ok(Start::Abort) | Err(_) => {
                self.close_all().await;
                return self.stats.take();
            }
        };
        self.phases.set(Some(phases));
        match self.config.traffic {
            Traffic::Idle => sleep_until_ns(phases.end).await,
            Traffic::Open { rate, burst } => {
                tokio::task::spawn_local(self.clone().expire_loop());
                let share = rate as f64 / self.config.threads as f64;
                if let Err(e) = self.pace(share, burst, phases).await {
                    eprintln!("loadgen-{}: pacing timer failed: {e}", self.id);
                }
                self.drain(phases).await;
            }
            Traffic::Closed { in_flight } => {
                tokio::task::spawn_local(self.clone().expire_loop());
                let threads = self.config.threads as u64;
                let share = in_flight / threads + u64::from((self.id as u64) < in_flight % threads);
                sleep_until_ns(phases.t0).await;
                self.start_closed_loop(share as usize, phases.t0);
                sleep_until_ns(phases.end).await;
                self.drain(phases).await;
            }
        }
        self.close_all().await;
        let mut stats = self.stats.take();
        stats.lost = self
            .conns
            .borrow()
            .iter()
            .flatten()
            .map(|c| c.track.borrow().unanswered())
            .sum();
        stats
    }

    fn established(&self) -> Vec<Rc<Conn>> {
        self.conns.borrow().iter().flatten().cloned().collect()
    }

    fn phase_end(&self) -> u64 {
        self.phases.get().map_or(u64::MAX, |p| p.end)
    }

    // ---- ramp -------------------------------------------------------------------------

    async fn ramp_up(self: &Rc<Self>) {
        let n = self.hi - self.lo;
        let rate = self.config.connect_rate as f64 / self.config.threads as f64;
        let started = Instant::now();
        let mut issued = 0usize;
        while issued < n && !self.ramp.stop.load(Ordering::Relaxed) {
            let due = ((started.elapsed().as_secs_f64() * rate) as usize + 1).min(n);
            while issued < due
                && self.pending_connects.get() < MAX_PENDING_CONNECTS
                && !self.ramp.stop.load(Ordering::Relaxed)
            {
                self.pending_connects.set(self.pending_connects.get() + 1);
                tokio::task::spawn_local(self.clone().connect(self.lo + issued));
                issued += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        while self.pending_connects.get() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn connect(self: Rc<Self>, index: usize) {
        let attempt = tokio::time::timeout(self.config.connect_timeout, self.open(index)).await;
        self.pending_connects.set(self.pending_connects.get() - 1);
        let (stream, leftover) = match attempt {
            Ok(Ok(opened)) => opened,
            Ok(Err(OpenError::Io(e))) => {
                match Limit::of(&e) {
                    Some(limit) => self.ramp.hit_limit(limit, &e),
                    None => self.ramp.fail(e.to_string()),
                }
                return;
            }
            Ok(Err(OpenError::Other(reason))) => {
                self.ramp.fail(reason);
                return;
            }
            Err(_) => {
                self.ramp
                    .fail("timed out connecting and registering".into());
                return;
            }
        };
        let conn = Rc::new(Conn {
            index,
            stream: RefCell::new(stream),
            out: RefCell::new(BytesMut::new()),
            partial: RefCell::new(leftover),
            decoder: RefCell::new(MessageDecoder::new()),
            track: RefCell::new(Tracker::default()),
            waker: RefCell::new(None),
            closed: Cell::new(false),
            touched: Cell::new(false),
        });
        self.conns.borrow_mut()[index - self.lo] = Some(conn.clone());
        self.ramp.established.fetch_add(1, Ordering::Relaxed);
        self.live_tasks.set(self.live_tasks.get() + 1);
        self.drive(&conn).await;
        self.live_tasks.set(self.live_tasks.get() - 1);
    }

    /// Connect, complete the opening handshake, and (relay) wait for `:host <name>`.
    async fn open(&self, index: usize) -> Result<(TcpStream, BytesMut), OpenError> {
        let config = &self.config;
        let socket = match config.target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }?;
        if !config.sources.is_empty() {
            let source = config.sources[index % config.sources.len()];
            // The port is picked at connect time, per destination, so one source address
            // serves a full port range towards each proxy address.
            set_bind_address_no_port(&socket)?;
            // A bind error is about the address (not local, say), never a limit.
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| OpenError::Other(format!("binding source {source}: {e}")))?;
        }
        socket.set_nodelay(true)?;
        let mut stream = socket.connect(config.target).await?;
        let name = config.name(index);
        let mut nonce = [0u8; 16];
        self.rng.borrow_mut().fill(&mut nonce);
        let key = handshake::client_key(&nonce);
        let request = handshake::client_request(&config.authority, &name, &key, None);
        stream.write_all(request.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let head_len = loop {
            match handshake::parse_response(&buf, &key, MAX_HANDSHAKE_BYTES) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(e) => return Err(OpenError::Other(format!("handshake: {e}"))),
            }
            if read_some(&mut stream, &mut buf).await? == 0 {
                return Err(OpenError::Other("closed during the handshake".into()));
            }
        };
        buf.advance(head_len);
        if config.direct {
            return Ok((stream, buf));
        }
        // The proxy's first message is `:host <address>`.
        let mut decoder = MessageDecoder::new();
        loop {
            match decoder.decode(&mut buf, &self.decoder_config) {
                Ok(Some(Event::Message { payload, .. })) => {
                    return match indication::parse(&payload) {
                        Ok(Indication::Host(host)) if host == name => {
                            Ok((stream, BytesMut::from(&buf[..])))
                        }
                        Ok(Indication::Host(other)) => Err(OpenError::Other(format!(
                            "registered as {other}, expected {name}"
                        ))),
                        _ => Err(OpenError::Other(format!(
                            "expected :host, got {:?}",
                            String::from_utf8_lossy(&payload[..payload.len().min(80)])
                        ))),
                    };
                }
                Ok(Some(Event::Close { code, .. })) => {
                    return Err(OpenError::Other(format!(
                        "closed before registering (code {code:?})"
                    )));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    if read_some(&mut stream, &mut buf).await? == 0 {
                        return Err(OpenError::Other("closed before registering".into()));
                    }
                }
                Err(e) => return Err(OpenError::Other(format!("protocol error: {e}"))),
            }
        }
    }

    // ---- the connection task ------------------------------------------------------------

    async fn drive(&self, conn: &Rc<Conn>) {
        // Bytes that came right behind the handshake.
        if !conn.partial.borrow().is_empty() {
            let mut buf = conn.partial.take();
            if self.process(conn, &mut buf).is_err() {
                self.fail_conn(conn);
            }
            *conn.partial.borrow_mut() = buf;
        }
        poll_fn(|cx| self.poll_conn(conn, cx)).await;
    }

    fn poll_conn(&self, conn: &Rc<Conn>, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..READS_PER_TURN {
            if conn.closed.get() {
                return Poll::Ready(());
            }
            if self.poll_flush(conn, cx).is_err() {
                self.fail_conn(conn);
                return Poll::Ready(());
            }
            // The shared read buffer, unless a partial frame waits in the connection's own.
            let own = !conn.partial.borrow().is_empty();
            let mut buf = if own {
                conn.partial.take()
            } else {
                self.read_buf.take()
            };
            buf.reserve(READ_CHUNK);
            let read = {
                let mut stream = conn.stream.borrow_mut();
                poll_read_buf(&mut stream, cx, &mut buf)
            };
            let result = match read {
                Poll::Pending => {
                    self.put_back(conn, buf);
                    let mut waker = conn.waker.borrow_mut();
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => Err(()),
                Poll::Ready(Ok(_)) => self.process(conn, &mut buf),
                Poll::Ready(Err(_)) => Err(()),
            };
            self.put_back(conn, buf);
            if result.is_err() {
                self.fail_conn(conn);
                return Poll::Ready(());
            }
        }
        // Busy connection: let the others run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Keep a partial frame with its connection; hand an empty buffer back to the thread.
    fn put_back(&self, conn: &Conn, buf: BytesMut) {
        if buf.is_empty() {
            let mut shared = self.read_buf.borrow_mut();
            if shared.capacity() < buf.capacity() {
                *shared = buf;
            }
        } else {
            *conn.partial.borrow_mut() = buf;
        }
    }

    /// Write what is queued; Ok when written or waiting for room, Err when the socket broke.
    fn poll_flush(&self, conn: &Conn, cx: &mut Context<'_>) -> Result<(), ()> {
        let mut out = conn.out.borrow_mut();
        let mut stream = conn.stream.borrow_mut();
        while !out.is_empty() {
            match Pin::new(&mut *stream).poll_write(cx, &out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(n)) => out.advance(n),
                Poll::Pending => break,
            }
        }
        Ok(())
    }

    /// Write what is queued without a task context (the pacer); the connection's task is
    /// woken to wait for room if the socket is full.
    fn flush_now(&self, conn: &Conn) {
        if conn.closed.get() {
            return;
        }
        let mut out = conn.out.borrow_mut();
        let stream = conn.stream.borrow();
        while !out.is_empty() {
            match stream.try_write(&out) {
                Ok(0) => break,
                Ok(n) => out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.wake();
                    return;
                }
                Err(_) => {
                    // The connection task sees the same error on its next write.
                    conn.wake();
                    return;
                }
            }
        }
    }

    fn fail_conn(&self, conn: &Conn) {
        if !conn.closed.replace(true) && !self.closing.get() {
            self.stats.borrow_mut().conns_dropped += 1;
        }
        conn.out.borrow_mut().clear();
    }

    /// Decode and handle every complete frame in `buf`. Err: the connection is finished.
    fn process(&self, conn: &Conn, buf: &mut BytesMut) -> Result<(), ()> {
        let now = now_ns();
        loop {
            let event = conn.decoder.borrow_mut().decode(buf, &self.decoder_config);
            match event {
                Ok(Some(Event::Message { payload, .. })) => self.on_message(conn, &payload, now),
                Ok(Some(Event::Ping(payload))) => {
                    let mask = self.mask();
                    wire::put_control(&mut conn.out.borrow_mut(), OpCode::Pong, &payload, mask);
                }
                Ok(Some(Event::Pong(_))) => {}
                Ok(Some(Event::Close { .. })) if self.closing.get() => {
                    // The answer to our own close: done.
                    conn.closed.set(true);
                    return Ok(());
                }
                Ok(Some(Event::Close { code, .. })) => {
                    let mask = self.mask();
                    let payload = frame::close_payload(code.unwrap_or(1000), "");
                    wire::put_control(&mut conn.out.borrow_mut(), OpCode::Close, &payload, mask);
                    let _ = self.flush_for_close(conn);
                    if !self.closing.get() {
                        self.stats.borrow_mut().conns_dropped += 1;
                    }
                    conn.closed.set(true);
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Err(_) => {
                    self.stats.borrow_mut().protocol_errors += 1;
                    return Err(());
                }
            }
        }
    }

    fn flush_for_close(&self, conn: &Conn) -> io::Result<()> {
        let mut out = conn.out.borrow_mut();
        let stream = conn.stream.borrow();
        while !out.is_empty() {
            let n = stream.try_write(&out)?;
            out.advance(n);
        }
        Ok(())
    }

    fn mask(&self) -> [u8; 4] {
        self.rng.borrow_mut().u32(..).to_ne_bytes()
    }

    fn on_message(&self, conn: &Conn, msg: &[u8], now: u64) {
        if indication::is_indication(msg) {
            let mut stats = self.stats.borrow_mut();
            match indication::parse(msg) {
                Ok(Indication::Error { token, .. }) => bump(&mut stats.indications, &token),
                Ok(Indication::Host(_)) => {}
                Ok(Indication::Other(_)) | Err(_) => bump(&mut stats.indications, "other"),
            }
            return;
        }
        let info = match head::inspect(msg, &self.head_limits) {
            Ok(info) => info,
            Err(_) => {
                self.stats.borrow_mut().bad_messages += 1;
                return;
            }
        };
        if !self.config.direct && info.kind == HeadKind::Request {
            // A request for this endpoint: answer with its CSeq and body.
            let mask = self.mask();
            wire::put_response(
                &mut conn.out.borrow_mut(),
                &mut self.scratch.borrow_mut(),
                info.cseq,
                &msg[info.head_len..],
                mask,
            );
            self.stats.borrow_mut().served += 1;
            return;
        }
        // A response (relay), or our own request echoed back (direct).
        let settled = conn.track.borrow_mut().settle(info.cseq);
        let mut stats = self.stats.borrow_mut();
        match settled {
            Settle::First {
                intended,
                timed_out,
            } => {
                stats.answered += 1;
                let error = info.kind == HeadKind::Response && info.status != 200;
                if error {
                    let token =
                        wire::error_token(msg).unwrap_or_else(|| format!("status-{}", info.status));
                    bump(&mut stats.errors, &token);
                    stats.error_reasons.entry(token).or_insert_with(|| {
                        let body = &msg[info.head_len..];
                        let reason = String::from_utf8_lossy(&body[..body.len().min(120)]);
                        reason.trim().to_string()
                    });
                } else {
                    stats.ok += 1;
                    if let Some(p) = self.phases.get() {
                        if now >= p.measure && now < p.end {
                            stats.ok_in_window += 1;
                        }
                        if intended >= p.measure && intended < p.end {
                            stats
                                .hist
                                .saturating_record(now.saturating_sub(intended).max(1));
                        }
                    }
                }
                if timed_out {
                    stats.late += 1;
                } else if self.closed_loop && now < self.phase_end() {
                    drop(stats);
                    self.send_request(conn, now);
                }
            }
            Settle::Duplicate => stats.duplicates += 1,
            Settle::Unknown => stats.unknown += 1,
        }
    }

    // ---- sending ----------------------------------------------------------------------

    /// Queue one request from `conn` (to the target the pattern picks), meant for `intended`.
    fn send_request(&self, conn: &Conn, intended: u64) {
        let config = &self.config;
        let cseq = conn.track.borrow_mut().issue(intended);
        let host = if config.direct {
            Host::Fixed(b"echo")
        } else {
            Host::Endpoint {
                prefix: config.name_prefix.as_bytes(),
                index: self.target_of(conn.index),
            }
        };
        let mask = self.mask();
        wire::put_request(
            &mut conn.out.borrow_mut(),
            &mut self.scratch.borrow_mut(),
            host,
            cseq,
            &self.body,
            mask,
        );
        self.stats.borrow_mut().sent += 1;
    }

    fn target_of(&self, index: usize) -> usize {
        let n = self.config.conns;
        match self.config.pattern {
            Pattern::Pairs => {
                let partner = index ^ 1;
                if partner < n { partner } else { index }
            }
            Pattern::Random if n > 1 => {
                let t = self.rng.borrow_mut().usize(..n - 1);
                if t >= index { t + 1 } else { t }
            }
            Pattern::Random => index,
        }
    }

    fn touch(&self, conn: &Rc<Conn>) {
        if !conn.touched.replace(true) {
            self.touched.borrow_mut().push(conn.clone());
        }
    }

    fn flush_touched(&self) {
        let touched = std::mem::take(&mut *self.touched.borrow_mut());
        for conn in &touched {
            conn.touched.set(false);
            self.flush_now(conn);
        }
        let mut slot = self.touched.borrow_mut();
        if slot.is_empty() {
            let mut touched = touched;
            touched.clear();
            *slot = touched;
        }
    }

    /// Open loop: requests at fixed intended times, `rate` per second from this thread
    /// (`burst` at a time), round-robin over its connections. Never early; when behind, late
    /// but timed from the intended time.
    async fn pace(&self, rate: f64, burst: u64, phases: Phases) -> io::Result<()> {
        let conns = self.established();
        if conns.is_empty() || rate <= 0.0 {
            return Ok(());
        }
        let timer = PreciseTimer::new()?;
        let interval = 1e9 / rate;
        // Threads interleave their schedules instead of all firing at the same instants.
        let offset = interval * burst as f64 * self.id as f64 / self.config.threads as f64;
        let at = |k: u64| phases.t0 + (offset + (k / burst * burst) as f64 * interval) as u64;
        let mut k = 0u64;
        let mut rr = 0usize;
        loop {
            let next = at(k);
            if next >= phases.end {
                return Ok(());
            }
            if now_ns() < next {
                timer.sleep_until(next).await?;
            } else {
                // Behind schedule: still let the connections run between batches.
                tokio::task::yield_now().await;
            }
            let now = now_ns();
            let mut batch = 0;
            loop {
                let intended = at(k);
                if intended > now || intended >= phases.end || batch == PACER_BATCH {
                    break;
                }
                // Round-robin over the connections still open.
                let mut conn = None;
                for _ in 0..conns.len() {
                    let c = &conns[rr];
                    rr = (rr + 1) % conns.len();
                    if !c.closed.get() {
                        conn = Some(c);
                        break;
                    }
                }
                let Some(conn) = conn else {
                    return Ok(());
                };
                self.send_request(conn, intended);
                self.touch(conn);
                k += 1;
                batch += 1;
            }
            self.flush_touched();
        }
    }

    /// Closed loop: `slots` requests outstanding, spread evenly over this thread's
    /// connections; each answer (or timeout) is followed by a new request on the same one.
    fn start_closed_loop(&self, slots: usize, t0: u64) {
        let conns = self.established();
        if conns.is_empty() {
            return;
        }
        let n = conns.len();
        let now = now_ns().max(t0);
        for j in 0..slots {
            let conn = if slots <= n {
                &conns[j * n / slots]
            } else {
                &conns[j % n]
            };
            self.send_request(conn, now);
            self.touch(conn);
        }
        self.flush_touched();
    }

    /// Count requests that got no answer within --timeout (closed loop: replace them).
    async fn expire_loop(self: Rc<Self>) {
        let timeout = self.config.timeout.as_nanos() as u64;
        let tick =
            (self.config.timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
        while !self.closing.get() {
            tokio::time::sleep(tick).await;
            let now = now_ns();
            let cutoff = now.saturating_sub(timeout);
            let conns = self.established();
            let mut expired = 0;
            for conn in &conns {
                let n = conn.track.borrow_mut().expire(cutoff);
                if n == 0 {
                    continue;
                }
                expired += n;
                if self.closed_loop && now < self.phase_end() && !conn.closed.get() {
                    for _ in 0..n {
                        self.send_request(conn, now);
                    }
                    self.touch(conn);
                }
            }
            self.stats.borrow_mut().timeouts += expired;
            self.flush_touched();
        }
    }

    /// After the end: wait for the answers still due, up to --timeout past the end.
    async fn drain(&self, phases: Phases) {
        let deadline = phases.end + self.config.timeout.as_nanos() as u64 + 20_000_000;
        loop {
            let open: u64 = self
                .conns
                .borrow()
                .iter()
                .flatten()
                .filter(|c| !c.closed.get())
                .map(|c| c.track.borrow().unanswered())
                .sum();
            if open == 0 {
                return;
            }
            let now = now_ns();
            if now >= deadline {
                // Whatever is still open is past its own deadline by now: count it as a
                // timeout (the periodic scan may not have come round to it yet).
                let cutoff = now.saturating_sub(self.config.timeout.as_nanos() as u64);
                let expired: u64 = self
                    .established()
                    .iter()
                    .map(|c| c.track.borrow_mut().expire(cutoff))
                    .sum();
                self.stats.borrow_mut().timeouts += expired;
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Send a close frame on every connection and give the server a moment to answer.
    async fn close_all(&self) {
        self.closing.set(true);
        for conn in self.established() {
            if conn.closed.get() {
                continue;
            }
            let mask = self.mask();
            let payload = frame::close_payload(1000, "loadgen done");
            wire::put_control(&mut conn.out.borrow_mut(), OpCode::Close, &payload, mask);
            self.flush_now(&conn);
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.live_tasks.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for conn in self.established() {
            conn.closed.set(true);
            conn.wake();
        }
    }
}

enum OpenError {
    Io(io::Error),
    Other(String),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// `IP_BIND_ADDRESS_NO_PORT`: bind the address now, pick the port at connect time.
fn set_bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Read once into `buf`'s spare room (made if needed).
async fn read_some(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(4096);
    poll_fn(|cx| poll_read_buf(stream, cx, buf)).await
}

/// `poll_read` into the spare capacity of `buf`, growing its length by what was read.
/// tokio clears the socket's readiness on a short read, so a drained socket costs no extra
/// `EAGAIN` read.
fn poll_read_buf(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    let mut read_buf = ReadBuf::uninit(spare);
    match Pin::new(stream).poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => {
            let n = read_buf.filled().len();
            // SAFETY: `ReadBuf` counts as filled only bytes the read initialized, and they
            // are the first `n` bytes of `buf`'s spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

async fn sleep_until_ns(t: u64) {
    let now = now_ns();
    if t > now {
        tokio::time::sleep(Duration::from_nanos(t - now)).await;
    }
}
