//! The proxy (`httpws proxy`) as a child process: started on a loopback port, its addresses
//! read from its banner, stopped with SIGTERM or killed when dropped; and which of its
//! shards owns a name.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;
use super::driver::Driver;

/// How long a proxy may take to exit after SIGTERM (its default grace period and then some).
const TERMINATE_LIMIT: Duration = Duration::from_secs(20);

/// A running proxy process; killed (by its own PID) when dropped.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    /// The `--http-listen` address from the banner's second line, when that flag was given.
    pub http_addr: Option<SocketAddr>,
}

impl Proxy {
    /// Start with default limits, two shards (unless `extra` names `--shards`), and `extra`.
    pub fn start(driver: Driver, extra: &[&str]) -> Proxy {
        Self::start_listening(driver, "127.0.0.1:0", extra)
    }

    /// [`start`](Self::start) on exactly `addr`: to restart a proxy on the port it had.
    pub fn start_on(driver: Driver, addr: SocketAddr, extra: &[&str]) -> Proxy {
        Self::start_listening(driver, &addr.to_string(), extra)
    }

    fn start_listening(driver: Driver, listen: &str, extra: &[&str]) -> Proxy {
        let mut args = vec!["proxy", "--listen", listen, "--no-pin"];
        if !extra.contains(&"--shards") {
            args.extend_from_slice(&["--shards", "2"]);
        }
        args.extend_from_slice(&["--driver", driver.flag()]);
        args.extend_from_slice(extra);
        Self::start_with_args(&args)
    }

    pub fn start_with_args(args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_httpws"))
            .args(args)
            .env(
                "HTTPWS_LOG",
                std::env::var("HTTPWS_TEST_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn httpws");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        let (http_tx, http_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line
                    .strip_prefix("httpws proxy listening on ws://")
                    .or_else(|| line.strip_prefix("httpws proxy listening on wss://"))
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("address in banner"));
                } else if let Some(addr) =
                    line.strip_prefix("httpws proxy public HTTP ingress on http://")
                {
                    let _ = http_tx.send(addr.parse::<SocketAddr>().expect("address in banner"));
                }
            }
        });
        let addr = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("proxy did not print its address in time");
            }
        };
        // The ingress line follows the first one; only wait for it when it was asked for.
        let http_addr = if args.contains(&"--http-listen") {
            match http_rx.recv_timeout(IO_TIMEOUT) {
                Ok(addr) => Some(addr),
                Err(_) => {
                    let _ = child.kill();
                    panic!("proxy did not print its public HTTP ingress address in time");
                }
            }
        } else {
            None
        };
        Proxy {
            child,
            addr,
            http_addr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Send SIGTERM and wait (bounded) for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(TERMINATE_LIMIT)
            .expect("proxy exits after SIGTERM")
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The proxy's owner shard for an address: FNV-1a 64 over the name, modulo the shard count.
pub fn owner_shard(name: &str, shards: u64) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash % shards
}

/// The first name `{prefix}{k}` that shard `shard` of `shards` owns.
pub fn name_on_shard(prefix: &str, shard: u64, shards: u64) -> String {
    (0..)
        .map(|k| format!("{prefix}{k}"))
        .find(|n| owner_shard(n, shards) == shard)
        .expect("some name hashes to every shard")
}

/// `name` has the shape of a name the proxy assigns: `ep-` and 16 hex digits.
#[track_caller]
pub fn assert_assigned(name: &str) {
    assert!(
        name.len() == 19
            && name.starts_with("ep-")
            && name[3..].bytes().all(|b| b.is_ascii_hexdigit()),
        "assigned name {name:?}"
    );
}
