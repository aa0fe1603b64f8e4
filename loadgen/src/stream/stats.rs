//! Stream-mode counters and histograms: one [`StreamStats`] per worker thread, merged once at
//! the end.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::stats::{bump, new_histogram};

#[derive(Clone, Debug)]
pub struct StreamStats {
    /// events: receive time − intended send time (ns) of each event meant for the window.
    pub event_hist: Histogram<u64>,
    /// mixed: small-request round trips (ns) from their intended send time, without ([0]) and
    /// with ([1]) the bulk streams.
    pub small_hist: [Histogram<u64>; 2],
    /// download, upload: time from a stream's request to its end (ns), of streams that
    /// finished inside the window.
    pub stream_hist: Histogram<u64>,
    /// Events received (warm-up included).
    pub events: u64,
    /// Events received inside the window.
    pub events_in_window: u64,
    /// Body bytes received by the streams' readers inside the window (mixed: the bulk
    /// window).
    pub bytes_in_window: u64,
    /// Body bytes received in all.
    pub bytes: u64,
    /// Streams requested by the callers.
    pub opened: u64,
    /// Streams that ended normally (`~end`, and the whole answer to an upload).
    pub completed: u64,
    /// Streams the callers reset at the end of the run (downloads and uploads in progress).
    pub cancelled_at_end: u64,
    /// Streams ended by a `~reset` that loadgen did not send, by token.
    pub resets: BTreeMap<String, u64>,
    /// Error answers (a status other than 200), by `Httpws-Error` token or `status-NNN`.
    pub errors: BTreeMap<String, u64>,
    /// `:error` indications from the proxy, by token.
    pub indications: BTreeMap<String, u64>,
    /// Downloads that ended with another length than asked for.
    pub short: u64,
    /// Data beyond the credit loadgen granted (the proxy must never relay it).
    pub credit_violations: u64,
    /// Stream messages or heads for no stream loadgen knows of, or malformed.
    pub unknown: u64,
    /// Small requests sent and answered (mixed).
    pub small_sent: u64,
    pub small_answered: u64,
    /// Requests this thread's endpoints served as targets.
    pub served: u64,
    /// Streams and requests still open when the connections closed.
    pub unfinished: u64,
    /// Connections that closed or failed before loadgen closed them.
    pub conns_dropped: u64,
    /// Connections that broke the WebSocket protocol.
    pub protocol_errors: u64,
}

impl Default for StreamStats {
    fn default() -> Self {
        StreamStats {
            event_hist: new_histogram(),
            small_hist: [new_histogram(), new_histogram()],
            stream_hist: new_histogram(),
            events: 0,
            events_in_window: 0,
            bytes_in_window: 0,
            bytes: 0,
            opened: 0,
            completed: 0,
            cancelled_at_end: 0,
            resets: BTreeMap::new(),
            errors: BTreeMap::new(),
            indications: BTreeMap::new(),
            short: 0,
            credit_violations: 0,
            unknown: 0,
            small_sent: 0,
            small_answered: 0,
            served: 0,
            unfinished: 0,
            conns_dropped: 0,
            protocol_errors: 0,
        }
    }
}

/// Add `other`'s counts of each key to `into`.
fn add_counts(into: &mut BTreeMap<String, u64>, other: &BTreeMap<String, u64>) {
    for (k, v) in other {
        *into.entry(k.clone()).or_default() += v;
    }
}

impl StreamStats {
    pub fn merge(&mut self, o: &StreamStats) {
        // Same bounds on every side, so the adds cannot fail.
        let _ = self.event_hist.add(&o.event_hist);
        let _ = self.small_hist[0].add(&o.small_hist[0]);
        let _ = self.small_hist[1].add(&o.small_hist[1]);
        let _ = self.stream_hist.add(&o.stream_hist);
        self.events += o.events;
        self.events_in_window += o.events_in_window;
        self.bytes_in_window += o.bytes_in_window;
        self.bytes += o.bytes;
        self.opened += o.opened;
        self.completed += o.completed;
        self.cancelled_at_end += o.cancelled_at_end;
        add_counts(&mut self.resets, &o.resets);
        add_counts(&mut self.errors, &o.errors);
        add_counts(&mut self.indications, &o.indications);
        self.short += o.short;
        self.credit_violations += o.credit_violations;
        self.unknown += o.unknown;
        self.small_sent += o.small_sent;
        self.small_answered += o.small_answered;
        self.served += o.served;
        self.unfinished += o.unfinished;
        self.conns_dropped += o.conns_dropped;
        self.protocol_errors += o.protocol_errors;
    }

    /// Every stream and request ended exactly once, within the credit, about streams that
    /// exist.
    pub fn clean(&self) -> bool {
        self.unfinished == 0 && self.unknown == 0 && self.credit_violations == 0
    }

    pub fn reset(&mut self, token: &str) {
        bump(&mut self.resets, token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = StreamStats::default();
        let mut b = StreamStats::default();
        a.event_hist.record(1_000).unwrap();
        b.event_hist.record(2_000).unwrap();
        b.small_hist[1].record(5).unwrap();
        a.bytes = 3;
        b.bytes = 4;
        b.reset("timeout");
        a.reset("timeout");
        b.unfinished = 1;
        a.merge(&b);
        assert_eq!(a.event_hist.len(), 2);
        assert_eq!(a.small_hist[1].len(), 1);
        assert_eq!(a.bytes, 7);
        assert_eq!(a.resets["timeout"], 2);
        assert!(!a.clean());
    }
}
