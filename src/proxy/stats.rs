//! Counters an operator wants to see, kept per shard: plain atomics, written only by the
//! shard they belong to (so no two cores ever share a hot cache line) and read by anyone —
//! the shutdown summary today, a metrics scrape or a cluster bridge later — without a lock.
//! Streams are counted here: how many are open, how many were opened, and the body bytes
//! relayed each way.

use std::ops::Add;
use std::sync::atomic::{AtomicU64, Ordering};

/// One shard's stream counters (protocol 2 streams whose target is registered there).
#[derive(Debug, Default)]
pub struct StreamCounters {
    open: AtomicU64,
    opened: AtomicU64,
    bytes_to_targets: AtomicU64,
    bytes_to_callers: AtomicU64,
}

/// What [`StreamCounters`] held at one moment (or several shards' summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Streams open now.
    pub open: u64,
    /// Streams opened since the start.
    pub opened: u64,
    /// Body bytes relayed from callers to targets (request bodies, an upgrade's caller side).
    pub bytes_to_targets: u64,
    /// Body bytes relayed from targets to callers.
    pub bytes_to_callers: u64,
}

// Relaxed throughout: each counter is written by one thread and read as an approximate
// snapshot; nothing else is ordered by it.
impl StreamCounters {
    /// A stream opened.
    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` streams ended (whatever way).
    pub fn closed(&self, n: u64) {
        self.open.fetch_sub(n, Ordering::Relaxed);
    }

    /// `n` body bytes went on to a target.
    pub fn to_target(&self, n: usize) {
        self.bytes_to_targets.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` body bytes went on to a caller.
    pub fn to_caller(&self, n: usize) {
        self.bytes_to_callers.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StreamTotals {
        StreamTotals {
            open: self.open.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            bytes_to_targets: self.bytes_to_targets.load(Ordering::Relaxed),
            bytes_to_callers: self.bytes_to_callers.load(Ordering::Relaxed),
        }
    }
}

impl Add for StreamTotals {
    type Output = StreamTotals;

    fn add(self, other: StreamTotals) -> StreamTotals {
        StreamTotals {
            open: self.open + other.open,
            opened: self.opened + other.opened,
            bytes_to_targets: self.bytes_to_targets + other.bytes_to_targets,
            bytes_to_callers: self.bytes_to_callers + other.bytes_to_callers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_streams_and_bytes_and_sums_shards() {
        let (a, b) = (StreamCounters::default(), StreamCounters::default());
        a.opened();
        a.opened();
        a.closed(1);
        a.to_target(10);
        b.opened();
        b.to_caller(7);
        let sum = a.snapshot() + b.snapshot();
        assert_eq!(
            sum,
            StreamTotals {
                open: 2,
                opened: 3,
                bytes_to_targets: 10,
                bytes_to_callers: 7,
            }
        );
    }
}
