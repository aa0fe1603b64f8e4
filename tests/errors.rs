//! Every per-request error of docs/protocol.md §2 (status, `Httpws-Error` token, the
//! caller's CSeq) and the connection-level `:error` indications, through the real proxy
//! binary on both io drivers.
//!
//! `forbidden` (403) comes from access rules in a tokens file and is tested with them, in
//! `tests/access.rs`.
//!
//! "Nothing else arrived" is shown with a barrier, not a timeout: a later request/response
//! round trip whose answer must be the very next message.

mod common;

use common::driver::Driver;
use common::message::Http;
use common::proxy::Proxy;
use common::proxy_errors::{assert_proxy_error, expect_indication, parse_error_indication};
use common::raw_ws::RawClient;
use common::ws::{Endpoint, connect};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

/// `from` asks `to` for `path` with `cseq`; `to`'s next message must be exactly that request,
/// and `from`'s next message exactly its answer. This is the barrier that shows nothing else
/// was queued for either of them.
#[track_caller]
fn round_trip(from: &mut Endpoint, to: &mut Endpoint, cseq: u64, path: &str) {
    let target = to.address.clone();
    from.request(&target, cseq, path);
    let seen = to.recv_http();
    assert_eq!(
        seen.start,
        format!("GET {path} HTTP/1.1"),
        "{} expected {from}'s request next, got {seen:?}",
        to.address,
        from = from.address
    );
    let proxy_cseq = seen.cseq();
    let body = format!("answer to {path}");
    to.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {proxy_cseq}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let response = from.recv_http();
    assert_eq!(
        response.status(),
        200,
        "{} expected the answer next, got {response:?}",
        from.address
    );
    assert_eq!(response.cseq(), cseq);
    assert_eq!(response.body, body);
}

/// Answer `request` (as received by the target) with 200 and `body`.
fn answer_to(ep: &mut Endpoint, request: &Http, body: &str) {
    ep.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{body}",
        request.cseq(),
        body.len()
    ));
}

// ---------------------------------------------------------------------------------------------
// Per-request errors
// ---------------------------------------------------------------------------------------------

fn unknown_address_gets_404(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    alice.request("nobody", 7, "/");
    assert_proxy_error(&alice.recv_http(), 404, "unknown-address", 7);
    alice.request("nobody.else:8080", 8, "/");
    assert_proxy_error(&alice.recv_http(), 404, "unknown-address", 8);
    // The connection stays usable.
    round_trip(&mut alice, &mut bob, 9, "/after");
}

fn unknown_address_after_the_holder_left(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    round_trip(&mut alice, &mut bob, 1, "/first");
    // Bob closes cleanly; the proxy echoes the close, and by then bob's address is free.
    bob.ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .expect("close");
    assert_eq!(
        bob.expect_close(),
        Some(1000),
        "the proxy echoes the close code"
    );
    drop(bob);
    alice.request("bob", 100, "/gone");
    assert_proxy_error(&alice.recv_http(), 404, "unknown-address", 100);
    // And the name can be registered again.
    let mut bob = connect(&proxy, "/bob");
    round_trip(&mut alice, &mut bob, 101, "/again");
}

fn bad_request_gets_400_with_the_callers_cseq(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    // A CSeq but no Host.
    alice.send("GET / HTTP/1.1\r\nCSeq: 5\r\n\r\n");
    assert_proxy_error(&alice.recv_http(), 400, "bad-request", 5);
    // A Host that is not a virtual address.
    alice.send("GET / HTTP/1.1\r\nHost: bad_name\r\nCSeq: 6\r\n\r\n");
    assert_proxy_error(&alice.recv_http(), 400, "bad-request", 6);
    alice.send("GET / HTTP/1.1\r\nHost: -bob\r\nCSeq: 7\r\n\r\n");
    assert_proxy_error(&alice.recv_http(), 400, "bad-request", 7);
    // Two Hosts: ambiguous target.
    alice.send("GET / HTTP/1.1\r\nHost: bob\r\nHost: alice\r\nCSeq: 8\r\n\r\n");
    assert_proxy_error(&alice.recv_http(), 400, "bad-request", 8);
    // A binary request gets its error back too.
    alice
        .ws
        .send(Message::binary(
            b"GET / HTTP/1.1\r\nHost: bad_name\r\nCSeq: 9\r\n\r\n".to_vec(),
        ))
        .expect("send binary");
    assert_proxy_error(&alice.recv_http(), 400, "bad-request", 9);

    // None of those reached bob, and alice's CSeqs were not left in flight (reusable).
    round_trip(&mut alice, &mut bob, 5, "/after");
    round_trip(&mut alice, &mut bob, 6, "/after-again");
}

