//! The JavaScript endpoint client (`clients/js`) against the real proxy: runs its `node:test`
//! suite with `HTTPWS_BIN` set to this build's binary, twice: as it is (the client offers
//! protocol 2, streams), and with `HTTPWS_JS_PROTOCOL=1`, where the tests' WebSocket offers no
//! subprotocol and the client speaks protocol 1 (whole messages only; the streams suite, which
//! needs protocol 2 and tests the fallback itself, is left out). Needs node and the suite's one
//! dev dependency (`ws`) installed by `npm ci` in `clients/js` (`.ci/run` does; a test run may
//! not reach the registry); without them it is skipped, visibly, and fails in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::node;
use common::process::{output_of, run_bounded};

/// The whole node run normally takes some ten seconds; this only stops a hung one.
const NODE_LIMIT: Duration = Duration::from_secs(180);
/// The suite that needs protocol 2 throughout.
const STREAMS_SUITE: &str = "streams.test.js";

#[test]
fn js_client_suite_or_skipped() {
    run_suite(None);
}

#[test]
fn js_client_suite_in_protocol_1_or_skipped() {
    run_suite(Some("1"));
}

/// Run the suite's files, with `HTTPWS_JS_PROTOCOL` set to `protocol` when given.
fn run_suite(protocol: Option<&str>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
    let Some(node) = node::with_modules(&dir, "ws") else {
        return;
    };
    let help = output_of(Command::new(&node).arg("--help")).expect("node --help");
    let mut tests = test_files(&dir.join("test"));
    assert!(!tests.is_empty(), "no clients/js/test/*.test.js files");
    if protocol.is_some() {
        tests.retain(|path| !path.ends_with(STREAMS_SUITE));
    }

    let mut run = Command::new(&node);
    run.arg("--test");
    // Exit when the tests are done even if a failed test left a handle open.
    if help.contains("--test-force-exit") {
        run.arg("--test-force-exit");
    }
    run.args(&tests)
        .current_dir(&dir)
        .env("HTTPWS_BIN", env!("CARGO_BIN_EXE_httpws"))
        .env_remove("HTTPWS_JS_PROTOCOL");
    if let Some(protocol) = protocol {
        run.env("HTTPWS_JS_PROTOCOL", protocol);
    }
    let (ok, out) = run_bounded(&mut run, NODE_LIMIT);
    // Shown by `cargo test -- --nocapture`, and always when the test fails.
    println!("{out}");
    assert!(
        ok,
        "the JavaScript client tests failed (protocol {}; node's output above)",
        protocol.unwrap_or("2")
    );
}

/// `clients/js/test/*.test.js`, sorted.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("clients/js/test")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".test.js"))
        })
        .collect();
    files.sort();
    files
}
