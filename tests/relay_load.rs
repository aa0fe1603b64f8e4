//! Relay under load and with awkward payloads: colliding CSeqs, a thousand requests in
//! flight, endpoints spread over several shards, binary messages, and bodies that look like
//! HTTP heads. Every test runs on both io drivers.

mod common;

use std::collections::HashSet;
use std::thread;

use common::driver::Driver;
use common::message::Http;
use common::proxy::{Proxy, owner_shard};
use common::ws::{Endpoint, connect, recv_data};
use tungstenite::Message;

/// Start the proxy with `shards` shards.
fn start_with_shards(driver: Driver, shards: u32) -> Proxy {
    Proxy::start(driver, &["--shards", &shards.to_string()])
}

/// A small deterministic generator (xorshift64*), so a failing order can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Split raw message bytes at the end of the head.
fn split_head(bytes: &[u8]) -> (Http, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head ending in CRLF CRLF")
        + 4;
    let head = std::str::from_utf8(&bytes[..end]).expect("head is UTF-8");
    (Http::parse(head), bytes[end..].to_vec())
}

fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes received, {} sent, first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

fn two_senders_with_the_same_cseq_get_their_own_responses(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut carol = connect(&proxy, "/carol");
    let mut bob = connect(&proxy, "/bob");

    alice.request("bob", 7, "/from-alice");
    carol.request("bob", 7, "/from-carol");
    let first = Http::parse(&bob.recv());
    let second = Http::parse(&bob.recv());
    assert_ne!(
        first.cseq(),
        second.cseq(),
        "the target must see two different CSeqs for two requests in flight"
    );
    let mut froms = vec![
        first
            .header("httpws-from")
            .expect("Httpws-From")
            .to_string(),
        second
            .header("httpws-from")
            .expect("Httpws-From")
            .to_string(),
    ];
    froms.sort();
    assert_eq!(froms, ["alice", "carol"]);

    // Answer in reverse order of arrival.
    for request in [&second, &first] {
        let from = request.header("httpws-from").unwrap();
        let body = format!("for {from} via {}", request.start);
        bob.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{body}",
            request.cseq(),
            body.len()
        ));
    }

    let to_alice = alice.recv_http();
    assert_eq!(to_alice.cseq(), 7);
    assert_eq!(to_alice.body, "for alice via GET /from-alice HTTP/1.1");
    let to_carol = carol.recv_http();
    assert_eq!(to_carol.cseq(), 7);
    assert_eq!(to_carol.body, "for carol via GET /from-carol HTTP/1.1");
}

