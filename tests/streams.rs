//! Protocol 2 streams through the real proxy (docs/protocol.md §12), driven by tungstenite
//! endpoints that negotiate `httpws.2` and speak the stream messages by hand: heads with
//! `Httpws-Stream: body`, `~data`/`~end`/`~credit`/`~reset` tagged with the exchange's CSeq,
//! flow control, every way a stream ends, and the bridges to protocol-1 peers (internet
//! callers: tests/ingress_streams.rs). Every case runs on both io drivers, with the two
//! endpoints on different shards.

mod common;

use std::time::Duration;

use common::IO_TIMEOUT;
use common::driver::Driver;
use common::proxy::{Proxy, name_on_shard};
use common::raw_conn::RawConn;
use common::stream_wire::{connect_v2, data, head_of, pair, recv, recv_tagged, send, tag};
use common::ws::{connect, recv_within};

/// The initial credit of each direction of a stream (docs/protocol.md §12).
const WINDOW: usize = 256 * 1024;

fn stream_request(target: &str, cseq: u64, extra: &str) -> String {
    format!(
        "POST /up HTTP/1.1\r\nHost: {target}\r\nCSeq: {cseq}\r\nHttpws-Stream: body\r\n{extra}\r\n"
    )
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// =============================================================================================
// Negotiation and the stream path
// =============================================================================================

fn protocol_2_is_negotiated_only_when_asked(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    for (name, offer, expect) in [
        ("v2-only", Some("httpws.2"), Some("httpws.2")),
        ("v2-listed", Some("chat, httpws.2"), Some("httpws.2")),
        ("v2-elsewhere", Some("chat"), None),
        ("v1", None, None),
    ] {
        let mut conn = RawConn::connect(proxy.addr, IO_TIMEOUT);
        let offer = offer.map_or(String::new(), |o| {
            format!("Sec-WebSocket-Protocol: {o}\r\n")
        });
        conn.send(
            format!(
                "GET /{name} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 {offer}\r\n"
            )
            .as_bytes(),
        )
        .expect("send");
        let head = common::http1::read_head(&mut conn.reader, 8192)
            .expect("read")
            .expect("a head");
        let head = common::http1::Head::parse(&head).expect("a response head");
        assert_eq!(head.status(), Some(101), "{name}");
        assert_eq!(head.header("sec-websocket-protocol"), expect, "{name}");
    }
}

fn a_streamed_response_reaches_the_caller_piece_by_piece(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(
        &mut alice,
        format!("GET /events HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 41\r\n\r\n"),
    );
    let (request, proxy_cseq) = head_of(&recv(&mut bob));
    assert!(request.starts_with("GET /events HTTP/1.1"), "{request}");
    send(
        &mut bob,
        format!(
            "HTTP/1.1 200 OK\r\nCSeq: {proxy_cseq}\r\nContent-Type: text/event-stream\r\n\
             Httpws-Stream: body\r\n\r\n"
        ),
    );
    let (head, cseq) = head_of(&recv(&mut alice));
    assert_eq!(cseq, 41);
    assert!(head.contains("Httpws-Stream: body"), "{head}");
    // Each event arrives on its own, before the next is sent.
    for i in 0..3 {
        let event = format!("data: event {i}\n\n");
        send(&mut bob, data('<', proxy_cseq, event.as_bytes()));
        let got = recv_tagged(&mut alice);
        assert_eq!((got.verb.as_str(), got.dir, got.cseq), ("data", '>', 41));
        assert_eq!(got.payload, event.as_bytes());
    }
    send(&mut bob, tag("end", '<', proxy_cseq, None));
    let got = recv_tagged(&mut alice);
    assert_eq!((got.verb.as_str(), got.dir, got.cseq), ("end", '>', 41));
    // The exchange is over: the caller's CSeq is free again.
    send(
        &mut alice,
        format!("GET /again HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 41\r\n\r\n"),
    );
    let (again, _) = head_of(&recv(&mut bob));
    assert!(again.starts_with("GET /again"), "{again}");
}

fn a_streamed_upload_obeys_credit_and_its_bytes_arrive_intact(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(&mut alice, stream_request(&bob_name, 7, ""));
    let (head, proxy_cseq) = head_of(&recv(&mut bob));
    assert!(head.contains("Httpws-Stream: body"), "{head}");
    // The first window goes in 64 KiB pieces; bob grants more as it reads.
    let body = pattern(WINDOW + 100_000, 3);
    let mut sent = 0;
    let mut received = Vec::new();
    for piece in body[..WINDOW].chunks(64 * 1024) {
        send(&mut alice, data('>', 7, piece));
        sent += piece.len();
    }
    while received.len() < sent {
        let got = recv_tagged(&mut bob);
        assert_eq!(
            (got.verb.as_str(), got.dir, got.cseq),
            ("data", '<', proxy_cseq)
        );
        received.extend_from_slice(&got.payload);
    }
    send(&mut bob, tag("credit", '<', proxy_cseq, Some("100000")));
    let credit = recv_tagged(&mut alice);
    assert_eq!(
        (
            credit.verb.as_str(),
            credit.dir,
            credit.cseq,
            credit.arg.as_deref()
        ),
        ("credit", '>', 7, Some("100000"))
    );
    send(&mut alice, data('>', 7, &body[WINDOW..]));
    send(&mut alice, tag("end", '>', 7, None));
    let got = recv_tagged(&mut bob);
    received.extend_from_slice(&got.payload);
    assert_eq!(recv_tagged(&mut bob).verb, "end");
    assert_eq!(received, body, "the upload arrives byte for byte");
    send(
        &mut bob,
        format!("HTTP/1.1 201 Created\r\nCSeq: {proxy_cseq}\r\nContent-Length: 0\r\n\r\n"),
    );
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(cseq, 7);
}

/// A receiver may grow a stream's window, but never past `--max-stream-window` outstanding:
/// a grant beyond it is clipped on the way, and data beyond the clipped credit resets.
fn grants_are_clipped_at_the_max_stream_window(driver: Driver) {
    const WINDOW: u64 = 256 * 1024;
    const MAX: u64 = 300_000;
    let proxy = Proxy::start(driver, &["--max-stream-window", &MAX.to_string()]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(
        &mut alice,
        format!("GET /big HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 5\r\n\r\n"),
    );
    let (_, p) = head_of(&recv(&mut bob));
    send(
        &mut bob,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nHttpws-Stream: body\r\n\r\n"),
    );
    head_of(&recv(&mut alice));
    // Alice grants far more than the window; bob is told only what tops it up to the maximum.
    send(&mut alice, tag("credit", '>', 5, Some("1000000000")));
    let got = recv_tagged(&mut bob);
    assert_eq!((got.verb.as_str(), got.cseq), ("credit", p), "{got:?}");
    assert_eq!(got.arg.as_deref(), Some(&*(MAX - WINDOW).to_string()));
    // Bob may send the maximum, not a byte more.
    let piece = vec![b'x'; MAX as usize];
    send(&mut bob, data('<', p, &piece));
    assert_eq!(recv_tagged(&mut alice).payload.len(), MAX as usize);
    send(&mut bob, data('<', p, b"!"));
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (reset.verb.as_str(), reset.arg.as_deref()),
        ("reset", Some("flow-control"))
    );
}

fn data_over_the_credit_resets_the_stream_for_both(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(&mut alice, stream_request(&bob_name, 9, ""));
    let (_, proxy_cseq) = head_of(&recv(&mut bob));
    send(&mut alice, data('>', 9, &pattern(WINDOW, 1)));
    assert_eq!(recv_tagged(&mut bob).payload.len(), WINDOW);
    // One byte more than bob granted.
    send(&mut alice, data('>', 9, b"x"));
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (reset.verb.as_str(), reset.cseq, reset.arg.as_deref()),
        ("reset", proxy_cseq, Some("flow-control"))
    );
    // alice had no response yet: her answer is an error, and the exchange is over.
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("Httpws-Error: bad-response"), "{answer}");
    assert_eq!(cseq, 9);
    // Both sides still work.
    send(
        &mut alice,
        format!("GET /ok HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 10\r\n\r\n"),
    );
    let (seen, _) = head_of(&recv(&mut bob));
    assert!(seen.starts_with("GET /ok"));
}

