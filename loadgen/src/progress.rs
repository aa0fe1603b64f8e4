//! The main thread while the workers ramp up and run: it waits for them, drawing progress
//! bars on stderr (hidden with --quiet or when stderr is not a terminal).

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::Config;
use crate::clock;
use crate::report::RampReport;
use crate::watch::{CpuMark, WindowCpu};
use crate::worker::{Phases, Ramp};

/// How often the bars are redrawn (and the ramp counters read).
const REDRAW: Duration = Duration::from_millis(100);
/// The run bar counts tenths of a second.
const TICKS_PER_S: f64 = 10.0;

/// Wait until each of `threads` workers has reported on `done` that its ramp is over, and
/// say what the ramp achieved.
pub fn watch_ramp(
    show: bool,
    config: &Config,
    ramp: &Ramp,
    done: &mpsc::Receiver<usize>,
) -> RampReport {
    let threads = config.threads;
    let bar = progress_bar(show, config.conns as u64);
    let started = Instant::now();
    let mut finished = 0;
    while finished < threads {
        match done.recv_timeout(REDRAW) {
            Ok(_) => finished += 1,
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
    RampReport {
        established: ramp.established.load(Ordering::Relaxed),
        failed: ramp.failed.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        limit: ramp.limit.lock().map(|l| l.clone()).unwrap_or(None),
    }
}

/// Wait until the end of the measured window; with --watch-cpu, read that process's CPU time
/// as the window starts and as it ends (a failed read is said on stderr, and the run goes on
/// without the figure).
pub fn watch_run(show: bool, config: &Config, phases: Phases) -> Option<WindowCpu> {
    let watch = config.watch_cpu;
    let bar = run_bar(show, config);
    let total = (config.warmup + config.duration).as_secs_f64();
    let mut start = None;
    let mut watching = watch.is_some();
    loop {
        let now = clock::now_ns();
        if watching && start.is_none() && now >= phases.measure {
            start = watch.and_then(read_cpu);
            watching = start.is_some();
        }
        if now >= phases.end {
            break;
        }
        // Never past a boundary that is read there, so the reading is on time.
        let next = if watching && start.is_none() {
            phases.measure
        } else {
            phases.end
        };
        std::thread::sleep(REDRAW.min(Duration::from_nanos(next - now)));
        let elapsed = (clock::now_ns().saturating_sub(phases.t0)) as f64 / 1e9;
        bar.set_position((elapsed.min(total) * TICKS_PER_S) as u64);
        bar.set_message(if clock::now_ns() < phases.measure {
            "warm-up"
        } else {
            "measuring"
        });
    }
    let end = if watching {
        watch.and_then(read_cpu)
    } else {
        None
    };
    bar.finish_and_clear();
    Some(WindowCpu {
        pid: watch?,
        start: start?,
        end: end?,
        measure_ns: phases.measure,
        end_ns: phases.end,
    })
}

/// One reading for --watch-cpu, or `None` (said on stderr) when the process cannot be read.
fn read_cpu(pid: u32) -> Option<CpuMark> {
    CpuMark::take(pid)
        .map_err(|e| eprintln!("loadgen: --watch-cpu {pid}: {e} (no CPU figure for the window)"))
        .ok()
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
    bar.enable_steady_tick(REDRAW);
    bar
}

fn run_bar(show: bool, config: &Config) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let tenths = ((config.warmup + config.duration).as_secs_f64() * TICKS_PER_S).ceil() as u64;
    let bar = ProgressBar::with_draw_target(Some(tenths.max(1)), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:32}] {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
