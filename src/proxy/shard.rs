//! One shard: a pinned thread running a `monoio` runtime, its listener, its connections,
//! its slice of the address table, and the tasks that keep them (inbox, sweeper, shutdown).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpListener;

use crate::proto::answer_error::AnswerError;
use crate::proto::frame::{self, DecoderConfig, MAX_HEADER_LEN, OpCode, Role};
use crate::proto::head::HeadLimits;
use crate::proto::indication::{self, IndicationError};
use crate::proxy::access::{AccessPolicy, PolicyCell};
use crate::proxy::config::{CLOSE_FLUSH_TIMEOUT, DriverChoice, ProxyConfig};
use crate::proxy::connection::{Conn, Phase, Queued};
use crate::proxy::ingress::HttpCaller;
use crate::proxy::router::{ConnKey, OutFrame, ShardMessage, ShardRouter};
use crate::proxy::slab::ConnectionSlab;
use crate::proxy::table::AddressTable;
use crate::proxy::upgrade;

/// Size of the blocks the shard reads into; payloads are split off them zero-copy.
const READ_BLOCK_BYTES: usize = 64 * 1024;
/// Below this much free room, the read buffer moves on to a fresh block.
const MIN_READ_ROOM_BYTES: usize = 8 * 1024;
/// Size of the blocks outgoing frame headers and rewritten heads are written into.
const ARENA_BLOCK_BYTES: usize = 64 * 1024;
/// Cross-shard messages handled per turn before other tasks get to run.
const INBOX_BATCH: usize = 256;
/// How soon a shard retries messages that found another shard's queue full.
const OVERFLOW_RETRY: Duration = Duration::from_micros(200);
/// Requests held for a full queue before new ones get `target-busy` instead.
pub const OVERFLOW_REQUEST_LIMIT: usize = 4096;
/// io_uring submission queue entries per shard.
const URING_ENTRIES: u32 = 1024;

/// State shared by every shard of one proxy: the shutdown sequence, the access policy and
/// the TLS configuration (both replaceable on SIGHUP).
#[derive(Debug)]
pub struct Control {
    shutdown: AtomicBool,
    /// Shards that have answered or failed every request they were holding.
    drained: AtomicUsize,
    pub policy: PolicyCell,
    /// Read once per accepted connection; swapped whole when the certificate is reloaded.
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
}

impl Control {
    pub fn new(policy: PolicyCell, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Control {
            shutdown: AtomicBool::new(false),
            drained: AtomicUsize::new(0),
            policy,
            tls: RwLock::new(tls),
        }
    }

