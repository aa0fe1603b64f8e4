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
//! The workers meet once among themselves: every thread has drained before any closes, since
//! a connection closed early would leave another thread's last requests to it unanswerable.
//!
//! This module holds the thread, its state and the order of its phases; each phase and each
//! part of a connection's life is an `impl Worker` block of its own in the modules below.

mod answer;
mod close;
mod closed_loop;
mod conn;
mod connect;
mod open_loop;
mod ramp;
mod ramp_up;
mod receive;
mod send;
mod socket;
mod task;
mod timeouts;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::{Arc, mpsc};

use bytes::BytesMut;
use httpws::proto::frame::{DecoderConfig, Role};
use httpws::proto::head::HeadLimits;
use tokio::sync::{Barrier, oneshot};

use crate::args::{Config, MAX_PAYLOAD_BYTES, Traffic};
use crate::clock::{self, now_ns, sleep_until_ns};
use crate::stats::ThreadStats;

use self::conn::Conn;
pub use self::ramp::{Limit, Ramp};

/// Largest HTTP head of a message from the server.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest message accepted from the server: the largest --payload echoed, with its head.
const MAX_MESSAGE_BYTES: usize = MAX_PAYLOAD_BYTES + MAX_HEAD_BYTES;
/// Timer slack for worker threads (the default is 50 µs).
const TIMER_SLACK_NS: u64 = 1_000;
/// Mixed into each thread's random seed so that threads started in the same nanosecond
/// still differ (the 64-bit golden ratio).
const SEED_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// When the traffic phases begin and end, as [`now_ns`] times (common to all threads).
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    pub t0: u64,
    pub measure: u64,
    pub end: u64,
}

/// What the main thread tells a worker once every ramp is done.
pub enum Start {
    Go(Phases),
    Abort,
}

pub struct WorkerHandle {
    pub thread: std::thread::JoinHandle<ThreadStats>,
    pub start: oneshot::Sender<Start>,
}

/// How long past its own drain deadline a worker waits for the others before it closes
/// anyway (a thread whose runtime never started never arrives).
const RENDEZVOUS_GRACE_NS: u64 = 1_000_000_000;

/// Start worker `id` for the connections `lo..hi`. It ramps up at once and sends its id on
/// `ramp_done` when every connection attempt has finished. `drained` is shared by all the
/// workers of the run (one party each).
pub fn spawn(
    id: usize,
    config: Arc<Config>,
    ramp: Arc<Ramp>,
    (lo, hi): (usize, usize),
    ramp_done: mpsc::Sender<usize>,
    drained: Arc<Barrier>,
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
            let worker = Rc::new(Worker::new(id, config, ramp, lo, hi, drained));
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, worker.run(start_rx, ramp_done))
        })?;
    Ok(WorkerHandle {
        thread,
        start: start_tx,
    })
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
    /// Where the workers wait for each other between draining and closing.
    drained: Arc<Barrier>,
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
    fn new(
        id: usize,
        config: Arc<Config>,
        ramp: Arc<Ramp>,
        lo: usize,
        hi: usize,
        drained: Arc<Barrier>,
    ) -> Worker {
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
            drained,
            live_tasks: Cell::new(0),
            pending_connects: Cell::new(0),
            rng: RefCell::new(fastrand::Rng::with_seed(SEED_MIX ^ (id as u64) ^ now_ns())),
            body,
            scratch: RefCell::new(Vec::with_capacity(256)),
            read_buf: RefCell::new(BytesMut::new()),
            touched: RefCell::new(Vec::new()),
            decoder_config: DecoderConfig {
                role: Role::Client,
                max_message_bytes: MAX_MESSAGE_BYTES,
            },
            head_limits: HeadLimits {
                max_head_bytes: MAX_HEAD_BYTES,
                ..HeadLimits::default()
            },
            config,
        }
    }

    /// The whole life of the thread: ramp, wait for the start, traffic, drain, close.
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
        self.wait_for_every_worker(phases).await;
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

    /// Wait until every worker has drained (its connections keep answering meanwhile), or
    /// until a while after the drain deadline, whichever comes first.
    async fn wait_for_every_worker(&self, phases: Phases) {
        let give_up = self.drain_deadline(phases) + RENDEZVOUS_GRACE_NS;
        tokio::select! {
            _ = self.drained.wait() => {}
            () = sleep_until_ns(give_up) => {
                eprintln!("loadgen-{}: another worker did not finish draining; closing anyway", self.id);
            }
        }
    }

    fn established(&self) -> Vec<Rc<Conn>> {
        self.conns.borrow().iter().flatten().cloned().collect()
    }

    fn phase_end(&self) -> u64 {
        self.phases.get().map_or(u64::MAX, |p| p.end)
    }

    /// A fresh masking key for the next client frame.
    fn mask(&self) -> [u8; 4] {
        self.rng.borrow_mut().u32(..).to_ne_bytes()
    }
}
