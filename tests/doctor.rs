//! `httpws doctor`: runs on any host (containers included), names every check, and exits
//! 0 exactly when no check FAILed. Host-specific values are not asserted.

use std::process::{Command, Output};

/// Every check's name, in report order (mirrors `CHECK_NAMES` in src/cli/doctor/report.rs).
const CHECKS: [&str; 12] = [
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

fn doctor(conns: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args(["--log", "warn", "doctor", "--conns", conns])
        .output()
        .expect("run httpws doctor")
}

#[test]
fn doctor_names_every_check_and_exits_by_its_verdict() {
    let output = doctor("1000");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "doctor crashed or was refused: {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("hold 1000 connections"), "{stdout}");
    for name in CHECKS {
        let line = stdout
            .lines()
            .find(|l| {
                l.split_once(' ')
                    .is_some_and(|(_, rest)| rest.trim() == name)
            })
            .unwrap_or_else(|| panic!("no line for check {name:?}:\n{stdout}"));
        assert!(
            ["OK ", "WARN ", "FAIL "]
                .iter()
                .any(|s| line.starts_with(s)),
            "check {name:?} has no verdict: {line:?}"
        );
    }
    let failed = stdout.lines().any(|l| l.starts_with("FAIL "));
    assert_eq!(
        output.status.success(),
        !failed,
        "exit status {:?} disagrees with the report:\n{stdout}",
        output.status
    );
    // Anything that is not OK says how to fix it.
    let not_ok = stdout
        .lines()
        .filter(|l| l.starts_with("WARN ") || l.starts_with("FAIL "));
    assert_eq!(
        not_ok.count(),
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("fix:"))
            .count(),
        "{stdout}"
    );
}

#[test]
fn doctor_takes_suffixes_and_refuses_nonsense() {
    let output = doctor("1.5k");
    assert!(matches!(output.status.code(), Some(0 | 1)), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("hold 1500 connections"));

    let output = doctor("10x");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a count"));
}
