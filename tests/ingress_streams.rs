//! Streamed answers to internet callers through the public ingress (docs/protocol.md §11,
//! §12): a protocol-2 service's stream response goes on to a plain HTTP client as it comes —
//! chunked when its length is unknown, as it is under a declared length, until close for
//! HTTP/1.0 — with the target's credit granted only for what reached the caller's socket; a
//! broken stream closes the caller's connection without the body's end; a caller that leaves
//! resets the stream. The clients are raw sockets and curl; the services tungstenite
//! endpoints speaking the stream messages by hand. Every case runs on both io drivers.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::IO_TIMEOUT;
use common::curl::CURL;
use common::driver::Driver;
use common::http1::{read_exact_vec, read_head};
use common::proxy::{Proxy, name_on_shard};
use common::raw_conn::RawConn;
use common::stream_wire::{data, head_of, recv, recv_tagged, send, tag};
use common::ws::{Endpoint, connect_with, recv_within};

/// The initial credit of each direction of a stream (docs/protocol.md §12).
const WINDOW: usize = 256 * 1024;

/// A public protocol-2 service on shard `shard` of the default two.
fn public_v2(proxy: &Proxy, prefix: &str, shard: u64) -> (Endpoint, String) {
    let name = name_on_shard(prefix, shard, 2);
    let ep = connect_with(
        proxy,
        &format!("/{name}?public=1"),
        &[("Sec-WebSocket-Protocol", "httpws.2")],
    )
    .unwrap_or_else(|s| panic!("registration of {name} refused: {s}"));
    (ep, name)
}

fn stream_head(cseq: u64, extra: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nHttpws-Stream: body\r\n{extra}\r\n")
}

/// The caller's response head, as text.
fn caller_head(caller: &mut RawConn) -> String {
    let head = read_head(&mut caller.reader, 64 * 1024)
        .expect("read a head")
        .expect("a response head");
    String::from_utf8(head).expect("ASCII head")
}

/// Exactly `n` more bytes off the caller's connection.
fn caller_bytes(caller: &mut RawConn, n: usize) -> Vec<u8> {
    read_exact_vec(&mut caller.reader, n).expect("read the body")
}

/// The `~credit` the service is granted next: its CSeq and amount.
fn credit(svc: &mut Endpoint) -> (u64, u64) {
    let got = recv_tagged(svc);
    assert_eq!((got.verb.as_str(), got.dir), ("credit", '<'), "{got:?}");
    (
        got.cseq,
        got.arg.expect("an amount").parse().expect("decimal"),
    )
}

fn a_streamed_answer_reaches_an_internet_caller_as_it_comes(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut near, near_name) = public_v2(&proxy, "near", 1);
    let (mut far, far_name) = public_v2(&proxy, "far", 0);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    // The first request moves the connection to near's shard; the second then crosses to
    // far's: both ways work the same.
    for (svc, name) in [(&mut near, &near_name), (&mut far, &far_name)] {
        let request = format!("GET /events HTTP/1.1\r\nHost: {name}\r\n\r\n");
        caller.send(request.as_bytes()).expect("send");
        let (_, p) = head_of(&recv(svc));
        send(svc, stream_head(p, "Content-Type: text/event-stream\r\n"));
        let head = caller_head(&mut caller);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: text/event-stream\r\n"),
            "{head}"
        );
        for absent in ["Httpws-Stream", "CSeq", "Connection: close"] {
            assert!(!head.contains(absent), "{absent} in {head}");
        }
        // Each piece arrives as one whole chunk before the next is sent.
        send(svc, data('<', p, b"data: one\n\n"));
        assert_eq!(caller_bytes(&mut caller, 16), b"b\r\ndata: one\n\n\r\n");
        // What reached the caller's socket is granted to the service again.
        assert_eq!(credit(svc), (p, 11));
        send(svc, data('<', p, b"data: two\n\n"));
        assert_eq!(caller_bytes(&mut caller, 16), b"b\r\ndata: two\n\n\r\n");
        assert_eq!(credit(svc), (p, 11));
        // Empty data is not an empty (last) chunk.
        send(svc, data('<', p, b""));
        send(svc, tag("end", '<', p, None));
        assert_eq!(caller_bytes(&mut caller, 5), b"0\r\n\r\n");
    }
    // The connection stays open for a whole answer after the streamed ones.
    let request = format!("GET /plain HTTP/1.1\r\nHost: {near_name}\r\n\r\n");
    caller.send(request.as_bytes()).expect("send");
    near.answer("whole");
    let response = caller.response("GET");
    assert_eq!(
        (response.status(), &response.body[..]),
        (200, &b"whole"[..])
    );
}

