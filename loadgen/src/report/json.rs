//! The `--json` summary: the configuration, the ramp, every counter, the percentiles and the
//! percentile distribution (which `--plot-with` reads back).

use serde_json::json;

use super::{NS_PER_US, RampReport, mode, us};
use crate::args::{Config, Traffic};
use crate::stats::{self, PERCENTILES, ThreadStats};
use crate::watch::{WindowCpu, clock_ticks_per_second};

pub fn summarize(
    config: &Config,
    report: &RampReport,
    s: &ThreadStats,
    cpu: Option<&WindowCpu>,
) -> serde_json::Value {
    let secs = config.duration.as_secs_f64();
    let mut percentiles = serde_json::Map::new();
    for (label, q) in PERCENTILES {
        percentiles.insert(
            format!("{label}_us"),
            json!(us(s.hist.value_at_quantile(q))),
        );
    }
    percentiles.insert("max_us".into(), json!(us(s.hist.max())));
    percentiles.insert("mean_us".into(), json!(s.hist.mean() / NS_PER_US));
    let (kind, rate, burst, in_flight) = match config.traffic {
        Traffic::Open { rate, burst } => ("open", Some(rate), Some(burst), None),
        Traffic::Closed { in_flight } => ("closed", None, None, Some(in_flight)),
        Traffic::Idle => ("idle", None, None, None),
    };
    let distribution: Vec<_> = stats::distribution(&s.hist)
        .into_iter()
        .map(|(x, ns)| json!([x, us(ns)]))
        .collect();
    json!({
        "label": config.label,
        "mode": mode(config),
        "config": {
            "url": config.url,
            "conns": config.conns,
            "threads": config.threads,
            "traffic": kind,
            "rate": rate,
            "burst": burst,
            "in_flight": in_flight,
            "pattern": if config.direct { "self" } else { config.pattern.name() },
            "payload": config.payload,
            "duration_s": secs,
            "warmup_s": config.warmup.as_secs_f64(),
            "timeout_s": config.timeout.as_secs_f64(),
            "sources": config.sources.len(),
            "registered_on_101": config.registered_on_101,
        },
        "connections": {
            "established": report.established,
            "failed": report.failed,
            "ramp_s": report.seconds,
            "limit": report.limit.as_ref().map(|(l, e)| format!("{l:?}: {e}")),
            "dropped": s.conns_dropped,
        },
        "requests": {
            "sent": s.sent,
            "answered": s.answered,
            "ok": s.ok,
            "ok_in_window": s.ok_in_window,
            "served": s.served,
            "timeouts": s.timeouts,
            "late": s.late,
            "lost": s.lost,
            "duplicates": s.duplicates,
            "unknown": s.unknown,
            "bad_messages": s.bad_messages,
            "protocol_errors": s.protocol_errors,
        },
        "errors": s.errors,
        "error_reasons": s.error_reasons,
        "indications": s.indications,
        "throughput_rps": s.ok_in_window as f64 / secs,
        "latency": {
            "samples": s.hist.len(),
            "percentiles": percentiles,
            "distribution": distribution,
        },
        "exactly_once": s.exactly_once(),
        // --watch-cpu: the watched process's utime + stime over the window, in clock ticks
        // (`getconf CLK_TCK` a second), and how late each reading was.
        "watched_cpu": cpu.map(|c| {
            let (start_late_us, end_late_us) = c.late_us();
            json!({
                "pid": c.pid,
                "ticks": c.ticks(),
                "clk_tck": clock_ticks_per_second(),
                "start_late_us": start_late_us,
                "end_late_us": end_late_us,
                "us_per_round_trip": c.us_per_round_trip(s.ok_in_window),
            })
        }),
    })
}
