//! The endpoint agent (`httpws endpoint`) as a child process, a proxy that can be restarted
//! on the same port, and `curl` as an independent HTTP client.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::{IO_TIMEOUT, Proxy};

const LISTENING: &str = "httpws endpoint listening on http://";
const REGISTERED: &str = "httpws endpoint registered as ";

/// A running `httpws endpoint`; killed (by its own PID) when dropped.
pub struct Agent {
    child: Child,
    lines: Receiver<String>,
    listen: Option<SocketAddr>,
    registrations: VecDeque<String>,
    /// Every stdout line seen so far.
    pub stdout: Vec<String>,
}

impl Agent {
    /// Spawn `httpws endpoint --proxy ws://<proxy> <extra…>`; does not wait for anything.
    pub fn start(proxy: SocketAddr, extra: &[&str]) -> Agent {
        Self::start_url(&format!("ws://{proxy}"), extra)
    }

    pub fn start_url(proxy_url: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_httpws"))
            .arg("endpoint")
            .arg("--proxy")
            .arg(proxy_url)
            .args(extra)
            .env(
                "HTTPWS_LOG",
                std::env::var("HTTPWS_TEST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn httpws endpoint");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Agent {
            child,
            lines: rx,
            listen: None,
            registrations: VecDeque::new(),
            stdout: Vec::new(),
        }
    }

    /// `--name NAME --serve <service_url>`, waiting until registered as NAME.
    pub fn serve(proxy: SocketAddr, name: &str, service_url: &str, extra: &[&str]) -> Agent {
        let mut args = vec!["--name", name, "--serve", service_url];
        args.extend_from_slice(extra);
        let mut agent = Agent::start(proxy, &args);
        assert_eq!(agent.wait_registered(IO_TIMEOUT), name);
        agent
    }

    /// `--name NAME --listen 127.0.0.1:0`, waiting for the listen line and the registration.
    pub fn listen(proxy: SocketAddr, name: &str, extra: &[&str]) -> Agent {
        let mut args = vec!["--name", name, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut agent = Agent::start(proxy, &args);
        agent.listen_addr();
        assert_eq!(agent.wait_registered(IO_TIMEOUT), name);
        agent
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Take one stdout line, noting what it says; false on timeout.
    fn pump(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix(LISTENING) {
                    let addr = addr
                        .trim()
                        .trim_end_matches('/')
                        .parse()
                        .unwrap_or_else(|e| panic!("bad listen line {line:?}: {e}"));
                    self.listen = Some(addr);
                } else if let Some(name) = line.strip_prefix(REGISTERED) {
                    self.registrations.push_back(name.trim().to_string());
                }
                self.stdout.push(line);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                panic!(
                    "the agent closed its stdout (exit status {status:?}); it printed {:?}",
                    self.stdout
                );
            }
        }
    }

    /// The next `registered as NAME` line not yet taken, or `None` after `timeout`.
    pub fn try_registered(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(name) = self.registrations.pop_front() {
                return Some(name);
            }
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    /// The next `registered as NAME` line not yet taken; panics after `timeout`.
    #[track_caller]
    pub fn wait_registered(&mut self, timeout: Duration) -> String {
        match self.try_registered(timeout) {
            Some(name) => name,
            None => panic!(
                "the agent did not print `registered as` within {timeout:?}; stdout so far: {:?}",
                self.stdout
            ),
        }
    }

    /// The address from the `listening on` line (waits for it).
    #[track_caller]
    pub fn listen_addr(&mut self) -> SocketAddr {
        let deadline = Instant::now() + IO_TIMEOUT;
        while self.listen.is_none() {
            if !self.pump(deadline) {
                panic!(
                    "the agent did not print `listening on` in time; stdout so far: {:?}",
                    self.stdout
                );
            }
        }
        self.listen.expect("listen address")
    }

    /// `http://127.0.0.1:PORT`, for `curl -x`.
    pub fn ingress(&mut self) -> String {
        format!("http://{}", self.listen_addr())
    }

    /// Send SIGTERM to the agent (by its PID) and wait (bounded) for it to exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(limit)
    }

    /// Wait (bounded) for the process to exit; `None` if it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start a proxy listening on exactly `addr` (to restart one on the port it had).
pub fn proxy_on(addr: SocketAddr) -> Proxy {
    let listen = addr.to_string();
    Proxy::start_with_args(&[
        "proxy", "--listen", &listen, "--no-pin", "--shards", "2", "--driver", "auto",
    ])
}

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

// ---------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------

/// A scratch directory under the target's tmp dir, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "endpoint-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

/// curl, found on `PATH` like any other tool the suite runs.
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
        .expect("run curl");
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
        .expect("run curl");
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
