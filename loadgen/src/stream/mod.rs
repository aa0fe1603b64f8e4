//! Stream mode (`--stream`): protocol 2 traffic (docs/protocol.md §12) between loadgen's own
//! endpoints through the proxy, or through a plain WebSocket echo server (`--direct`) as the
//! baseline.
//!
//! Every connection offers `Sec-WebSocket-Protocol: httpws.2` and serves what it is asked
//! for: `/events` (an open-ended stream of events at an interval, each carrying its intended
//! send time), `/bytes?n=N` (a download of N bytes, or unbounded), `/sink` (a streamed upload,
//! answered whole with its length) and `/small` (a whole request echoed whole). Bodies go out
//! in data messages within the credit the reader grants; readers grant what they consume.
//! Connection 2i calls 2i+1; with `--direct` each connection calls itself through the echo,
//! which returns every message unchanged (so the direction of each stream message is
//! flipped on receipt, as the proxy would have).
//!
//! This file holds the order of a run on the main thread: start the workers, wait for their
//! connections, start every thread at once, join, merge and report.

mod call;
mod conn;
mod connect;
mod report;
mod serve;
mod stats;
mod wire;
mod worker;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context;

use self::report::Connections;
use self::stats::StreamStats;
use self::worker::StreamPhases;
use crate::args::{Config, StreamKind, StreamPlan};
use crate::clock::now_ns;

/// Time between the start signal and the traffic, so every thread is waiting for it.
const START_DELAY: Duration = Duration::from_millis(50);

/// Run the stream traffic `plan` asks for, report it, and say how it went: 0 when something
/// moved and every stream ended within the credit, 1 otherwise.
pub fn run(config: Arc<Config>, plan: StreamPlan) -> anyhow::Result<ExitCode> {
    let threads = config.threads;
    let open = Arc::new(AtomicU64::new(0));
    let (ramp_tx, ramp_rx) = mpsc::channel();
    let mut workers = Vec::with_capacity(threads);
    for id in 0..threads {
        let lo = config.conns * id / threads;
        let hi = config.conns * (id + 1) / threads;
        let handle = worker::spawn(
            id,
            config.clone(),
            plan,
            open.clone(),
            (lo, hi),
            ramp_tx.clone(),
        )
        .context("starting a worker thread")?;
        workers.push(handle);
    }
    drop(ramp_tx);
    let ramp_started = now_ns();
    let mut conns = Connections {
        established: 0,
        failed: 0,
        failures: BTreeMap::new(),
    };
    for report in ramp_rx.iter().take(threads) {
        conns.established += report.established;
        conns.failed += report.failed;
        for (reason, n) in report.failures {
            *conns.failures.entry(reason).or_default() += n;
        }
    }
    eprintln!(
        "loadgen: stream {} {} — {}/{} connections established in {:.2} s, {} failed, {} threads",
        plan.kind.name(),
        config.url,
        conns.established,
        config.conns,
        (now_ns() - ramp_started) as f64 / 1e9,
        conns.failed,
        threads
    );
    for (reason, n) in &conns.failures {
        eprintln!("loadgen: connect failed ×{n}: {reason}");
    }
    if conns.established == 0 {
        for w in workers {
            let _ = w.start.send(None);
            let _ = w.thread.join();
        }
        eprintln!("loadgen: no connection could be established");
        return Ok(ExitCode::from(1));
    }

    let phases = phases(&config, &plan);
    let mut joins = Vec::with_capacity(workers.len());
    for w in workers {
        let _ = w.start.send(Some(phases));
        joins.push(w.thread);
    }
    let mut stats = StreamStats::default();
    for join in joins {
        match join.join() {
            Ok(result) => {
                stats.merge(&result.stats);
                for (reason, n) in result.failures {
                    *conns
                        .failures
                        .entry(format!("during the run: {reason}"))
                        .or_default() += n;
                }
            }
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }

    print!("{}", report::summary_text(&config, &plan, &conns, &stats));
    if let Some(path) = &config.json {
        let summary = report::summary_json(&config, &plan, &conns, &stats);
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    let moved = stats.events > 0 || stats.bytes > 0 || stats.small_answered > 0;
    Ok(if stats.clean() && moved {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The phases from now: warm-up and window (mixed: twice, the second with the bulk streams).
fn phases(config: &Config, plan: &StreamPlan) -> StreamPhases {
    let t0 = now_ns() + START_DELAY.as_nanos() as u64;
    let warmup = config.warmup.as_nanos() as u64;
    let duration = config.duration.as_nanos() as u64;
    let measure = t0 + warmup;
    if plan.kind == StreamKind::Mixed {
        let bulk_start = measure + duration;
        let bulk_measure = bulk_start + warmup;
        StreamPhases {
            t0,
            measure,
            bulk_start,
            bulk_measure,
            end: bulk_measure + duration,
        }
    } else {
        let end = measure + duration;
        StreamPhases {
            t0,
            measure,
            bulk_start: end,
            bulk_measure: end,
            end,
        }
    }
}