fn target_busy_when_the_callers_inflight_limit_is_full(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-inflight", "2"]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    alice.request("bob", 1, "/1");
    alice.request("bob", 2, "/2");
    alice.request("bob", 3, "/3");
    // The third is refused at once, with its own CSeq.
    assert_proxy_error(&alice.recv_http(), 503, "target-busy", 3);

    // Bob got exactly the first two, and answers them.
    let first = bob.recv_http();
    let second = bob.recv_http();
    assert_eq!(first.start, "GET /1 HTTP/1.1");
    assert_eq!(second.start, "GET /2 HTTP/1.1");
    answer_to(&mut bob, &second, "two");
    answer_to(&mut bob, &first, "one");
    let mut got: Vec<(u64, u16, String)> = (0..2)
        .map(|_| {
            let r = alice.recv_http();
            (r.cseq(), r.status(), r.body)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![(1, 200, "one".to_string()), (2, 200, "two".to_string())]
    );
    // The refused /3 was never delivered: bob's next request is /4.
    round_trip(&mut alice, &mut bob, 4, "/4");
}

fn target_busy_when_the_targets_inflight_limit_is_full(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-inflight", "2"]);
    let mut alice = connect(&proxy, "/alice");
    let mut carol = connect(&proxy, "/carol");
    let mut dave = connect(&proxy, "/dave");
    let mut bob = connect(&proxy, "/bob");

    // Two different callers fill bob's in-flight limit (each caller has only one in flight).
    alice.request("bob", 1, "/from-alice");
    let first = bob.recv_http();
    carol.request("bob", 1, "/from-carol");
    let second = bob.recv_http();
    assert_eq!(first.start, "GET /from-alice HTTP/1.1");
    assert_eq!(second.start, "GET /from-carol HTTP/1.1");

    // A third caller is refused with its CSeq.
    dave.request("bob", 42, "/from-dave");
    assert_proxy_error(&dave.recv_http(), 503, "target-busy", 42);

    // Bob answers both; each caller gets its own answer.
    answer_to(&mut bob, &second, "carol's");
    answer_to(&mut bob, &first, "alice's");
    let to_carol = carol.recv_http();
    assert_eq!(
        (to_carol.status(), to_carol.cseq(), to_carol.body.as_str()),
        (200, 1, "carol's")
    );
    let to_alice = alice.recv_http();
    assert_eq!(
        (to_alice.status(), to_alice.cseq(), to_alice.body.as_str()),
        (200, 1, "alice's")
    );
    // With the limit free again dave gets through, and bob never saw the refused request.
    round_trip(&mut dave, &mut bob, 42, "/dave-again");
}

fn target_gone_answers_each_pending_request_once(driver: Driver) {
    const N: u64 = 5;
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    for cseq in 1..=N {
        alice.request("bob", cseq * 10, &format!("/{cseq}"));
    }
    // All N are pending on bob (bob has read them) before bob disappears.
    for cseq in 1..=N {
        assert_eq!(bob.recv_http().start, format!("GET /{cseq} HTTP/1.1"));
    }
    drop(bob);

    let mut cseqs: Vec<u64> = (0..N)
        .map(|_| {
            let r = alice.recv_http();
            assert_eq!(r.status(), 502, "{r:?}");
            assert_eq!(r.all("httpws-error"), vec!["target-gone"], "{r:?}");
            r.cseq()
        })
        .collect();
    cseqs.sort();
    assert_eq!(
        cseqs,
        (1..=N).map(|c| c * 10).collect::<Vec<_>>(),
        "one 502 per CSeq"
    );

    // Barrier: bob's address is free now (the 502s come after it is), and the 404 for it is
    // made on the same shard as the 502s, so any duplicate would arrive before it.
    alice.request("bob", 999, "/gone");
    assert_proxy_error(&alice.recv_http(), 404, "unknown-address", 999);
    // And the CSeqs are free again: reusing one is not a duplicate.
    let mut carol = connect(&proxy, "/carol");
    round_trip(&mut alice, &mut carol, 10, "/reuse");
}

fn timeout_gets_504_and_the_late_answer_is_dropped(driver: Driver) {
    let proxy = Proxy::start(driver, &["--request-timeout", "300ms"]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    alice.request("bob", 7, "/slow");
    let seen = bob.recv_http();
    assert_eq!(seen.start, "GET /slow HTTP/1.1");
    // Bob sits on it; the read below is bounded by the harness timeout (10 s), far longer
    // than the 300 ms deadline.
    assert_proxy_error(&alice.recv_http(), 504, "timeout", 7);

    // The late answer: dropped without a word to either side.
    answer_to(&mut bob, &seen, "too late");
    // Barrier for bob: a request of its own, sent after the late answer on the same
    // connection. Any `:error` about the late answer would be queued to bob before the answer.
    // Barrier for alice: a relayed late answer would reach her before bob's request (same
    // path from bob to alice), so her next message must be that request.
    round_trip(&mut bob, &mut alice, 1, "/barrier");

    // Alice's CSeq 7 is free again and relays normally.
    round_trip(&mut alice, &mut bob, 7, "/fast");
}

// forbidden (403): see tests/access.rs (it needs a tokens file with access rules).

// ---------------------------------------------------------------------------------------------
// Connection-level indications
// ---------------------------------------------------------------------------------------------

fn bad_message_indications_and_the_connection_stays_open(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    // Random bytes (binary), text that is no HTTP at all, a request without a CSeq, a CSeq
    // that is not a decimal u64, and a response without a CSeq.
    let junk: Vec<u8> = (0u32..300)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    alice.ws.send(Message::binary(junk)).expect("send junk");
    expect_indication(&mut alice, "bad-message");
    alice.send("hello there");
    expect_indication(&mut alice, "bad-message");
    alice.send("GET / HTTP/1.1\r\nHost: bob\r\n\r\n");
    expect_indication(&mut alice, "bad-message");
    alice.send("GET / HTTP/1.1\r\nHost: bob\r\nCSeq: twelve\r\n\r\n");
    expect_indication(&mut alice, "bad-message");
    bob.send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    expect_indication(&mut bob, "bad-message");

    // Both connections stay open, nothing reached bob, and both directions relay.
    round_trip(&mut alice, &mut bob, 1, "/after");
    round_trip(&mut bob, &mut alice, 1, "/after");
}

fn unknown_cseq_indication_for_a_response_nobody_waits_for(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    bob.send("HTTP/1.1 200 OK\r\nCSeq: 12345\r\nContent-Length: 0\r\n\r\n");
    expect_indication(&mut bob, "unknown-cseq");
    // Also after it has been sent real requests: a CSeq above any it was given.
    round_trip(&mut alice, &mut bob, 1, "/real");
    bob.send("HTTP/1.1 200 OK\r\nCSeq: 4000000000\r\nContent-Length: 0\r\n\r\n");
    expect_indication(&mut bob, "unknown-cseq");

    // Bob stays connected; alice got nothing from those (her next message is her answer).
    round_trip(&mut alice, &mut bob, 2, "/after");
}

fn duplicate_cseq_indication_and_the_first_request_still_answered(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    alice.request("bob", 5, "/first");
    let first = bob.recv_http();
    assert_eq!(first.start, "GET /first HTTP/1.1");
    alice.request("bob", 5, "/second");
    expect_indication(&mut alice, "duplicate-cseq");

    // The first still gets its response, with its CSeq.
    answer_to(&mut bob, &first, "first");
    let response = alice.recv_http();
    assert_eq!(
        (response.status(), response.cseq(), response.body.as_str()),
        (200, 5, "first")
    );
    // The duplicate never reached bob: his next request is /third.
    round_trip(&mut alice, &mut bob, 6, "/third");
    // Another caller may use the same CSeq at the same time: no collision.
    let mut carol = connect(&proxy, "/carol");
    alice.request("bob", 5, "/alice-5");
    carol.request("bob", 5, "/carol-5");
    let a = bob.recv_http();
    let c = bob.recv_http();
    let (a, c) = if a.start.contains("alice") {
        (a, c)
    } else {
        (c, a)
    };
    assert_ne!(
        a.cseq(),
        c.cseq(),
        "the proxy keeps same-CSeq callers apart"
    );
    answer_to(&mut bob, &c, "to carol");
    answer_to(&mut bob, &a, "to alice");
    assert_eq!(alice.recv_http().body, "to alice");
    assert_eq!(carol.recv_http().body, "to carol");
}

/// A request to bob of exactly `total` bytes (head and body).
fn request_of_len(path: &str, cseq: u64, total: usize) -> String {
    let head = format!("GET {path} HTTP/1.1\r\nHost: bob\r\nCSeq: {cseq}\r\nContent-Length: ");
    for digits in 1..=6 {
        let body_len = total - head.len() - digits - 4;
        if body_len.to_string().len() == digits {
            let message = format!("{head}{body_len}\r\n\r\n{}", "x".repeat(body_len));
            assert_eq!(message.len(), total);
            return message;
        }
    }
    unreachable!("no body length fits {total}")
}

fn message_too_large_indication_then_close_1009(driver: Driver) {
    const LIMIT: usize = 1024;
    let proxy = Proxy::start(driver, &["--max-message-bytes", "1024"]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    let mut carol = connect(&proxy, "/carol");

    // Exactly at the limit: relayed.
    let at_limit = request_of_len("/fits", 1, LIMIT);
    alice.send(&at_limit);
    let seen = bob.recv_http();
    assert_eq!(seen.start, "GET /fits HTTP/1.1");
    assert_eq!(seen.body, Http::parse(&at_limit).body);
    answer_to(&mut bob, &seen, "fits");
    assert_eq!(alice.recv_http().body, "fits");

    // One byte over: `:error message-too-large`, then a close with 1009.
    alice.send(&request_of_len("/over", 2, LIMIT + 1));
    expect_indication(&mut alice, "message-too-large");
    assert_eq!(alice.expect_close(), Some(1009));

    // Nothing of it reached bob; the bystanders keep relaying; alice's name is free again.
    round_trip(&mut carol, &mut bob, 3, "/bystander");
    let mut alice = connect(&proxy, "/alice");
    round_trip(&mut alice, &mut carol, 4, "/back");
}

fn fragmented_message_over_the_limit_is_too_large(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-message-bytes", "1024"]);
    let mut bob = connect(&proxy, "/bob");
    let mut carol = connect(&proxy, "/carol");
    let mut raw = RawClient::connect(&proxy, "/mallory");
    // Two fragments of 600 bytes: each under the limit, together over it.
    let mut first = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n".to_vec();
    first.resize(600, b'a');
    raw.send_frame(0x01, &first, true); // text, not FIN
    raw.send_frame(0x80, &[b'b'; 600], true); // continuation, FIN
    let (opcode, payload) = raw.read_frame();
    assert_eq!(opcode, 1, "a text indication first");
    let text = String::from_utf8(payload).expect("utf-8");
    let (token, _) = parse_error_indication(&text);
    assert_eq!(token, "message-too-large", "{text:?}");
    assert_eq!(raw.read_close_code(), Some(1009));
    // Bystanders are unaffected and bob got nothing from mallory.
    round_trip(&mut carol, &mut bob, 2, "/bystander");
}

on_both_drivers!(
    unknown_address_gets_404,
    unknown_address_after_the_holder_left,
    bad_request_gets_400_with_the_callers_cseq,
    target_busy_when_the_callers_inflight_limit_is_full,
    target_busy_when_the_targets_inflight_limit_is_full,
    target_gone_answers_each_pending_request_once,
    timeout_gets_504_and_the_late_answer_is_dropped,
    bad_message_indications_and_the_connection_stays_open,
    unknown_cseq_indication_for_a_response_nobody_waits_for,
    duplicate_cseq_indication_and_the_first_request_still_answered,
    message_too_large_indication_then_close_1009,
    fragmented_message_over_the_limit_is_too_large,
);
