//! Registration through the real proxy binary (docs/protocol.md §1), on both io drivers:
//! `:host`, address grammar, assigned addresses, held names and takeover, handshake refusals
//! written by hand over raw TCP, and the handshake deadline.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::driver::Driver;
use common::handshake::{
    UPGRADE_HEADERS, header_values, raw_stream, read_response_head, status_of,
};
use common::proxy::Proxy;
use common::proxy_errors::parse_error_indication;
use common::ws::{Endpoint, connect, connect_status, connect_with};

/// A fresh name for a bystander endpoint (unique within this test process).
fn fresh_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One request from `from` to `to`, answered with `body`; asserts the caller gets it back
/// with its own CSeq.
fn round_trip(from: &mut Endpoint, to: &mut Endpoint, cseq: u64, body: &str) {
    let target = to.address.clone();
    from.request(&target, cseq, "/ping");
    let seen = to.answer(body);
    assert_eq!(seen.start, "GET /ping HTTP/1.1");
    assert_eq!(seen.all("httpws-from"), vec![from.address.as_str()]);
    let response = from.recv_http();
    assert_eq!(response.status(), 200, "{response:?}");
    assert_eq!(response.cseq(), cseq);
    assert_eq!(response.body, body);
}

/// Register a fresh pair of endpoints and exchange one request: the proxy still works.
fn fresh_pair_exchanges(proxy: &Proxy) {
    let mut a = connect(proxy, &format!("/{}", fresh_name("pair-a-")));
    let mut b = connect(proxy, &format!("/{}", fresh_name("pair-b-")));
    round_trip(&mut a, &mut b, 77, "still relaying");
}

