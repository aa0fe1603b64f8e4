//! curl as the independent HTTP client: one transfer with its status, final headers, body and
//! stderr; through an agent's ingress (`-x`) or to a `Host` on the proxy's own port; and the
//! asserts on what came back.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::scratch::Scratch;

/// What one curl transfer produced.
#[derive(Debug)]
pub struct CurlOut {
    /// curl's exit code (0 = success; 28 = timed out).
    pub exit: i32,
    /// `%{http_code}`: 0 when no response came.
    pub code: u16,
    /// The final response's header fields (names lowercased).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CurlOut {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// curl, found on `PATH` like any other tool the suite runs. Half the suites drive it, so a
/// missing curl fails them rather than skipping them all.
pub const CURL: &str = "curl";

/// Run one curl transfer: `curl -sS --max-time 10 -D <h> -o <b> -w %{http_code} <args…>`.
/// A later `--max-time` in `args` overrides the default.
pub fn curl(args: &[&str]) -> CurlOut {
    let scratch = Scratch::new();
    let headers_path = scratch.path("headers");
    let body_path = scratch.path("body");
    let started = Instant::now();
    let output = Command::new(CURL)
        .args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            &headers_path,
            "-o",
            &body_path,
        ])
        .args(["-w", "%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (on PATH; .ci/run installs it)");
    let elapsed = started.elapsed();
    let raw_headers = std::fs::read(&headers_path).unwrap_or_default();
    let body = std::fs::read(&body_path).unwrap_or_default();
    let code = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    CurlOut {
        exit: output.status.code().unwrap_or(-1),
        code,
        headers: last_header_block(&raw_headers),
        body,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
    }
}

/// Run curl with exactly `args`; (exit code, stdout, stderr).
pub fn curl_raw(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(CURL)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (on PATH; .ci/run installs it)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The header fields of the last (final) response in a `-D` dump.
fn last_header_block(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let block = text
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    block
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// `curl -x <ingress> <extra…> <url>`: through an agent's `--listen` port.
pub fn curl_via(ingress: &str, url: &str, extra: &[&str]) -> CurlOut {
    let mut args = vec!["-x", ingress];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args)
}

/// `curl -H 'Host: <host>' <extra…> http://<addr><path>`: a caller from the internet.
pub fn curl_host(addr: SocketAddr, host: &str, path: &str, extra: &[&str]) -> CurlOut {
    let host_header = format!("Host: {host}");
    let url = format!("http://{addr}{path}");
    let mut args = vec!["-H", &host_header];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// The transfer succeeded with status `code`.
#[track_caller]
pub fn assert_status(out: &CurlOut, code: u16) {
    assert!(
        out.exit == 0 && out.code == code,
        "expected {code}, got exit {} code {} headers {:?} body {:?} stderr {:?}",
        out.exit,
        out.code,
        out.headers,
        out.body_text(),
        out.stderr
    );
}

/// The transfer succeeded with `200`.
#[track_caller]
pub fn assert_ok(out: &CurlOut) {
    assert_status(out, 200);
}
