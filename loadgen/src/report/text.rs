//! The human-readable report: the ramp's line (and limit, and failure reasons) on stderr, and
//! the summary of the run on stdout.

use std::fmt::Write;

use super::{NS_PER_US, RampReport, mode, traffic_text, us};
use crate::args::{Config, Traffic};
use crate::host::limit_advice;
use crate::stats::{PERCENTILES, ThreadStats};
use crate::watch::WindowCpu;
use crate::worker::Ramp;

/// Distinct connect failure reasons printed at most (in the order of their text).
const MAX_FAILURE_LINES: usize = 8;

pub fn print_ramp(config: &Config, report: &RampReport, ramp: &Ramp, nofile: u64) {
    eprintln!(
        "loadgen: {} {} — {}/{} connections established in {:.2} s ({:.0}/s), {} failed, {} threads",
        mode(config),
        config.url,
        report.established,
        config.conns,
        report.seconds,
        report.established as f64 / report.seconds.max(1e-3),
        report.failed,
        config.threads,
    );
    if let Some((limit, error)) = &report.limit {
        eprintln!(
            "loadgen: LIMIT: stopped ramping at {} connections ({error}): {}",
            report.established,
            limit_advice(*limit, config, nofile)
        );
    }
    let failures = ramp.failures.lock().map(|f| f.clone()).unwrap_or_default();
    for (reason, n) in failures.iter().take(MAX_FAILURE_LINES) {
        eprintln!("loadgen: connect failed ×{n}: {reason}");
    }
}

pub fn print_summary(
    config: &Config,
    report: &RampReport,
    s: &ThreadStats,
    cpu: Option<&WindowCpu>,
) {
    print!("{}", summary(config, report, s, cpu));
}

/// The summary printed at the end, one `writeln!` a line.
fn summary(
    config: &Config,
    report: &RampReport,
    s: &ThreadStats,
    cpu: Option<&WindowCpu>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "loadgen {} {}: {} conns ({} established), {} threads, {}, pattern {}, payload {} B",
        mode(config),
        config.url,
        config.conns,
        report.established,
        config.threads,
        traffic_text(config),
        if config.direct {
            "self (echo)"
        } else {
            config.pattern.name()
        },
        config.payload,
    );
    if matches!(config.traffic, Traffic::Idle) {
        let _ = writeln!(
            out,
            "  held {} connections idle for {:.1} s; dropped {}",
            report.established,
            config.duration.as_secs_f64(),
            s.conns_dropped
        );
        return out;
    }
    let secs = config.duration.as_secs_f64();
    let _ = writeln!(
        out,
        "  window    {:.1} s measured after {:.1} s warm-up",
        secs,
        config.warmup.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  requests  sent {}, answered {} (ok {}), served {}",
        s.sent, s.answered, s.ok, s.served
    );
    let _ = writeln!(
        out,
        "  throughput {:.0} responses/s (ok, received in the window)",
        s.ok_in_window as f64 / secs
    );
    let _ = writeln!(out, "  latency   {}", latency_text(s));
    if let Some(c) = cpu {
        let per = c
            .us_per_round_trip(s.ok_in_window)
            .map_or("-".into(), |us| format!("{us:.1}"));
        let _ = writeln!(
            out,
            "  cpu       pid {}: {} ticks in the window, {per} µs per round trip (ok in the window)",
            c.pid,
            c.ticks()
        );
    }
    let _ = writeln!(out, "  errors    {}", errors_text(s));
    if !s.indications.is_empty() {
        let list: Vec<_> = s
            .indications
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "  :error    {}", list.join(", "));
    }
    let _ = writeln!(
        out,
        "  timeouts  {} (answered late {}); conns dropped {}; bad messages {}; protocol errors {}",
        s.timeouts, s.late, s.conns_dropped, s.bad_messages, s.protocol_errors
    );
    if s.exactly_once() {
        let _ = writeln!(
            out,
            "  check     OK: every request got exactly one response (lost 0, duplicates 0, unknown 0)"
        );
    } else {
        let _ = writeln!(
            out,
            "  check     FAILED: lost {}, duplicates {}, unknown CSeq {}",
            s.lost, s.duplicates, s.unknown
        );
    }
    out
}

/// The percentiles, max and mean in µs, and the number of samples.
fn latency_text(s: &ThreadStats) -> String {
    if s.hist.is_empty() {
        return "no samples".into();
    }
    let mut line = String::new();
    for (label, q) in PERCENTILES {
        let _ = write!(line, "{label} {:.1}  ", us(s.hist.value_at_quantile(q)));
    }
    let _ = write!(
        line,
        "max {:.1}  mean {:.1}  (µs, {} samples)",
        us(s.hist.max()),
        s.hist.mean() / NS_PER_US,
        s.hist.len()
    );
    line
}

/// The error answers by token, each with the first reason seen, or `none`.
fn errors_text(s: &ThreadStats) -> String {
    if s.errors.is_empty() {
        return "none".into();
    }
    s.errors
        .iter()
        .map(|(k, v)| match s.error_reasons.get(k) {
            Some(reason) if !reason.is_empty() => format!("{k} {v} (e.g. \"{reason}\")"),
            _ => format!("{k} {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