/// A syntactically valid virtual address per docs/protocol.md §1 ("Address grammar").
fn is_valid_address(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 253
        && a.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

// ---------------------------------------------------------------------------------------------
// Raw TCP handshakes
// ---------------------------------------------------------------------------------------------

/// Write `request` in one go and return the response head.
fn raw_handshake(proxy: &Proxy, request: &str) -> String {
    let mut stream = raw_stream(proxy.addr);
    stream.write_all(request.as_bytes()).expect("write request");
    read_response_head(&mut stream)
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

fn host_indication_names_the_requested_address(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob.example-1");
    assert_eq!(alice.address, "alice");
    assert_eq!(bob.address, "bob.example-1");
    round_trip(&mut alice, &mut bob, 1, "hi");
    round_trip(&mut bob, &mut alice, 1, "hi back");
}

fn uppercase_path_registers_lowercase(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut bob = connect(&proxy, "/Bob");
    assert_eq!(
        bob.address, "bob",
        ":host carries the stored (lowercase) form"
    );
    // Same name in another case is the same name: held.
    assert_eq!(connect_status(&proxy, "/bob").err(), Some(409));
    assert_eq!(connect_status(&proxy, "/BOB").err(), Some(409));
    // Reachable as `bob` and, compared case-insensitively, as `BoB`.
    let mut alice = connect(&proxy, "/alice");
    round_trip(&mut alice, &mut bob, 1, "lower");
    alice.request("BoB", 2, "/mixed");
    let seen = bob.answer("mixed");
    assert_eq!(seen.start, "GET /mixed HTTP/1.1");
    let response = alice.recv_http();
    assert_eq!((response.status(), response.cseq()), (200, 2));
}

fn root_path_gets_a_unique_reachable_assigned_address(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut first = connect(&proxy, "/");
    let mut second = connect(&proxy, "/");
    for ep in [&first, &second] {
        assert!(
            is_valid_address(&ep.address),
            "assigned address {:?} breaks the address grammar",
            ep.address
        );
    }
    assert_ne!(
        first.address, second.address,
        "assigned addresses are unique"
    );

    // Reachable by that address, from a named endpoint and from each other.
    let mut alice = connect(&proxy, "/alice");
    round_trip(&mut alice, &mut first, 1, "to the first");
    round_trip(&mut alice, &mut second, 2, "to the second");
    round_trip(&mut first, &mut second, 3, "between assigned");
    // The requests they send carry their assigned address as Httpws-From.
    round_trip(&mut second, &mut alice, 4, "from assigned");

    // An assigned address is held like any other.
    let taken = format!("/{}", first.address);
    assert_eq!(connect_status(&proxy, &taken).err(), Some(409));
}

fn invalid_names_are_refused_with_400(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let label64 = format!("/{}", "a".repeat(64));
    let too_long = format!("/{}", vec!["a".repeat(63); 4].join(".")); // 255 chars
    for path in [
        "/-bad",
        "/bad-",
        "/a..b",
        "/.a",
        "/under_score",
        "/sp%20ace",
        "/a/b",
        label64.as_str(),
        too_long.as_str(),
    ] {
        assert_eq!(
            connect_status(&proxy, path).err(),
            Some(400),
            "registration of {path:?} must be refused with 400"
        );
    }
    // Boundaries that are valid: a 63-character label, a 253-character name.
    let label63 = "b".repeat(63);
    let long_ok = format!("{0}.{0}.{0}.{1}", "c".repeat(63), "d".repeat(61));
    assert_eq!(long_ok.len(), 253);
    let mut ep63 = connect(&proxy, &format!("/{label63}"));
    assert_eq!(ep63.address, label63);
    let mut ep253 = connect(&proxy, &format!("/{long_ok}"));
    assert_eq!(ep253.address, long_ok);
    round_trip(&mut ep63, &mut ep253, 5, "long names work");

    // A good name still registers and relays after all those refusals.
    let mut good = connect(&proxy, "/good-name");
    assert_eq!(good.address, "good-name");
    round_trip(&mut ep63, &mut good, 6, "good");
}

// ---------------------------------------------------------------------------------------------
// Held names and takeover
// ---------------------------------------------------------------------------------------------

fn held_name_is_refused_with_409_and_the_holder_keeps_working(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut bob = connect(&proxy, "/bob");
    let mut alice = connect(&proxy, "/alice");
    for _ in 0..3 {
        assert_eq!(connect_status(&proxy, "/bob").err(), Some(409));
    }
    round_trip(&mut alice, &mut bob, 1, "still mine");
    // The refused newcomers left nothing behind: bob gets only alice's next request.
    round_trip(&mut alice, &mut bob, 2, "still mine again");
}

fn same_token_takes_over_and_the_old_connection_is_told_and_closed(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let bearer = [("Authorization", "Bearer t1")];
    let mut old = connect_with(&proxy, "/bob", &bearer).expect("first registration");
    let mut alice = connect(&proxy, "/alice");
    round_trip(&mut alice, &mut old, 1, "old");

    let mut new = connect_with(&proxy, "/bob", &bearer).expect("takeover with the same token");
    assert_eq!(new.address, "bob");

    let (token, reason) = parse_error_indication(&old.recv());
    assert_eq!(token, "replaced");
    assert!(!reason.is_empty(), "the replaced indication gives a reason");
    assert!(
        !reason.contains("t1"),
        "the token must not be echoed: {reason:?}"
    );
    assert!(
        old.expect_close().is_some(),
        "the replaced connection gets a close frame"
    );

    // Requests for bob now reach the newcomer.
    round_trip(&mut alice, &mut new, 2, "new");

    // Same credential given as the access_token query parameter: also a takeover.
    let mut newest = connect_status(&proxy, "/bob?access_token=t1").expect("query-token takeover");
    let (token, _) = parse_error_indication(&new.recv());
    assert_eq!(token, "replaced");
    assert!(new.expect_close().is_some());
    round_trip(&mut alice, &mut newest, 3, "newest");
}

fn other_or_missing_credentials_cannot_take_over(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut bob = connect_with(&proxy, "/bob", &[("Authorization", "Bearer t1")])
        .expect("first registration");
    let mut alice = connect(&proxy, "/alice");

    assert_eq!(
        connect_with(&proxy, "/bob", &[("Authorization", "Bearer t2")]).err(),
        Some(409),
        "a different token"
    );
    assert_eq!(connect_status(&proxy, "/bob").err(), Some(409), "no token");
    assert_eq!(
        connect_status(&proxy, "/bob?access_token=t2").err(),
        Some(409),
        "a different query token"
    );
    // The holder was not disturbed: the next thing it gets is alice's request, not an
    // indication, and it answers.
    round_trip(&mut alice, &mut bob, 1, "undisturbed");

    // A tokenless holder cannot be taken over by anyone, with or without a token.
    let mut carol = connect(&proxy, "/carol");
    assert_eq!(
        connect_with(&proxy, "/carol", &[("Authorization", "Bearer t1")]).err(),
        Some(409)
    );
    assert_eq!(connect_status(&proxy, "/carol").err(), Some(409));
    round_trip(&mut alice, &mut carol, 2, "carol undisturbed");
}

fn takeover_fails_requests_pending_on_the_old_connection(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let bearer = [("Authorization", "Bearer t1")];
    let mut old = connect_with(&proxy, "/bob", &bearer).expect("first registration");
    let mut alice = connect(&proxy, "/alice");
    alice.request("bob", 9, "/pending");
    let seen = old.recv_http();
    assert_eq!(seen.start, "GET /pending HTTP/1.1");

    let mut new = connect_with(&proxy, "/bob", &bearer).expect("takeover");
    // The request the old connection held can never be answered through it any more: the
    // caller gets exactly one response, target-gone, with its CSeq.
    let response = alice.recv_http();
    assert_eq!(response.status(), 502, "{response:?}");
    assert_eq!(response.header("httpws-error"), Some("target-gone"));
    assert_eq!(response.cseq(), 9);
    // Nothing else for alice is queued: her next message is the answer to her next request.
    round_trip(&mut alice, &mut new, 10, "after takeover");
}

// ---------------------------------------------------------------------------------------------
// Handshake refusals over raw TCP
// ---------------------------------------------------------------------------------------------

fn missing_key_is_refused_with_400(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let head = raw_handshake(
        &proxy,
        "GET /bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(status_of(&head), 400, "{head}");
    // The refused name was never registered.
    let bob = connect(&proxy, "/bob");
    assert_eq!(bob.address, "bob");
    fresh_pair_exchanges(&proxy);
}

fn wrong_websocket_version_is_refused_with_426_naming_13(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let head = raw_handshake(
        &proxy,
        &format!(
            "GET /bob HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 12\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&head), 426, "{head}");
    assert_eq!(
        header_values(&head, "sec-websocket-version"),
        vec!["13"],
        "a 426 names the version the server speaks: {head}"
    );
    fresh_pair_exchanges(&proxy);
}

fn post_is_refused_with_400(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let head = raw_handshake(
        &proxy,
        &format!(
            "POST /bob HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&head), 400, "{head}");
    fresh_pair_exchanges(&proxy);
}

fn http_1_0_is_refused_with_400(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let head = raw_handshake(
        &proxy,
        &format!(
            "GET /bob HTTP/1.0\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\r\n"
        ),
    );
    assert_eq!(status_of(&head), 400, "{head}");
    fresh_pair_exchanges(&proxy);
}

/// A request without `Upgrade` is plain HTTP for the public ingress (no endpoint is named
/// `x`: 404); one that asks for another protocol than WebSocket is refused with 426.
fn plain_get_goes_to_the_ingress_and_other_upgrades_get_426(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let head = raw_handshake(&proxy, "GET /bob HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&head), 404, "{head}");
    assert!(head.contains("Httpws-Error: unknown-address"), "{head}");
    let head = raw_handshake(
        &proxy,
        "GET /bob HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    );
    assert_eq!(status_of(&head), 426, "{head}");
    fresh_pair_exchanges(&proxy);
}

/// A handshake whose head is `pad_bytes` longer than the minimal one, padded with 40 equal
/// `X-Pad-NN` headers (well under the header-count limit, so only the size matters).
fn padded_handshake(path: &str, pad_bytes: usize) -> String {
    let per_header = pad_bytes / 40;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n");
    for i in 0..40 {
        // "X-Pad-NN: " + value + "\r\n" = 12 + value bytes.
        let value = "p".repeat(per_header.saturating_sub(12).max(1));
        request.push_str(&format!("X-Pad-{i:02}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

fn oversized_handshake_head_is_refused_with_431(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-handshake-bytes", "8192"]);

    // Just under the limit: accepted (so the 431 below is about size, nothing else).
    let under = padded_handshake("/under", 7600);
    assert!(under.len() < 8192, "{}", under.len());
    let head = raw_handshake(&proxy, &under);
    assert_eq!(status_of(&head), 101, "{head}");

    // About 20 KB of headers, written in small pieces while the response is read.
    let over = padded_handshake("/over", 20_000);
    assert!(over.len() > 19_000);
    let mut stream = raw_stream(proxy.addr);
    let mut writer = stream.try_clone().expect("clone");
    let bytes = over.into_bytes();
    let sender = std::thread::spawn(move || {
        for chunk in bytes.chunks(512) {
            // The proxy may answer and close before everything is written.
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let head = read_response_head(&mut stream);
    sender.join().expect("writer thread");
    assert_eq!(status_of(&head), 431, "{head}");
    let _ = stream.shutdown(Shutdown::Both);

    // The refused name was never registered, and the proxy still works.
    let over = connect(&proxy, "/over");
    assert_eq!(over.address, "over");
    fresh_pair_exchanges(&proxy);
}

// ---------------------------------------------------------------------------------------------
// Handshake deadline
// ---------------------------------------------------------------------------------------------

fn stalled_handshakes_are_closed_after_the_handshake_timeout(driver: Driver) {
    const STALLED: usize = 50;
    const BOUND: Duration = Duration::from_secs(5);
    let proxy = Proxy::start(driver, &["--handshake-timeout", "500ms"]);

    let start = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..STALLED {
        let mut stream = TcpStream::connect(proxy.addr).expect("tcp connect");
        // Half send the start of a handshake, half send nothing at all.
        if i % 2 == 0 {
            stream
                .write_all(b"GET /stall HTTP/1.1\r\nHost: x\r\nUpgr")
                .expect("write a partial handshake");
        }
        stalled.push((stream, Instant::now()));
    }

    // Meanwhile, a new pair registers and exchanges a request: stalled handshakes do not
    // block anyone.
    fresh_pair_exchanges(&proxy);

    for (i, (mut stream, opened)) in stalled.into_iter().enumerate() {
        let left = BOUND
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("stalled connection {i} still open after {BOUND:?}"));
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        let mut buf = [0u8; 512];
        // Read until the proxy ends the connection (anything it says first is ignored).
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "stalled connection {i} was not closed within {BOUND:?} \
                         (handshake timeout 500ms)"
                    )
                }
                Err(_) => break, // reset: closed
            }
        }
        let lived = opened.elapsed();
        assert!(
            start.elapsed() < BOUND,
            "stalled connection {i} closed only after {:?}",
            start.elapsed()
        );
        assert!(
            lived >= Duration::from_millis(400),
            "stalled connection {i} closed after {lived:?}, before the 500ms handshake timeout"
        );
    }

    // The proxy is still healthy afterwards.
    fresh_pair_exchanges(&proxy);
}

on_both_drivers!(
    host_indication_names_the_requested_address,
    uppercase_path_registers_lowercase,
    root_path_gets_a_unique_reachable_assigned_address,
    invalid_names_are_refused_with_400,
    held_name_is_refused_with_409_and_the_holder_keeps_working,
    same_token_takes_over_and_the_old_connection_is_told_and_closed,
    other_or_missing_credentials_cannot_take_over,
    takeover_fails_requests_pending_on_the_old_connection,
    missing_key_is_refused_with_400,
    wrong_websocket_version_is_refused_with_426_naming_13,
    post_is_refused_with_400,
    http_1_0_is_refused_with_400,
    plain_get_goes_to_the_ingress_and_other_upgrades_get_426,
    oversized_handshake_head_is_refused_with_431,
    stalled_handshakes_are_closed_after_the_handshake_timeout,
);
