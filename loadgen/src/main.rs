//! `loadgen`: the httpws load generator.
//!
//! Opens `--conns` endpoints on the proxy (thread-per-core, each worker thread with its own
//! single-threaded runtime and its own slice of the connections), sends requests between them
//! open-loop (`--rate`) or closed-loop (`--in-flight`), answers the requests addressed to them,
//! and measures every CSeq round trip in an HdrHistogram. It checks that every request got
//! exactly one answer and exits non-zero if one was lost or duplicated. `--direct` runs the
//! same traffic against a plain WebSocket echo server (`examples/echo.rs`) for the baseline.
//! `--stream` runs protocol 2 streams instead (events, downloads, uploads, and small requests
//! beside a bulk stream), in [`stream`].
//!
//! This file holds the order of a run on the main thread: start the workers, wait for the
//! ramp, start every thread at once, wait for the end, merge and report.

mod args;
mod clock;
mod host;
mod plot;
mod progress;
mod report;
mod stats;
mod stream;
mod track;
mod watch;
mod wire;
mod worker;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::args::{Args, Config};
use crate::stats::ThreadStats;
use crate::worker::{Phases, Ramp, Start, WorkerHandle};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time between the start signal and the first request, so every thread is waiting for it.
const START_DELAY: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::from_args(args)?);
    host::check_sources(&config)?;
    let nofile = host::raise_nofile_limit();
    if let Some(plan) = config.stream {
        return stream::run(config, plan);
    }
    let show_bars = !config.quiet && std::io::stderr().is_terminal();

    let ramp = Arc::new(Ramp::default());
    let (done_tx, done_rx) = mpsc::channel();
    let workers = spawn_workers(&config, &ramp, done_tx)?;
    let report = progress::watch_ramp(show_bars, &config, &ramp, &done_rx);
    report::print_ramp(&config, &report, &ramp, nofile);

    if report.established == 0 {
        for w in workers {
            let _ = w.start.send(Start::Abort);
            let _ = w.thread.join();
        }
        eprintln!("loadgen: no connection could be established");
        return Ok(ExitCode::from(1));
    }

    // Traffic: every thread starts at the same instant.
    let t0 = clock::now_ns() + START_DELAY.as_nanos() as u64;
    let measure = t0 + config.warmup.as_nanos() as u64;
    let end = measure + config.duration.as_nanos() as u64;
    let phases = Phases { t0, measure, end };
    let mut joins = Vec::with_capacity(workers.len());
    for w in workers {
        let _ = w.start.send(Start::Go(phases));
        joins.push(w.thread);
    }
    let window_cpu = progress::watch_run(show_bars, &config, phases);

    let mut stats = ThreadStats::default();
    for join in joins {
        match join.join() {
            Ok(s) => stats.merge(&s),
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }

    let summary = report::summarize(&config, &report, &stats, window_cpu.as_ref());
    report::print_summary(&config, &report, &stats, window_cpu.as_ref());
    if let Some(path) = &config.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    if let Some(path) = &config.plot {
        report::write_plot(&config, &stats, path)?;
    }
    Ok(if stats.exactly_once() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One worker thread per `--threads`, each with a contiguous slice of the connections; each
/// sends its id on `done` when its ramp is over.
fn spawn_workers(
    config: &Arc<Config>,
    ramp: &Arc<Ramp>,
    done: mpsc::Sender<usize>,
) -> anyhow::Result<Vec<WorkerHandle>> {
    let threads = config.threads;
    let drained = Arc::new(tokio::sync::Barrier::new(threads));
    let mut workers = Vec::with_capacity(threads);
    for id in 0..threads {
        let lo = config.conns * id / threads;
        let hi = config.conns * (id + 1) / threads;
        let handle = worker::spawn(
            id,
            config.clone(),
            ramp.clone(),
            (lo, hi),
            done.clone(),
            drained.clone(),
        )
        .context("starting a worker thread")?;
        workers.push(handle);
    }
    Ok(workers)
}
