//! loadgen end to end, with real processes: the `httpws` proxy, `examples/echo`, and the
//! `loadgen` binary under test.
//!
//! This file lives in `loadgen/tests/` so that `CARGO_BIN_EXE_loadgen` points at the binary
//! under test. The proxy and the echo example belong to the root package, whose binaries
//! this test cannot name, so they are built once per test run with the same cargo, profile
//! and target directory (`cargo build -p httpws --bin httpws --example echo`) and taken from
//! beside the loadgen binary. Cargo releases its build lock before running tests, so the
//! nested build does not deadlock, and when the workspace was just built it is a no-op.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use httpws::proto::frame::{self, DecoderConfig, Event, MessageDecoder, OpCode, Role};
use httpws::proto::handshake;
use httpws::proto::head::{self, HeadLimits};
use serde_json::Value;

/// Longest a loadgen run may take in these tests before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Longest a server may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(20);

struct Artifacts {
    httpws: PathBuf,
    echo: PathBuf,
}

fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let loadgen = Path::new(env!("CARGO_BIN_EXE_loadgen"));
        let profile_dir = loadgen.parent().expect("loadgen has a directory");
        let target_dir = profile_dir.parent().expect("profile dir has a parent");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_string(),
            Some(other) => other.to_string(),
            None => panic!("unexpected layout: {}", profile_dir.display()),
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("loadgen/ is inside the workspace");
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace)
            .args(["build", "--quiet", "-p", "httpws", "--bin", "httpws"])
            .args(["--example", "echo", "--profile", &profile, "--target-dir"])
            .arg(target_dir)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building httpws and examples/echo failed");
        let exe = |p: PathBuf| {
            assert!(p.exists(), "{} was not built", p.display());
            p
        };
        Artifacts {
            httpws: exe(profile_dir.join("httpws")),
            echo: exe(profile_dir.join("examples").join("echo")),
        }
    })
}

