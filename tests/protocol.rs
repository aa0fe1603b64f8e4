//! RFC 6455 violations: each closes the offender with the right close code, while a bystander
//! pair of well-behaved endpoints keeps relaying. Also pings, pongs and fragmented messages.

mod common;

use common::driver::Driver;
use common::message::Http;
use common::proxy::Proxy;
use common::raw_ws::RawClient;
use common::wire::{BINARY, CLOSE, CONTINUATION, FIN, PING, PONG, RSV1, TEXT};
use common::ws::{Endpoint, connect};

/// A proxy with a small message limit, and a bystander pair `alice` → `bob`.
struct Scene {
    proxy: Proxy,
    alice: Endpoint,
    bob: Endpoint,
    next_cseq: u64,
}

impl Scene {
    fn start(driver: Driver) -> Scene {
        let proxy = Proxy::start(driver, &["--max-message-bytes", "65536"]);
        let alice = connect(&proxy, "/alice");
        let bob = connect(&proxy, "/bob");
        let mut scene = Scene {
            proxy,
            alice,
            bob,
            next_cseq: 1,
        };
        scene.bystanders_still_relay();
        scene
    }

    fn offender(&self, name: &str) -> RawClient {
        RawClient::connect(&self.proxy, &format!("/{name}"))
    }

    /// One full request/response between the bystanders.
    fn bystanders_still_relay(&mut self) {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        self.alice.request("bob", cseq, "/still-there");
        let seen = self.bob.answer("yes");
        assert_eq!(seen.start, "GET /still-there HTTP/1.1");
        assert_eq!(seen.header("httpws-from"), Some("alice"));
        let response = self.alice.recv_http();
        assert_eq!(response.status(), 200);
        assert_eq!(response.cseq(), cseq);
        assert_eq!(response.body, "yes");
    }
}

/// Start a scene, let an offender send `violate`, expect close code `code`, then check the
/// bystanders.
fn violation(driver: Driver, code: u16, violate: impl FnOnce(&mut RawClient)) {
    let mut scene = Scene::start(driver);
    let mut raw = scene.offender("offender");
    violate(&mut raw);
    assert_eq!(raw.read_close_code(), Some(code));
    scene.bystanders_still_relay();
}

fn unmasked_client_frame_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(
            FIN | TEXT,
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n",
            false,
        )
    });
}

fn rsv1_set_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(
            FIN | RSV1 | TEXT,
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n",
            true,
        )
    });
}

fn reserved_opcode_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(FIN | 0x3, b"what is this", true)
    });
}

fn oversized_ping_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(FIN | PING, &[b'p'; 126], true)
    });
}

fn fragmented_ping_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(PING, b"half a ping", true)
    });
}

fn continuation_without_start_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(FIN | CONTINUATION, b"orphan", true)
    });
}

fn close_with_code_1005_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(FIN | CLOSE, &1005u16.to_be_bytes(), true)
    });
}

fn close_with_code_999_closes_1002(driver: Driver) {
    violation(driver, 1002, |raw| {
        raw.send_frame(FIN | CLOSE, &999u16.to_be_bytes(), true)
    });
}

fn invalid_utf8_text_closes_1007(driver: Driver) {
    violation(driver, 1007, |raw| {
        raw.send_frame(
            FIN | TEXT,
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n\xc3\x28\xff",
            true,
        )
    });
}

fn close_1000_is_echoed(driver: Driver) {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    violation(driver, 1000, |raw| {
        raw.send_frame(FIN | CLOSE, &payload, true)
    });
}

