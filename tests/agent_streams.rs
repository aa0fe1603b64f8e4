//! Streams through the agents (protocol 2, docs/protocol.md §12): real `httpws endpoint`
//! processes on both sides of the real proxy — alice's `--listen`, bob's `--serve` in front
//! of a local service — driven by independent clients: curl, Python's `websockets`, raw
//! sockets and tungstenite. Server-sent events arrive as they are sent, large bodies arrive
//! intact both ways, WebSockets pass through, a client that stops reading holds nothing up
//! but its own stream, every broken stream looks broken, and protocol-1 endpoints still
//! interoperate. Every case runs on both io drivers.

mod common;

#[path = "agent_streams/stream_service.rs"]
mod stream_service;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::IO_TIMEOUT;
use common::agent::Agent;
use common::curl::{CURL, assert_ok, assert_status, curl_raw, curl_via};
use common::driver::Driver;
use common::fake_proxy::{FakeProxy, FromAgent, Tunnel, cseq_of};
use common::http1::Head;
use common::proc_stats::{vm_rss_kib, wait_for};
use common::process::run_bounded;
use common::proxy::Proxy;
use common::raw_conn::RawConn;
use common::scratch::Scratch;
use common::stream_wire::{data, tag};
use stream_service::{StreamService, fill_pattern};

/// The most an event may take from the service to curl's output.
const EVENT_LATENCY: Duration = Duration::from_millis(100);
/// The large bodies sent each way.
const LARGE_BYTES: u64 = 200 * 1024 * 1024;
/// How long a large transfer may take (debug builds included).
const LARGE_LIMIT: &str = "120";

/// The proxy, bob (`--serve` the stream service) and alice (`--listen`).
struct Net {
    proxy: Proxy,
    service: StreamService,
    bob: Agent,
    alice: Agent,
}

impl Net {
    fn start(driver: Driver, proxy_args: &[&str]) -> Net {
        let proxy = Proxy::start(driver, proxy_args);
        let service = StreamService::start();
        let bob = Agent::serve(proxy.addr, "bob", &service.url(), &[]);
        let alice = Agent::listen(proxy.addr, "alice", &[]);
        Net {
            proxy,
            service,
            bob,
            alice,
        }
    }

    fn ingress(&mut self) -> String {
        self.alice.ingress()
    }
}

