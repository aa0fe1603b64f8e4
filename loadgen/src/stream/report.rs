//! What a stream-mode run reports: the summary on stdout and the `--json` file.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;
use serde_json::json;

use super::stats::StreamStats;
use crate::args::{Config, StreamKind, StreamPlan};
use crate::stats::PERCENTILES;

/// Nanoseconds in a microsecond, the unit latencies are reported in.
const NS_PER_US: f64 = 1e3;
/// Bytes in a MiB, the unit of throughput.
const MIB: f64 = 1024.0 * 1024.0;

/// What the connections came to.
pub struct Connections {
    pub established: u64,
    pub failed: u64,
    /// Why connections failed to open, or were given up during the traffic, by reason.
    pub failures: BTreeMap<String, u64>,
}

fn mode(config: &Config) -> &'static str {
    if config.direct { "direct" } else { "relay" }
}

/// What each stream carries, in words.
fn plan_text(config: &Config, plan: &StreamPlan) -> String {
    match plan.kind {
        StreamKind::Events => format!(
            "{} event streams, {} B every {}",
            plan.streams,
            plan.event_bytes,
            humantime::format_duration(plan.interval)
        ),
        StreamKind::Download | StreamKind::Upload => format!(
            "{} {}s of {} B at a time, {} B data messages",
            plan.streams,
            plan.kind.name(),
            plan.stream_bytes,
            plan.chunk
        ),
        StreamKind::Mixed => format!(
            "{} small requests/s of {} B, then beside {} unbounded download(s) in {} B data messages",
            plan.small_rate, config.payload, plan.streams, plan.chunk
        ),
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / NS_PER_US
}

/// The percentiles of `h` in µs, one line.
fn latency_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let mut line = String::new();
    for (label, q) in PERCENTILES {
        let _ = write!(line, "{label} {:.1}  ", us(h.value_at_quantile(q)));
    }
    let _ = write!(
        line,
        "max {:.1}  mean {:.1}  (µs, {} samples)",
        us(h.max()),
        h.mean() / NS_PER_US,
        h.len()
    );
    line
}

/// The percentiles of `h` in µs, for the JSON summary.
fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("samples".into(), json!(h.len()));
    for (label, q) in PERCENTILES {
        m.insert(format!("{label}_us"), json!(us(h.value_at_quantile(q))));
    }
    m.insert("max_us".into(), json!(us(h.max())));
    m.insert("mean_us".into(), json!(h.mean() / NS_PER_US));
    serde_json::Value::Object(m)
}

