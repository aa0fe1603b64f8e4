//! The JavaScript endpoint client (`clients/js`) against the real proxy: runs its `node:test`
//! suite with `HTTPWS_BIN` set to this build's binary. Installs the suite's one dev
//! dependency (`ws`) with `npm ci` when it is missing, and skips with a notice only where
//! Node is not installed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The whole node run normally takes a few seconds; this only stops a hung one.
const NODE_LIMIT: Duration = Duration::from_secs(120);
/// `npm ci` fetches one small package.
const NPM_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn js_client_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
    let Some(help) = output_of(Command::new("node").arg("--help")) else {
        eprintln!("NOTICE: node is not installed; the JavaScript client tests are skipped");
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

/// The standard output of a command that ran and succeeded; `None` if it cannot be run.
fn output_of(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Run `command` in its own process group with its output collected; past `limit`, kill the
/// group (the command and whatever it started) and report failure.
fn run_bounded(command: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = collect(&mut child, true);
    let stderr = collect(&mut child, false);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group of a child we spawned with its own group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = stdout.join().expect("stdout reader");
    out.push_str(&stderr.join().expect("stderr reader"));
    match status {
        Some(status) => (status.success(), out),
        None => (
            false,
            format!("{out}\n(killed after {limit:?}: {command:?} did not finish)"),
        ),
    }
}

fn collect(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("stdout piped"))
    } else {
        Box::new(child.stderr.take().expect("stderr piped"))
    };
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