fn huge_declared_length_closes_1009_without_waiting(driver: Driver) {
    let mut scene = Scene::start(driver);
    let mut raw = scene.offender("offender");
    // A binary frame declaring 2^62 bytes: header, mask key, and no payload at all.
    let mut header = vec![FIN | BINARY, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    std::io::Write::write_all(&mut raw.stream, &header).expect("write header");
    // The read times out (and the test fails) if the proxy waits for the payload.
    assert_eq!(raw.read_close_code(), Some(1009));
    scene.bystanders_still_relay();
}

fn assert_too_large_then_1009(raw: &mut RawClient) {
    let (frames, code) = raw.frames_until_close();
    let texts: Vec<String> = frames
        .iter()
        .map(|(op, p)| format!("{op}:{}", String::from_utf8_lossy(p)))
        .collect();
    assert_eq!(
        frames.len(),
        1,
        "exactly one indication before the close: {texts:?}"
    );
    let (opcode, payload) = &frames[0];
    assert_eq!(*opcode, TEXT, "the indication is a text message");
    let text = String::from_utf8(payload.clone()).expect("UTF-8 indication");
    assert!(
        text.starts_with(":error message-too-large \"") && text.ends_with('"'),
        "got {text:?}"
    );
    assert_eq!(code, Some(1009));
}

fn message_over_the_limit_gets_an_indication_then_1009(driver: Driver) {
    let mut scene = Scene::start(driver);
    let mut raw = scene.offender("offender");
    let mut message = b"POST /big HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n".to_vec();
    message.resize(70_000, b'x');
    raw.send_frame(FIN | BINARY, &message, true);
    assert_too_large_then_1009(&mut raw);
    scene.bystanders_still_relay();
}

fn fragments_adding_up_over_the_limit_get_1009(driver: Driver) {
    let mut scene = Scene::start(driver);
    let mut raw = scene.offender("offender");
    // Each fragment is under the 64 KiB limit; the message is not.
    let mut first = b"POST /big HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n".to_vec();
    first.resize(40_000, b'x');
    raw.send_frame(BINARY, &first, true);
    raw.send_frame(FIN | CONTINUATION, &[b'y'; 40_000], true);
    assert_too_large_then_1009(&mut raw);
    scene.bystanders_still_relay();
}

fn ping_gets_a_pong_with_the_same_payload(driver: Driver) {
    let mut scene = Scene::start(driver);
    let mut raw = scene.offender("pinger");
    raw.send_frame(FIN | PING, b"are you there? \x00\xff", true);
    let (opcode, payload) = raw.read_frame();
    assert_eq!(opcode, PONG);
    assert_eq!(payload, b"are you there? \x00\xff");
    // The connection is still good: it can call bob.
    raw.send_frame(
        FIN | TEXT,
        b"GET /after-ping HTTP/1.1\r\nHost: bob\r\nCSeq: 3\r\n\r\n",
        true,
    );
    let seen = scene.bob.answer("pong seen");
    assert_eq!(seen.header("httpws-from"), Some("pinger"));
    let (opcode, payload) = raw.read_frame();
    assert_eq!(opcode, TEXT);
    let response = Http::parse(&String::from_utf8(payload).expect("UTF-8"));
    assert_eq!(response.cseq(), 3);
    assert_eq!(response.body, "pong seen");
    scene.bystanders_still_relay();
}

fn fragmented_text_is_reassembled_and_relayed_whole(driver: Driver) {
    let mut scene = Scene::start(driver);
    let mut raw = scene.offender("frag");
    let body = "café ünï";
    let message = format!(
        "POST /frag HTTP/1.1\r\nHost: bob\r\nCSeq: 9\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let message = message.as_bytes();
    // Split inside the head, and inside the two-byte "é" (valid UTF-8 only as a whole).
    let cut1 = 25;
    let cut2 = message.iter().position(|&b| b == 0xc3).unwrap() + 1;
    raw.send_frame(TEXT, &message[..cut1], true);
    raw.send_frame(FIN | PING, b"mid-message", true);
    raw.send_frame(CONTINUATION, &message[cut1..cut2], true);
    raw.send_frame(FIN | CONTINUATION, &message[cut2..], true);

    let (opcode, payload) = raw.read_frame();
    assert_eq!((opcode, payload.as_slice()), (PONG, &b"mid-message"[..]));

    let tungstenite::Message::Text(seen) = scene.bob.ws.read().expect("read") else {
        panic!("the reassembled message must arrive as one text message");
    };
    let request = Http::parse(&seen);
    assert_eq!(request.start, "POST /frag HTTP/1.1");
    assert_eq!(request.header("httpws-from"), Some("frag"));
    assert_eq!(request.body, body);
    scene.bob.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 2\r\n\r\nok",
        request.cseq()
    ));
    let (opcode, payload) = raw.read_frame();
    assert_eq!(opcode, TEXT);
    let response = Http::parse(&String::from_utf8(payload).expect("UTF-8"));
    assert_eq!(response.cseq(), 9);
    assert_eq!(response.body, "ok");
    scene.bystanders_still_relay();
}

fn anything_arriving_answers_a_ping_and_silence_does_not(driver: Driver) {
    let proxy = Proxy::start(
        driver,
        &["--idle-timeout", "200ms", "--pong-timeout", "300ms"],
    );
    // A peer that never pongs but answers each ping with data stays registered.
    let mut busy = RawClient::connect(&proxy, "/busy-peer");
    for _ in 0..4 {
        let (opcode, _) = busy.read_frame();
        assert_eq!(opcode, PING, "the proxy pings a quiet connection");
        busy.send_frame(FIN | TEXT, b":still here", true);
    }
    busy.send_frame(FIN | PING, b"alive?", true);
    assert_eq!(busy.read_frame(), (PONG, b"alive?".to_vec()));
    // A peer that answers nothing is dropped after the pong timeout.
    let mut silent = RawClient::connect(&proxy, "/silent-peer");
    let (opcode, _) = silent.read_frame();
    assert_eq!(opcode, PING);
    assert_eq!(
        silent.read_close_code(),
        None,
        "dropped without a close frame"
    );
}

on_both_drivers!(
    unmasked_client_frame_closes_1002,
    rsv1_set_closes_1002,
    reserved_opcode_closes_1002,
    oversized_ping_closes_1002,
    fragmented_ping_closes_1002,
    continuation_without_start_closes_1002,
    close_with_code_1005_closes_1002,
    close_with_code_999_closes_1002,
    invalid_utf8_text_closes_1007,
    close_1000_is_echoed,
    huge_declared_length_closes_1009_without_waiting,
    message_over_the_limit_gets_an_indication_then_1009,
    fragments_adding_up_over_the_limit_get_1009,
    ping_gets_a_pong_with_the_same_payload,
    fragmented_text_is_reassembled_and_relayed_whole,
    anything_arriving_answers_a_ping_and_silence_does_not,
);
