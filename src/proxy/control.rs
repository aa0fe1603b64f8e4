//! State shared by every shard of one proxy, behind atomics and locks read rarely: the
//! shutdown sequence, the access policy, and the TLS configuration.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::proxy::access::PolicyCell;
use crate::proxy::stats::{StreamCounters, StreamTotals};

/// State shared by every shard of one proxy: the shutdown sequence, the access policy and
/// the TLS configuration (both replaceable on SIGHUP).
#[derive(Debug)]
pub struct Control {
    shutdown: AtomicBool,
    /// Shards that have answered or failed every request they were holding.
    drained: AtomicUsize,
    /// The tokens file in force, reloaded on SIGHUP.
    pub policy: PolicyCell,
    /// Read once per accepted connection; swapped whole when the certificate is reloaded.
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    /// Every shard's stream counters, for whoever reads them all (locked only to add a
    /// shard's and to read).
    stream_counters: Mutex<Vec<Arc<StreamCounters>>>,
}

impl Control {
    /// A running proxy's shared state: not shutting down, nothing drained yet.
    pub fn new(policy: PolicyCell, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Control {
            shutdown: AtomicBool::new(false),
            drained: AtomicUsize::new(0),
            policy,
            tls: RwLock::new(tls),
            stream_counters: Mutex::new(Vec::new()),
        }
    }

    /// A new shard's stream counters, registered so that [`stream_totals`](Self::stream_totals)
    /// counts them.
    pub fn new_stream_counters(&self) -> Arc<StreamCounters> {
        let counters = Arc::new(StreamCounters::default());
        let mut all = self
            .stream_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.push(counters.clone());
        counters
    }

    /// Every shard's stream counters, summed.
    pub fn stream_totals(&self) -> StreamTotals {
        let all = self
            .stream_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.iter()
            .map(|c| c.snapshot())
            .fold(StreamTotals::default(), |sum, one| sum + one)
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

    /// Ask every shard to stop: each sees it on its inbox loop's next turn and starts draining.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// Whether [`begin_shutdown`](Self::begin_shutdown) has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// This shard has answered or failed every request it held (shutdown).
    pub fn mark_drained(&self) {
        self.drained.fetch_add(1, Ordering::AcqRel);
    }

    /// How many shards have [`mark_drained`](Self::mark_drained).
    pub fn drained(&self) -> usize {
        self.drained.load(Ordering::Acquire)
    }
}
