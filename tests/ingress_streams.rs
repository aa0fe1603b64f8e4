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

/// The credit for `written` bytes that reached a caller who keeps up: what was written and as
/// much again, the window growing towards `--max-stream-window` (docs/protocol.md §12).
fn grown(written: u64) -> u64 {
    2 * written
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
        assert_eq!(credit(svc), (p, grown(11)));
        send(svc, data('<', p, b"data: two\n\n"));
        assert_eq!(caller_bytes(&mut caller, 16), b"b\r\ndata: two\n\n\r\n");
        assert_eq!(credit(svc), (p, grown(11)));
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
    assert_eq!(credit(&mut svc), (p, grown(3)));
    // (Each piece's credit is awaited before the end: once the stream is over, none comes,
    // and a grant racing the end must not be left to arrive in the middle of what follows.)
    send(&mut svc, data('<', p, b"def"));
    assert_eq!(credit(&mut svc), (p, grown(3)));
    send(&mut svc, tag("end", '<', p, None));
    assert_eq!(caller_bytes(&mut caller, 3), b"def");

    // HTTP/1.0 takes no chunks: the body runs until the connection closes.
    let request = format!("GET /log HTTP/1.0\r\nHost: {name}\r\n\r\n");
    caller.send(request.as_bytes()).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(&mut svc, stream_head(p, ""));
    for line in [b"line 1\n", b"line 2\n"] {
        send(&mut svc, data('<', p, line));
        assert_eq!(credit(&mut svc), (p, grown(7)));
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
    assert_eq!(credit(&mut svc), (p, grown(14)));
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
    assert_eq!(credit(&mut svc), (p, grown(4)));
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
    assert_eq!(credit(&mut svc), (p, grown(5)));
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
    // What the proxy took is at most the largest window (the window grows while the caller's
    // socket buffers still take every write: 4 MiB by default) plus what the loopback sockets
    // buffer, far short of the download; and its memory grew by no more than that window held
    // in the read blocks its pieces pin (twice the window), not by what the service would send.
    const MAX_WINDOW_KIB: u64 = 4 * 1024;
    assert!(stalled_at <= 16 * 1024 * 1024, "took {stalled_at} bytes");
    assert!(
        rss_stalled.saturating_sub(rss_before) < 3 * MAX_WINDOW_KIB,
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

/// A request head of an internet caller's upload to `name`, chunked.
fn chunked_upload(name: &str) -> String {
    format!("POST /up HTTP/1.1\r\nHost: {name}\r\nTransfer-Encoding: chunked\r\n\r\n")
}

/// One chunk of `payload`.
fn chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// A whole `200` answer to exchange `p`.
fn answer(svc: &mut Endpoint, p: u64, body: &str) {
    let len = body.len();
    send(
        svc,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nContent-Length: {len}\r\n\r\n{body}"),
    );
}

/// The target's next message: request data of exchange `p`; its payload.
#[track_caller]
fn upload_data(svc: &mut Endpoint, p: u64) -> Vec<u8> {
    let got = recv_tagged(svc);
    assert_eq!(
        (got.verb.as_str(), got.dir, got.cseq),
        ("data", '<', p),
        "{got:?}"
    );
    got.payload
}

/// An internet caller's chunked upload reaches a protocol-2 target as a stream: a stream head
/// without `Transfer-Encoding`, the data decoded, never more than the credit the target has
/// granted (the rest waits in the caller's socket), then the end; the answer goes back and
/// the connection stays open for the next request.
fn a_chunked_upload_streams_to_the_target_within_its_credit(driver: Driver) {
    const PIECE: usize = 16 * 1024;
    const EXTRA: usize = 64 * 1024;
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 1);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let mut request = chunked_upload(&name).into_bytes();
    request.extend_from_slice(&chunk(b"hello"));
    caller.send(&request).expect("send");
    let message = recv(&mut svc);
    let (head, p) = head_of(&message);
    assert!(head.starts_with("POST /up HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nHttpws-Stream: body"), "{head}");
    for absent in ["Transfer-Encoding", "Content-Length"] {
        assert!(!head.contains(absent), "{absent} in {head}");
    }
    assert!(
        message.ends_with(b"\r\n\r\n"),
        "a stream head carries no body"
    );
    assert_eq!(upload_data(&mut svc, p), b"hello");

    // More than the window: exactly the window arrives, then nothing until credit comes.
    let body = common::service::pattern(WINDOW + EXTRA);
    let mut chunks = Vec::new();
    for piece in body.chunks(PIECE) {
        chunks.extend_from_slice(&chunk(piece));
    }
    caller.send(&chunks).expect("send the chunks");
    let mut got = b"hello".to_vec();
    while got.len() < WINDOW {
        got.extend_from_slice(&upload_data(&mut svc, p));
    }
    assert_eq!(got.len(), WINDOW, "no more than the initial credit");
    assert_eq!(
        recv_within(&mut svc, Duration::from_millis(300)),
        None,
        "nothing beyond the credit"
    );
    send(
        &mut svc,
        tag("credit", '<', p, Some(&(EXTRA + 5).to_string())),
    );
    while got.len() < WINDOW + EXTRA + 5 {
        got.extend_from_slice(&upload_data(&mut svc, p));
    }
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&body);
    assert!(got == expected, "the upload arrives decoded, in order");
    caller
        .send(b"0\r\nX-Trailer: dropped\r\n\r\n")
        .expect("send the end");
    let got = recv_tagged(&mut svc);
    assert_eq!((got.verb.as_str(), got.cseq), ("end", p), "{got:?}");
    answer(&mut svc, p, "stored");
    let response = caller.response("POST");
    assert_eq!(
        (response.status(), &response.body[..]),
        (200, &b"stored"[..])
    );
    assert_eq!(response.header("connection"), None, "kept alive");
    // The next request on the connection is read from where the body ended.
    caller
        .send(format!("GET /next HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .expect("send");
    let (head, p) = head_of(&recv(&mut svc));
    assert!(head.starts_with("GET /next HTTP/1.1\r\n"), "{head}");
    answer(&mut svc, p, "next");
    assert_eq!(caller.response("GET").body, b"next");
}

/// A declared length over a window streams too, held to exactly that length.
fn a_large_declared_upload_streams_under_its_length(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 0);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let total = WINDOW + 1;
    let mut request =
        format!("PUT /file HTTP/1.1\r\nHost: {name}\r\nContent-Length: {total}\r\n\r\n")
            .into_bytes();
    let body = common::service::pattern(total);
    request.extend_from_slice(&body);
    caller.send(&request).expect("send");
    let (head, p) = head_of(&recv(&mut svc));
    assert!(
        head.contains(&format!("\r\nContent-Length: {total}")),
        "{head}"
    );
    assert!(head.contains("\r\nHttpws-Stream: body"), "{head}");
    let mut got = Vec::new();
    while got.len() < WINDOW {
        got.extend_from_slice(&upload_data(&mut svc, p));
    }
    send(&mut svc, tag("credit", '<', p, Some("1")));
    got.extend_from_slice(&upload_data(&mut svc, p));
    assert!(got == body, "the body arrives as it was sent");
    let got = recv_tagged(&mut svc);
    assert_eq!((got.verb.as_str(), got.cseq), ("end", p), "{got:?}");
    answer(&mut svc, p, "ok");
    assert_eq!(caller.response("PUT").body, b"ok");
}

/// The target answers before the upload ended: whole, the caller gets it and the connection
/// closes (its body was not read to the end); streamed, the answer is written to its end,
/// the target's request stream is reset (nothing more of it is wanted) and the connection
/// closes.
fn an_answer_before_the_upload_ended_closes_the_connection(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 1);

    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let mut request = chunked_upload(&name).into_bytes();
    request.extend_from_slice(&chunk(b"part"));
    caller.send(&request).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    assert_eq!(upload_data(&mut svc, p), b"part");
    send(
        &mut svc,
        format!("HTTP/1.1 507 Insufficient Storage\r\nCSeq: {p}\r\nContent-Length: 4\r\n\r\nfull"),
    );
    let response = caller.response("POST");
    assert_eq!((response.status(), &response.body[..]), (507, &b"full"[..]));
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(caller.closed_by_peer(), Ok(true));

    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let mut request = chunked_upload(&name).into_bytes();
    request.extend_from_slice(&chunk(b"part"));
    caller.send(&request).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    assert_eq!(upload_data(&mut svc, p), b"part");
    send(&mut svc, stream_head(p, ""));
    send(&mut svc, data('<', p, b"early"));
    send(&mut svc, tag("end", '<', p, None));
    let head = caller_head(&mut caller);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert_eq!(caller_bytes(&mut caller, 15), b"5\r\nearly\r\n0\r\n\r\n");
    let got = recv_tagged(&mut svc);
    assert_eq!(
        (got.verb.as_str(), got.cseq, got.arg.as_deref()),
        ("reset", p, Some("cancel")),
        "{got:?}"
    );
    assert_eq!(caller.closed_by_peer(), Ok(true));
}

/// An upload that breaks midway resets the target's stream: a caller that leaves, and one
/// whose chunks break the grammar (which gets `400`).
fn a_broken_upload_resets_the_target(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut svc, name) = public_v2(&proxy, "svc", 0);

    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let mut request = chunked_upload(&name).into_bytes();
    request.extend_from_slice(&chunk(b"part"));
    caller.send(&request).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    assert_eq!(upload_data(&mut svc, p), b"part");
    drop(caller);
    let got = recv_tagged(&mut svc);
    assert_eq!(
        (got.verb.as_str(), got.cseq, got.arg.as_deref()),
        ("reset", p, Some("cancel")),
        "{got:?}"
    );

    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    let mut request = chunked_upload(&name).into_bytes();
    request.extend_from_slice(&chunk(b"part"));
    caller.send(&request).expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    assert_eq!(upload_data(&mut svc, p), b"part");
    caller.send(b"zz\r\n").expect("send a bad chunk size");
    let response = caller.response("POST");
    assert_eq!(response.status(), 400, "{response:?}");
    assert_eq!(response.header("httpws-error"), Some("bad-request"));
    let got = recv_tagged(&mut svc);
    assert_eq!(
        (got.verb.as_str(), got.cseq, got.arg.as_deref()),
        ("reset", p, Some("cancel")),
        "{got:?}"
    );
    assert_eq!(caller.closed_by_peer(), Ok(true));
}