fn a_reset_from_either_side_reaches_the_other_and_frees_the_stream(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    // The caller gives up on a streamed answer.
    send(
        &mut alice,
        format!("GET /long HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 1\r\n\r\n"),
    );
    let (_, p1) = head_of(&recv(&mut bob));
    send(
        &mut bob,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p1}\r\nHttpws-Stream: body\r\n\r\n"),
    );
    head_of(&recv(&mut alice));
    send(&mut alice, tag("reset", '>', 1, Some("cancel")));
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (
            reset.verb.as_str(),
            reset.dir,
            reset.cseq,
            reset.arg.as_deref()
        ),
        ("reset", '<', p1, Some("cancel"))
    );
    // Late data from bob for it is dropped quietly; alice's CSeq 1 is free.
    send(&mut bob, data('<', p1, b"late"));
    // The target gives up on a streamed request.
    send(&mut alice, stream_request(&bob_name, 1, ""));
    let (_, p2) = head_of(&recv(&mut bob));
    send(&mut bob, tag("reset", '<', p2, Some("cancel")));
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert_eq!(cseq, 1);
    assert!(answer.contains("Httpws-Error: target-gone"), "{answer}");
    assert!(recv_within(&mut alice, Duration::from_millis(100)).is_none());
}

fn a_target_that_dies_mid_stream_gives_the_caller_a_broken_stream(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(
        &mut alice,
        format!("GET /big HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 5\r\n\r\n"),
    );
    let (_, p) = head_of(&recv(&mut bob));
    send(
        &mut bob,
        format!(
            "HTTP/1.1 200 OK\r\nCSeq: {p}\r\nContent-Length: 1000\r\nHttpws-Stream: body\r\n\r\n"
        ),
    );
    head_of(&recv(&mut alice));
    send(&mut bob, data('<', p, &[b'a'; 400]));
    assert_eq!(recv_tagged(&mut alice).payload.len(), 400);
    drop(bob);
    // Never an end: a reset, so the caller cannot take 400 of 1,000 bytes for the whole body.
    let got = recv_tagged(&mut alice);
    assert_eq!(
        (got.verb.as_str(), got.cseq, got.arg.as_deref()),
        ("reset", 5, Some("target-gone"))
    );
}