fn counts_text(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds in which body bytes were counted.
fn bytes_seconds(config: &Config) -> f64 {
    config.duration.as_secs_f64()
}

/// The small requests' p99 with the bulk streams over their p99 without.
fn p99_ratio(s: &StreamStats) -> Option<f64> {
    let [without, with] = &s.small_hist;
    if without.is_empty() || with.is_empty() {
        return None;
    }
    Some(with.value_at_quantile(0.99) as f64 / without.value_at_quantile(0.99).max(1) as f64)
}

pub fn summary_text(
    config: &Config,
    plan: &StreamPlan,
    c: &Connections,
    s: &StreamStats,
) -> String {
    let mut out = String::new();
    let secs = config.duration.as_secs_f64();
    let _ = writeln!(
        out,
        "loadgen stream {} {} {}: {} conns ({} established), {} threads, {}",
        plan.kind.name(),
        mode(config),
        config.url,
        config.conns,
        c.established,
        config.threads,
        plan_text(config, plan)
    );
    let _ = writeln!(
        out,
        "  window    {:.1} s measured after {:.1} s warm-up{}",
        secs,
        config.warmup.as_secs_f64(),
        if plan.kind == StreamKind::Mixed {
            " (twice: without, then with the bulk streams)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  streams   opened {}, completed {}, cancelled at the end {}, unfinished {}, short {}",
        s.opened, s.completed, s.cancelled_at_end, s.unfinished, s.short
    );
    match plan.kind {
        StreamKind::Events => {
            let _ = writeln!(
                out,
                "  events    {} received, {} in the window ({:.1}/s)",
                s.events,
                s.events_in_window,
                s.events_in_window as f64 / secs
            );
            let _ = writeln!(out, "  latency   {}", latency_text(&s.event_hist));
        }
        StreamKind::Download | StreamKind::Upload => {
            let _ = writeln!(
                out,
                "  throughput {:.1} MiB/s of body received in the window ({} B)",
                s.bytes_in_window as f64 / MIB / bytes_seconds(config),
                s.bytes_in_window
            );
            let _ = writeln!(out, "  per stream {}", latency_text(&s.stream_hist));
        }
        StreamKind::Mixed => {
            let _ = writeln!(
                out,
                "  small     sent {}, answered {}",
                s.small_sent, s.small_answered
            );
            let _ = writeln!(out, "  without bulk {}", latency_text(&s.small_hist[0]));
            let _ = writeln!(out, "  with bulk    {}", latency_text(&s.small_hist[1]));
            if let Some(r) = p99_ratio(s) {
                let _ = writeln!(out, "  p99 with / without bulk: {r:.2}");
            }
            let _ = writeln!(
                out,
                "  bulk      {:.1} MiB/s received in the window with bulk",
                s.bytes_in_window as f64 / MIB / bytes_seconds(config)
            );
        }
    }
    let _ = writeln!(out, "  errors    {}", counts_text(&s.errors));
    let _ = writeln!(out, "  resets    {}", counts_text(&s.resets));
    if !s.indications.is_empty() {
        let _ = writeln!(out, "  :error    {}", counts_text(&s.indications));
    }
    let _ = writeln!(
        out,
        "  conns     dropped {}; protocol errors {}; served {} requests",
        s.conns_dropped, s.protocol_errors, s.served
    );
    for (reason, n) in &c.failures {
        let _ = writeln!(out, "  failed ×{n}: {reason}");
    }
    if s.clean() {
        let _ = writeln!(
            out,
            "  check     OK: every stream and request ended, within the credit (unfinished 0, unknown 0, credit violations 0)"
        );
    } else {
        let _ = writeln!(
            out,
            "  check     FAILED: unfinished {}, unknown {}, credit violations {}",
            s.unfinished, s.unknown, s.credit_violations
        );
    }
    out
}

pub fn summary_json(
    config: &Config,
    plan: &StreamPlan,
    c: &Connections,
    s: &StreamStats,
) -> serde_json::Value {
    let secs = config.duration.as_secs_f64();
    json!({
        "label": config.label,
        "mode": mode(config),
        "stream": plan.kind.name(),
        "config": {
            "url": config.url,
            "conns": config.conns,
            "threads": config.threads,
            "streams": plan.streams,
            "interval_s": plan.interval.as_secs_f64(),
            "event_bytes": plan.event_bytes,
            "stream_bytes": plan.stream_bytes,
            "chunk": plan.chunk,
            "small_rate": plan.small_rate,
            "payload": config.payload,
            "duration_s": secs,
            "warmup_s": config.warmup.as_secs_f64(),
            "timeout_s": config.timeout.as_secs_f64(),
        },
        "connections": {
            "established": c.established,
            "failed": c.failed,
            "dropped": s.conns_dropped,
            "failures": c.failures,
        },
        "streams": {
            "opened": s.opened,
            "completed": s.completed,
            "cancelled_at_end": s.cancelled_at_end,
            "unfinished": s.unfinished,
            "short": s.short,
        },
        "events": {
            "received": s.events,
            "in_window": s.events_in_window,
            "per_s": s.events_in_window as f64 / secs,
            "latency": latency_json(&s.event_hist),
        },
        "bytes": s.bytes,
        "bytes_in_window": s.bytes_in_window,
        "throughput_mib_s": s.bytes_in_window as f64 / MIB / bytes_seconds(config),
        "per_stream": latency_json(&s.stream_hist),
        "small": {
            "sent": s.small_sent,
            "answered": s.small_answered,
            "without_bulk": latency_json(&s.small_hist[0]),
            "with_bulk": latency_json(&s.small_hist[1]),
            "p99_ratio": p99_ratio(s),
        },
        "errors": s.errors,
        "resets": s.resets,
        "indications": s.indications,
        "served": s.served,
        "credit_violations": s.credit_violations,
        "unknown": s.unknown,
        "protocol_errors": s.protocol_errors,
        "clean": s.clean(),
    })
}
