//! The endpoint agent (`httpws endpoint`) as a child process: started with any flags, its
//! stdout lines read (where it listens, the names it registered as), stopped or killed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

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