fn a_caller_that_dies_mid_stream_resets_the_target(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(&mut alice, stream_request(&bob_name, 3, ""));
    let (_, p) = head_of(&recv(&mut bob));
    send(&mut alice, data('>', 3, b"part"));
    assert_eq!(recv_tagged(&mut bob).payload, b"part");
    drop(alice);
    let got = recv_tagged(&mut bob);
    assert_eq!(
        (got.verb.as_str(), got.dir, got.cseq, got.arg.as_deref()),
        ("reset", '<', p, Some("cancel"))
    );
}

fn a_declared_length_is_held_to(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(
        &mut alice,
        stream_request(&bob_name, 2, "Content-Length: 5\r\n"),
    );
    let (_, _p) = head_of(&recv(&mut bob));
    send(&mut alice, data('>', 2, b"123456"));
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (reset.verb.as_str(), reset.arg.as_deref()),
        ("reset", Some("too-large"))
    );
    let (answer, _) = head_of(&recv(&mut alice));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Ending short of it is a broken stream too.
    send(
        &mut alice,
        stream_request(&bob_name, 3, "Content-Length: 5\r\n"),
    );
    let (_, p) = head_of(&recv(&mut bob));
    send(&mut alice, data('>', 3, b"12"));
    recv_tagged(&mut bob);
    send(&mut alice, tag("end", '>', 3, None));
    let reset = recv_tagged(&mut bob);
    assert_eq!((reset.verb.as_str(), reset.cseq), ("reset", p));
}

