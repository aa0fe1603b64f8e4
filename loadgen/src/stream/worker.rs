//! One stream-mode worker thread: a single-threaded tokio runtime that connects its slice of
//! the connections, waits for the common start, runs one task per connection, waits (bounded)
//! until every stream of every thread has ended, then closes its connections.
//!
//! [`Shared`] is what the connection tasks of one thread share: the plan, the phases, the
//! thread's counters, and the one thing all threads share, the number of requests still open
//! anywhere (so that no thread closes a server whose callers on another thread still wait).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::BytesMut;
use httpws::proto::frame::{DecoderConfig, Role};
use httpws::proto::head::HeadLimits;
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use super::conn::Conn;
use super::connect::{self, OpenError};
use super::stats::StreamStats;
use crate::args::{Config, MAX_PAYLOAD_BYTES, StreamKind, StreamPlan};
use crate::clock::{self, now_ns, sleep_until_ns};

/// Largest HTTP head accepted from the server.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest message accepted: the largest small-request body echoed, with its head.
const MAX_MESSAGE_BYTES: usize = MAX_PAYLOAD_BYTES + MAX_HEAD_BYTES;
/// Connection attempts in progress at once per thread.
const CONNECT_BATCH: usize = 256;
/// How often the end of a run looks whether every stream has ended, and whether every
/// connection task has finished closing.
const DRAIN_TICK: Duration = Duration::from_millis(5);
/// Longest the close of the connections may take (each waits up to 500 ms for its answer).
const CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// Timer slack for worker threads (the default is 50 µs).
const TIMER_SLACK_NS: u64 = 1_000;

/// When the stream phases begin and end, as [`now_ns`] times (common to all threads).
/// Without the mixed mode's bulk phase, `bulk_start` and `bulk_measure` are `end`.
#[derive(Clone, Copy, Debug)]
pub struct StreamPhases {
    /// Streams open; small requests begin.
    pub t0: u64,
    /// The measured window begins (mixed: the window without bulk streams).
    pub measure: u64,
    /// Mixed: the bulk streams open (and the first window ends).
    pub bulk_start: u64,
    /// Mixed: the window with bulk streams begins.
    pub bulk_measure: u64,
    /// The traffic ends: no new streams or requests; transfers in progress are reset.
    pub end: u64,
}

/// What a worker reports when its connections are up.
pub struct RampReport {
    pub established: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
}

/// What a worker hands back at the end.
pub struct WorkerResult {
    pub stats: StreamStats,
    /// Why connections were given up during the traffic, by reason.
    pub failures: BTreeMap<String, u64>,
}

pub struct WorkerHandle {
    pub thread: std::thread::JoinHandle<WorkerResult>,
    /// `Some(phases)` to run, `None` to abort.
    pub start: oneshot::Sender<Option<StreamPhases>>,
}

/// Start the worker for connections `lo..hi`; it reports on `ramp` once they are connected.
pub fn spawn(
    id: usize,
    config: Arc<Config>,
    plan: StreamPlan,
    open: Arc<AtomicU64>,
    (lo, hi): (usize, usize),
    ramp: mpsc::Sender<RampReport>,
) -> io::Result<WorkerHandle> {
    let (start_tx, start_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("loadgen-{id}"))
        .spawn(move || {
            clock::set_timer_slack(TIMER_SLACK_NS);
            let empty = || WorkerResult {
                stats: StreamStats::default(),
                failures: BTreeMap::new(),
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ramp.send(RampReport {
                        established: 0,
                        failed: (hi - lo) as u64,
                        failures: BTreeMap::from([(format!("runtime: {e}"), 1)]),
                    });
                    return empty();
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let (conns, report) = connect_all(&config, lo, hi).await;
                let _ = ramp.send(report);
                let Ok(Some(phases)) = start_rx.await else {
                    return empty();
                };
                run(config, plan, phases, open, conns).await
            })
        })?;
    Ok(WorkerHandle {
        thread,
        start: start_tx,
    })
}

/// Connect `lo..hi`, a batch at a time.
async fn connect_all(
    config: &Arc<Config>,
    lo: usize,
    hi: usize,
) -> (Vec<(usize, TcpStream, BytesMut)>, RampReport) {
    let mut conns = Vec::with_capacity(hi - lo);
    let mut report = RampReport {
        established: 0,
        failed: 0,
        failures: BTreeMap::new(),
    };
    let mut index = lo;
    while index < hi {
        let batch_end = (index + CONNECT_BATCH).min(hi);
        let attempts: Vec<_> = (index..batch_end)
            .map(|i| {
                let config = config.clone();
                let nonce: [u8; 16] = fastrand::u128(..).to_ne_bytes();
                tokio::task::spawn_local(async move {
                    let attempt = connect::open(&config, i, nonce);
                    let result = match tokio::time::timeout(config.connect_timeout, attempt).await {
                        Ok(r) => r,
                        Err(_) => Err(OpenError::TimedOut),
                    };
                    (i, result)
                })
            })
            .collect();
        for attempt in attempts {
            match attempt.await {
                Ok((i, Ok((stream, leftover)))) => {
                    report.established += 1;
                    conns.push((i, stream, leftover));
                }
                Ok((_, Err(e))) => {
                    report.failed += 1;
                    *report.failures.entry(e.to_string()).or_default() += 1;
                }
                Err(e) => {
                    report.failed += 1;
                    *report.failures.entry(format!("task: {e}")).or_default() += 1;
                }
            }
        }
        index = batch_end;
    }
    (conns, report)
}