/// A file of the generated pattern, `n` bytes, and its md5 (from `md5sum`).
fn pattern_file(scratch: &Scratch, name: &str, n: u64) -> (String, String) {
    let path = scratch.path(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut piece = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < n {
        let len = (n - at).min(piece.len() as u64) as usize;
        fill_pattern(at, &mut piece[..len]);
        file.write_all(&piece[..len]).expect("write");
        at += len as u64;
    }
    file.flush().expect("flush");
    let digest = md5(&path);
    (path, digest)
}

fn md5(path: &str) -> String {
    let out = Command::new("md5sum")
        .arg(path)
        .output()
        .expect("md5sum (coreutils)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

// =============================================================================================
// Server-sent events and large bodies
// =============================================================================================

fn server_sent_events_arrive_as_they_are_sent(driver: Driver) {
    let mut net = Net::start(driver, &[]);
    let ingress = net.ingress();
    let mut child = Command::new(CURL)
        .args([
            "-sS",
            "-N",
            "--max-time",
            "10",
            "-x",
            &ingress,
            "http://bob/events?n=5&ms=200",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run curl");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut arrived = Vec::new();
    let mut line = String::new();
    while lines.read_line(&mut line).expect("read curl's output") > 0 {
        if let Some(event) = line.trim().strip_prefix("data: ") {
            arrived.push((event.to_owned(), Instant::now()));
        }
        line.clear();
    }
    assert!(child.wait().expect("curl exits").success());
    let sent = net.service.record.events_sent.lock().unwrap().clone();
    assert_eq!(arrived.len(), 5, "{arrived:?}");
    assert_eq!(sent.len(), 5);
    for (i, ((event, at), sent)) in arrived.iter().zip(&sent).enumerate() {
        assert_eq!(event, &i.to_string());
        let latency = at.saturating_duration_since(*sent);
        assert!(
            latency <= EVENT_LATENCY,
            "event {i} took {latency:?} from the service to curl"
        );
    }
}

fn a_200_mib_download_and_upload_arrive_intact(driver: Driver) {
    let mut net = Net::start(driver, &[]);
    let ingress = net.ingress();
    let scratch = Scratch::new();
    let (file, digest) = pattern_file(&scratch, "pattern", LARGE_BYTES);
    // Down: chunked from the service (no length known), and with a Content-Length.
    for (query, name) in [
        (format!("bytes={LARGE_BYTES}"), "down-chunked"),
        (format!("bytes={LARGE_BYTES}&length=1"), "down-length"),
    ] {
        let got = scratch.path(name);
        let url = format!("http://bob/download?{query}");
        let (exit, _, stderr) = curl_raw(&[
            "-sS",
            "--max-time",
            LARGE_LIMIT,
            "-x",
            &ingress,
            &url,
            "-o",
            &got,
        ]);
        assert_eq!(exit, 0, "{query}: {stderr}");
        assert_eq!(md5(&got), digest, "{query}: the download's md5");
        std::fs::remove_file(&got).expect("remove");
    }
    // Up: with a Content-Length, and chunked.
    for chunked in [false, true] {
        let data = format!("@{file}");
        let mut args = vec![
            "--max-time",
            LARGE_LIMIT,
            "-H",
            "Expect:",
            "--data-binary",
            &data,
        ];
        if chunked {
            args.extend(["-H", "Transfer-Encoding: chunked"]);
        }
        let out = curl_via(&ingress, "http://bob/upload", &args);
        assert_ok(&out);
        assert_eq!(
            out.body_text(),
            format!("{digest} {LARGE_BYTES}"),
            "chunked: {chunked}: the service's md5 of what it received"
        );
    }
}

// =============================================================================================
// Backpressure: memory stays bounded
// =============================================================================================

fn a_client_that_stops_reading_holds_memory_bounded(driver: Driver) {
    let mut net = Net::start(driver, &[]);
    let ingress = net.ingress();
    // Warm up every process on the path, then measure where each starts.
    let out = curl_via(&ingress, "http://bob/download?bytes=1000000", &[]);
    assert_ok(&out);
    let pids = [
        ("proxy", net.proxy.pid()),
        ("alice", net.alice.pid()),
        ("bob", net.bob.pid()),
    ];
    let before: Vec<u64> = pids.iter().map(|(_, pid)| vm_rss_kib(*pid)).collect();
    let mut client = TcpStream::connect(net.alice.listen_addr()).expect("connect");
    client
        .write_all(b"GET http://bob/download?bytes=0 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .expect("send");
    let mut some = vec![0u8; 1 << 20];
    client.read_exact(&mut some).expect("the stream begins");
    // Now the client stops reading: the service must stop being able to write.
    let written = &net.service.record.written;
    let mut last = written.load(Ordering::SeqCst);
    let mut still_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while still_since.elapsed() < Duration::from_secs(1) {
        assert!(
            Instant::now() < deadline,
            "the service never stopped writing"
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = written.load(Ordering::SeqCst);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let stalled_at = written.load(Ordering::SeqCst);
    assert!(
        stalled_at < 64 << 20,
        "the service wrote {stalled_at} bytes into a stream nobody reads"
    );
    for ((name, pid), before) in pids.iter().zip(&before) {
        let now = vm_rss_kib(*pid);
        assert!(
            now < before + 16 * 1024,
            "{name}: RSS grew from {before} KiB to {now} KiB while {stalled_at} bytes were \
             held up by a client that does not read"
        );
    }
    // Reading again, the stream goes on.
    client.read_exact(&mut some).expect("the stream goes on");
}

// =============================================================================================
// Every stream ends exactly once, and a broken one looks broken
// =============================================================================================

fn a_reset_on_either_side_closes_the_other_and_frees_the_stream(driver: Driver) {
    // Two open streams per connection at most: a stream that was not freed would make the
    // third round fail with `target-busy`.
    let mut net = Net::start(driver, &["--max-streams", "2"]);
    for round in 1..=3u64 {
        let mut client = TcpStream::connect(net.alice.listen_addr()).expect("connect");
        client
            .write_all(b"GET http://bob/download?bytes=0 HTTP/1.1\r\nHost: bob\r\n\r\n")
            .expect("send");
        let mut head = [0u8; 12];
        client.read_exact(&mut head).expect("an answer");
        assert_eq!(&head, b"HTTP/1.1 200", "round {round}");
        // The client goes away mid-stream: the service's connection closes.
        drop(client);
        let ended = wait_for(
            IO_TIMEOUT,
            || net.service.record.downloads_ended.load(Ordering::SeqCst),
            |n| n >= round,
        );
        assert_eq!(
            ended, round,
            "round {round}: the service saw its stream end"
        );
        assert!(net.service.record.client_gone.load(Ordering::SeqCst));
    }
    // The other way: the service resets mid-body; the client's connection is closed
    // without the body's end.
    let ingress = net.ingress();
    let out = curl_via(&ingress, "http://bob/die?after=300000", &[]);
    assert!(
        out.exit == 18 || out.exit == 56,
        "a chunked body cut off: curl exit {} ({})",
        out.exit,
        out.stderr
    );
}

fn a_service_that_dies_mid_stream_breaks_the_curl_transfer(driver: Driver) {
    let mut net = Net::start(driver, &[]);
    let ingress = net.ingress();
    for query in [
        "after=300000",
        "after=300000&length=1000000",
        "after=100&length=1000000",
    ] {
        let out = curl_via(&ingress, &format!("http://bob/die?{query}"), &[]);
        assert!(
            out.exit == 18 || out.exit == 56,
            "{query}: curl exit {} — a broken body must not look complete ({} bytes, {})",
            out.exit,
            out.body.len(),
            out.stderr
        );
    }
    // The agents are fine afterwards.
    let out = curl_via(&ingress, "http://bob/download?bytes=100000", &[]);
    assert_ok(&out);
    assert_eq!(out.body.len(), 100_000);
}

// =============================================================================================
// WebSockets pass through
// =============================================================================================

fn websockets_pass_through_the_agents_and_the_ingress(driver: Driver) {
    let Some(python) = common::python::with_package("websockets") else {
        return;
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/agent_streams/ws_peer.py"
    );
    let mut server = Command::new(&python)
        .args([script, "server"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python echo server");
    let mut port = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("its port");
    let port = port.trim().to_owned();
    let proxy = Proxy::start(driver, &["--domain", "tunnel.test"]);
    let service = format!("http://127.0.0.1:{port}");
    let _bob = Agent::serve(proxy.addr, "bob", &service, &["--public"]);
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    // Through alice's --listen, and from the internet through the public ingress: on the
    // proxy's own port an upgrade whose Host names an endpoint under its domain passes
    // through to it.
    let listen = alice.listen_addr().port().to_string();
    let ingress = proxy.addr.port().to_string();
    let runs = [
        ("alice's --listen", listen, "bob"),
        ("the public ingress", ingress, "bob.tunnel.test"),
    ];
    let mut outcomes = Vec::new();
    for (way, port, host) in runs {
        let (ok, out) = run_bounded(
            Command::new(&python).args([script, "client", &port, host]),
            Duration::from_secs(30),
        );
        outcomes.push((way, ok && out.contains("ok"), out));
    }
    let _ = server.kill();
    let _ = server.wait();
    for (way, ok, out) in outcomes {
        assert!(ok, "the Python client through {way}: {out}");
    }
}

// =============================================================================================
// Protocol-1 endpoints and protocol-2 agents
// =============================================================================================

/// The next message on a tungstenite endpoint, as its head and its (binary) body.
fn recv_message(ep: &mut common::ws::Endpoint) -> (Head, Vec<u8>) {
    let bytes = match common::ws::recv_data(&mut ep.ws) {
        tungstenite::Message::Binary(b) => b.to_vec(),
        tungstenite::Message::Text(t) => t.as_bytes().to_vec(),
        _ => unreachable!("recv_data returns data messages only"),
    };
    let at = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = Head::parse(&bytes[..at]).expect("an HTTP head");
    (head, bytes[at..].to_vec())
}

fn protocol_1_endpoints_interoperate_with_protocol_2_agents(driver: Driver) {
    let mut net = Net::start(driver, &[]);
    let mut expected = vec![0u8; 300_000];
    fill_pattern(0, &mut expected);
    // A protocol-1 caller (no subprotocol) calls bob, whose large answer streams (its length
    // unknown): the proxy makes it whole for the caller.
    let mut old = common::ws::connect(&net.proxy, "/old");
    old.send("GET /download?bytes=300000 HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n");
    let (head, body) = recv_message(&mut old);
    assert_eq!(head.status(), Some(200));
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.header("httpws-stream").is_none());
    assert!(body == expected, "the assembled body");
    // alice's large upload streams to a protocol-1 target: it gets one whole request.
    let ingress = net.ingress();
    let target = std::thread::spawn(move || {
        let (head, body) = recv_message(&mut old);
        let cseq = head.header("cseq").expect("a CSeq").to_owned();
        let answer = format!("got {}", body.len());
        old.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        ));
        (head, body)
    });
    let scratch = Scratch::new();
    let (file, _) = pattern_file(&scratch, "up", 300_000);
    let data = format!("@{file}");
    let out = curl_via(
        &ingress,
        "http://old/up",
        &["-H", "Expect:", "--data-binary", &data],
    );
    assert_ok(&out);
    assert_eq!(out.body_text(), "got 300000");
    let (head, body) = target.join().expect("the protocol-1 target");
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.header("httpws-stream").is_none());
    assert!(body == expected, "the assembled request body");
}

/// bob may open one connection to the service, and a stream of events holds it: an upload
/// (which streams, on a fresh connection) waits for one no longer than bob's
/// `--service-timeout`, and gets bob's `504`, not whatever the proxy's own deadlines make of
/// a request nobody answers.
fn an_upload_waiting_for_a_service_connection_gets_504_in_time(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let service = StreamService::start();
    let bob_flags = ["--max-service-conns", "1", "--service-timeout", "1s"];
    let _bob = Agent::serve(proxy.addr, "bob", &service.url(), &bob_flags);
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let mut events = RawConn::connect(alice.listen_addr(), IO_TIMEOUT);
    events
        .send(b"GET http://bob/events?n=1000&ms=50 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .expect("ask for events");
    let head = common::http1::read_head(&mut events.reader, common::http1::MAX_HEAD)
        .expect("read the events' head")
        .expect("the events' head");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let scratch = Scratch::new();
    let upload = scratch.write("upload", &vec![b'u'; STREAMED_BODY_BYTES]);
    let started = Instant::now();
    let out = curl_via(
        &alice.ingress(),
        "http://bob/upload",
        &["--max-time", "30", "--data-binary", &format!("@{upload}")],
    );
    assert_status(&out, 504);
    assert_eq!(out.header("httpws-target-error"), Some("timeout"));
    assert!(
        started.elapsed() < PROMPT,
        "the upload was answered after {:?}",
        started.elapsed()
    );
    drop(events);
}

// =============================================================================================
// The agent's side of a stream, against a proxy played by the test (common::fake_proxy)
// =============================================================================================

/// A request body long enough to stream (over the 64 KiB that go whole), within one window.
const STREAMED_BODY_BYTES: usize = 100 * 1024;
/// How soon the agent must act on what it is testing (well under any default timeout).
const PROMPT: Duration = Duration::from_secs(5);

/// alice `--listen <extra…>`, registered on a tunnel to a proxy played by the test.
fn alice_on_fake(extra: &[&str]) -> (FakeProxy, Agent, Tunnel) {
    let fake = FakeProxy::bind();
    let mut args = vec!["--name", "alice", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut alice = Agent::start_url(&fake.url(), &args);
    let tunnel = fake.accept("alice");
    assert_eq!(alice.wait_registered(IO_TIMEOUT), "alice");
    (fake, alice, tunnel)
}

/// A client connection to alice that has sent a request whose body streams, all of it.
fn post_streamed(alice: &mut Agent) -> RawConn {
    let mut conn = RawConn::connect(alice.listen_addr(), IO_TIMEOUT);
    let head = format!(
        "POST http://bob/upload HTTP/1.1\r\nHost: bob\r\nContent-Length: {STREAMED_BODY_BYTES}\r\n\r\n"
    );
    conn.send(head.as_bytes()).expect("send the head");
    conn.send(&vec![b'u'; STREAMED_BODY_BYTES])
        .expect("send the body");
    conn
}

/// The answer to a streamed call does not come within alice's `--request-timeout`: her
/// client gets `504`, and the far side is told the call is off (`reset cancel`) rather than
/// left working on it, its stream held open until some answer comes.
#[test]
fn a_call_given_up_at_its_deadline_resets_its_stream() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&["--request-timeout", "1s"]);
    let mut conn = post_streamed(&mut alice);
    let (_, cseq, body) = tunnel.streamed_request();
    assert_eq!(body.len(), STREAMED_BODY_BYTES);
    let response = conn.response("POST");
    assert_eq!(response.status(), 504);
    assert_eq!(response.header("httpws-error"), Some("timeout"));
    assert_eq!(
        tunnel.reset_within('>', cseq, PROMPT).as_deref(),
        Some("cancel"),
        "the call alice gave up is still open on the tunnel"
    );
}

/// A client that leaves after sending its whole streamed request, before the answer: the
/// call is reset at once, not when the request timeout (60 s) passes.
#[test]
fn a_client_that_leaves_before_its_answer_resets_its_stream() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&[]);
    let conn = post_streamed(&mut alice);
    let (_, cseq, _) = tunnel.streamed_request();
    drop(conn);
    assert_eq!(
        tunnel.reset_within('>', cseq, PROMPT).as_deref(),
        Some("cancel"),
        "the call of a client that left is still open on the tunnel"
    );
}

/// What the proxy played by the test streams at most to a client that takes nothing.
const STALL_LIMIT_BYTES: usize = 64 << 20;

/// An HTTP/1.0 client gets a streamed answer of unknown length close-delimited, and stops
/// taking it: once alice gives it up (`--client-timeout`, the stream reset `cancel`), the
/// connection must end with a reset, since a plain close would make the bytes so far look
/// like the whole body.
#[test]
fn a_close_delimited_answer_the_client_stalls_on_ends_with_a_reset() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&["--client-timeout", "1s"]);
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect(&alice.listen_addr().into())
        .expect("connect to alice");
    let mut client: TcpStream = socket.into();
    client
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    client
        .write_all(b"GET http://bob/forever HTTP/1.0\r\nHost: bob\r\n\r\n")
        .expect("send the request");
    let (head, _) = tunnel.next_http();
    let cseq = cseq_of(&head);
    tunnel.send(format!(
        "HTTP/1.1 200 OK\r\nHttpws-Stream: body\r\nCSeq: {cseq}\r\n\r\n"
    ));
    // Data as alice grants it, until she gives the stream up.
    let piece = vec![b'd'; 64 * 1024];
    let (mut credit, mut sent) = (256 * 1024, 0);
    let token = loop {
        while credit >= piece.len() && sent < STALL_LIMIT_BYTES {
            tunnel.send(data('>', cseq, &piece));
            credit -= piece.len();
            sent += piece.len();
        }
        match tunnel.next() {
            Some(FromAgent::Stream(t)) if t.verb == "credit" && t.cseq == cseq => {
                credit += t
                    .arg
                    .and_then(|n| n.parse::<usize>().ok())
                    .expect("a grant");
            }
            Some(FromAgent::Stream(t)) if t.verb == "reset" && t.cseq == cseq => break t.arg,
            other => panic!("after {sent} bytes sent, alice sent {other:?}"),
        }
    };
    assert_eq!(token.as_deref(), Some("cancel"));
    // Now the client reads what reached it: the head, some of the body, then a reset.
    let mut reader = BufReader::new(client);
    let head = common::http1::read_head(&mut reader, common::http1::MAX_HEAD)
        .expect("read the head")
        .expect("a head");
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        !head.contains("content-length") && !head.contains("chunked"),
        "{head}"
    );
    let (taken, end) = end_of(&mut reader);
    assert_eq!(
        end,
        Some(std::io::ErrorKind::ConnectionReset),
        "the client read {taken} bytes and then an orderly end: a broken body that looks whole"
    );
}

/// How a client's connection ended once what reached it was read: `None` for an orderly end,
/// else the error.
fn end_of(reader: &mut impl Read) -> (usize, Option<std::io::ErrorKind>) {
    let mut taken = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return (taken, None),
            Ok(n) => taken += n,
            Err(e) => return (taken, Some(e.kind())),
        }
    }
}

