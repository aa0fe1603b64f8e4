//! A test that cannot run on this machine (a program, node modules or io_uring missing) says
//! so: locally a `SKIPPED: <test>: …` line and an early return, in CI (`HTTPWS_CI=1`, where
//! `.ci/run` installs everything) a failure. Never a silent `ok`.

use std::io::Write;

/// Set to `1` by `.ci/run`: there every test must run, so a skip is a failure.
pub const CI: &str = "HTTPWS_CI";
/// What to treat as missing although it is here (`HTTPWS_TEST_WITHOUT=node,chromium,io_uring`),
/// comma-separated: to see the skips, and CI's failures, on a machine that has everything.
pub const WITHOUT: &str = "HTTPWS_TEST_WITHOUT";

/// Whether this is a CI run.
pub fn in_ci() -> bool {
    std::env::var(CI).is_ok_and(|v| v == "1")
}

/// Whether [`WITHOUT`] lists `what`.
pub fn hidden(what: &str) -> bool {
    std::env::var(WITHOUT).is_ok_and(|list| list.split(',').any(|w| w.trim() == what))
}

/// The running test cannot run here: it needs `what`, missing because `why`. Fails the test
/// in CI; elsewhere prints the skip, and the caller returns.
#[track_caller]
pub fn unavailable(what: &str, why: &str) {
    // libtest runs each test on a thread named after it.
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    assert!(
        !in_ci(),
        "{test} cannot run: it needs {what}: {why} ({CI}=1: nothing may be skipped)"
    );
    // Straight to the process's stderr: libtest keeps what a passing test prints with
    // `eprintln!` to itself, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: needs {what}: {why}");
}