/// The traffic: a task per connection, the end, the drain and the close.
async fn run(
    config: Arc<Config>,
    plan: StreamPlan,
    phases: StreamPhases,
    open: Arc<AtomicU64>,
    conns: Vec<(usize, TcpStream, BytesMut)>,
) -> WorkerResult {
    let sh = Rc::new(Shared::new(config, plan, phases, open));
    for (index, stream, leftover) in conns {
        let conn = Conn::new(index, stream, leftover, &sh);
        sh.live.set(sh.live.get() + 1);
        tokio::task::spawn_local(conn.run(sh.clone()));
    }
    sleep_until_ns(phases.end).await;
    let deadline = phases.end + sh.config.timeout.as_nanos() as u64;
    while sh.open.load(Ordering::Relaxed) > 0 && now_ns() < deadline && sh.live.get() > 0 {
        tokio::time::sleep(DRAIN_TICK).await;
    }
    sh.closing.set(true);
    sh.close.notify_waiters();
    let limit = now_ns() + CLOSE_LIMIT.as_nanos() as u64;
    while sh.live.get() > 0 && now_ns() < limit {
        tokio::time::sleep(DRAIN_TICK).await;
    }
    WorkerResult {
        stats: sh.stats.take(),
        failures: sh.failures.take(),
    }
}

pub(super) struct Shared {
    pub(super) config: Arc<Config>,
    pub(super) plan: StreamPlan,
    pub(super) phases: StreamPhases,
    pub(super) stats: RefCell<StreamStats>,
    /// Requests still open, on every thread.
    open: Arc<AtomicU64>,
    /// Set once loadgen closes its connections: closes and errors after it are not drops.
    pub(super) closing: Cell<bool>,
    /// Wakes every connection task when `closing` is set.
    pub(super) close: Notify,
    /// Connection tasks still running.
    pub(super) live: Cell<usize>,
    /// Body bytes (download and upload data, event padding): the larger of a chunk and an
    /// event.
    pub(super) body: Vec<u8>,
    /// A small request's body (`--payload` bytes).
    pub(super) small_body: Vec<u8>,
    pub(super) decoder_config: DecoderConfig,
    pub(super) head_limits: HeadLimits,
    failures: RefCell<BTreeMap<String, u64>>,
}

impl Shared {
    fn new(
        config: Arc<Config>,
        plan: StreamPlan,
        phases: StreamPhases,
        open: Arc<AtomicU64>,
    ) -> Shared {
        Shared {
            body: vec![super::wire::FILL; plan.chunk.max(plan.event_bytes)],
            small_body: vec![super::wire::FILL; config.payload],
            config,
            plan,
            phases,
            stats: RefCell::default(),
            open,
            closing: Cell::new(false),
            close: Notify::new(),
            live: Cell::new(0),
            decoder_config: DecoderConfig {
                role: Role::Client,
                max_message_bytes: MAX_MESSAGE_BYTES,
            },
            head_limits: HeadLimits {
                max_head_bytes: MAX_HEAD_BYTES,
                ..HeadLimits::default()
            },
            failures: RefCell::default(),
        }
    }

    /// Connection `index`'s rank among the callers (if it calls) and the connection it
    /// calls: 2i calls 2i+1 (the last of an odd count calls itself); direct: each itself.
    pub(super) fn role_of(&self, index: usize) -> (Option<usize>, usize) {
        if self.config.direct {
            (Some(index), index)
        } else if index % 2 == 0 {
            let partner = index + 1;
            let target = if partner < self.config.conns {
                partner
            } else {
                index
            };
            (Some(index / 2), target)
        } else {
            (None, index)
        }
    }

    /// How many connections call.
    pub(super) fn callers(&self) -> usize {
        if self.config.direct {
            self.config.conns
        } else {
            self.config.conns.div_ceil(2)
        }
    }

    /// When the callers open their streams: at the start, or (mixed) the bulk phase.
    pub(super) fn open_time(&self) -> u64 {
        if self.plan.kind == StreamKind::Mixed {
            self.phases.bulk_start
        } else {
            self.phases.t0
        }
    }

    /// Whether `t` is in the measured window.
    pub(super) fn in_window(&self, t: u64) -> bool {
        t >= self.phases.measure && t < self.phases.end
    }

    /// Whether body bytes received at `t` count for the throughput (mixed: only in the
    /// window with the bulk streams).
    pub(super) fn bytes_window(&self, t: u64) -> bool {
        if self.plan.kind == StreamKind::Mixed {
            t >= self.phases.bulk_measure && t < self.phases.end
        } else {
            self.in_window(t)
        }
    }

    /// Mixed: which window a small request meant for `t` is measured in (0: without the
    /// bulk streams, 1: with them), if any.
    pub(super) fn small_phase(&self, t: u64) -> Option<usize> {
        let p = &self.phases;
        if t >= p.measure && t < p.bulk_start {
            Some(0)
        } else if t >= p.bulk_measure && t < p.end {
            Some(1)
        } else {
            None
        }
    }

    pub(super) fn call_opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn call_closed(&self) {
        self.forget_calls(1);
    }

    /// `n` open requests will never end (their connection is gone).
    pub(super) fn forget_calls(&self, n: usize) {
        if n > 0 {
            self.open.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// A connection was given up during the traffic, for `reason`.
    pub(super) fn note_failure(&self, reason: &str) {
        *self
            .failures
            .borrow_mut()
            .entry(reason.to_string())
            .or_default() += 1;
    }
}