/// An upgraded connection whose far side resets the stream: the client's connection ends
/// with a reset, never with an orderly end it would take for the far side's half-close.
#[test]
fn an_upgraded_connection_reset_by_the_far_side_ends_with_a_reset() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&[]);
    let mut client = TcpStream::connect(alice.listen_addr()).expect("connect to alice");
    client
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    client
        .write_all(
            b"GET http://bob/ws HTTP/1.1\r\nHost: bob\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\n\r\n",
        )
        .expect("send the upgrade request");
    let (head, _) = tunnel.next_http();
    let cseq = cseq_of(&head);
    tunnel.send(format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Httpws-Stream: body\r\nCSeq: {cseq}\r\n\r\n"
    ));
    tunnel.send(data('>', cseq, b"hello"));
    let mut reader = BufReader::new(client);
    let head = common::http1::read_head(&mut reader, common::http1::MAX_HEAD)
        .expect("read the head")
        .expect("a head");
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let mut hello = [0u8; 5];
    reader.read_exact(&mut hello).expect("the far side's bytes");
    assert_eq!(&hello, b"hello");
    tunnel.send(tag("reset", '>', cseq, Some("target-gone")));
    assert_eq!(
        end_of(&mut reader),
        (0, Some(std::io::ErrorKind::ConnectionReset)),
        "a broken upgraded connection ended as if the far side had closed its half"
    );
}

