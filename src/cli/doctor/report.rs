//! Every check, in report order, against the host's facts; and the report as printed.

use std::fmt::Write as _;
use std::io::Write as _;

use super::check::{Check, Status};
use super::conntrack::check_conntrack;
use super::cpus::check_cpus;
use super::facts::Facts;
use super::files::{check_epoll_watches, check_file_max, check_nofile, check_nr_open};
use super::listen::{check_somaxconn, check_syn_backlog};
use super::memory::check_memory;
use super::ports::{check_port_range, check_tw_reuse};
use super::uring::check_io_uring;

/// Print the report for `conns` connections; true when no check FAILed.
pub(super) fn print(conns: u64) -> anyhow::Result<bool> {
    let checks = evaluate(conns, &Facts::gather());
    let mut out = std::io::stdout().lock();
    out.write_all(render(conns, &checks).as_bytes())?;
    out.flush()?;
    Ok(checks.iter().all(|c| c.status != Status::Fail))
}

/// The names of every check, in report order (tests/doctor.rs looks for them too).
#[cfg(test)]
const CHECK_NAMES: [&str; 12] = [
    "open files (RLIMIT_NOFILE)",
    "fs.nr_open",
    "fs.file-max",
    "fs.epoll.max_user_watches",
    "io_uring",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "conntrack (nf_conntrack_max)",
    "memory",
    "CPUs (shards)",
];

/// Run every check against `facts` for `conns` connections.
pub fn evaluate(conns: u64, facts: &Facts) -> Vec<Check> {
    vec![
        check_nofile(conns, &facts.nofile, &facts.nr_open),
        check_nr_open(conns, &facts.nr_open),
        check_file_max(conns, &facts.file_max),
        check_epoll_watches(conns, &facts.epoll_watches),
        check_io_uring(&facts.uring, &facts.uring_disabled, &facts.kernel),
        check_somaxconn(&facts.somaxconn),
        check_syn_backlog(&facts.syn_backlog, &facts.syncookies),
        check_port_range(conns, &facts.port_range, &facts.reserved_ports),
        check_tw_reuse(&facts.tw_reuse),
        check_conntrack(conns, &facts.conntrack),
        check_memory(conns, &facts.mem_available),
        check_cpus(conns, facts.cpus, facts.cpus_online),
    ]
}

/// The whole report as printed.
pub fn render(conns: u64, checks: &[Check]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "httpws doctor: can this host hold {conns} connections? (sized for the proxy and \
         loadgen on this host)\n"
    );
    for check in checks {
        let _ = writeln!(out, "{:<5} {}", check.status.label(), check.name);
        let _ = writeln!(out, "      current: {}", check.current);
        let _ = writeln!(out, "      needed:  {}", check.needed);
        if check.status != Status::Ok {
            for (i, fix) in check.fix.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "      {} {fix}",
                    if i == 0 { "fix:    " } else { "        " }
                );
            }
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    let (fail, warn, okc) = (count(Status::Fail), count(Status::Warn), count(Status::Ok));
    let _ = writeln!(
        out,
        "\n{fail} FAIL, {warn} WARN, {okc} OK: {}. Settings and explanations: tuning/README.md",
        if fail > 0 {
            "this host cannot hold that many connections as it is"
        } else {
            "no blocker"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::conntrack::Conntrack;
    use crate::cli::doctor::uring::Uring;

    fn host() -> Facts {
        Facts {
            nofile: Ok((1_048_576, 1_048_576)),
            nr_open: Ok(1_048_576),
            file_max: Ok(9_223_372_036_854_775_807),
            epoll_watches: Ok(5_000_000),
            uring: Uring::Available,
            uring_disabled: Ok(0),
            kernel: Ok("6.8.0".into()),
            somaxconn: Ok(4096),
            syn_backlog: Ok(2048),
            syncookies: Ok(1),
            port_range: Ok((32768, 60999)),
            reserved_ports: vec![],
            tw_reuse: Ok(2),
            conntrack: Conntrack::NotLoaded,
            mem_available: Ok(16 << 30),
            cpus: 8,
            cpus_online: Some(8),
        }
    }

    #[test]
    fn a_well_tuned_host_passes_with_only_the_port_range_noted() {
        let checks = evaluate(100_000, &host());
        let names: Vec<_> = checks.iter().map(|c| c.name).collect();
        assert_eq!(names, CHECK_NAMES);
        for c in &checks {
            let expected = if c.name == "net.ipv4.ip_local_port_range" {
                Status::Warn
            } else {
                Status::Ok
            };
            assert_eq!(c.status, expected, "{c:?}");
        }
        let text = render(100_000, &checks);
        assert!(text.contains("0 FAIL, 1 WARN, 11 OK"), "{text}");
        assert!(text.contains("--source 127.0.0.2-127.0.0.5"), "{text}");
    }

    #[test]
    fn unknown_everything_warns_and_never_fails() {
        let why = || Err::<u64, _>("unknown (gone)".to_owned());
        let facts = Facts {
            nofile: Err("unknown (gone)".into()),
            nr_open: why(),
            file_max: why(),
            epoll_watches: why(),
            uring: Uring::Refused {
                errno: libc::ENOSYS,
                message: "gone".into(),
            },
            uring_disabled: why(),
            kernel: Err("unknown".into()),
            somaxconn: why(),
            syn_backlog: why(),
            syncookies: why(),
            port_range: Err("unknown (gone)".into()),
            reserved_ports: vec![],
            tw_reuse: why(),
            conntrack: Conntrack::Unknown("unknown (gone)".into()),
            mem_available: why(),
            cpus: 4,
            cpus_online: None,
        };
        let checks = evaluate(1000, &facts);
        assert!(
            checks.iter().all(|c| c.status != Status::Fail),
            "{checks:?}"
        );
        assert!(render(1000, &checks).contains("unknown (gone)"));
    }

    #[test]
    fn gathering_this_host_does_not_panic() {
        let checks = evaluate(1000, &Facts::gather());
        assert_eq!(checks.len(), CHECK_NAMES.len());
    }
}
