//! What these tests need beyond `tests/common`: the agent with its log (stderr) captured as
//! well as its stdout, tokens files, and one-shot fake servers on raw TCP.
// Not every item is used by every case.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::common::scratch::Scratch;

const REGISTERED: &str = "httpws endpoint registered as ";
const LISTENING: &str = "httpws endpoint listening on http://";

enum Line {
    Out(String),
    Err(String),
}

/// A running `httpws endpoint` whose stdout and log are both read; killed (by its own PID)
/// when dropped.
pub struct LoggedAgent {
    child: Child,
    lines: Receiver<Line>,
    registrations: VecDeque<String>,
    listen: Option<SocketAddr>,
    pub stdout: Vec<String>,
    /// The log so far (tracing writes to stderr), one entry per line, without colours.
    pub log: Vec<String>,
    exited: Option<ExitStatus>,
    /// Both output streams have ended.
    closed: bool,
}

impl LoggedAgent {
    /// `httpws endpoint --proxy URL <args…>` with `env` added (log level `info` unless
    /// `args` or `env` say otherwise; no `HTTPWS_TOKEN` inherited from the test's own).
    pub fn start(proxy_url: &str, args: &[&str], env: &[(&str, &str)]) -> LoggedAgent {
        let mut command = Command::new(env!("CARGO_BIN_EXE_httpws"));
        command
            .arg("endpoint")
            .arg("--proxy")
            .arg(proxy_url)
            .args(args)
            .env_remove("HTTPWS_TOKEN")
            .env("HTTPWS_LOG", "info")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn httpws endpoint");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if out_tx.send(Line::Out(line)).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(Line::Err(line)).is_err() {
                    break;
                }
            }
        });
        LoggedAgent {
            child,
            lines: rx,
            registrations: VecDeque::new(),
            listen: None,
            stdout: Vec::new(),
            log: Vec::new(),
            exited: None,
            closed: false,
        }
    }

    /// Take one line of either stream; false on timeout or once both streams have ended.
    fn pump(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(Line::Out(line)) => {
                if let Some(name) = line.strip_prefix(REGISTERED) {
                    self.registrations.push_back(name.trim().to_owned());
                } else if let Some(addr) = line.strip_prefix(LISTENING) {
                    self.listen = addr.trim().trim_end_matches('/').parse().ok();
                }
                self.stdout.push(line);
                true
            }
            Ok(Line::Err(line)) => {
                self.log.push(line);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                false
            }
        }
    }

    /// The next `registered as NAME` not yet taken; panics (with the log) after `timeout`.
    #[track_caller]
    pub fn wait_registered(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(name) = self.registrations.pop_front() {
                return name;
            }
            if !self.pump(deadline) {
                panic!(
                    "no registration within {timeout:?}; stdout {:?}, log {:#?}",
                    self.stdout, self.log
                );
            }
        }
    }

    /// The `listening on` address (waits for it).
    #[track_caller]
    pub fn listen_addr(&mut self) -> SocketAddr {
        let deadline = Instant::now() + crate::common::IO_TIMEOUT;
        while self.listen.is_none() {
            if !self.pump(deadline) {
                panic!(
                    "no listen line; stdout {:?}, log {:#?}",
                    self.stdout, self.log
                );
            }
        }
        self.listen.expect("listen address")
    }

    /// Wait until a log line contains every one of `words`; that line, or `None` after
    /// `timeout`.
    pub fn wait_log(&mut self, words: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(line) = self.log[seen..]
                .iter()
                .find(|l| words.iter().all(|w| l.contains(w)))
            {
                return Some(line.clone());
            }
            seen = self.log.len();
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    /// [`wait_log`](Self::wait_log) that panics, showing the log, when the line never comes.
    #[track_caller]
    pub fn expect_log(&mut self, words: &[&str], timeout: Duration) -> String {
        match self.wait_log(words, timeout) {
            Some(line) => line,
            None => panic!(
                "no log line with {words:?} within {timeout:?}: {:#?}",
                self.log
            ),
        }
    }

    /// Wait (bounded) for the process to exit, reading all it wrote before it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Both pipes end with the process: drain them for the caller.
                while self.pump(Instant::now() + Duration::from_secs(2)) {}
                self.exited = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            if self.closed {
                // Output ended but the process is not reaped yet: poll it, as `common` does.
                std::thread::sleep(Duration::from_millis(10));
            } else {
                // Reading is the wait: it returns at the next line or after a short slice.
                self.pump(Instant::now() + Duration::from_millis(50));
            }
        }
    }

    /// Wait for a non-zero exit and return the whole log as one text.
    #[track_caller]
    pub fn expect_failure(&mut self, limit: Duration) -> String {
        let status = self.wait_exit(limit).unwrap_or_else(|| {
            panic!(
                "the agent is still running after {limit:?}; log {:#?}",
                self.log
            )
        });
        assert!(!status.success(), "must exit with an error: {status:?}");
        self.log.join("\n")
    }

    /// SIGTERM (to its own PID), then [`wait_exit`](Self::wait_exit).
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(limit)
    }

    pub fn running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the agent wrote so far, stdout and log, as one text.
    pub fn everything(&self) -> String {
        let mut all = self.stdout.join("\n");
        all.push('\n');
        all.push_str(&self.log.join("\n"));
        all
    }
}

impl Drop for LoggedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tokens file in `scratch` listing `(token, names)` pairs (names as TOML strings).
pub fn tokens_file(scratch: &Scratch, entries: &[(&str, &[&str])]) -> String {
    let mut text = String::new();
    for (i, (token, names)) in entries.iter().enumerate() {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        text.push_str(&format!(
            "[[tokens]]\nlabel = \"t{i}\"\nsha256 = \"{}\"\nnames = [{}]\n\n",
            httpws::proxy::access::hash_token(token),
            names.join(", ")
        ));
    }
    scratch.write("tokens.toml", text.as_bytes())
}

/// A server on a loopback port that answers each connection with `answer` once it has
/// read something from it (a handshake, a TLS hello), then closes it. Runs for the test.
pub fn answering_server(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(crate::common::IO_TIMEOUT));
            let mut first = [0u8; 4096];
            if matches!(stream.read(&mut first), Ok(n) if n > 0) {
                let _ = stream.write_all(answer);
            }
        }
    });
    addr
}
