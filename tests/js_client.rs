//! The JavaScript endpoint client (`clients/js`) against the real proxy: runs its `node:test`
//! suite with `HTTPWS_BIN` set to this build's binary. Installs the suite's one dev
//! dependency (`ws`) with `npm ci` when it is missing, and skips (printing `SKIPPED: …`) only
//! where Node is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{output_of, run_bounded};

/// The whole node run normally takes a few seconds; this only stops a hung one.
const NODE_LIMIT: Duration = Duration::from_secs(120);
/// `npm ci` fetches one small package.
const NPM_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn js_client_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
    let Some(help) = output_of(Command::new("node").arg("--help")) else {
        eprintln!("SKIPPED: node is not installed; the JavaScript client tests did not run");
        return;
    };
    if !dir.join("node_modules/ws/package.json").exists() {
        let (ok, out) = run_bounded(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
                .current_dir(&dir),
            NPM_LIMIT,
        );
        assert!(ok, "npm ci in clients/js failed:\n{out}");
    }
    let tests = test_files(&dir.join("test"));
    assert!(!tests.is_empty(), "no clients/js/test/*.test.js files");

    let mut node = Command::new("node");
    node.arg("--test");
    // Exit when the tests are done even if a failed test left a handle open.
    if help.contains("--test-force-exit") {
        node.arg("--test-force-exit");
    }
    node.args(&tests)
        .current_dir(&dir)
        .env("HTTPWS_BIN", env!("CARGO_BIN_EXE_httpws"));
    let (ok, out) = run_bounded(&mut node, NODE_LIMIT);
    // Shown by `cargo test -- --nocapture`, and always when the test fails.
    println!("{out}");
    assert!(
        ok,
        "the JavaScript client tests failed (node's output above)"
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