/// alice's client asks for `/`; the proxy played by the test answers with a stream head
/// (`length`: its declared `Content-Length`) and then `messages`. Returns the client's
/// reader, past the response head it got (with that head), and the call's CSeq.
fn streamed_answer(
    tunnel: &mut Tunnel,
    alice: &mut Agent,
    length: Option<usize>,
    messages: impl FnOnce(u64) -> Vec<Vec<u8>>,
) -> (BufReader<TcpStream>, Head, u64) {
    let mut client = TcpStream::connect(alice.listen_addr()).expect("connect to alice");
    client
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    client
        .write_all(b"GET http://bob/ HTTP/1.1\r\nHost: bob\r\n\r\n")
        .expect("send the request");
    let (head, _) = tunnel.next_http();
    let cseq = cseq_of(&head);
    let length = length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
    tunnel.send(format!(
        "HTTP/1.1 200 OK\r\nHttpws-Stream: body\r\n{length}CSeq: {cseq}\r\n\r\n"
    ));
    for message in messages(cseq) {
        tunnel.send(message);
    }
    let mut reader = BufReader::new(client);
    let head = common::http1::read_head(&mut reader, common::http1::MAX_HEAD)
        .expect("read the head")
        .expect("a head");
    let head = Head::parse(&head).expect("a response head");
    assert_eq!(head.status(), Some(200));
    (reader, head, cseq)
}

