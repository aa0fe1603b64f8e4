//! What a child process holds, read from `/proc`: its resident memory and open descriptors,
//! and a bounded wait for such a measurement to reach a value.

use std::time::{Duration, Instant};

/// How often [`wait_for`] measures again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The process's resident set size, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The process's open file descriptors.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

/// Poll `probe` (bounded) until `done` holds of its value; returns the last value.
pub fn wait_for<T: Copy + std::fmt::Debug>(
    limit: Duration,
    mut probe: impl FnMut() -> T,
    done: impl Fn(T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let value = probe();
        if done(value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
