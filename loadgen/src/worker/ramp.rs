//! What the workers share with the main thread while ramping up: the counters behind the
//! progress bar, the failure reasons, and the resource [`Limit`] that stopped the ramp.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// The limit an error from opening a connection means, if it is one.
    pub(super) fn of(e: &io::Error) -> Option<Limit> {
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
    pub(super) fn fail(&self, reason: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        *failures.entry(reason).or_default() += 1;
    }

    pub(super) fn hit_limit(&self, limit: Limit, error: &io::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self.limit.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some((limit, error.to_string()));
        }
    }
}