    /// The TLS configuration new connections get (None: plain `ws://`).
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        // A poisoned lock still holds a whole configuration: it is only ever replaced whole.
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the TLS configuration; connections already open keep their sessions.
    pub fn set_tls(&self, config: Arc<rustls::ServerConfig>) {
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// A one-shot local signal with a single waiter (the accept loop waits on it).
#[derive(Debug, Default)]
struct Latch {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Latch {
    fn set(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Everything one shard owns. Lives in an `Rc` on its own thread.
pub struct Shard {
    pub id: usize,
    pub config: Arc<ProxyConfig>,
    pub router: Arc<ShardRouter>,
    pub control: Arc<Control>,
    pub decoder_config: DecoderConfig,
    pub head_limits: HeadLimits,
    pub conns: RefCell<ConnectionSlab<Rc<Conn>>>,
    /// Plain HTTP clients of the public ingress (each waits for at most one answer).
    pub callers: RefCell<ConnectionSlab<Rc<HttpCaller>>>,
    pub table: RefCell<AddressTable>,
    pub read_buf: RefCell<BytesMut>,
    arena: RefCell<BytesMut>,
    pub(crate) scratch: RefCell<BytesMut>,
    overflow: RefCell<Vec<VecDeque<ShardMessage>>>,
    /// Connections with requests pending on them, for the deadline sweep.
    pub(crate) timed: RefCell<Vec<ConnKey>>,
    pub(crate) pending_total: Cell<usize>,
    /// Shutdown has begun: new registrations and requests are refused.
    pub draining: Cell<bool>,
    stop_accepting: Latch,
    stop_accepting_http: Latch,
    /// This shard's copy of the access policy and the generation it was taken at.
    policy: RefCell<(u64, Arc<AccessPolicy>)>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<ProxyConfig>,
        router: Arc<ShardRouter>,
        control: Arc<Control>,
    ) -> Self {
        let shards = router.shards();
        let policy = (control.policy.generation(), control.policy.current());
        Self {
            id,
            policy: RefCell::new(policy),
            decoder_config: DecoderConfig {
                role: Role::Server,
                max_message_bytes: config.max_message_bytes,
            },
            head_limits: HeadLimits {
                max_head_bytes: config.max_head_bytes,
                ..HeadLimits::default()
            },
            config,
            router,
            control,
            conns: RefCell::default(),
            callers: RefCell::default(),
            table: RefCell::default(),
            read_buf: RefCell::new(BytesMut::new()),
            arena: RefCell::new(BytesMut::new()),
            scratch: RefCell::new(BytesMut::new()),
            overflow: RefCell::new((0..shards).map(|_| VecDeque::new()).collect()),
            timed: RefCell::default(),
            pending_total: Cell::new(0),
            draining: Cell::new(false),
            stop_accepting: Latch::default(),
            stop_accepting_http: Latch::default(),
        }
    }

    /// The access policy in force: one atomic load per call, a lock only after a reload.
    fn fresh_policy(&self) -> std::cell::Ref<'_, (u64, Arc<AccessPolicy>)> {
        let generation = self.control.policy.generation();
        if self.policy.borrow().0 != generation {
            *self.policy.borrow_mut() = (generation, self.control.policy.current());
        }
        self.policy.borrow()
    }

    pub fn policy(&self) -> Arc<AccessPolicy> {
        Arc::clone(&self.fresh_policy().1)
    }

    /// Whether an access rule lets `from` call `to` (canonical names).
    pub fn may_call(&self, from: &str, to: &str) -> bool {
        self.fresh_policy().1.may_call(from, to)
    }

    pub fn conn(&self, key: ConnKey) -> Option<Rc<Conn>> {
        self.conns.borrow().get(key).cloned()
    }

    /// Make sure the shared read buffer has room, moving on to a new block when the current
    /// one is nearly used up (the old block lives on only in payloads still being relayed).
    pub fn prepare_read_buf(&self, buf: &mut BytesMut) {
        if buf.capacity() - buf.len() < MIN_READ_ROOM_BYTES {
            buf.reserve(READ_BLOCK_BYTES);
        }
    }

    /// Build a server frame (unmasked, fin set) whose payload is `payload_len` bytes, of which
    /// `write` appends the leading part into the arena; the rest (a body) is sent separately.
    pub fn frame_with(
        &self,
        opcode: OpCode,
        payload_len: usize,
        write: impl FnOnce(&mut BytesMut),
    ) -> Bytes {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = frame::encode_header(&mut header, true, opcode, None, payload_len as u64);
        let room = n + payload_len.min(ARENA_BLOCK_BYTES / 4);
        self.arena_write(room, |arena| {
            arena.extend_from_slice(&header[..n]);
            write(arena)
        })
        .0
    }

    /// Bytes written by `write` into the arena (heads for plain HTTP clients), and what
    /// `write` returned.
    pub fn arena_bytes<R>(&self, write: impl FnOnce(&mut BytesMut) -> R) -> (Bytes, R) {
        self.arena_write(ARENA_BLOCK_BYTES / 8, write)
    }

    /// Split off what `write` appends to the arena, moving on to a fresh block first when
    /// fewer than `room` bytes are left (a bigger write still works: the block grows).
    fn arena_write<R>(&self, room: usize, write: impl FnOnce(&mut BytesMut) -> R) -> (Bytes, R) {
        let mut arena = self.arena.borrow_mut();
        if arena.capacity() < room {
            arena.reserve(ARENA_BLOCK_BYTES);
        }
        let result = write(&mut arena);
        (arena.split().freeze(), result)
    }

    /// A whole small frame (control frames, indications).
    pub fn control_frame(&self, opcode: OpCode, payload: &[u8]) -> Bytes {
        self.frame_with(opcode, payload.len(), |a| a.extend_from_slice(payload))
    }

    /// Queue a frame on `conn`. Every frame counts against the connection's queue limit,
    /// pongs, indications and the proxy's own answers included: a peer that sends while it
    /// never reads is dropped once its queue passes the limit.
    pub fn queue(&self, conn: &Conn, frame: OutFrame) {
        if conn.enqueue(frame, self.config.hard_queued_bytes()) == Queued::OverLimit {
            tracing::warn!(address = %conn.address, "dropping a connection that stopped reading");
            self.drop_connection(conn);
        }
    }

    /// Queue an `:error <token> "<reason>"` indication.
    pub fn send_indication(&self, conn: &Conn, token: IndicationError, reason: &str) {
        let text = indication::encode_error(token, reason);
        let head = self.control_frame(OpCode::Text, text.as_bytes());
        self.queue(
            conn,
            OutFrame {
                head,
                body: Bytes::new(),
            },
        );
    }

    /// A close frame with `code` and `reason`.
    pub fn close_frame(&self, code: u16, reason: &str) -> Bytes {
        self.control_frame(OpCode::Close, &frame::close_payload(code, reason))
    }

    /// Queue `close_frame` and take the connection out of service at once: its address is
    /// freed and everything waiting on it is answered `target-gone`.
    pub fn close_connection(&self, conn: &Conn, close_frame: Bytes) {
        conn.begin_close(close_frame);
        self.retire(conn);
    }

    /// Free the address and fail the requests waiting on `conn`. Safe to call twice.
    pub fn retire(&self, conn: &Conn) {
        self.table
            .borrow_mut()
            .remove_if_held_by(&conn.address, conn.key);
        let gone: Vec<_> = conn.state.borrow_mut().pending.drain().collect();
        if !gone.is_empty() {
            let reason = format!("{} disconnected before answering", conn.address);
            self.fail_pending(gone, AnswerError::TargetGone, &reason);
        }
    }

    /// End `conn` at once without flushing (dead or not reading) and take it out of service.
    pub fn drop_connection(&self, conn: &Conn) {
        conn.kill();
        self.retire(conn);
    }

    /// The driver task of `conn` has finished.
    pub fn connection_ended(&self, conn: &Conn) {
        self.retire(conn);
        self.conns.borrow_mut().remove(conn.key);
    }

    /// Send to another shard; a full queue parks the message here, in order, until the
    /// inbox task can push it.
    pub fn send_to(&self, to: usize, msg: ShardMessage) {
        let mut overflow = self.overflow.borrow_mut();
        let msg = if overflow[to].is_empty() {
            match self.router.send(self.id, to, msg) {
                Ok(()) => return,
                Err(msg) => msg,
            }
        } else {
            msg
        };
        overflow[to].push_back(msg);
        // Our own inbox task retries the overflow; make sure it is awake.
        self.router.notify(self.id);
    }

    /// Whether requests for shard `to` are backed up past the point of refusing new ones.
    pub fn overflowing(&self, to: usize) -> bool {
        self.overflow.borrow()[to].len() >= OVERFLOW_REQUEST_LIMIT
    }

    fn flush_overflow(&self) -> bool {
        let mut overflow = self.overflow.borrow_mut();
        let mut all_sent = true;
        for (to, queue) in overflow.iter_mut().enumerate() {
            while let Some(msg) = queue.pop_front() {
                if let Err(msg) = self.router.send(self.id, to, msg) {
                    queue.push_front(msg);
                    all_sent = false;
                    break;
                }
            }
        }
        all_sent
    }

    fn handle_shard_message(self: &Rc<Self>, msg: ShardMessage) {
        match msg {
            ShardMessage::Adopt(handoff) => upgrade::adopt(self, *handoff),
            ShardMessage::AdoptHttp(handoff) => crate::proxy::ingress::adopt(self, *handoff),
            ShardMessage::Request(request) => self.accept_request(request),
            ShardMessage::Respond(d) => self.deliver_local(d.kind, d.to, d.origin_cseq, d.frame),
        }
    }
}

/// The io driver a shard actually runs (`Auto` resolved against the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    /// Resolve the configured choice. `Auto` probes io_uring once.
    pub fn resolve(choice: DriverChoice) -> std::io::Result<Driver> {
        let uring = monoio::utils::detect_uring();
        match choice {
            DriverChoice::Legacy => Ok(Driver::Epoll),
            DriverChoice::Auto if uring => Ok(Driver::Uring),
            DriverChoice::Auto => Ok(Driver::Epoll),
            DriverChoice::Uring if uring => Ok(Driver::Uring),
            DriverChoice::Uring => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "io_uring is not available on this kernel (use --driver auto or legacy)",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::Uring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Run shard `id` on the current thread until the proxy shuts down.
pub fn run(
    id: usize,
    driver: Driver,
    config: Arc<ProxyConfig>,
    router: Arc<ShardRouter>,
    control: Arc<Control>,
    listener: std::net::TcpListener,
    http_listener: Option<std::net::TcpListener>,
) -> std::io::Result<()> {
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
    let main = shard_main(id, config, router, control, listener, http_listener);
    match driver {
        Driver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(main),
        Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?
            .block_on(main),
    }
}

async fn shard_main(
    id: usize,
    config: Arc<ProxyConfig>,
    router: Arc<ShardRouter>,
    control: Arc<Control>,
    listener: std::net::TcpListener,
    http_listener: Option<std::net::TcpListener>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let http_listener = http_listener.map(TcpListener::from_std).transpose()?;
    let shard = Rc::new(Shard::new(id, config, router, control));
    monoio::spawn(inbox_loop(shard.clone()));
    monoio::spawn(sweep_loop(shard.clone()));
    let http_accepting = http_listener.map(|l| {
        let shard = shard.clone();
        monoio::spawn(async move {
            accept_loop(
                &shard,
                &l,
                ListenerKind::HttpOnly,
                &shard.stop_accepting_http,
            )
            .await;
            stop_listener(l);
        })
    });
    accept_loop(&shard, &listener, ListenerKind::Main, &shard.stop_accepting).await;
    if let Some(task) = http_accepting {
        task.await;
    }
    stop_listener(listener);
    shut_down(shard).await;
    Ok(())
}

fn stop_listener(listener: TcpListener) {
    // Dropping the listener is not enough on io_uring: the cancelled accept may still hold
    // the descriptor for a while. Shutting the socket down makes the kernel refuse new
    // connections at once.
    // SAFETY: shutdown(2) on a descriptor this shard owns and has not closed.
    unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&listener), libc::SHUT_RDWR) };
    drop(listener);
}

/// What a listener serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ListenerKind {
    /// `--listen`: registrations, and plain HTTP for the public ingress.
    Main,
    /// `--http-listen`: the public ingress only.
    HttpOnly,
}

async fn accept_loop(shard: &Rc<Shard>, listener: &TcpListener, kind: ListenerKind, stop: &Latch) {
    let mut last_warning: Option<Instant> = None;
    loop {
        monoio::select! {
            _ = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) if kind == ListenerKind::Main => {
                    monoio::spawn(upgrade::admit(shard.clone(), stream, peer));
                }
                Ok((stream, peer)) => {
                    monoio::spawn(upgrade::admit_http(shard.clone(), stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: say so at most once a second, back
                    // off briefly, and keep serving the connections we have.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                        tracing::warn!(shard = shard.id, error = %e, "accept failed");
                        last_warning = Some(Instant::now());
                    }
                    monoio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

async fn inbox_loop(shard: Rc<Shard>) {
    loop {
        let handled = shard
            .router
            .drain(shard.id, INBOX_BATCH, |m| shard.handle_shard_message(m));
        let overflow_clear = shard.flush_overflow();
        if shard.control.is_shutting_down() && !shard.draining.get() {
            shard.draining.set(true);
            shard.stop_accepting.set();
            shard.stop_accepting_http.set();
        }
        if handled == INBOX_BATCH {
            yield_now().await;
        } else if !overflow_clear {
            monoio::time::sleep(OVERFLOW_RETRY).await;
        } else {
            let router = shard.router.clone();
            let id = shard.id;
            std::future::poll_fn(|cx| router.poll_inbox(id, cx)).await;
        }
    }
}

/// Let every other ready task of this shard run once.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

async fn sweep_loop(shard: Rc<Shard>) {
    let tick = (shard.config.request_timeout / 10)
        .clamp(Duration::from_millis(10), Duration::from_millis(250));
    let liveness_every =
        (shard.config.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut next_liveness = Instant::now() + liveness_every;
    loop {
        monoio::time::sleep(tick).await;
        let now = Instant::now();
        shard.expire_requests(now);
        if now >= next_liveness {
            shard.check_liveness(now, liveness_every);
            next_liveness = now + liveness_every;
        }
    }
}

impl Shard {
    /// Ping connections that went quiet, drop those that did not answer, end closing
    /// connections that could not flush, and give idle connections' buffers back.
    fn check_liveness(&self, now: Instant, idle_for: Duration) {
        let conns: Vec<Rc<Conn>> = self.conns.borrow().iter().cloned().collect();
        for conn in conns {
            let (phase, last_seen, ping_sent) = {
                let st = conn.state.borrow();
                (st.phase, st.last_seen, st.ping_sent)
            };
            match phase {
                Phase::Kill => continue,
                Phase::Closing { since } => {
                    if now.duration_since(since) > CLOSE_FLUSH_TIMEOUT {
                        conn.kill();
                    }
                    continue;
                }
                Phase::Open => {}
            }
            if let Some(sent) = ping_sent {
                if now.duration_since(sent) > self.config.pong_timeout {
                    tracing::debug!(address = %conn.address, "no answer to ping; dropping");
                    self.drop_connection(&conn);
                }
                continue;
            }
            let quiet = now.duration_since(last_seen);
            if quiet >= self.config.idle_timeout {
                let ping = self.control_frame(OpCode::Ping, b"");
                self.queue(
                    &conn,
                    OutFrame {
                        head: ping,
                        body: Bytes::new(),
                    },
                );
                conn.state.borrow_mut().ping_sent = Some(now);
            }
            if quiet >= idle_for {
                conn.compact();
            }
        }
    }
}

/// The shutdown sequence (SIGINT/SIGTERM): stop accepting, let in-flight requests finish
/// for the grace period, fail the rest, wait until every shard has done the same (so their
/// answers have reached us), then tell every connection and close it with 1001.
async fn shut_down(shard: Rc<Shard>) {
    let n = shard.router.shards();
    let grace_end = Instant::now() + shard.config.shutdown_grace;
    while shard.pending_total.get() > 0 && Instant::now() < grace_end {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let conns: Vec<Rc<Conn>> = shard.conns.borrow().iter().cloned().collect();
    for conn in &conns {
        let gone: Vec<_> = conn.state.borrow_mut().pending.drain().collect();
        shard.fail_pending(gone, AnswerError::TargetGone, "the proxy is shutting down");
    }
    let deadline = Instant::now() + CLOSE_FLUSH_TIMEOUT;
    while !shard.flush_overflow() && Instant::now() < deadline {
        monoio::time::sleep(OVERFLOW_RETRY).await;
    }
    shard.control.drained.fetch_add(1, Ordering::AcqRel);
    // Wait for the other shards to finish their own grace periods and queue their answers
    // to our callers; then let the inbox task deliver them before anything is closed.
    let deadline = grace_end.max(Instant::now()) + CLOSE_FLUSH_TIMEOUT;
    while shard.control.drained.load(Ordering::Acquire) < n && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    while !shard.router.inbox_empty(shard.id) && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    for conn in &conns {
        shard.send_indication(
            conn,
            IndicationError::Shutdown,
            "the proxy is shutting down",
        );
        let close = shard.close_frame(1001, "proxy shutting down");
        shard.close_connection(conn, close);
    }
    let deadline = Instant::now() + CLOSE_FLUSH_TIMEOUT;
    while !shard.conns.borrow().is_empty() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    tracing::info!(shard = shard.id, "shard stopped");
}
