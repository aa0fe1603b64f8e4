//! A shard's thread: the `monoio` runtime (io_uring or epoll), its listeners' accept loops,
//! the inbox task that takes other shards' messages, the sweeper (deadlines and liveness),
//! and the shutdown sequence.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use crate::proto::answer_error::AnswerError;
use crate::proto::indication::IndicationError;
use crate::proto::stream::ResetReason;
use crate::proxy::admission;
use crate::proxy::config::{CLOSE_FLUSH_TIMEOUT, DriverChoice, ProxyConfig};
use crate::proxy::control::Control;
use crate::proxy::messages::ShardMessage;
use crate::proxy::public_ingress;
use crate::proxy::registration;
use crate::proxy::router::ShardRouter;
use crate::proxy::shard::Shard;

/// Cross-shard messages handled per turn before other tasks get to run.
const INBOX_BATCH: usize = 256;
/// How soon a shard retries messages that found another shard's queue full.
const OVERFLOW_RETRY: Duration = Duration::from_micros(200);
/// io_uring submission queue entries per shard.
const URING_ENTRIES: u32 = 1024;

/// Told to the accept loops when shutdown begins (the inbox task notices it first).
#[derive(Debug, Default)]
struct StopAccepting {
    main: Latch,
    http: Latch,
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

/// The io driver a shard actually runs (`Auto` resolved against the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    /// monoio's io_uring driver.
    Uring,
    /// monoio's legacy driver, on epoll (`--driver legacy`, or no io_uring in the kernel).
    Epoll,
}

impl IoDriver {
    /// Resolve the configured choice. `Auto` probes io_uring once.
    pub fn resolve(choice: DriverChoice) -> std::io::Result<IoDriver> {
        let uring = monoio::utils::detect_uring();
        match choice {
            DriverChoice::Legacy => Ok(IoDriver::Epoll),
            DriverChoice::Auto if uring => Ok(IoDriver::Uring),
            DriverChoice::Auto => Ok(IoDriver::Epoll),
            DriverChoice::Uring if uring => Ok(IoDriver::Uring),
            DriverChoice::Uring => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "io_uring is not available on this kernel (use --driver auto or legacy)",
            )),
        }
    }

    /// The name the start-up log line shows: `io_uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            IoDriver::Uring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }
}