fn a_declared_length_or_http_1_0_gets_the_bytes_as_they_are(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 1);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let request = format!("GET /file HTTP/1.1\r\nHost: {name}\r\n\r\n");
    caller.send(request.as_bytes()).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, "Content-Length: 6\r\n"));
    send(&mut svc, data('<', p, b"abc"));
    let head = caller_head(&mut caller);
    assert!(head.contains("Content-Length: 6\r\n"), "{head}");
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    assert_eq!(caller_bytes(&mut caller, 3), b"abc");
    assert_eq!(credit(&mut svc), (p, 3));
    // (Each piece's credit is awaited before the end: once the stream is over, none comes,
    // and a grant racing the end must not be left to arrive in the middle of what follows.)
    send(&mut svc, data('<', p, b"def"));
    assert_eq!(credit(&mut svc), (p, 3));
    send(&mut svc, tag("end", '<', p, None));
    assert_eq!(caller_bytes(&mut caller, 3), b"def");

    // HTTP/1.0 takes no chunks: the body runs until the connection closes.
    let request = format!("GET /log HTTP/1.0\r\nHost: {name}\r\n\r\n");
    caller.send(request.as_bytes()).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, ""));
    for line in [b"line 1\n", b"line 2\n"] {
        send(&mut svc, data('<', p, line));
        assert_eq!(credit(&mut svc), (p, 7));
    }
    send(&mut svc, tag("end", '<', p, None));
    let response = caller.response("GET");
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.body, b"line 1\nline 2\n");

    // HEAD: the head only, and the stream still ends (its data is credited, not written).
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let request = format!("HEAD /file HTTP/1.1\r\nHost: {name}\r\n\r\n");
    caller.send(request.as_bytes()).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, ""));
    send(&mut svc, data('<', p, b"not for a HEAD"));
    assert_eq!(credit(&mut svc), (p, 14));
    send(&mut svc, tag("end", '<', p, None));
    let response = caller.response("HEAD");
    assert_eq!(response.status(), 200);
    let request = format!("GET /file HTTP/1.1\r\nHost: {name}\r\n\r\n");
    caller
        .send(request.as_bytes())
        .expect("send the next request");
    svc.answer("after HEAD");
    assert_eq!(caller.response("GET").body, b"after HEAD");
}