/// A server process (proxy or echo), killed by its own PID when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(program: &Path, args: &[&str], banner: &'static str) -> Server {
        let mut child = Command::new(program)
            .args(args)
            .env("HTTPWS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(banner) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("address in banner"));
                }
            }
        });
        match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => Server { child, addr },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not print its address in time", program.display());
            }
        }
    }

    fn proxy() -> Server {
        let args = [
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--shards",
            "2",
        ];
        Server::start(
            &artifacts().httpws,
            &args,
            "httpws proxy listening on ws://",
        )
    }

    fn echo() -> Server {
        let args = ["--listen", "127.0.0.1:0", "--threads", "2"];
        Server::start(&artifacts().echo, &args, "echo listening on ws://")
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run loadgen with `args` (plus --quiet and --json), bounded by [`RUN_LIMIT`].
fn loadgen(args: &[&str]) -> (Output, Option<Value>) {
    let dir = std::env::temp_dir().join(format!(
        "loadgen-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("summary.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    // Drain the pipes on threads so a chatty run cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait loadgen") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen {args:?} did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    };
    let summary = std::fs::read_to_string(&json)
        .ok()
        .map(|s| serde_json::from_str(&s).expect("valid JSON summary"));
    let _ = std::fs::remove_dir_all(&dir);
    (output, summary)
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The run succeeded and every request got exactly one answer.
fn assert_clean(output: &Output, summary: &Option<Value>) -> Value {
    assert!(output.status.success(), "{}", describe(output));
    let v = summary.clone().expect("JSON summary written");
    let r = &v["requests"];
    assert!(r["answered"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(r["answered"], r["sent"], "{v:#}");
    assert_eq!(r["lost"], 0, "{v:#}");
    assert_eq!(r["duplicates"], 0, "{v:#}");
    assert_eq!(r["unknown"], 0, "{v:#}");
    assert_eq!(v["exactly_once"], true, "{v:#}");
    assert!(v["errors"].as_object().unwrap().is_empty(), "{v:#}");
    v
}

#[test]
fn closed_loop_relay_pairs() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let dir = std::env::temp_dir().join(format!("loadgen-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("latency.svg");
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "20",
        "--closed-loop",
        "--in-flight",
        "16",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let v = assert_clean(&output, &summary);
    assert_eq!(v["connections"]["established"], 20);
    assert_eq!(v["config"]["pattern"], "pairs");
    // Every request was served by a loadgen endpoint (relayed, not answered by the proxy).
    assert_eq!(v["requests"]["served"], v["requests"]["sent"]);
    assert!(v["throughput_rps"].as_f64().unwrap() > 0.0);
    let p50 = v["latency"]["percentiles"]["p50_us"].as_f64().unwrap();
    let p99 = v["latency"]["percentiles"]["p99_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{v:#}");
    let plot = std::fs::read_to_string(&svg).expect("plot written");
    assert!(plot.starts_with("<svg") && plot.contains("percentile"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("p99.99") && stdout.contains("exactly one response"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn closed_loop_relay_random() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "20",
        "--closed-loop",
        "--in-flight",
        "32",
        "--pattern",
        "random",
        "--payload",
        "1000",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--threads",
        "2",
    ]);
    let v = assert_clean(&output, &summary);
    assert_eq!(v["config"]["pattern"], "random");
    assert_eq!(v["requests"]["served"], v["requests"]["sent"]);
}

#[test]
fn open_loop_keeps_its_rate() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "20",
        "--rate",
        "500",
        "--duration",
        "2s",
        "--warmup",
        "300ms",
    ]);
    let v = assert_clean(&output, &summary);
    let rps = v["throughput_rps"].as_f64().unwrap();
    assert!(
        (350.0..=650.0).contains(&rps),
        "throughput {rps} vs rate 500"
    );
    // Open loop sends exactly its schedule: 500/s over warm-up + duration.
    let sent = v["requests"]["sent"].as_u64().unwrap();
    assert!((1100..=1200).contains(&sent), "sent {sent}");
}

#[test]
fn watch_cpu_reads_the_proxy_over_the_window() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let pid = proxy.child.id().to_string();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "20",
        "--rate",
        "2000",
        "--duration",
        "1s",
        "--warmup",
        "300ms",
        "--watch-cpu",
        &pid,
    ]);
    let v = assert_clean(&output, &summary);
    let cpu = &v["watched_cpu"];
    assert_eq!(cpu["pid"].to_string(), pid, "{v:#}");
    // 2000 round trips a second through the proxy cost it some CPU, however little.
    assert!(cpu["ticks"].as_u64().unwrap() > 0, "{v:#}");
    assert!(cpu["clk_tck"].as_u64().unwrap() > 0, "{v:#}");
    let per = cpu["us_per_round_trip"].as_f64().unwrap();
    let expected = cpu["ticks"].as_f64().unwrap() * 1e6
        / cpu["clk_tck"].as_f64().unwrap()
        / v["requests"]["ok_in_window"].as_f64().unwrap();
    assert!((per - expected).abs() < 1e-6, "{v:#}");
    // Each reading is taken at its boundary, not at the next redraw of the progress bar.
    for late in ["start_late_us", "end_late_us"] {
        assert!(cpu[late].as_f64().unwrap() < 50_000.0, "{late}: {v:#}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("µs per round trip"), "{stdout}");

    // A process that cannot be read: said, and the run goes on without the figure.
    let gone = {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let id = child.id();
        child.wait().expect("wait true");
        id.to_string()
    };
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "2",
        "--rate",
        "100",
        "--duration",
        "200ms",
        "--warmup",
        "200ms",
        "--watch-cpu",
        &gone,
    ]);
    let v = assert_clean(&output, &summary);
    assert!(v["watched_cpu"].is_null(), "{v:#}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("--watch-cpu {gone}")), "{stderr}");
}

#[test]
fn pairs_split_over_threads_close_only_once_every_thread_drained() {
    let proxy = Server::proxy();
    let url = proxy.url();
    // Two endpoints, two threads: each endpoint's partner lives on the other thread, so a
    // thread that closed its endpoint as soon as its own requests were answered would leave
    // the other thread's last requests to it without a target (`unknown-address`).
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "2",
        "--threads",
        "2",
        "--rate",
        "4000",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    let v = assert_clean(&output, &summary);
    assert_eq!(v["config"]["threads"], 2, "{v:#}");
    // The threads met after draining instead of one giving up waiting for the other.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("did not finish draining"), "{stderr}");
}

#[test]
fn direct_against_the_echo_example() {
    let echo = Server::echo();
    let url = echo.url();
    let (output, summary) = loadgen(&[
        "--direct",
        "--proxy",
        &url,
        "--conns",
        "20",
        "--closed-loop",
        "--in-flight",
        "16",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    let v = assert_clean(&output, &summary);
    assert_eq!(v["mode"], "direct");
    assert_eq!(v["requests"]["served"], 0, "the echo answers, not loadgen");
    // Open loop against the echo as well.
    let (output, summary) = loadgen(&[
        "--direct",
        "--proxy",
        &url,
        "--conns",
        "10",
        "--rate",
        "400",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    let v = assert_clean(&output, &summary);
    let rps = v["throughput_rps"].as_f64().unwrap();
    assert!(
        (280.0..=520.0).contains(&rps),
        "throughput {rps} vs rate 400"
    );
}

#[test]
fn idle_holds_connections() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "50",
        "--idle",
        "--duration",
        "300ms",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let v = summary.expect("summary");
    assert_eq!(v["connections"]["established"], 50);
    assert_eq!(v["connections"]["dropped"], 0);
    assert_eq!(v["requests"]["sent"], 0);
}

#[test]
fn nothing_listening_fails() {
    // A port that was free a moment ago: connections are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let (output, _) = loadgen(&["--proxy", &url, "--conns", "4", "--duration", "200ms"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no connection could be established"),
        "{stderr}"
    );
}

/// What a stand-in server writes back (into `out`) for the `n`th message, from 1, of a
/// connection.
type Answer = fn(n: u64, opcode: OpCode, payload: &[u8], out: &mut BytesMut);

/// A WebSocket server standing in for an echo or a proxy: every upgrade is answered with a
/// `101` and nothing more (the address each connection asked for is sent on the returned
/// channel), every message with what `answer` writes, and a close with a close.
fn stand_in(answer: Answer) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (asked_tx, asked_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let asked = asked_tx.clone();
            std::thread::spawn(move || {
                let _ = stand_in_connection(stream, &asked, answer);
            });
        }
    });
    (addr, asked_rx)
}

fn stand_in_connection(
    mut stream: TcpStream,
    asked: &mpsc::Sender<String>,
    answer: Answer,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Ok(Some((request, head_len))) = handshake::parse_upgrade(&buf, 8192) {
            stream.write_all(&handshake::response_101(
                &request.accept_key,
                request.protocol,
            ))?;
            let address = request.address.map(|a| a.as_str().to_string());
            let _ = asked.send(address.unwrap_or_default());
            let _ = buf.split_to(head_len);
            break;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let config = DecoderConfig {
        role: Role::Server,
        max_message_bytes: 1 << 20,
    };
    let mut decoder = MessageDecoder::new();
    let mut seen = 0u64;
    loop {
        let mut out = BytesMut::new();
        while let Ok(Some(event)) = decoder.decode(&mut buf, &config) {
            match event {
                Event::Message { opcode, payload } => {
                    seen += 1;
                    answer(seen, opcode, &payload, &mut out);
                }
                Event::Close { .. } => {
                    frame::encode_frame(
                        &mut out,
                        OpCode::Close,
                        None,
                        &frame::close_payload(1000, ""),
                    );
                    stream.write_all(&out)?;
                    return Ok(());
                }
                _ => {}
            }
        }
        stream.write_all(&out)?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A faulty echo server: drops every 5th message, repeats every 7th, and answers every 11th
/// with a `503 target-busy` of its own.
fn faulty_echo() -> SocketAddr {
    stand_in(faulty_answer).0
}

fn faulty_answer(n: u64, opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
    if n % 5 == 0 {
        return;
    }
    if n % 11 == 0 {
        // A proxy-style error answer instead of the echo.
        let info = head::inspect(payload, &HeadLimits::default()).unwrap();
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nCSeq: {}\r\n\
             Httpws-Error: target-busy\r\nContent-Length: 4\r\n\r\nbusy",
            info.cseq
        );
        frame::encode_frame(out, opcode, None, answer.as_bytes());
        return;
    }
    frame::encode_frame(out, opcode, None, payload);
    if n % 7 == 0 {
        frame::encode_frame(out, opcode, None, payload);
    }
}

#[test]
fn lost_and_duplicated_answers_fail_the_run() {
    let addr = faulty_echo();
    let url = format!("ws://{addr}");
    let (output, summary) = loadgen(&[
        "--direct",
        "--proxy",
        &url,
        "--conns",
        "4",
        "--rate",
        "200",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let v = summary.expect("summary written even when the check fails");
    let r = &v["requests"];
    let sent = r["sent"].as_u64().unwrap();
    assert!(sent >= 80, "{v:#}");
    // Each connection drops its 5th, 10th, … message and repeats its 7th, 14th, ….
    assert!(r["lost"].as_u64().unwrap() >= sent / 5 - 4, "{v:#}");
    assert!(r["duplicates"].as_u64().unwrap() >= sent / 7 - 4, "{v:#}");
    assert_eq!(r["timeouts"], r["lost"], "{v:#}");
    assert_eq!(v["exactly_once"], false);
    assert!(v["errors"]["target-busy"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(v["error_reasons"]["target-busy"], "busy");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAILED"), "{stdout}");
}

/// A stand-in for a proxy of the original protocol: it answers every upgrade with a `101` and
/// sends no `:host` message, so the endpoint is known by the address it asked for (sent on
/// the returned channel); it relays nothing and answers every request itself with a `200`
/// carrying the request's CSeq.
fn registering_on_101_proxy() -> (SocketAddr, mpsc::Receiver<String>) {
    stand_in(answer_ok)
}

fn answer_ok(_n: u64, opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
    let Ok(info) = head::inspect(payload, &HeadLimits::default()) else {
        return;
    };
    let answer = format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        info.cseq
    );
    frame::encode_frame(out, opcode, None, answer.as_bytes());
}

#[test]
fn registered_on_101_drives_a_proxy_that_sends_no_host() {
    let (addr, asked) = registering_on_101_proxy();
    let url = format!("ws://{addr}");
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--registered-on-101",
        "--conns",
        "4",
        "--closed-loop",
        "--in-flight",
        "8",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
    ]);
    let v = assert_clean(&output, &summary);
    assert_eq!(v["connections"]["established"], 4, "{v:#}");
    assert_eq!(v["connections"]["failed"], 0, "{v:#}");
    assert!(v["requests"]["ok"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(v["requests"]["ok"], v["requests"]["sent"], "{v:#}");
    assert_eq!(
        v["requests"]["served"], 0,
        "the stand-in answers, not loadgen"
    );
    assert_eq!(v["config"]["registered_on_101"], true, "{v:#}");
    // Each endpoint asked for its own address in the upgrade request.
    let mut addresses: Vec<String> = asked.try_iter().collect();
    addresses.sort();
    assert_eq!(addresses, ["lg-0", "lg-1", "lg-2", "lg-3"]);
}

#[test]
fn a_proxy_that_sends_no_host_fails_without_registered_on_101() {
    let (addr, _asked) = registering_on_101_proxy();
    let url = format!("ws://{addr}");
    let started = Instant::now();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--conns",
        "2",
        "--connect-timeout",
        "1s",
        "--duration",
        "200ms",
    ]);
    // Bounded by --connect-timeout, far inside the run limit: a wait for `:host` that never
    // gave up would hit that limit instead.
    assert!(
        started.elapsed() < RUN_LIMIT / 4,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(summary.is_none(), "no traffic ran, so no summary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("connect failed ×2: no :host registration message")
            && stderr.contains("--registered-on-101")
            && stderr.contains("no connection could be established"),
        "{stderr}"
    );
}

/// A stream-mode run that succeeded: exit 0, a summary, every stream ended within the credit.
fn assert_streams_clean(output: &Output, summary: &Option<Value>) -> Value {
    assert!(output.status.success(), "{}", describe(output));
    let v = summary.clone().expect("JSON summary written");
    assert_eq!(v["clean"], true, "{v:#}");
    assert_eq!(v["streams"]["unfinished"], 0, "{v:#}");
    assert_eq!(v["credit_violations"], 0, "{v:#}");
    assert_eq!(v["unknown"], 0, "{v:#}");
    assert_eq!(v["protocol_errors"], 0, "{v:#}");
    assert!(v["errors"].as_object().unwrap().is_empty(), "{v:#}");
    assert!(v["resets"].as_object().unwrap().is_empty(), "{v:#}");
    v
}

#[test]
fn stream_events_through_the_proxy() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--stream",
        "events",
        "--conns",
        "20",
        "--streams",
        "30",
        "--interval",
        "50ms",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    let v = assert_streams_clean(&output, &summary);
    assert_eq!(v["stream"], "events");
    assert_eq!(v["mode"], "relay");
    // 30 streams at 20 events/s for a second: far more than none, and every one timed.
    let events = &v["events"];
    assert!(events["in_window"].as_u64().unwrap() > 100, "{v:#}");
    let latency = &events["latency"];
    assert!(latency["samples"].as_u64().unwrap() > 100, "{v:#}");
    let p50 = latency["p50_us"].as_f64().unwrap();
    let p99 = latency["p99_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{v:#}");
    // Every stream was answered by a loadgen server and ended by it at the end.
    assert_eq!(v["streams"]["opened"], 30, "{v:#}");
    assert_eq!(v["streams"]["completed"], 30, "{v:#}");
    assert_eq!(v["served"], 30, "{v:#}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("check     OK"), "{stdout}");
}

#[test]
fn stream_downloads_and_uploads_through_the_proxy() {
    let proxy = Server::proxy();
    let url = proxy.url();
    for kind in ["download", "upload"] {
        let (output, summary) = loadgen(&[
            "--proxy",
            &url,
            "--stream",
            kind,
            "--conns",
            "4",
            "--streams",
            "4",
            "--stream-bytes",
            "1MiB",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ]);
        let v = assert_streams_clean(&output, &summary);
        assert_eq!(v["stream"], kind);
        // Bodies of 1 MiB need several windows of credit: completing them means the
        // credit went round.
        assert!(v["streams"]["completed"].as_u64().unwrap() >= 4, "{v:#}");
        assert_eq!(v["streams"]["short"], 0, "{v:#}");
        assert!(v["bytes_in_window"].as_u64().unwrap() > 0, "{v:#}");
        assert!(v["throughput_mib_s"].as_f64().unwrap() > 0.0, "{v:#}");
        assert!(v["per_stream"]["samples"].as_u64().unwrap() > 0, "{v:#}");
    }
}

#[test]
fn stream_mixed_measures_both_windows() {
    let proxy = Server::proxy();
    let echo = Server::echo();
    for (url, direct) in [(proxy.url(), false), (echo.url(), true)] {
        let mut args = vec![
            "--proxy",
            &url,
            "--stream",
            "mixed",
            "--conns",
            "2",
            "--rate",
            "200",
            "--duration",
            "600ms",
            "--warmup",
            "200ms",
        ];
        if direct {
            args.push("--direct");
        }
        let (output, summary) = loadgen(&args);
        let v = assert_streams_clean(&output, &summary);
        assert_eq!(v["mode"], if direct { "direct" } else { "relay" });
        let small = &v["small"];
        assert_eq!(small["sent"], small["answered"], "{v:#}");
        assert!(
            small["without_bulk"]["samples"].as_u64().unwrap() > 50,
            "{v:#}"
        );
        assert!(
            small["with_bulk"]["samples"].as_u64().unwrap() > 50,
            "{v:#}"
        );
        assert!(small["p99_ratio"].as_f64().unwrap() > 0.0, "{v:#}");
        // The bulk stream moved while the small requests went on, and was cancelled at the end.
        assert!(v["bytes_in_window"].as_u64().unwrap() > 0, "{v:#}");
        assert_eq!(v["streams"]["cancelled_at_end"], 1, "{v:#}");
    }
}

#[test]
fn stream_bulk_rate_caps_the_bulk_download() {
    let proxy = Server::proxy();
    let url = proxy.url();
    let (output, summary) = loadgen(&[
        "--proxy",
        &url,
        "--stream",
        "mixed",
        "--conns",
        "2",
        "--rate",
        "100",
        "--bulk-rate",
        "2MiB",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    let v = assert_streams_clean(&output, &summary);
    // A cap is an upper bound however slow the machine: 2 MiB/s over a 1 s window, plus the
    // one burst a stream may send after falling behind.
    let bytes = v["bytes_in_window"].as_u64().unwrap();
    assert!(bytes > 0, "{v:#}");
    assert!(bytes <= 2 * 1024 * 1024 + 128 * 1024, "{v:#}");
}
