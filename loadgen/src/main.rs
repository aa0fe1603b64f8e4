//! `loadgen`: the httpws load generator.
//!
//! Opens `--conns` endpoints on the proxy (thread-per-core, each worker thread with its own
//! single-threaded runtime and its own slice of the connections), sends requests between them
//! open-loop (`--rate`) or closed-loop (`--in-flight`), answers the requests addressed to them,
//! and measures every CSeq round trip in an HdrHistogram. It checks that every request got
//! exactly one answer and exits non-zero if one was lost or duplicated. `--direct` runs the
//! same traffic against a plain WebSocket echo server (`examples/echo.rs`) for the baseline.

mod args;
mod clock;
mod plot;
mod stats;
mod track;
mod wire;
mod worker;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::args::{Args, Config, Traffic};
use crate::stats::{PERCENTILES, ThreadStats};
use crate::worker::{Limit, Phases, Ramp, Start};

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

/// What the ramp achieved.
struct RampReport {
    established: u64,
    failed: u64,
    seconds: f64,
    limit: Option<(Limit, String)>,
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::from_args(args)?);
    check_sources(&config)?;
    let nofile = raise_nofile_limit();
    let show_bars = !config.quiet && std::io::stderr().is_terminal();

    // Workers: contiguous slices of the connections.
    let ramp = Arc::new(Ramp::default());
    let (done_tx, done_rx) = mpsc::channel();
    let threads = config.threads;
    let mut workers = Vec::with_capacity(threads);
    for id in 0..threads {
        let lo = config.conns * id / threads;
        let hi = config.conns * (id + 1) / threads;
        let handle = worker::spawn(id, config.clone(), ramp.clone(), lo, hi, done_tx.clone())
            .context("starting a worker thread")?;
        workers.push(handle);
    }
    drop(done_tx);

    // Ramp, with a progress bar.
    let bar = progress_bar(show_bars, config.conns as u64);
    let started = Instant::now();
    let mut done = 0;
    while done < threads {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(_) => done += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let established = ramp.established.load(Ordering::Relaxed);
        let failed = ramp.failed.load(Ordering::Relaxed);
        let rate = established as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_position(established + failed);
        bar.set_message(format!(
            "{established} established, {failed} failed, {rate:.0}/s"
        ));
    }
    bar.finish_and_clear();
    let report = RampReport {
        established: ramp.established.load(Ordering::Relaxed),
        failed: ramp.failed.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        limit: ramp.limit.lock().map(|l| l.clone()).unwrap_or(None),
    };
    print_ramp(&config, &report, &ramp, nofile);

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
    let mut joins = Vec::with_capacity(threads);
    for w in workers {
        let _ = w.start.send(Start::Go(phases));
        joins.push(w.thread);
    }
    let run_bar = run_bar(show_bars, &config);
    let total = (config.warmup + config.duration).as_secs_f64();
    while clock::now_ns() < end {
        std::thread::sleep(Duration::from_millis(100));
        let elapsed = (clock::now_ns().saturating_sub(t0)) as f64 / 1e9;
        run_bar.set_position((elapsed.min(total) * 10.0) as u64);
        run_bar.set_message(if clock::now_ns() < measure {
            "warm-up"
        } else {
            "measuring"
        });
    }
    run_bar.finish_and_clear();

    let mut stats = ThreadStats::default();
    for join in joins {
        match join.join() {
            Ok(s) => stats.merge(&s),
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }

    let summary = summarize(&config, &report, &stats);
    print_summary(&config, &report, &stats);
    if let Some(path) = &config.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    if let Some(path) = &config.plot {
        write_plot(&config, &stats, path)?;
    }
    Ok(if stats.exactly_once() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every --source address must be local (bindable), or every connection from it fails.
fn check_sources(config: &Config) -> anyhow::Result<()> {
    for &source in &config.sources {
        std::net::TcpListener::bind((source, 0)).with_context(|| {
            format!("--source {source} cannot be bound (is it an address of this host?)")
        })?;
    }
    Ok(())
}

/// Raise the soft open-files limit to the hard one; returns the limit now in force.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

fn progress_bar(show: bool, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} connecting [{bar:32}] {pos}/{len} {msg} ({elapsed})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn run_bar(show: bool, config: &Config) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let tenths = ((config.warmup + config.duration).as_secs_f64() * 10.0).ceil() as u64;
    let bar = ProgressBar::with_draw_target(Some(tenths.max(1)), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:32}] {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn mode(config: &Config) -> &'static str {
    if config.direct { "direct" } else { "relay" }
}

fn traffic_text(config: &Config) -> String {
    match config.traffic {
        Traffic::Open { rate, burst: 1 } => format!("open loop, {rate} req/s"),
        Traffic::Open { rate, burst } => format!("open loop, {rate} req/s in bursts of {burst}"),
        Traffic::Closed { in_flight } => format!("closed loop, {in_flight} in flight"),
        Traffic::Idle => "idle".into(),
    }
}

fn limit_advice(limit: Limit, config: &Config, nofile: u64) -> String {
    let want = config.conns + 1024;
    match limit {
        Limit::OpenFiles => format!(
            "the open-files limit of this process (RLIMIT_NOFILE = {nofile}) is reached (EMFILE).\n  \
             fix: raise it before running loadgen: `ulimit -n {want}` (above the hard limit: \
             tuning/limits.conf or LimitNOFILE=), and check the host with `httpws doctor --conns {}`",
            config.conns
        ),
        Limit::SystemFiles => format!(
            "the system-wide open-files limit (fs.file-max) is reached (ENFILE).\n  \
             fix: raise fs.file-max (tuning/sysctl.conf); `httpws doctor --conns {}` shows what is needed",
            config.conns
        ),
        Limit::Ports => format!(
            "no local port is left for a source address → {} (EADDRNOTAVAIL).\n  \
             fix: spread connections over more source addresses (--source 127.0.0.2-127.0.0.20 \
             gives ~28k each with the default port range), or widen net.ipv4.ip_local_port_range \
             (tuning/sysctl.conf); `httpws doctor --conns {}` shows how many are needed",
            config.target, config.conns
        ),
    }
}

fn print_ramp(config: &Config, report: &RampReport, ramp: &Ramp, nofile: u64) {
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
    for (reason, n) in failures.iter().take(8) {
        eprintln!("loadgen: connect failed ×{n}: {reason}");
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn print_summary(config: &Config, report: &RampReport, s: &ThreadStats) {
    let out = &mut String::new();
    use std::fmt::Write;
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
        print!("{out}");
        return;
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
    if s.hist.is_empty() {
        let _ = writeln!(out, "  latency   no samples");
    } else {
        let mut line = String::from("  latency   ");
        for (label, q) in PERCENTILES {
            let _ = write!(line, "{label} {:.1}  ", us(s.hist.value_at_quantile(q)));
        }
        let _ = write!(
            line,
            "max {:.1}  mean {:.1}  (µs, {} samples)",
            us(s.hist.max()),
            s.hist.mean() / 1e3,
            s.hist.len()
        );
        let _ = writeln!(out, "{line}");
    }
    let errors = if s.errors.is_empty() {
        "none".to_string()
    } else {
        s.errors
            .iter()
            .map(|(k, v)| match s.error_reasons.get(k) {
                Some(reason) if !reason.is_empty() => format!("{k} {v} (e.g. \"{reason}\")"),
                _ => format!("{k} {v}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  errors    {errors}");
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
    print!("{out}");
}

fn summarize(config: &Config, report: &RampReport, s: &ThreadStats) -> serde_json::Value {
    let secs = config.duration.as_secs_f64();
    let mut percentiles = serde_json::Map::new();
    for (label, q) in PERCENTILES {
        percentiles.insert(
            format!("{label}_us"),
            json!(us(s.hist.value_at_quantile(q))),
        );
    }
    percentiles.insert("max_us".into(), json!(us(s.hist.max())));
    percentiles.insert("mean_us".into(), json!(s.hist.mean() / 1e3));
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
    })
}

fn write_plot(config: &Config, s: &ThreadStats, path: &str) -> anyhow::Result<()> {
    let mut series = vec![plot::Series {
        label: series_label(
            &config.label,
            s.hist.value_at_quantile(0.5),
            s.hist.value_at_quantile(0.99),
        ),
        points: stats::distribution(&s.hist),
    }];
    for other in &config.plot_with {
        series.push(load_series(other)?);
    }
    let title = "loadgen: CSeq round-trip latency by percentile";
    let subtitle = format!(
        "{} conns, {}, payload {} B, {:.0} s measured",
        config.conns,
        traffic_text(config),
        config.payload,
        config.duration.as_secs_f64()
    );
    std::fs::write(path, plot::render(title, &subtitle, &series))
        .with_context(|| format!("writing {path}"))
}

fn series_label(label: &str, p50: u64, p99: u64) -> String {
    format!("{label} (p50 {:.0} µs, p99 {:.0} µs)", us(p50), us(p99))
}

/// A series from an earlier `--json` summary.
fn load_series(path: &str) -> anyhow::Result<plot::Series> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let label = v["label"].as_str().unwrap_or(path).to_string();
    let points: Vec<(f64, u64)> = v["latency"]["distribution"]
        .as_array()
        .with_context(|| format!("{path}: no latency.distribution"))?
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, (p[1].as_f64()? * 1e3) as u64)))
        .collect();
    let pct = |k: &str| (v["latency"]["percentiles"][k].as_f64().unwrap_or(0.0) * 1e3) as u64;
    Ok(plot::Series {
        label: series_label(&label, pct("p50_us"), pct("p99_us")),
        points,
    })
}
