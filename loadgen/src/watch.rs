//! `--watch-cpu PID`: another process's CPU time (the server under test) read at the start and
//! the end of exactly the measured window, so that its cost per round trip leaves out the ramp,
//! the warm-up and the drain, which a script reading /proc around the whole run cannot.

use std::io;

use crate::clock;

/// One reading of the watched process: its utime + stime in clock ticks, and when it was read.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    pub ticks: u64,
    pub at_ns: u64,
}

/// The watched process over the measured window `[measure_ns, end_ns)`.
#[derive(Clone, Copy, Debug)]
pub struct WindowCpu {
    pub pid: u32,
    pub start: CpuMark,
    pub end: CpuMark,
    pub measure_ns: u64,
    pub end_ns: u64,
}

impl WindowCpu {
    /// Clock ticks the process used between the two readings.
    pub fn ticks(&self) -> u64 {
        self.end.ticks.saturating_sub(self.start.ticks)
    }

    /// How late each reading came after its boundary, in µs (the main thread's wake-up).
    pub fn late_us(&self) -> (f64, f64) {
        let late = |at: u64, due: u64| at.saturating_sub(due) as f64 / 1e3;
        (
            late(self.start.at_ns, self.measure_ns),
            late(self.end.at_ns, self.end_ns),
        )
    }

    /// The CPU per round trip in µs, given `round_trips` completed in the window.
    pub fn us_per_round_trip(&self, round_trips: u64) -> Option<f64> {
        let hz = clock_ticks_per_second()?;
        (round_trips > 0).then(|| self.ticks() as f64 * 1e6 / hz as f64 / round_trips as f64)
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of /proc's CPU times (`getconf CLK_TCK`).
pub fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0)
}

impl CpuMark {
    /// Read `/proc/PID/stat` now.
    pub fn take(pid: u32) -> io::Result<CpuMark> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let ticks = utime_plus_stime(&stat).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat: {stat:?}"),
            )
        })?;
        Ok(CpuMark {
            ticks,
            at_ns: clock::now_ns(),
        })
    }
}

/// Fields 14 and 15 of a `/proc/PID/stat` line (utime, stime: every thread, in clock ticks).
/// They are counted from the last `)`, since the command name in field 2 may hold spaces and
/// parentheses.
fn utime_plus_stime(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first, so utime (14) is the 12th.
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000 200 18446744073709551615";
        assert_eq!(utime_plus_stime(line), Some(1234 + 567));
        assert_eq!(utime_plus_stime("4242 (x) S 1 2"), None);
        assert_eq!(utime_plus_stime("no name"), None);
    }

    #[test]
    fn reads_this_process() {
        let mark = CpuMark::take(std::process::id()).unwrap();
        assert!(mark.at_ns > 0);
        assert!(CpuMark::take(u32::MAX).is_err());
    }

    #[test]
    fn per_round_trip() {
        let mark = |ticks, at_ns| CpuMark { ticks, at_ns };
        let w = WindowCpu {
            pid: 1,
            start: mark(100, 1_000_500),
            end: mark(150, 9_002_000),
            measure_ns: 1_000_000,
            end_ns: 9_000_000,
        };
        assert_eq!(w.ticks(), 50);
        assert_eq!(w.late_us(), (0.5, 2.0));
        let hz = clock_ticks_per_second().unwrap() as f64;
        let us = w.us_per_round_trip(1000).unwrap();
        assert!((us - 50.0 * 1e6 / hz / 1000.0).abs() < 1e-9, "{us}");
        assert_eq!(w.us_per_round_trip(0), None);
    }
}