/// Data beyond the credit alice granted (one message larger than the whole first window)
/// resets the stream `flow-control`, and is not queued: her client's chunked body ends
/// without its last chunk.
#[test]
fn data_beyond_the_credit_granted_resets_the_stream() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&[]);
    let too_much = vec![b'x'; 256 * 1024 + 1];
    let (mut reader, _, cseq) = streamed_answer(&mut tunnel, &mut alice, None, |c| {
        vec![data('>', c, &too_much)]
    });
    assert_eq!(
        tunnel.reset_within('>', cseq, PROMPT).as_deref(),
        Some("flow-control")
    );
    let body = common::http1::read_chunked(&mut reader, common::http1::MAX_BODY);
    assert!(body.is_err(), "a broken body looked complete: {body:?}");
}

/// What the proxy played by the test sends about a call, given its CSeq.
type Messages = fn(u64) -> Vec<Vec<u8>>;

/// A stream longer or shorter than the `Content-Length` its head declared resets it
/// `too-large`, and the client never gets a body that looks complete: it is short of the
/// length it was told, its connection ended.
#[test]
fn a_stream_off_its_declared_length_resets_and_stays_short() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&[]);
    let cases: [(&str, Messages); 2] = [
        ("longer", |c| vec![data('>', c, b"0123456789a")]),
        ("shorter", |c| {
            vec![data('>', c, b"01234"), tag("end", '>', c, None)]
        }),
    ];
    for (case, messages) in cases {
        let (mut reader, head, cseq) = streamed_answer(&mut tunnel, &mut alice, Some(10), messages);
        assert_eq!(head.header("content-length"), Some("10"), "{case}");
        assert_eq!(
            tunnel.reset_within('>', cseq, PROMPT).as_deref(),
            Some("too-large"),
            "{case}"
        );
        let mut body = Vec::new();
        let end = reader.read_to_end(&mut body);
        assert!(
            body.len() < 10,
            "{case}: the client got {} bytes ({end:?})",
            body.len()
        );
    }
}