fn an_idle_stream_is_reset_timeout(driver: Driver) {
    let proxy = Proxy::start(driver, &["--stream-idle-timeout", "300ms"]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(&mut alice, stream_request(&bob_name, 4, ""));
    let (_, p) = head_of(&recv(&mut bob));
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (reset.verb.as_str(), reset.cseq, reset.arg.as_deref()),
        ("reset", p, Some("timeout"))
    );
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert_eq!(cseq, 4);
    assert!(answer.contains("Httpws-Error: timeout"), "{answer}");
}

/// A stream head that comes after its caller was answered `timeout` is late: the target is
/// told its stream is over (`reset timeout`) instead of waiting for credit that never comes.
fn a_late_stream_head_is_reset_timeout(driver: Driver) {
    let proxy = Proxy::start(driver, &["--request-timeout", "300ms"]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    send(
        &mut alice,
        format!("GET /slow HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 9\r\n\r\n"),
    );
    let (_, p) = head_of(&recv(&mut bob));
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert_eq!(cseq, 9);
    assert!(answer.contains("Httpws-Error: timeout"), "{answer}");
    send(
        &mut bob,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nHttpws-Stream: body\r\n\r\n"),
    );
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (reset.verb.as_str(), reset.cseq, reset.arg.as_deref()),
        ("reset", p, Some("timeout"))
    );
}

// =============================================================================================
// Bridges: protocol-1 peers and internet callers take whole messages
// =============================================================================================