fn a_thousand_pipelined_requests_answered_out_of_order(driver: Driver) {
    const N: u64 = 1_000;
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    // The target reads every request first, then answers them in a shuffled order.
    let target = thread::spawn(move || {
        let mut seen = Vec::with_capacity(N as usize);
        let mut target_cseqs = HashSet::new();
        for _ in 0..N {
            let request = bob.recv_http();
            assert_eq!(request.header("httpws-from"), Some("alice"));
            let path = request
                .start
                .strip_prefix("GET ")
                .and_then(|s| s.strip_suffix(" HTTP/1.1"))
                .expect("request line")
                .to_string();
            assert!(
                target_cseqs.insert(request.cseq()),
                "the proxy gave the target a CSeq twice while both were in flight"
            );
            seen.push((request.cseq(), path));
        }
        Rng(0x9e37_79b9_7f4a_7c15).shuffle(&mut seen);
        for (cseq, path) in seen {
            let body = format!("answer to {path}");
            bob.send(&format!(
                "HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        bob
    });

    for cseq in 1..=N {
        alice.request("bob", cseq, &format!("/req/{cseq}"));
    }
    let mut answered = HashSet::new();
    for _ in 0..N {
        let response = alice.recv_http();
        assert_eq!(response.status(), 200);
        let cseq = response.cseq();
        assert!((1..=N).contains(&cseq), "unexpected CSeq {cseq}");
        assert!(answered.insert(cseq), "CSeq {cseq} answered twice");
        assert_eq!(response.body, format!("answer to /req/{cseq}"));
    }
    assert_eq!(answered.len(), N as usize);
    let _bob = target.join().expect("target thread");
}

fn every_endpoint_calls_every_other_across_shards(driver: Driver) {
    const SHARDS: u64 = 4;
    const N: usize = 16;
    let proxy = start_with_shards(driver, SHARDS as u32);
    let names: Vec<String> = (0..N).map(|i| format!("n{i}")).collect();
    let shards: HashSet<u64> = names.iter().map(|n| owner_shard(n, SHARDS)).collect();
    assert!(
        shards.len() >= 3,
        "test setup: names cover only shards {shards:?}"
    );

    // Everyone registers before anyone calls, so no request meets an unknown address.
    let endpoints: Vec<Endpoint> = names
        .iter()
        .map(|n| connect(&proxy, &format!("/{n}")))
        .collect();

    let workers: Vec<_> = endpoints
        .into_iter()
        .enumerate()
        .map(|(i, mut ep)| {
            thread::spawn(move || {
                let me = ep.address.clone();
                assert_eq!(me, format!("n{i}"));
                for j in (0..N).filter(|&j| j != i) {
                    ep.request(
                        &format!("n{j}"),
                        100 + j as u64,
                        &format!("/from/{me}/to/n{j}"),
                    );
                }
                let mut callers = HashSet::new();
                let mut answered_by = HashSet::new();
                while callers.len() < N - 1 || answered_by.len() < N - 1 {
                    let text = ep.recv();
                    let message = Http::parse(&text);
                    if text.starts_with("HTTP/1.1 ") {
                        assert_eq!(message.status(), 200, "{me} got {text:?}");
                        let j = message.cseq().checked_sub(100).expect("CSeq >= 100") as usize;
                        assert!(j < N && j != i, "{me} got a response with CSeq {}", 100 + j);
                        assert_eq!(message.body, format!("n{j} answers {me}"));
                        assert!(answered_by.insert(j), "{me} got two responses for n{j}");
                    } else {
                        let from = message
                            .header("httpws-from")
                            .expect("Httpws-From")
                            .to_string();
                        assert_eq!(
                            message.start,
                            format!("GET /from/{from}/to/{me} HTTP/1.1"),
                            "Httpws-From names the real caller"
                        );
                        let body = format!("{me} answers {from}");
                        ep.send(&format!(
                            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{body}",
                            message.cseq(),
                            body.len()
                        ));
                        assert!(callers.insert(from.clone()), "{me} called twice by {from}");
                    }
                }
                (answered_by.len(), ep)
            })
        })
        .collect();

    let mut round_trips = 0;
    let mut keep = Vec::new();
    for worker in workers {
        let (done, ep) = worker.join().expect("endpoint thread");
        round_trips += done;
        keep.push(ep);
    }
    assert_eq!(round_trips, N * (N - 1));
}

fn binary_messages_stay_binary(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    // A text request arrives as text...
    alice.request("bob", 1, "/text");
    assert!(matches!(recv_data(&mut bob.ws), Message::Text(_)));
    bob.send("HTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\n");
    assert!(matches!(recv_data(&mut alice.ws), Message::Text(_)));

    // ...and a binary one as binary, in both directions, with bytes that are not UTF-8.
    let body: &[u8] = &[0xff, 0xfe, 0x00, 0x80, b'\r', b'\n', 0xc3];
    let mut request = format!(
        "POST /bin HTTP/1.1\r\nHost: bob\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    alice
        .ws
        .send(Message::Binary(request))
        .expect("send binary");

    let Message::Binary(seen) = recv_data(&mut bob.ws) else {
        panic!("a binary request must reach the target as binary");
    };
    let (head, seen_body) = split_head(&seen);
    assert_eq!(head.start, "POST /bin HTTP/1.1");
    assert_eq!(head.header("httpws-from"), Some("alice"));
    assert_same_bytes(&seen_body, body, "binary request body");

    let mut response = format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 3\r\n\r\n",
        head.cseq()
    )
    .into_bytes();
    response.extend_from_slice(&[0x00, 0xff, 0x01]);
    bob.ws.send(Message::Binary(response)).expect("send binary");

    let Message::Binary(back) = recv_data(&mut alice.ws) else {
        panic!("a binary response must reach the caller as binary");
    };
    let (head, back_body) = split_head(&back);
    assert_eq!(head.status(), 200);
    assert_eq!(head.cseq(), 2);
    assert_same_bytes(&back_body, &[0x00, 0xff, 0x01], "binary response body");
}

/// Bytes that look like HTTP to a careless parser, then every byte value, up to `len`.
fn tricky_body(len: usize) -> Vec<u8> {
    let trap: &[u8] =
        b"\r\n\r\nCSeq: 1\r\nHost: evil\r\nHttpws-From: mallory\r\n\r\nHTTP/1.1 200 OK\r\nCSeq: 1\r\n\r\n";
    let mut body = trap.to_vec();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    body.extend(0..=255u8);
    while body.len() + trap.len() < len {
        body.push(rng.next() as u8);
    }
    body.extend_from_slice(trap);
    body
}

/// Send `body` from alice to bob and back (bob echoes it), both as binary messages; both
/// copies must arrive byte-identical and the heads must carry only the real CSeq.
fn echo_body_through_the_relay(driver: Driver, body: Vec<u8>) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");

    let expected = body.clone();
    let target = thread::spawn(move || {
        let Message::Binary(seen) = recv_data(&mut bob.ws) else {
            panic!("binary request arrived as text");
        };
        let (head, seen_body) = split_head(&seen);
        assert_eq!(head.start, "POST /upload HTTP/1.1");
        assert_eq!(head.all("cseq").len(), 1, "one CSeq in the relayed head");
        assert_eq!(head.all("httpws-from"), vec!["alice"]);
        assert_eq!(head.all("host"), vec!["bob"]);
        assert_same_bytes(&seen_body, &expected, "request body at the target");
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n",
            head.cseq(),
            seen_body.len()
        )
        .into_bytes();
        response.extend_from_slice(&seen_body);
        bob.ws
            .send(Message::Binary(response))
            .expect("send response");
        bob
    });

    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: bob\r\nCSeq: 5\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    alice
        .ws
        .send(Message::Binary(request))
        .expect("send request");

    let Message::Binary(back) = recv_data(&mut alice.ws) else {
        panic!("binary response arrived as text");
    };
    let (head, back_body) = split_head(&back);
    assert_eq!(head.status(), 200);
    assert_eq!(head.all("cseq"), vec!["5"], "the caller's CSeq, once");
    assert_same_bytes(&back_body, &body, "response body at the caller");
    let _bob = target.join().expect("target thread");
}

fn a_body_that_looks_like_http_arrives_byte_identical(driver: Driver) {
    echo_body_through_the_relay(driver, tricky_body(600));
}

fn a_one_mebibyte_body_arrives_byte_identical(driver: Driver) {
    echo_body_through_the_relay(driver, tricky_body(1 << 20));
}

fn a_text_body_with_a_fake_head_arrives_unchanged(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    let body = "line\r\n\r\nCSeq: 1\r\nHttpws-From: mallory\r\n\r\nend";
    alice.send(&format!(
        "POST /t HTTP/1.1\r\nHost: bob\r\nCSeq: 9\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let Message::Text(seen) = recv_data(&mut bob.ws) else {
        panic!("text request arrived as binary");
    };
    let (head, seen_body) = split_head(seen.as_bytes());
    assert_eq!(head.all("cseq").len(), 1);
    assert_eq!(head.all("httpws-from"), vec!["alice"]);
    assert_same_bytes(&seen_body, body.as_bytes(), "text body at the target");
    bob.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{body}",
        head.cseq(),
        body.len()
    ));
    let back = alice.recv();
    let (head, back_body) = split_head(back.as_bytes());
    assert_eq!(head.all("cseq"), vec!["9"]);
    assert_same_bytes(&back_body, body.as_bytes(), "text body at the caller");
}

on_both_drivers!(
    two_senders_with_the_same_cseq_get_their_own_responses,
    a_thousand_pipelined_requests_answered_out_of_order,
    every_endpoint_calls_every_other_across_shards,
    binary_messages_stay_binary,
    a_body_that_looks_like_http_arrives_byte_identical,
    a_one_mebibyte_body_arrives_byte_identical,
    a_text_body_with_a_fake_head_arrives_unchanged,
);