/// The `--domain` under which the upgrade tests name endpoints.
const DOMAIN: &str = "tunnel.test";

/// The first request on a connection to the proxy's own port: an upgrade whose Host names
/// an endpoint under the proxy's domain.
fn upgrade_request(name: &str) -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: {name}.{DOMAIN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// An internet caller's upgrade to a protocol-2 endpoint passes through: the target gets a
/// stream head that keeps `Connection: Upgrade` and `Upgrade`, its streamed `101` reaches the
/// caller with them, and the connection then carries bytes both ways as they are, with
/// credit, each side ending on its own (the target's end half-closes the caller's
/// connection; the caller's close ends the exchange).
fn an_upgrade_to_an_endpoint_becomes_two_byte_streams(driver: Driver) {
    let proxy = Proxy::start(driver, &["--domain", DOMAIN]);
    let (mut svc, name) = public_v2(&proxy, "chat", 1);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(upgrade_request(&name).as_bytes())
        .expect("send");
    let message = recv(&mut svc);
    let (head, p) = head_of(&message);
    for line in [
        "GET /chat HTTP/1.1\r\n",
        "\r\nConnection: Upgrade\r\n",
        "\r\nUpgrade: websocket\r\n",
        "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        "\r\nHttpws-Stream: body",
        "\r\nHttpws-From: -internet-",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    send(
        &mut svc,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nCSeq: {p}\r\nHttpws-Stream: body\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        ),
    );
    let head = caller_head(&mut caller);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    for line in [
        "\r\nConnection: Upgrade\r\n",
        "\r\nUpgrade: websocket\r\n",
        "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    for absent in [
        "CSeq",
        "Httpws-Stream",
        "Content-Length",
        "Transfer-Encoding",
    ] {
        assert!(!head.contains(absent), "{absent} in {head}");
    }
    // Bytes both ways, as they are.
    caller.send(b"\x81\x04ping").expect("send");
    assert_eq!(upload_data(&mut svc, p), b"\x81\x04ping");
    send(&mut svc, data('<', p, b"\x81\x04pong"));
    assert_eq!(caller_bytes(&mut caller, 6), b"\x81\x04pong");
    assert_eq!(credit(&mut svc), (p, grown(6)));
    // The target's side ends: the caller reads the end, and may still send.
    send(&mut svc, tag("end", '<', p, None));
    let mut rest = Vec::new();
    caller
        .reader
        .read_to_end(&mut rest)
        .expect("the end of the target's side");
    assert!(rest.is_empty(), "{rest:?}");
    caller.send(b"late").expect("send after the target's end");
    assert_eq!(upload_data(&mut svc, p), b"late");
    caller
        .stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shut the caller's side");
    let got = recv_tagged(&mut svc);
    assert_eq!((got.verb.as_str(), got.cseq), ("end", p), "{got:?}");
}

/// An upgrade the target does not switch gets its answer, and the connection closes; one to
/// a protocol-1 target (whole messages only) is `502 bad-response`; one to the proxy itself
/// is a registration, as ever.
fn an_upgrade_not_switched_is_an_ordinary_answer(driver: Driver) {
    let proxy = Proxy::start(driver, &["--domain", DOMAIN]);
    let (mut svc, name) = public_v2(&proxy, "chat", 0);
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(upgrade_request(&name).as_bytes())
        .expect("send");
    let (_, p) = head_of(&recv(&mut svc));
    send(
        &mut svc,
        format!("HTTP/1.1 403 Forbidden\r\nCSeq: {p}\r\nContent-Length: 2\r\n\r\nno"),
    );
    let response = caller.response("GET");
    assert_eq!((response.status(), &response.body[..]), (403, &b"no"[..]));
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(caller.closed_by_peer(), Ok(true));

    let _old = common::ws::connect(&proxy, "/old?public=1");
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(upgrade_request("old").as_bytes())
        .expect("send");
    let response = caller.response("GET");
    assert_eq!(response.status(), 502, "{response:?}");
    assert_eq!(response.header("httpws-error"), Some("bad-response"));

    // An upgrade to the proxy's own names, or to a bare name (the proxy may be reached by a
    // host name that is also an address), is a registration.
    let hosts = [DOMAIN.to_owned(), "chat".to_owned(), proxy.addr.to_string()];
    for (i, host) in hosts.iter().enumerate() {
        let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
        let handshake = format!(
            "GET /newcomer{i} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        caller.send(handshake.as_bytes()).expect("send");
        let head = caller_head(&mut caller);
        assert!(head.starts_with("HTTP/1.1 101 "), "{host}: {head}");
        // The registration's first message: a text frame `:host <name>`.
        let host_line = format!(":host newcomer{i}");
        let frame = caller_bytes(&mut caller, 2 + host_line.len());
        assert_eq!(&frame[2..], host_line.as_bytes(), "{host}");
    }
}

on_both_drivers!(
    an_upgrade_to_an_endpoint_becomes_two_byte_streams,
    an_upgrade_not_switched_is_an_ordinary_answer,
    a_chunked_upload_streams_to_the_target_within_its_credit,
    a_large_declared_upload_streams_under_its_length,
    an_answer_before_the_upload_ended_closes_the_connection,
    a_broken_upload_resets_the_target,
    a_streamed_answer_reaches_an_internet_caller_as_it_comes,
    a_declared_length_or_http_1_0_gets_the_bytes_as_they_are,
    a_broken_stream_never_looks_complete_to_an_internet_caller,
    an_internet_caller_that_leaves_resets_the_stream,
    a_slow_internet_caller_holds_the_target_to_its_window,
    curl_gets_each_server_sent_event_as_it_is_sent,
);