fn a_protocol_1_caller_gets_a_streamed_response_whole(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-message-bytes", "65536"]);
    let mut old = connect(&proxy, &format!("/{}", name_on_shard("old", 0, 2)));
    let bob_name = name_on_shard("bob", 1, 2);
    let mut bob = connect_v2(&proxy, &bob_name);
    send(
        &mut old,
        format!("GET /f HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 8\r\n\r\n"),
    );
    let (_, p) = head_of(&recv(&mut bob));
    send(
        &mut bob,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nHttpws-Stream: body\r\n\r\n"),
    );
    let body = pattern(WINDOW / 8, 7);
    for piece in body.chunks(5000) {
        send(&mut bob, data('<', p, piece));
        // The proxy reads for the protocol-1 caller and grants what it took.
        let credit = recv_tagged(&mut bob);
        assert_eq!(credit.verb, "credit");
    }
    send(&mut bob, tag("end", '<', p, None));
    let whole = recv(&mut old);
    let (head, cseq) = head_of(&whole);
    assert_eq!(cseq, 8);
    assert!(!head.contains("Httpws-Stream"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    let at = whole
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    assert_eq!(&whole[at..], &body[..]);
    // Past the message limit: the caller gets an error, the target a reset.
    send(
        &mut old,
        format!("GET /huge HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: 9\r\n\r\n"),
    );
    let (_, p) = head_of(&recv(&mut bob));
    send(
        &mut bob,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nHttpws-Stream: body\r\n\r\n"),
    );
    let mut reset = None;
    for piece in pattern(70_000, 1).chunks(10_000) {
        send(&mut bob, data('<', p, piece));
        let got = recv_tagged(&mut bob);
        if got.verb == "reset" {
            reset = Some(got);
            break;
        }
    }
    let reset = reset.expect("the target is reset past the limit");
    assert_eq!(reset.arg.as_deref(), Some("too-large"));
    let (answer, cseq) = head_of(&recv(&mut old));
    assert_eq!(cseq, 9);
    assert!(answer.contains("Httpws-Error: bad-response"), "{answer}");
}

fn a_protocol_1_target_gets_a_streamed_request_whole(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let alice_name = name_on_shard("alice", 0, 2);
    let mut alice = connect_v2(&proxy, &alice_name);
    let old_name = name_on_shard("old", 1, 2);
    let mut old = connect(&proxy, &format!("/{old_name}"));
    send(&mut alice, stream_request(&old_name, 6, ""));
    send(&mut alice, data('>', 6, b"hello "));
    send(&mut alice, data('>', 6, b"world"));
    send(&mut alice, tag("end", '>', 6, None));
    // alice gets credit back as the proxy takes the body in.
    assert_eq!(recv_tagged(&mut alice).verb, "credit");
    assert_eq!(recv_tagged(&mut alice).verb, "credit");
    let whole = recv(&mut old);
    let (head, p) = head_of(&whole);
    assert!(head.starts_with("POST /up HTTP/1.1"), "{head}");
    assert!(!head.contains("Httpws-Stream"), "{head}");
    assert!(head.contains("Content-Length: 11"), "{head}");
    assert!(
        head.contains(&format!("Httpws-From: {alice_name}")),
        "{head}"
    );
    assert!(whole.ends_with(b"\r\n\r\nhello world"));
    send(
        &mut old,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nContent-Length: 2\r\n\r\nok"),
    );
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert_eq!(cseq, 6);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

// =============================================================================================
// What protocol 1 may not send, and stream limits
// =============================================================================================

fn protocol_1_may_not_stream(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut old = connect(&proxy, "/old");
    let _bob = connect_v2(&proxy, "bob");
    send(&mut old, stream_request("bob", 1, ""));
    let (answer, cseq) = head_of(&recv(&mut old));
    assert_eq!(cseq, 1);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    send(&mut old, data('>', 1, b"x"));
    let text = String::from_utf8(recv(&mut old)).expect("text");
    assert!(text.starts_with(":error bad-message"), "{text}");
}

fn stream_messages_for_unknown_or_ended_exchanges(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-streams", "2"]);
    let (mut alice, mut bob, bob_name) = pair(&proxy, "alice", "bob");
    // An exchange alice never opened (or one that just ended: the proxy cannot tell): dropped
    // quietly; the next thing alice receives is the answer below, not an error.
    send(&mut alice, data('>', 77, b"x"));
    send(&mut alice, tag("credit", '>', 78, Some("5")));
    // A CSeq the proxy never gave bob.
    send(&mut bob, data('<', 999, b"x"));
    let text = String::from_utf8(recv(&mut bob)).expect("text");
    assert!(text.starts_with(":error unknown-cseq"), "{text}");
    // Data after end resets the stream.
    send(&mut alice, stream_request(&bob_name, 1, ""));
    let (_, p) = head_of(&recv(&mut bob));
    send(&mut alice, tag("end", '>', 1, None));
    assert_eq!(recv_tagged(&mut bob).verb, "end");
    send(
        &mut bob,
        format!("HTTP/1.1 200 OK\r\nCSeq: {p}\r\nHttpws-Stream: body\r\n\r\n"),
    );
    head_of(&recv(&mut alice));
    send(&mut alice, data('>', 1, b"after end"));
    let reset = recv_tagged(&mut bob);
    assert_eq!(
        (reset.verb.as_str(), reset.arg.as_deref()),
        ("reset", Some("protocol"))
    );
    let reset = recv_tagged(&mut alice);
    assert_eq!(
        (reset.verb.as_str(), reset.arg.as_deref()),
        ("reset", Some("protocol"))
    );
    // A flood of open streams stops at --max-streams.
    for cseq in 10..12 {
        send(&mut alice, stream_request(&bob_name, cseq, ""));
        head_of(&recv(&mut bob));
    }
    send(&mut alice, stream_request(&bob_name, 12, ""));
    let (answer, cseq) = head_of(&recv(&mut alice));
    assert_eq!(cseq, 12);
    assert!(answer.contains("Httpws-Error: target-busy"), "{answer}");
}

on_both_drivers!(
    protocol_2_is_negotiated_only_when_asked,
    a_streamed_response_reaches_the_caller_piece_by_piece,
    a_streamed_upload_obeys_credit_and_its_bytes_arrive_intact,
    grants_are_clipped_at_the_max_stream_window,
    a_late_stream_head_is_reset_timeout,
    data_over_the_credit_resets_the_stream_for_both,
    a_reset_from_either_side_reaches_the_other_and_frees_the_stream,
    a_target_that_dies_mid_stream_gives_the_caller_a_broken_stream,
    a_caller_that_dies_mid_stream_resets_the_target,
    a_declared_length_is_held_to,
    an_idle_stream_is_reset_timeout,
    a_protocol_1_caller_gets_a_streamed_response_whole,
    a_protocol_1_target_gets_a_streamed_request_whole,
    protocol_1_may_not_stream,
    stream_messages_for_unknown_or_ended_exchanges,
);