/// Run shard `id` on the current thread until the proxy shuts down.
pub fn run(
    id: usize,
    driver: IoDriver,
    config: Arc<ProxyConfig>,
    router: Arc<ShardRouter>,
    control: Arc<Control>,
    listener: std::net::TcpListener,
    http_listener: Option<std::net::TcpListener>,
) -> std::io::Result<()> {
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
    let main = shard_main(id, config, router, control, listener, http_listener);
    match driver {
        IoDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(main),
        IoDriver::Uring => RuntimeBuilder::<IoUringDriver>::new()
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
    let stop = Rc::new(StopAccepting::default());
    monoio::spawn(inbox_loop(shard.clone(), stop.clone()));
    monoio::spawn(sweep_loop(shard.clone()));
    let http_accepting = http_listener.map(|l| {
        let (shard, stop) = (shard.clone(), stop.clone());
        monoio::spawn(async move {
            accept_loop(&shard, &l, ListenerKind::HttpOnly, &stop.http).await;
            stop_listener(l);
        })
    });
    accept_loop(&shard, &listener, ListenerKind::Main, &stop.main).await;
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
                    monoio::spawn(admission::admit(shard.clone(), stream, peer));
                }
                Ok((stream, peer)) => {
                    monoio::spawn(admission::admit_http(shard.clone(), stream, peer));
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

async fn inbox_loop(shard: Rc<Shard>, stop: Rc<StopAccepting>) {
    loop {
        let handled = shard
            .router
            .drain(shard.id, INBOX_BATCH, |m| dispatch(&shard, m));
        let overflow_clear = shard.flush_overflow();
        if shard.control.is_shutting_down() && !shard.is_draining() {
            shard.start_draining();
            stop.main.set();
            stop.http.set();
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

/// How often a shard that relayed nothing since the last time hands the memory it has freed
/// back to the OS.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Hand back to the OS what this thread's allocator has freed and not reused. mimalloc does
/// that lazily, from inside later allocations and frees, and keeps freed pages cached per
/// thread, so a shard whose connections have gone idle (their handshake and registration
/// buffers freed) would hold those pages for as long as it stays idle: about a sixth of the
/// RSS of 10k idle connections (bench/RESULTS.md, idle memory). `force` gives the cached
/// pages back too, which the lazy collection alone does not.
fn return_freed_memory() {
    // SAFETY: `mi_collect` takes a flag and works on the calling thread's own heap; with
    // another global allocator it finds mimalloc's heap empty and does nothing.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

async fn sweep_loop(shard: Rc<Shard>) {
    let tick = (shard.config.request_timeout / 10)
        .clamp(Duration::from_millis(10), Duration::from_millis(250));
    let liveness_every =
        (shard.config.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut next_liveness = Instant::now() + liveness_every;
    let mut next_trim = Instant::now() + TRIM_EVERY;
    let mut relayed_at_trim = shard.relayed_count();
    loop {
        monoio::time::sleep(tick).await;
        let now = Instant::now();
        shard.expire_requests(now);
        shard.expire_streams(now);
        // Only after a whole period without a request: a shard under any load reuses what it
        // frees at once, and handing it back would only make the next requests fault it in
        // again.
        if now >= next_trim {
            let relayed = shard.relayed_count();
            if relayed == relayed_at_trim && shard.pending_count() == 0 {
                return_freed_memory();
            }
            relayed_at_trim = relayed;
            next_trim = now + TRIM_EVERY;
        }
        if now >= next_liveness {
            shard.check_liveness(now, liveness_every);
            next_liveness = now + liveness_every;
        }
    }
}

/// Handle one message from another shard.
fn dispatch(shard: &Rc<Shard>, msg: ShardMessage) {
    match msg {
        ShardMessage::Adopt(handoff) => registration::adopt(shard, *handoff),
        ShardMessage::AdoptHttp(handoff) => public_ingress::adopt(shard, *handoff),
        ShardMessage::Request(request) => shard.accept_request(request),
        ShardMessage::Respond(d) => {
            shard.deliver_local(d.kind, d.to, d.origin_cseq, d.frame, d.progress)
        }
        ShardMessage::CallerStream(hop) => shard.stream_from_caller(*hop),
        ShardMessage::CallerGone {
            origin,
            origin_cseq,
        } => shard.caller_gone(origin, origin_cseq),
    }
}

/// The shutdown sequence (SIGINT/SIGTERM): stop accepting, let in-flight requests finish
/// for the grace period, fail the rest, wait until every shard has done the same (so their
/// answers have reached us), then tell every connection and close it with 1001.
async fn shut_down(shard: Rc<Shard>) {
    let n = shard.router.shards();
    let grace_end = Instant::now() + shard.config.shutdown_grace;
    while shard.pending_count() > 0 && Instant::now() < grace_end {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let conns = shard.conns();
    for conn in &conns {
        let gone: Vec<_> = conn.state.borrow_mut().pending.drain().collect();
        shard.fail_pending(gone, AnswerError::TargetGone, "the proxy is shutting down");
        // Streams do not get a grace period of their own (a download may last hours): their
        // callers learn of the shutdown now, before the connections close.
        shard.end_streams(conn, ResetReason::Shutdown);
    }
    let deadline = Instant::now() + CLOSE_FLUSH_TIMEOUT;
    while !shard.flush_overflow() && Instant::now() < deadline {
        monoio::time::sleep(OVERFLOW_RETRY).await;
    }
    shard.control.mark_drained();
    // Wait for the other shards to finish their own grace periods and queue their answers
    // to our callers; then let the inbox task deliver them before anything is closed.
    let deadline = grace_end.max(Instant::now()) + CLOSE_FLUSH_TIMEOUT;
    while shard.control.drained() < n && Instant::now() < deadline {
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
    while shard.has_conns() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    let streams = shard.stream_counters.snapshot();
    tracing::info!(
        shard = shard.id,
        streams = streams.opened,
        stream_bytes_to_targets = streams.bytes_to_targets,
        stream_bytes_to_callers = streams.bytes_to_callers,
        "shard stopped"
    );
}
