//! The WebRTC signaling demo (`examples/webrtc`) in a real browser: headless Chromium, driven
//! by `tests/browser/webrtc.mjs` (playwright-core), opens bob's and alice's pages against the
//! real proxy binary, registers and calls by clicks; their offer/answer and ICE candidates
//! travel through the proxy, and a message must cross the data channel both ways. The script
//! also checks what the page must refuse: a link's query acting (registering, calling, its
//! `?token=` and `?proxy=`), a third endpoint's offer during a call (409, the call survives),
//! a peer that is not an address (`printer/admin/…`: nothing sent), framing by another site,
//! and registration from another origin; and that calling an unknown address shows 404
//! `unknown-address`.
//!
//! Needs node, Chromium (`chromium` on `PATH`, or where `CHROMIUM` points) and playwright-core
//! (no browser download) installed by `npm ci` in `tests/browser` (`.ci/run` does; a test run
//! may not reach the registry); without them the browser test is skipped, visibly, and fails
//! in CI. The headers the proxy serves its pages with (CSP, `X-Frame-Options`, …) are checked
//! here with curl too, on both drivers, browser or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::curl::curl;
use common::driver::Driver;
use common::process::run_bounded;
use common::proxy::Proxy;
use common::{node, programs};

/// The script bounds itself at 60 s; this stops a hung Node or Chromium.
const NODE_LIMIT: Duration = Duration::from_secs(120);

/// Every path the proxy answers for its own host, with the status it answers.
const OWN_PAGES: [(&str, u16); 6] = [
    ("/webrtc/", 200),
    ("/webrtc/demo.js", 200),
    ("/webrtc/demo.css", 200),
    ("/httpws.js", 200),
    ("/webrtc", 301),
    ("/favicon.ico", 404),
];

fn pages_refuse_framing_and_foreign_connections(driver: Driver) {
    let proxy = Proxy::start(driver, &["--serve-demo"]);
    for (path, status) in OWN_PAGES {
        let out = curl(&[&format!("http://{}{path}", proxy.addr)]);
        assert_eq!(out.code, status, "{path}: {out:?}");
        let csp = out
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP in {:?}", out.headers));
        for directive in [
            "default-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(out.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(out.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            out.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        // Only the client is for other sites' pages to import.
        let cors = out.header("access-control-allow-origin");
        assert_eq!(cors, (path == "/httpws.js").then_some("*"), "{path}");
    }
    // The stylesheet the page links is the one in examples/webrtc.
    let css = curl(&[&format!("http://{}/webrtc/demo.css", proxy.addr)]);
    assert!(
        css.header("content-type")
            .is_some_and(|t| t.starts_with("text/css"))
    );
    assert!(css.body == include_bytes!("../examples/webrtc/demo.css"));
}

on_both_drivers!(
    pages_refuse_framing_and_foreign_connections,
    webrtc_demo_in_chromium_or_skipped,
);

fn webrtc_demo_in_chromium_or_skipped(driver: Driver) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let Some(chromium) = programs::needed_overridden("chromium", "CHROMIUM") else {
        return;
    };
    let Some(node) = node::with_modules(&dir, "playwright-core") else {
        return;
    };

    // The proxy serves the page (/webrtc/) and the client (/httpws.js) itself, and accepts
    // WebSockets from pages of its own origin; a page from any other origin is refused, and
    // the demo connects only to the origin that served it.
    let proxy = Proxy::start(driver, &["--serve-demo"]);
    let page = format!("http://{}", proxy.addr);

    // Playwright's temporary profile and artifacts go here, removed even if Node is killed.
    let tmp = TempDir::new();
    let mut run = Command::new(node);
    run.arg("webrtc.mjs").args(["--page", &page]);
    run.current_dir(&dir)
        .env("CHROMIUM", &chromium)
        .env("TMPDIR", &tmp.0);
    let started = Instant::now();
    let (ok, out) = run_bounded(&mut run, NODE_LIMIT);
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