/// A proxy that grants alice's upload `u64::MAX` bytes of credit, again and again: no
/// overflow, and the body goes out whole, at once, as the credit allows.
#[test]
fn credit_granted_to_the_limit_again_and_again_is_taken_in_stride() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&[]);
    let upload = 1 << 20;
    let mut conn = RawConn::connect(alice.listen_addr(), IO_TIMEOUT);
    let head =
        format!("POST http://bob/up HTTP/1.1\r\nHost: bob\r\nContent-Length: {upload}\r\n\r\n");
    conn.send(head.as_bytes()).expect("send the head");
    let (head, _) = tunnel.next_http();
    let cseq = cseq_of(&head);
    let max = u64::MAX.to_string();
    for _ in 0..3 {
        tunnel.send(tag("credit", '>', cseq, Some(&max)));
    }
    let sending = std::thread::spawn(move || {
        conn.send(&vec![b'u'; upload]).expect("send the body");
        conn
    });
    let mut got = 0usize;
    loop {
        match tunnel.next() {
            Some(FromAgent::Stream(t)) if t.cseq == cseq && t.verb == "data" => {
                got += t.payload.len()
            }
            Some(FromAgent::Stream(t)) if t.cseq == cseq && t.verb == "end" => break,
            other => panic!("after {got} bytes of the upload, alice sent {other:?}"),
        }
    }
    assert_eq!(got, upload);
    tunnel.send(format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCSeq: {cseq}\r\n\r\nok"
    ));
    let mut conn = sending.join().expect("the client thread");
    let response = conn.response("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body, b"ok");
}