fn a_broken_stream_never_looks_complete_to_an_internet_caller(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 1);
    // Chunked, then a reset: the connection closes before the last chunk.
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(format!("GET /a HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, ""));
    send(&mut svc, data('<', p, b"half"));
    assert_eq!(credit(&mut svc), (p, 4));
    send(&mut svc, tag("reset", '<', p, Some("cancel")));
    caller_head(&mut caller);
    assert_eq!(caller_bytes(&mut caller, 9), b"4\r\nhalf\r\n");
    assert_closed(&mut caller);

    // A declared length, then the service dies: the connection closes short of it.
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(format!("GET /b HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, "Content-Length: 100\r\n"));
    send(&mut svc, data('<', p, b"0123456789"));
    let head = caller_head(&mut caller);
    assert!(head.contains("Content-Length: 100"), "{head}");
    assert_eq!(caller_bytes(&mut caller, 10), b"0123456789");
    drop(svc);
    assert_closed(&mut caller);
}

/// The caller's connection closes with nothing more on it (no last chunk, no more bytes).
#[track_caller]
fn assert_closed(caller: &mut RawConn) {
    let mut rest = Vec::new();
    let read = caller.reader.read_to_end(&mut rest);
    assert!(
        read.is_ok() && rest.is_empty(),
        "closed with nothing more: {read:?} {rest:?}"
    );
}

fn an_internet_caller_that_leaves_resets_the_stream(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 0);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(format!("GET /tail HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, ""));
    send(&mut svc, data('<', p, b"first"));
    caller_head(&mut caller);
    assert_eq!(caller_bytes(&mut caller, 10), b"5\r\nfirst\r\n");
    assert_eq!(credit(&mut svc), (p, 5));
    drop(caller);
    let got = recv_tagged(&mut svc);
    assert_eq!(
        (got.verb.as_str(), got.cseq, got.arg.as_deref()),
        ("reset", p, Some("cancel"))
    );
}

/// A caller that stops reading: the target is held to its window (plus what the sockets
/// buffer), the proxy's memory does not grow with what the target would send, and once the
/// caller reads again every byte arrives.
fn a_slow_internet_caller_holds_the_target_to_its_window(driver: Driver) {
    const TOTAL: usize = 64 * 1024 * 1024;
    const PIECE: usize = 64 * 1024;
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 1);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(format!("GET /big HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(
        &mut svc,
        stream_head(p, &format!("Content-Length: {TOTAL}\r\n")),
    );
    let rss_before = common::proc_stats::vm_rss_kib(proxy.pid());
    let piece: Vec<u8> = (0..PIECE).map(|i| (i % 251) as u8).collect();
    let (mut sent, mut credit_left) = (0usize, WINDOW);
    // Send while there is credit; wait (bounded) for more when there is none.
    let stalled_at = loop {
        while credit_left >= PIECE && sent < TOTAL {
            send(&mut svc, data('<', p, &piece));
            sent += PIECE;
            credit_left -= PIECE;
        }
        match recv_within(&mut svc, Duration::from_millis(500)) {
            Some(message) => {
                let granted = message
                    .strip_prefix(&format!("~credit <{p} "))
                    .and_then(|n| n.trim_end().parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("expected credit, got {message:?}"));
                credit_left += granted;
            }
            None => break sent,
        }
        assert!(
            sent < TOTAL,
            "a caller that reads nothing took all {TOTAL} bytes"
        );
    };
    let rss_stalled = common::proc_stats::vm_rss_kib(proxy.pid());
    // What the proxy took is one window plus what the loopback sockets buffer, far short of
    // the download; and its memory did not grow by anything like what it took.
    assert!(stalled_at <= 16 * 1024 * 1024, "took {stalled_at} bytes");
    assert!(
        rss_stalled.saturating_sub(rss_before) < 8 * 1024,
        "proxy RSS grew from {rss_before} to {rss_stalled} KiB"
    );
    // Now the caller reads everything, and the service sends the rest as credit comes.
    let reader = std::thread::spawn(move || {
        let head = caller_head(&mut caller);
        assert!(head.contains(&format!("Content-Length: {TOTAL}")), "{head}");
        let mut body = vec![0u8; TOTAL];
        caller.reader.read_exact(&mut body).expect("the whole body");
        body
    });
    while sent < TOTAL {
        while credit_left >= PIECE && sent < TOTAL {
            send(&mut svc, data('<', p, &piece));
            sent += PIECE;
            credit_left -= PIECE;
        }
        if sent < TOTAL {
            credit_left += credit(&mut svc).1 as usize;
        }
    }
    send(&mut svc, tag("end", '<', p, None));
    let body = reader.join().expect("reader");
    assert!(
        body.chunks(PIECE).all(|c| c == &piece[..]),
        "the body arrived intact"
    );
}

/// curl -N against a service sending Server-Sent Events: each event is on curl's output
/// within 100 ms of the service sending it.
fn curl_gets_each_server_sent_event_as_it_is_sent(driver: Driver) {
    const EVENTS: usize = 5;
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "sse", 1);
    let mut curl = Command::new(CURL)
        .args(["-sSN", "--max-time", "20", "-H", &format!("Host: {name}")])
        .arg(format!("http://{}/events", proxy.addr))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl (on PATH; .ci/run installs it)");
    let stdout = curl.stdout.take().expect("curl's stdout");
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let (_, p) = head_of(&recv(&mut svc));
    send(
        &mut svc,
        stream_head(
            p,
            "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n",
        ),
    );
    let mut worst = Duration::ZERO;
    for i in 0..EVENTS {
        let sent = Instant::now();
        send(
            &mut svc,
            data('<', p, format!("data: event {i}\n\n").as_bytes()),
        );
        let (line, arrived) = lines
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("event {i} did not reach curl"));
        assert_eq!(line, format!("data: event {i}"));
        let (blank, _) = lines
            .recv_timeout(IO_TIMEOUT)
            .expect("the event's blank line");
        assert_eq!(blank, "");
        worst = worst.max(arrived - sent);
        // Drain the credit for it, and give the next event a moment of its own.
        credit(&mut svc);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < Duration::from_millis(100),
        "an event took {worst:?} to reach curl"
    );
    send(&mut svc, tag("end", '<', p, None));
    let status = curl.wait().expect("curl exits");
    assert!(status.success(), "curl ended with {status}");
    reader.join().expect("reader");
}

on_both_drivers!(
    a_streamed_answer_reaches_an_internet_caller_as_it_comes,
    a_declared_length_or_http_1_0_gets_the_bytes_as_they_are,
    a_broken_stream_never_looks_complete_to_an_internet_caller,
    an_internet_caller_that_leaves_resets_the_stream,
    a_slow_internet_caller_holds_the_target_to_its_window,
    curl_gets_each_server_sent_event_as_it_is_sent,
);
