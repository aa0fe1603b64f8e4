//! The WebRTC signaling demo (`examples/webrtc`) in a real browser: headless Chromium, driven
//! by `tests/browser/webrtc.mjs` (playwright-core), opens bob's and alice's pages against the
//! real proxy binary; their offer/answer and ICE candidates travel through the proxy, and a
//! message must cross the data channel both ways. The script also checks that calling an
//! unknown address shows 404 `unknown-address`, and that a page from another origin is refused.
//!
//! Needs Node and Chromium (`/usr/bin/chromium`, or `CHROMIUM`); without them the test prints
//! a NOTICE and passes, unless `HTTPWS_REQUIRE_BROWSER=1` (CI) makes that a failure. Installs
//! playwright-core (no browser download) with `npm ci` in `tests/browser` when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{output_of, run_bounded};
use common::{Driver, Proxy};

/// The script bounds itself at 30 s; this stops a hung Node or Chromium.
const NODE_LIMIT: Duration = Duration::from_secs(90);
/// `npm ci` fetches one package (playwright-core, ~10 MB).
const NPM_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn webrtc_demo_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let require = std::env::var("HTTPWS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = if !chromium.exists() {
        Some(format!(
            "Chromium ({}) is not installed",
            chromium.display()
        ))
    } else if output_of(Command::new("node").arg("--version")).is_none() {
        Some("node is not installed".to_string())
    } else {
        None
    };
    if let Some(what) = missing {
        assert!(!require, "HTTPWS_REQUIRE_BROWSER=1 but {what}");
        eprintln!("NOTICE: {what}; the browser WebRTC test is skipped");
        return;
    }
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let (ok, out) = run_bounded(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
                .current_dir(&dir),
            NPM_LIMIT,
        );
        assert!(ok, "npm ci in tests/browser failed:\n{out}");
    }

    // The proxy serves the page (/webrtc/) and the client (/httpws.js) itself, and accepts
    // WebSockets from pages of its own origin; a page from any other origin is refused.
    let proxy = Proxy::start(Driver::Uring, &["--serve-demo"]);
    let page = format!("http://{}", proxy.addr);

    // Playwright's temporary profile and artifacts go here, removed even if Node is killed.
    let tmp = TempDir::new();
    let mut node = Command::new("node");
    node.arg("webrtc.mjs").args(["--page", &page]);
    node.current_dir(&dir)
        .env("CHROMIUM", &chromium)
        .env("TMPDIR", &tmp.0);
    let started = Instant::now();
    let (ok, out) = run_bounded(&mut node, NODE_LIMIT);
    // Shown by `cargo test -- --nocapture`, and always when the test fails.
    println!("{out}\n(browser run took {:?})", started.elapsed());
    assert!(ok, "the browser WebRTC test failed (its output above)");
    drop(proxy);
}

/// A fresh directory under the system temp dir, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("httpws-browser-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
