//! Counters and the latency histogram: one [`ThreadStats`] per worker thread (no sharing on
//! the hot path), merged once at the end.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Highest latency the histogram holds (ns): one hour; longer ones are clamped to it.
const MAX_LATENCY_NS: u64 = 3_600 * 1_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    // 3 significant digits from 1 ns: ±0.1% at every scale.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

#[derive(Clone, Debug)]
pub struct ThreadStats {
    /// Round-trip latency in ns of the successful answers to requests whose intended send
    /// time fell in the measured window.
    pub hist: Histogram<u64>,
    /// Requests sent (warm-up included).
    pub sent: u64,
    /// First answers received (proxy errors included).
    pub answered: u64,
    /// First answers that were not errors.
    pub ok: u64,
    /// Successful answers received inside the measured window (throughput).
    pub ok_in_window: u64,
    /// Answers carrying `Httpws-Error`, by token (`status-NNN` for an error without one).
    pub errors: BTreeMap<String, u64>,
    /// The first reason (response body) seen with each error token.
    pub error_reasons: BTreeMap<String, String>,
    /// Requests without an answer after --timeout.
    pub timeouts: u64,
    /// Of those, answered later.
    pub late: u64,
    /// Requests never answered.
    pub lost: u64,
    /// Second answers to a request.
    pub duplicates: u64,
    /// Answers with a CSeq the connection never sent.
    pub unknown: u64,
    /// Messages that are neither a usable HTTP message nor an indication.
    pub bad_messages: u64,
    /// `:error` indications from the proxy, by token.
    pub indications: BTreeMap<String, u64>,
    /// Requests this thread's endpoints answered as targets.
    pub served: u64,
    /// Connections that closed or failed before loadgen closed them.
    pub conns_dropped: u64,
    /// Connections that broke the WebSocket protocol (as seen by our decoder).
    pub protocol_errors: u64,
}

impl Default for ThreadStats {
    fn default() -> Self {
        ThreadStats {
            hist: new_histogram(),
            sent: 0,
            answered: 0,
            ok: 0,
            ok_in_window: 0,
            errors: BTreeMap::new(),
            error_reasons: BTreeMap::new(),
            timeouts: 0,
            late: 0,
            lost: 0,
            duplicates: 0,
            unknown: 0,
            bad_messages: 0,
            indications: BTreeMap::new(),
            served: 0,
            conns_dropped: 0,
            protocol_errors: 0,
        }
    }
}

pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

impl ThreadStats {
    pub fn merge(&mut self, other: &ThreadStats) {
        // Same bounds on both sides, so this cannot fail.
        let _ = self.hist.add(&other.hist);
        self.sent += other.sent;
        self.answered += other.answered;
        self.ok += other.ok;
        self.ok_in_window += other.ok_in_window;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.error_reasons {
            self.error_reasons
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.unknown += other.unknown;
        self.bad_messages += other.bad_messages;
        for (k, v) in &other.indications {
            *self.indications.entry(k.clone()).or_default() += v;
        }
        self.served += other.served;
        self.conns_dropped += other.conns_dropped;
        self.protocol_errors += other.protocol_errors;
    }

    /// Every request got exactly one answer.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.unknown == 0
    }
}

/// The percentiles reported, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// Points of the percentile distribution for plotting: (x, latency ns) where
/// x = log10(1 / (1 - q)), i.e. 0 at p0, 1 at p90, 2 at p99, … up to 5 (p99.999).
pub fn distribution(hist: &Histogram<u64>) -> Vec<(f64, u64)> {
    if hist.is_empty() {
        return Vec::new();
    }
    // Beyond 1/count the tail holds a single sample: stop there (HdrHistogram plots do too).
    let x_max = (hist.len() as f64).log10().clamp(0.0, 5.0);
    let steps = (x_max * 50.0).ceil().max(1.0) as usize;
    (0..=steps)
        .map(|i| {
            let x = x_max * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-x);
            (x, hist.value_at_quantile(q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = ThreadStats::default();
        let mut b = ThreadStats::default();
        a.hist.record(1_000).unwrap();
        b.hist.record(3_000).unwrap();
        a.sent = 2;
        b.sent = 3;
        bump(&mut a.errors, "timeout");
        bump(&mut b.errors, "timeout");
        bump(&mut b.errors, "target-busy");
        b.lost = 1;
        a.merge(&b);
        assert_eq!(a.hist.len(), 2);
        assert_eq!(a.sent, 5);
        assert_eq!(a.errors["timeout"], 2);
        assert_eq!(a.errors["target-busy"], 1);
        assert!(!a.exactly_once());
    }

    #[test]
    fn distribution_is_monotonic() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            h.record(v * 10).unwrap();
        }
        let d = distribution(&h);
        assert!(d.len() > 100);
        assert_eq!(d[0].0, 0.0);
        assert!((d.last().unwrap().0 - 5.0).abs() < 1e-9);
        assert!(d.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
    }
}