/// alice is stopped (SIGTERM) while an HTTP/1.0 client takes a close-delimited streamed
/// answer: the stream is broken, and the client must see its connection reset, never the
/// orderly end that would make the bytes so far the whole body.
#[test]
fn sigterm_mid_stream_breaks_a_close_delimited_answer() {
    let (_fake, mut alice, mut tunnel) = alice_on_fake(&[]);
    let mut client = TcpStream::connect(alice.listen_addr()).expect("connect to alice");
    client
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    client
        .write_all(b"GET http://bob/ HTTP/1.0\r\nHost: bob\r\n\r\n")
        .expect("send the request");
    let (head, _) = tunnel.next_http();
    let cseq = cseq_of(&head);
    tunnel.send(format!(
        "HTTP/1.1 200 OK\r\nHttpws-Stream: body\r\nCSeq: {cseq}\r\n\r\n"
    ));
    tunnel.send(data('>', cseq, b"so far"));
    let mut reader = BufReader::new(client);
    let head = common::http1::read_head(&mut reader, common::http1::MAX_HEAD)
        .expect("read the head")
        .expect("a head");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let mut so_far = [0u8; 6];
    reader.read_exact(&mut so_far).expect("the body so far");
    assert!(
        alice.terminate(IO_TIMEOUT).is_some(),
        "alice exits on SIGTERM"
    );
    assert_eq!(
        end_of(&mut reader),
        (0, Some(std::io::ErrorKind::ConnectionReset)),
        "the client's close-delimited body ended in order when alice stopped"
    );
}

on_both_drivers!(
    server_sent_events_arrive_as_they_are_sent,
    a_200_mib_download_and_upload_arrive_intact,
    a_client_that_stops_reading_holds_memory_bounded,
    a_reset_on_either_side_closes_the_other_and_frees_the_stream,
    a_service_that_dies_mid_stream_breaks_the_curl_transfer,
    websockets_pass_through_the_agents_and_the_ingress,
    protocol_1_endpoints_interoperate_with_protocol_2_agents,
    an_upload_waiting_for_a_service_connection_gets_504_in_time,
);
