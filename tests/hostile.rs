//! The hostile-input suite: malformed handshakes, RFC 6455 violations, request-smuggling
//! shapes, credential abuse, slowloris, a zero-window target and SIGTERM under load, each
//! thrown at the real `httpws` binary over real sockets. Every case asserts the documented
//! refusal (status, close code, `:error` token or `Httpws-Error` token) and that a bystander
//! pair of well-behaved endpoints keeps relaying during the attack and after it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::IO_TIMEOUT;
use common::bystanders::Bystanders;
use common::driver::Driver;
use common::handshake::{
    UPGRADE_HEADERS, assert_ends, header_values, raw_stream, read_response_head, status_of,
};
use common::message::Http;
use common::proc_stats::{open_fds, vm_rss_kib, wait_for};
use common::proxy::Proxy;
use common::proxy_errors::{assert_proxy_error, expect_indication, parse_error_indication};
use common::raw_ws::RawClient;
use common::stream_wire;
use common::wire::{BINARY, CLOSE, FIN, PING, PONG, TEXT};
use common::ws::{
    Endpoint, assert_quiet, close_and_wait, connect, connect_with, recv_text, recv_within,
    register, until_close,
};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

/// Assert `response` is the proxy's own answer: `status`, `Httpws-Error: token`, `cseq`, and a
/// `text/plain` reason.
#[track_caller]
fn assert_proxy_error_with_reason(response: &Http, status: u16, token: &str, cseq: u64) {
    assert_proxy_error(response, status, token, cseq);
    assert!(
        !response.body.trim().is_empty(),
        "a proxy error gives a reason: {response:?}"
    );
}

// =============================================================================================
// Handshake attacks
// =============================================================================================

/// Send `request` as a handshake for `/mallory`, check the bystanders while the connection is
/// open, expect `status` and the connection closed; then the refused name is still free.
fn refused_handshake(driver: Driver, request: &str, status: u16) -> String {
    let proxy = Proxy::start(driver, &[]);
    let mut by = Bystanders::register(&proxy);
    let mut stream = raw_stream(proxy.addr);
    stream.write_all(request.as_bytes()).expect("write request");
    by.check();
    let head = read_response_head(&mut stream);
    assert_eq!(status_of(&head), status, "{head}");
    let connection = if status == 426 {
        "close, Upgrade"
    } else {
        "close"
    };
    assert_eq!(
        header_values(&head, "connection"),
        vec![connection],
        "{head}"
    );
    assert_ends(&mut stream);
    drop(stream);
    by.check();
    // The refused name was never registered.
    let mallory = connect(&proxy, "/mallory");
    assert_eq!(mallory.address, "mallory");
    by.check();
    head
}

fn handshake_without_sec_websocket_key_gets_400(driver: Driver) {
    refused_handshake(
        driver,
        "GET /mallory HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        400,
    );
}

fn handshake_with_websocket_version_12_gets_426_naming_13(driver: Driver) {
    let head = refused_handshake(
        driver,
        &format!(
            "GET /mallory HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 12\r\n\r\n"
        ),
        426,
    );
    assert_eq!(
        header_values(&head, "sec-websocket-version"),
        vec!["13"],
        "{head}"
    );
    assert_eq!(header_values(&head, "upgrade"), vec!["websocket"], "{head}");
}

fn handshake_with_post_gets_400(driver: Driver) {
    refused_handshake(
        driver,
        &format!(
            "POST /mallory HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\
             Content-Length: 0\r\n\r\n"
        ),
        400,
    );
}

fn handshake_over_http_1_0_gets_400(driver: Driver) {
    refused_handshake(
        driver,
        &format!(
            "GET /mallory HTTP/1.0\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\r\n"
        ),
        400,
    );
}

fn handshake_of_20_kb_in_1_byte_writes_gets_431_before_the_end(driver: Driver) {
    const LIMIT: usize = 8 * 1024; // the default --max-handshake-bytes
    let proxy = Proxy::start(driver, &[]);
    let mut by = Bystanders::register(&proxy);

    let mut request = format!(
        "GET /mallory HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n"
    );
    for i in 0..40 {
        request.push_str(&format!("X-Pad-{i:02}: {}\r\n", "p".repeat(488)));
    }
    request.push_str("\r\n");
    let bytes = request.into_bytes();
    let total = bytes.len();
    assert!(total >= 20_000, "{total}");

    let mut stream = raw_stream(proxy.addr);
    let mut writer = stream.try_clone().expect("clone");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (stop, written) = (stop.clone(), written.clone());
        thread::spawn(move || {
            for (i, byte) in bytes.iter().enumerate() {
                if stop.load(Ordering::Acquire) || writer.write_all(&[*byte]).is_err() {
                    return;
                }
                written.store(i + 1, Ordering::Release);
                // Past the limit the attacker slows to one byte per millisecond, so "the 431
                // came before the last byte" holds by seconds, not by a race.
                if i + 1 > LIMIT {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    // While the attack is in flight.
    by.check();
    let head = read_response_head(&mut stream);
    let at = written.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    assert_eq!(status_of(&head), 431, "{head}");
    assert!(
        at < total,
        "the 431 came only after all {total} bytes were written"
    );
    assert!(
        at > LIMIT,
        "431 after only {at} bytes, within the {LIMIT}-byte limit"
    );
    assert_ends(&mut stream);
    eprintln!("431 after {at} of {total} one-byte writes (limit {LIMIT})");
    sender.join().expect("writer thread");
    drop(stream);
    by.check();
    assert_eq!(connect(&proxy, "/mallory").address, "mallory");
}

// =============================================================================================
// Frame attacks (after a valid registration)
// =============================================================================================

/// A proxy, the bystanders, and a counter for fresh offender names.
struct FrameScene {
    proxy: Proxy,
    by: Bystanders,
    offenders: u32,
}

impl FrameScene {
    fn start(driver: Driver) -> FrameScene {
        let proxy = Proxy::start(driver, &[]);
        let by = Bystanders::register(&proxy);
        FrameScene {
            proxy,
            by,
            offenders: 0,
        }
    }

    /// A fresh registered offender (raw TCP, hand-made frames).
    fn offender(&mut self) -> RawClient {
        self.offenders += 1;
        RawClient::connect(&self.proxy, &format!("/mallory-{}", self.offenders))
    }

    /// A fresh offender sends `violate`; the bystanders relay while it is open; the proxy
    /// sends nothing but a close frame with `code`, then ends the connection; the bystanders
    /// relay after it is gone (so nothing the offender sent reached by-b).
    #[track_caller]
    fn expect_close(&mut self, what: &str, code: u16, violate: impl FnOnce(&mut RawClient)) {
        let mut raw = self.offender();
        violate(&mut raw);
        self.by.check();
        let (frames, got) = raw.frames_until_close();
        assert_eq!(
            got,
            Some(code),
            "{what}: close code (frames before: {frames:?})"
        );
        assert!(
            frames.is_empty(),
            "{what}: no message before the close, got {frames:?}"
        );
        assert_ends(&mut raw.stream);
        drop(raw);
        self.by.check();
    }
}

fn unmasked_client_frame_closes_1002(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    scene.expect_close("unmasked text", 1002, |raw| {
        raw.send_frame(
            FIN | TEXT,
            b"GET / HTTP/1.1\r\nHost: by-b\r\nCSeq: 1\r\n\r\n",
            false,
        )
    });
    scene.expect_close("unmasked ping", 1002, |raw| {
        raw.send_frame(FIN | PING, b"hi", false)
    });
}

fn rsv_bits_set_close_1002(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    for (name, bit) in [("RSV1", 0x40), ("RSV2", 0x20), ("RSV3", 0x10)] {
        scene.expect_close(name, 1002, |raw| {
            raw.send_frame(
                FIN | bit | TEXT,
                b"GET / HTTP/1.1\r\nHost: by-b\r\nCSeq: 1\r\n\r\n",
                true,
            )
        });
    }
}

fn reserved_opcodes_close_1002(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    for opcode in (0x3..=0x7).chain(0xb..=0xf) {
        scene.expect_close(&format!("opcode {opcode:#x}"), 1002, |raw| {
            raw.send_frame(FIN | opcode, b"what is this", true)
        });
    }
}

fn ping_with_a_126_byte_payload_closes_1002(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    scene.expect_close("126-byte ping", 1002, |raw| {
        raw.send_frame(FIN | PING, &[b'p'; 126], true)
    });
    // 125 is the largest legal control payload: answered with a pong, connection stays.
    let mut raw = scene.offender();
    raw.send_frame(FIN | PING, &[b'q'; 125], true);
    assert_eq!(raw.read_frame(), (PONG, vec![b'q'; 125]));
    scene.by.check();
}

fn fragmented_control_frames_close_1002(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    scene.expect_close("ping without FIN", 1002, |raw| {
        raw.send_frame(PING, b"half a ping", true)
    });
    scene.expect_close("pong without FIN", 1002, |raw| {
        raw.send_frame(PONG, b"half a pong", true)
    });
    scene.expect_close("close without FIN", 1002, |raw| {
        raw.send_frame(CLOSE, &1000u16.to_be_bytes(), true)
    });
    // A fragmented ping inside a fragmented message.
    scene.expect_close("ping without FIN inside a message", 1002, |raw| {
        raw.send_frame(TEXT, b"GET / HTTP/1.1\r\n", true);
        raw.send_frame(PING, b"x", true);
    });
}

fn declared_2_pow_62_length_closes_1009_without_allocating(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    let pid = scene.proxy.pid();
    let before = vm_rss_kib(pid);

    let mut raw = scene.offender();
    // A binary frame declaring 2^62 bytes: header and mask key, no payload at all.
    let mut header = vec![FIN | BINARY, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.stream.write_all(&header).expect("write header");
    scene.by.check();
    let (frames, code) = raw.frames_until_close();
    assert_eq!(
        frames.len(),
        1,
        "one indication before the close: {frames:?}"
    );
    let (opcode, payload) = &frames[0];
    assert_eq!(*opcode, TEXT);
    let (token, _) = parse_error_indication(&String::from_utf8_lossy(payload));
    assert_eq!(token, "message-too-large");
    assert_eq!(code, Some(1009));
    assert_ends(&mut raw.stream);
    drop(raw);

    // With the top bit set the length is not even a valid length: 1002.
    scene.expect_close("2^63 length", 1002, |raw| {
        let mut header = vec![FIN | BINARY, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 63).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        raw.stream.write_all(&header).expect("write header");
    });

    // A length just under the 16 MiB limit with a few bytes behind it: the proxy must not
    // reserve the declared length on the sender's say-so. Several at once, so a per-frame
    // reservation would show as 15+ MiB each.
    let mut hanging: Vec<RawClient> = (0..4).map(|_| scene.offender()).collect();
    for raw in &mut hanging {
        let mut frame = vec![FIN | BINARY, 0x80 | 127];
        frame.extend_from_slice(&(15u64 << 20).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(b"GET / HTTP/1.1\r\n");
        raw.stream.write_all(&frame).expect("write partial frame");
    }
    // A bystander round trip through both shards gives them a turn at those bytes.
    scene.by.check();
    let after = vm_rss_kib(pid);
    assert!(
        after < before + 8 * 1024,
        "proxy RSS went from {before} KiB to {after} KiB on declared lengths alone"
    );
    drop(hanging);
    scene.by.check();
}

fn invalid_close_codes_close_1002(driver: Driver) {
    let mut scene = FrameScene::start(driver);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000, u16::MAX] {
        scene.expect_close(&format!("close code {code}"), 1002, |raw| {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(b"bye");
            raw.send_frame(FIN | CLOSE, &payload, true)
        });
    }
    scene.expect_close("1-byte close payload", 1002, |raw| {
        raw.send_frame(FIN | CLOSE, &[0x03], true)
    });
    // A valid code is echoed (so the refusals above are about the code).
    scene.expect_close("close code 4000", 4000, |raw| {
        raw.send_frame(FIN | CLOSE, &4000u16.to_be_bytes(), true)
    });
}

// =============================================================================================
// Message attacks
// =============================================================================================

/// A proxy, the bystanders, an attacker `mallory` and its target `victim` (both tungstenite).
struct Scene {
    proxy: Proxy,
    by: Bystanders,
    mallory: Endpoint,
    victim: Endpoint,
    next_cseq: u64,
}

impl Scene {
    fn start(driver: Driver, extra: &[&str]) -> Scene {
        let proxy = Proxy::start(driver, extra);
        let by = Bystanders::register(&proxy);
        let mallory = connect(&proxy, "/mallory");
        let victim = connect(&proxy, "/victim");
        let mut scene = Scene {
            proxy,
            by,
            mallory,
            victim,
            next_cseq: 1000,
        };
        scene.victim_still_serves();
        scene
    }

    /// Barrier: mallory → victim with a valid request; the victim's next message must be
    /// exactly that request (so nothing mallory sent before it was delivered), and mallory's
    /// next message exactly the answer.
    #[track_caller]
    fn victim_still_serves(&mut self) {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let path = format!("/valid/{cseq}");
        self.mallory.request("victim", cseq, &path);
        let seen = self.victim.recv_http();
        assert_eq!(
            seen.start,
            format!("GET {path} HTTP/1.1"),
            "the victim's next message must be the valid request, got {seen:?}"
        );
        assert_eq!(seen.all("httpws-from"), vec!["mallory"]);
        self.victim.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 2\r\n\r\nok",
            seen.cseq()
        ));
        let response = self.mallory.recv_http();
        assert_eq!(
            (response.status(), response.cseq(), response.body.as_str()),
            (200, cseq, "ok"),
            "{response:?}"
        );
    }

    /// Bystanders relay while mallory is connected, and again once mallory has gone.
    fn finish(mut self) {
        self.by.check();
        close_and_wait(self.mallory);
        self.by.check();
        // The victim is still reachable, from a bystander now.
        self.by.a.request("victim", 77, "/after");
        let seen = self.victim.answer("fine");
        assert_eq!(seen.start, "GET /after HTTP/1.1");
        let response = self.by.a.recv_http();
        assert_eq!((response.status(), response.cseq()), (200, 77));
        drop(self.proxy);
    }
}

fn random_bytes_get_bad_message_and_the_connection_stays_open(driver: Driver) {
    let mut scene = Scene::start(driver, &[]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in [1usize, 7, 300, 5000] {
        let mut junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        // Never ':' first: that would make it an (ignored) indication.
        if junk[0] == b':' {
            junk[0] = 0xff;
        }
        scene
            .mallory
            .ws
            .send(Message::binary(junk))
            .expect("send junk");
        expect_indication(&mut scene.mallory, "bad-message");
        scene.by.check();
        assert_quiet(&mut scene.victim);
        scene.victim_still_serves();
    }
    scene.finish();
}

fn http2_preface_gets_bad_message(driver: Driver) {
    let mut scene = Scene::start(driver, &[]);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    scene
        .mallory
        .ws
        .send(Message::binary(preface.clone()))
        .expect("send preface");
    expect_indication(&mut scene.mallory, "bad-message");
    // With a SETTINGS frame behind it, as a real HTTP/2 client sends.
    let mut with_settings = preface;
    with_settings.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    scene
        .mallory
        .ws
        .send(Message::binary(with_settings))
        .expect("send preface");
    expect_indication(&mut scene.mallory, "bad-message");
    scene.by.check();
    assert_quiet(&mut scene.victim);
    scene.victim_still_serves();
    scene.finish();
}

/// Mallory sends `message` (a request smuggling shape, for the victim, with CSeq `cseq`): it
/// must be answered `400 bad-request` with that CSeq and never reach the victim.
fn smuggle(driver: Driver, message: &[u8], cseq: u64) {
    let mut scene = Scene::start(driver, &[]);
    scene
        .mallory
        .ws
        .send(Message::binary(message.to_vec()))
        .expect("send");
    let Some(text) = recv_within(&mut scene.mallory, Duration::from_secs(5)) else {
        let leaked = recv_within(&mut scene.victim, Duration::from_millis(200));
        panic!(
            "no answer to {:?}; the victim received {leaked:?}",
            String::from_utf8_lossy(message)
        );
    };
    if text.starts_with(":error ") {
        panic!(
            "{:?} was answered with the indication {text:?}, not 400 bad-request",
            String::from_utf8_lossy(message)
        );
    }
    let response = Http::parse(&text);
    if response.status() != 400 {
        let leaked = recv_within(&mut scene.victim, Duration::from_millis(200));
        panic!(
            "{:?} was not refused: answered {response:?}; the victim received {leaked:?}",
            String::from_utf8_lossy(message)
        );
    }
    assert_proxy_error_with_reason(&response, 400, "bad-request", cseq);
    assert!(
        response.body.starts_with("malformed"),
        "the reason names the head malformed: {response:?}"
    );
    // While mallory's connection is open.
    scene.by.check();
    // Never delivered: nothing arrives, and the victim's next message is the valid request.
    assert_quiet(&mut scene.victim);
    scene.victim_still_serves();
    // The refused CSeq was not left in flight: mallory may use it again at once.
    scene.mallory.request("victim", cseq, "/reuse");
    let seen = scene.victim.answer("reused");
    assert_eq!(seen.start, "GET /reuse HTTP/1.1");
    let again = scene.mallory.recv_http();
    assert_eq!((again.status(), again.cseq()), (200, cseq), "{again:?}");
    scene.finish();
}

fn smuggle_transfer_encoding_and_content_length(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 11\r\nTransfer-Encoding: chunked\r\n\
          Content-Length: 5\r\n\r\n0\r\n\r\n",
        11,
    );
}

fn smuggle_content_length_and_transfer_encoding_reversed(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 12\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        12,
    );
}

fn smuggle_duplicate_content_length(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 13\r\nContent-Length: 3\r\n\
          Content-Length: 3\r\n\r\nabc",
        13,
    );
}

fn smuggle_conflicting_content_lengths(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 14\r\nContent-Length: 3\r\n\
          Content-Length: 0\r\n\r\nabc",
        14,
    );
}

fn smuggle_content_length_with_plus_sign(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 15\r\nContent-Length: +10\r\n\r\n0123456789",
        15,
    );
}

fn smuggle_content_length_in_hex(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 16\r\nContent-Length: 0x10\r\n\r\n\
          0123456789abcdef",
        16,
    );
}

fn smuggle_empty_content_length(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 17\r\nContent-Length: \r\n\r\n",
        17,
    );
}

fn smuggle_content_length_list(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 18\r\nContent-Length: 10, 11\r\n\r\n\
          0123456789",
        18,
    );
}

fn smuggle_transfer_encoding_gzip(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 19\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
        19,
    );
}

fn smuggle_transfer_encoding_chunked_then_gzip(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 20\r\nTransfer-Encoding: chunked, gzip\r\n\r\n\
          0\r\n\r\n",
        20,
    );
}

fn smuggle_transfer_encoding_identity(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 21\r\nTransfer-Encoding: identity\r\n\r\n",
        21,
    );
}

fn smuggle_duplicate_transfer_encoding(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 22\r\nTransfer-Encoding: chunked\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        22,
    );
}

fn smuggle_bare_lf_line_ends(driver: Driver) {
    smuggle(driver, b"GET / HTTP/1.1\nHost: victim\nCSeq: 23\n\n", 23);
}

fn smuggle_one_bare_lf_line_end_hiding_a_header(driver: Driver) {
    // A proxy seeing CRLF lines only would read "X-Note" as one header; a target that
    // accepts bare LF sees a forged Httpws-From.
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 24\r\nX-Note: a\nHttpws-From: by-b\r\n\r\n",
        24,
    );
}

fn smuggle_bare_cr_line_end(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 25\r\nX-Note: a\rHttpws-From: by-b\r\n\r\n",
        25,
    );
}

fn smuggle_bare_cr_after_the_request_line(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\rHost: by-b\r\nHost: victim\r\nCSeq: 26\r\n\r\n",
        26,
    );
}

fn smuggle_nul_inside_a_header_value(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 27\r\nX-Note: a\0b\r\n\r\n",
        27,
    );
}

fn smuggle_nul_inside_the_host_value(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nCSeq: 28\r\nHost: victim\0.by-b\r\n\r\n",
        28,
    );
}

fn smuggle_cr_inside_a_header_value(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 29\r\nX-Note: a\rb\r\n\r\n",
        29,
    );
}

fn smuggle_lf_inside_a_header_value(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 30\r\nX-Note: a\nb\r\n\r\n",
        30,
    );
}

fn smuggle_obs_fold_continuation_line(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 39\r\nX-Note: a\r\n Httpws-From: by-b\r\n\r\n",
        39,
    );
}

fn smuggle_missing_host(driver: Driver) {
    smuggle(driver, b"GET / HTTP/1.1\r\nCSeq: 31\r\n\r\n", 31);
}

fn smuggle_duplicate_host(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nHost: by-b\r\nCSeq: 32\r\n\r\n",
        32,
    );
}

fn smuggle_duplicate_host_with_the_same_value(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nHost: victim\r\nCSeq: 33\r\n\r\n",
        33,
    );
}

fn smuggle_absolute_uri_naming_another_host(driver: Driver) {
    smuggle(
        driver,
        b"GET http://by-b/secret HTTP/1.1\r\nHost: victim\r\nCSeq: 34\r\n\r\n",
        34,
    );
}

fn smuggle_body_beyond_content_length(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 35\r\nContent-Length: 3\r\n\r\n\
          abcGET /smuggled HTTP/1.1\r\nHost: victim\r\nCSeq: 36\r\n\r\n",
        35,
    );
}

fn smuggle_body_without_any_length(driver: Driver) {
    smuggle(
        driver,
        b"GET / HTTP/1.1\r\nHost: victim\r\nCSeq: 37\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        37,
    );
}

fn smuggle_bytes_after_the_last_chunk(driver: Driver) {
    smuggle(
        driver,
        b"POST / HTTP/1.1\r\nHost: victim\r\nCSeq: 38\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        38,
    );
}

fn response_with_an_unissued_cseq_is_dropped_and_the_caller_unaffected(driver: Driver) {
    let mut scene = Scene::start(driver, &[]);
    // The victim calls mallory (as a target), and mallory answers with a CSeq it was never
    // given (then with a huge one).
    scene.victim.request("mallory", 5, "/ask-mallory");
    let seen = scene.mallory.recv_http();
    assert_eq!(seen.start, "GET /ask-mallory HTTP/1.1");
    let issued = seen.cseq();
    for forged in [issued + 1, u64::MAX] {
        scene.mallory.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {forged}\r\nContent-Length: 6\r\n\r\nforged"
        ));
        expect_indication(&mut scene.mallory, "unknown-cseq");
    }
    scene.by.check();
    // Dropped: the caller received nothing, and its request is still waiting.
    assert_quiet(&mut scene.victim);
    scene.mallory.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {issued}\r\nContent-Length: 4\r\n\r\nreal"
    ));
    let response = scene.victim.recv_http();
    assert_eq!(
        (response.status(), response.cseq(), response.body.as_str()),
        (200, 5, "real"),
        "{response:?}"
    );
    scene.victim_still_serves();
    scene.finish();
}

fn duplicate_in_flight_cseq_is_refused_with_duplicate_cseq(driver: Driver) {
    let mut scene = Scene::start(driver, &[]);
    scene.mallory.request("victim", 7, "/first");
    let first = scene.victim.recv_http();
    assert_eq!(first.start, "GET /first HTTP/1.1");
    // The same CSeq while the first is in flight, to the same target and to another one.
    scene.mallory.request("victim", 7, "/second");
    expect_indication(&mut scene.mallory, "duplicate-cseq");
    scene.mallory.request("by-b", 7, "/third");
    expect_indication(&mut scene.mallory, "duplicate-cseq");
    scene.by.check(); // by-b's next message is the bystander request: /third never came
    assert_quiet(&mut scene.victim);
    // The first still gets its answer.
    scene.victim.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 5\r\n\r\nfirst",
        first.cseq()
    ));
    let response = scene.mallory.recv_http();
    assert_eq!(
        (response.status(), response.cseq(), response.body.as_str()),
        (200, 7, "first")
    );
    scene.victim_still_serves();
    scene.finish();
}

fn message_over_the_size_limit_gets_message_too_large_and_close_1009(driver: Driver) {
    let mut scene = Scene::start(driver, &["--max-message-bytes", "4096"]);
    let mut message =
        b"POST /big HTTP/1.1\r\nHost: victim\r\nCSeq: 9\r\nContent-Length: 5000\r\n\r\n".to_vec();
    message.extend(std::iter::repeat_n(b'x', 5000));
    scene
        .mallory
        .ws
        .send(Message::binary(message))
        .expect("send");
    scene.by.check();
    expect_indication(&mut scene.mallory, "message-too-large");
    assert_eq!(scene.mallory.expect_close(), Some(1009));
    // Never delivered.
    assert_quiet(&mut scene.victim);
    scene.by.check();
    // Mallory's name is free again.
    let mut again = connect(&scene.proxy, "/mallory");
    again.request("victim", 10, "/small");
    let seen = scene.victim.answer("small");
    assert_eq!(seen.start, "GET /small HTTP/1.1");
    assert_eq!(again.recv_http().cseq(), 10);
    scene.by.check();
}

// =============================================================================================
// Registration with a tokens file
// =============================================================================================

/// `printf %s TOKEN | httpws hash-token`.
fn hash_token(token: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_httpws"))
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn hash-token");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write token");
    let out = child.wait_with_output().expect("hash-token output");
    assert!(out.status.success(), "hash-token failed: {out:?}");
    let hash = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert_eq!(hash.len(), 64, "{hash:?}");
    hash
}

/// Start a proxy with a tokens file: `alpha-secret` may hold `alpha-*`, `beta-secret` `beta-*`,
/// `by-secret` the bystanders' `by-*`, and `ops-secret` any name. Returns the proxy and the
/// bystanders (registered with their token).
fn start_with_tokens(test: &str, driver: Driver) -> (Proxy, Bystanders) {
    // Per process too: two runs of this binary at once must not share the file.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-{test}-{driver:?}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmpdir");
    let path = dir.join("tokens.toml");
    let mut text = String::new();
    for (label, names) in [
        ("alpha", "\"alpha-*\""),
        ("beta", "\"beta-*\""),
        ("by", "\"by-*\""),
        ("ops", "\"*\""),
    ] {
        text.push_str(&format!(
            "[[tokens]]\nlabel = \"{label}\"\nsha256 = \"{}\"\nnames = [{names}]\n\n",
            hash_token(&format!("{label}-secret"))
        ));
    }
    std::fs::write(&path, text).expect("write tokens file");
    let proxy = Proxy::start(driver, &["--tokens", path.to_str().expect("utf-8 path")]);
    // Read at start-up (and only again on SIGHUP, which these tests never send).
    let _ = std::fs::remove_dir_all(&dir);
    let by = Bystanders::register_with(&proxy, &[("Authorization", "Bearer by-secret")]);
    (proxy, by)
}

fn registration_with_a_wrong_token_gets_401(driver: Driver) {
    let (proxy, mut by) = start_with_tokens("wrong-token", driver);
    assert_eq!(
        register(&proxy, "alpha-1", Some("not-a-token")).err(),
        Some(401)
    );
    assert_eq!(
        register(&proxy, "alpha-1", Some("alpha-secreT")).err(),
        Some(401)
    );
    assert_eq!(register(&proxy, "alpha-1", None).err(), Some(401));
    assert_eq!(
        connect_with(&proxy, "/alpha-1?access_token=guess", &[]).err(),
        Some(401)
    );
    // The raw refusal: 401 with a Bearer challenge, and the connection closed.
    let mut stream = raw_stream(proxy.addr);
    write!(
        stream,
        "GET /alpha-1 HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\
         Authorization: Bearer nope\r\n\r\n"
    )
    .expect("write");
    by.check();
    let head = read_response_head(&mut stream);
    assert_eq!(status_of(&head), 401, "{head}");
    assert_eq!(header_values(&head, "www-authenticate"), vec!["Bearer"]);
    let body = assert_ends(&mut stream);
    assert!(
        !String::from_utf8_lossy(&body).contains("nope"),
        "the token is never echoed: {body:?}"
    );
    by.check();
    // The name is still free for its owner.
    assert!(register(&proxy, "alpha-1", Some("alpha-secret")).is_ok());
    by.check();
}

fn registration_with_a_token_for_another_name_gets_403(driver: Driver) {
    let (proxy, mut by) = start_with_tokens("other-name", driver);
    assert_eq!(
        register(&proxy, "alpha-1", Some("beta-secret")).err(),
        Some(403)
    );
    assert_eq!(
        register(&proxy, "by-c", Some("alpha-secret")).err(),
        Some(403)
    );
    by.check();
    // A bystander's name with another valid token: refused, and the bystander undisturbed.
    assert_eq!(
        register(&proxy, "by-b", Some("beta-secret")).err(),
        Some(403)
    );
    by.check();
    assert!(register(&proxy, "beta-1", Some("beta-secret")).is_ok());
    by.check();
}

fn takeover_with_the_same_token_replaces_the_old_connection(driver: Driver) {
    let (proxy, mut by) = start_with_tokens("takeover", driver);
    let mut old = register(&proxy, "alpha-1", Some("alpha-secret")).expect("first");
    // A request pending on the old connection when it is replaced.
    by.a.request("alpha-1", 40, "/pending");
    assert_eq!(old.recv_http().start, "GET /pending HTTP/1.1");

    let mut new = register(&proxy, "alpha-1", Some("alpha-secret")).expect("takeover: 101");
    assert_eq!(new.address, "alpha-1", "the newcomer's :host");
    // The pending request can never be answered now: target-gone, with by-a's CSeq.
    assert_proxy_error_with_reason(&by.a.recv_http(), 502, "target-gone", 40);
    // The old connection is still open on our side.
    by.check();
    let (messages, code) = until_close(&mut old);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (token, reason) = parse_error_indication(&messages[0]);
    assert_eq!(token, "replaced");
    assert!(!reason.contains("alpha-secret"), "{reason:?}");
    assert_eq!(code, Some(1000));
    drop(old);
    by.check();
    // Requests for alpha-1 reach the newcomer.
    by.a.request("alpha-1", 41, "/to-new");
    let seen = new.answer("new");
    assert_eq!(seen.start, "GET /to-new HTTP/1.1");
    let response = by.a.recv_http();
    assert_eq!((response.status(), response.cseq()), (200, 41));
    by.check();
}

/// Send a registration for `path` with `extra` header lines; the refusal's status and its
/// `text/plain` reason.
fn refusal(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut stream = raw_stream(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n{extra}\r\n")
        .expect("write handshake");
    let head = read_response_head(&mut stream);
    let body = assert_ends(&mut stream);
    (
        status_of(&head),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn a_name_held_without_a_token_says_it_frees_itself(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let holder = connect(&proxy, "/plain");
    for extra in ["", "Authorization: Bearer some-token\r\n"] {
        let (status, reason) = refusal(proxy.addr, "/plain", extra);
        assert_eq!(status, 409);
        assert!(reason.contains("held by another connection"), "{reason:?}");
        assert!(!reason.contains("another credential"), "{reason:?}");
    }
    drop(holder);
}

fn a_different_token_cannot_take_a_live_name(driver: Driver) {
    let (proxy, mut by) = start_with_tokens("different-token", driver);
    let mut holder = register(&proxy, "alpha-1", Some("alpha-secret")).expect("holder");
    // ops may hold any name, but not one alpha holds.
    for _ in 0..3 {
        assert_eq!(
            register(&proxy, "alpha-1", Some("ops-secret")).err(),
            Some(409)
        );
    }
    assert_eq!(
        connect_with(&proxy, "/alpha-1?access_token=ops-secret", &[]).err(),
        Some(409)
    );
    // The reason says the holder has its own credential: retrying cannot help.
    let (status, reason) = refusal(
        proxy.addr,
        "/alpha-1",
        "Authorization: Bearer ops-secret\r\n",
    );
    assert_eq!(status, 409);
    assert!(reason.contains("held by another credential"), "{reason:?}");
    by.check();
    // The holder was not disturbed: its next message is a request, not an indication.
    by.a.request("alpha-1", 50, "/still-yours");
    let seen = holder.answer("mine");
    assert_eq!(seen.start, "GET /still-yours HTTP/1.1");
    assert_eq!(by.a.recv_http().cseq(), 50);
    drop(holder);
    by.check();
}

// =============================================================================================
// Slowloris
// =============================================================================================

/// How each slowloris connection ended, as seen by the attacker.
#[derive(Debug)]
struct Ended {
    lived: Duration,
    bytes_received: usize,
}

fn slowloris_connections_are_closed_at_the_handshake_timeout(driver: Driver) {
    const CONNS: usize = 500;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let proxy = Proxy::start(driver, &["--handshake-timeout", "2s"]);
    let pid = proxy.pid();
    let mut by = Bystanders::register(&proxy);
    let baseline = open_fds(pid);

    let addr = proxy.addr;
    let (opened_tx, opened_rx) = mpsc::channel();
    let attacker = thread::spawn(move || slowloris(addr, CONNS, opened_tx));
    opened_rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the attacker opened its connections");

    // All 500 are held by the proxy (accepted, one descriptor each) while they hang.
    let during = wait_for(
        Duration::from_millis(1500),
        || open_fds(pid),
        |n| n >= baseline + CONNS,
    );
    assert!(
        during >= baseline + CONNS,
        "the proxy holds {during} descriptors, baseline {baseline}: not all {CONNS} accepted"
    );
    // Meanwhile, a newcomer registers and everyone relays.
    by.check();
    let mut newcomer = connect(&proxy, "/newcomer");
    newcomer.request("by-b", 1, "/from-newcomer");
    let seen = by.b.answer("welcome");
    assert_eq!(seen.all("httpws-from"), vec!["newcomer"]);
    assert_eq!(newcomer.recv_http().body, "welcome");
    by.check();

    let ended = attacker.join().expect("attacker thread");
    assert_eq!(ended.len(), CONNS);
    let min = ended.iter().map(|e| e.lived).min().expect("some");
    let max = ended.iter().map(|e| e.lived).max().expect("some");
    assert!(
        min >= TIMEOUT - Duration::from_millis(200),
        "a slowloris connection was closed after {min:?}, before the {TIMEOUT:?} timeout"
    );
    assert!(
        max <= TIMEOUT + Duration::from_secs(4),
        "a slowloris connection lived {max:?} (handshake timeout {TIMEOUT:?})"
    );
    assert!(
        ended.iter().all(|e| e.bytes_received == 0),
        "timed-out handshakes are closed without an answer"
    );

    eprintln!("slowloris: {CONNS} closed after {min:?}..{max:?}; proxy fds {baseline} -> {during}");
    close_and_wait(newcomer);
    by.check();
    let after = wait_for(
        Duration::from_secs(5),
        || open_fds(pid),
        |n| n <= baseline + 2,
    );
    assert!(
        after <= baseline + 2,
        "the proxy still holds {after} descriptors after the attack (baseline {baseline})"
    );
    by.check();
}

/// Open `conns` connections and send one handshake byte per second on each until the proxy
/// closes them; returns how each ended. `opened` is told once all are open.
fn slowloris(addr: SocketAddr, conns: usize, opened: mpsc::Sender<()>) -> Vec<Ended> {
    const SLOW: &[u8] =
        b"GET /slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let deadline = Instant::now() + Duration::from_secs(15);
    struct Conn {
        stream: TcpStream,
        opened: Instant,
        sent: usize,
        received: usize,
    }
    let mut live: Vec<Conn> = (0..conns)
        .map(|_| {
            // Taken before connecting: the proxy's clock for this connection starts later.
            let opened = Instant::now();
            let mut stream = TcpStream::connect(addr).expect("tcp connect");
            stream.write_all(&SLOW[..1]).expect("first byte");
            stream.set_nonblocking(true).expect("nonblocking");
            Conn {
                stream,
                opened,
                sent: 1,
                received: 0,
            }
        })
        .collect();
    opened.send(()).expect("main thread waits");
    let mut ended = Vec::new();
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    while !live.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} slowloris connections still open after 15 s",
            live.len()
        );
        let now = Instant::now();
        if now >= next_tick {
            for c in &mut live {
                // A failed write means the proxy closed it; the read below will tell.
                if c.stream.write(&SLOW[c.sent % SLOW.len()..][..1]).is_ok() {
                    c.sent += 1;
                }
            }
            next_tick += Duration::from_secs(1);
        }
        let mut fds: Vec<libc::pollfd> = live
            .iter()
            .map(|c| libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait = next_tick.saturating_duration_since(Instant::now());
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for open descriptors.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                wait.as_millis().max(1) as libc::c_int,
            )
        };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        if n == 0 {
            continue;
        }
        let mut i = 0;
        live.retain_mut(|c| {
            let ready = fds[i].revents != 0;
            i += 1;
            if !ready {
                return true;
            }
            let mut buf = [0u8; 512];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => c.received += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break, // reset: closed
                }
            }
            ended.push(Ended {
                lived: c.opened.elapsed(),
                bytes_received: c.received,
            });
            false
        });
    }
    ended
}

// =============================================================================================
// Clients that send while they never read: every queued frame counts, and counts what it holds
// =============================================================================================

/// Send `chunk` over and over (at most `limit` bytes) to a proxy that should drop us: true
/// once a write fails (the proxy reset the connection), false if all `limit` bytes went in.
fn flood_until_dropped(stream: &mut TcpStream, chunk: &[u8], limit: usize) -> bool {
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut sent = 0;
    while sent < limit {
        if stream.write_all(chunk).is_err() {
            return true;
        }
        sent += chunk.len();
    }
    false
}

/// One masked client frame, as bytes.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x21, 0x43, 0x65, 0x87];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

fn floods_without_reading_are_dropped_at_the_queue_limit(driver: Driver) {
    // Queue limit 256 KiB, messages up to 64 KiB: a connection is dropped once what is queued
    // to it passes 2 × 256 KiB + 64 KiB, whatever the frames are.
    const FLOOD: usize = 18 * 1024 * 1024;
    let proxy = Proxy::start(
        driver,
        &[
            "--max-queued-bytes",
            "262144",
            "--max-message-bytes",
            "65536",
        ],
    );
    let pid = proxy.pid();
    let mut by = Bystanders::register(&proxy);
    let mut requests_for_nobody = Vec::new();
    for cseq in 1..=2000u64 {
        let head = format!("GET / HTTP/1.1\r\nHost: nobody\r\nCSeq: {cseq}\r\n\r\n");
        requests_for_nobody.extend(client_frame(FIN | BINARY, head.as_bytes()));
    }
    let floods: [(&str, Vec<u8>); 4] = [
        (
            "empty pings (answered by pongs)",
            client_frame(FIN | PING, b"").repeat(8192),
        ),
        (
            "125-byte pings",
            client_frame(FIN | PING, &[b'p'; 125]).repeat(512),
        ),
        (
            "garbage messages (answered by :error bad-message)",
            client_frame(FIN | BINARY, b"x").repeat(8192),
        ),
        (
            "requests for nobody (answered by 404 unknown-address)",
            requests_for_nobody,
        ),
    ];
    for (i, (what, chunk)) in floods.iter().enumerate() {
        let baseline = vm_rss_kib(pid);
        let mut raw = RawClient::connect_small_window(&proxy, &format!("/flooder-{i}"), 4096);
        let dropped = flood_until_dropped(&mut raw.stream, chunk, FLOOD);
        let grown = vm_rss_kib(pid).saturating_sub(baseline);
        assert!(
            dropped,
            "{what}: {FLOOD} bytes sent without reading and the proxy did not drop the sender \
             (RSS +{grown} KiB)"
        );
        assert!(
            grown < 16 * 1024,
            "{what}: proxy RSS grew by {grown} KiB for one sender that never reads \
             (--max-queued-bytes 256 KiB)"
        );
        by.check();
    }
}

fn tiny_messages_waiting_for_a_non_reader_do_not_pin_shared_blocks(driver: Driver) {
    // What the kernel can buffer towards the target: its largest send buffer, plus margin.
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 << 20);
    const MIB: usize = 1 << 20;
    let fill = wmem_max / MIB + 4;
    let max_queued = (fill + 16) * MIB;
    // One shard, so that the tiny requests and the filler share the shard's read block.
    let proxy = Proxy::start(
        driver,
        &[
            "--shards",
            "1",
            "--max-queued-bytes",
            &max_queued.to_string(),
        ],
    );
    let pid = proxy.pid();
    let mut by = Bystanders::register(&proxy);
    let _sink = RawClient::connect_small_window(&proxy, "/sink", 4096);
    let mut caller = connect(&proxy, "/tiny-caller");
    // Fill every buffer between the proxy and the sink: what comes next has to wait.
    let big = vec![b'B'; MIB];
    for cseq in 1..=fill as u64 {
        let mut message = format!(
            "POST /fill HTTP/1.1\r\nHost: sink\r\nCSeq: {cseq}\r\nContent-Length: {MIB}\r\n\r\n"
        )
        .into_bytes();
        message.extend_from_slice(&big);
        caller
            .ws
            .send(Message::binary(message))
            .expect("send filler");
    }
    // A busy endpoint that reads everything: its 60 KiB messages to itself use up the rest of
    // each read block the proxy reads a tiny request into.
    let mut busy = connect(&proxy, "/busy");
    let (seen_tx, seen_rx) = mpsc::channel();
    let busy_reader = {
        let stream = busy.ws.get_ref().try_clone().expect("clone busy socket");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut reader = tungstenite::WebSocket::from_raw_socket(
            stream,
            tungstenite::protocol::Role::Client,
            None,
        );
        thread::spawn(move || {
            while let Ok(message) = reader.read() {
                if message.is_binary() && seen_tx.send(()).is_err() {
                    break;
                }
            }
        })
    };
    let filler = vec![b'f'; 60 * 1024];
    thread::sleep(Duration::from_millis(300)); // let the fill reach the kernel's buffers
    let baseline = vm_rss_kib(pid);
    const TINY: u64 = 1500;
    for cseq in 100..100 + TINY {
        let tiny =
            format!("POST /t HTTP/1.1\r\nHost: sink\r\nCSeq: {cseq}\r\nContent-Length: 1\r\n\r\nx");
        caller.ws.send(Message::binary(tiny)).expect("send tiny");
        let mut message = format!(
            "POST /f HTTP/1.1\r\nHost: busy\r\nCSeq: {cseq}\r\nContent-Length: {}\r\n\r\n",
            filler.len()
        )
        .into_bytes();
        message.extend_from_slice(&filler);
        busy.ws.send(Message::binary(message)).expect("send busy");
        seen_rx
            .recv_timeout(IO_TIMEOUT)
            .expect("the busy endpoint receives its message");
    }
    let grown = vm_rss_kib(pid).saturating_sub(baseline);
    assert!(
        grown < 24 * 1024,
        "{TINY} one-byte requests waiting for a target that never reads grew the proxy by \
         {grown} KiB (about {} KiB of them)",
        TINY * 130 / 1024
    );
    by.check();
    drop(busy);
    let _ = busy_reader.join();
}

// =============================================================================================
// Streams (protocol 2): every stream message a peer can get wrong
// =============================================================================================

fn stream_violations_reset_only_their_stream(driver: Driver) {
    let proxy = Proxy::start(driver, &["--max-streams", "8"]);
    let mut by = Bystanders::register(&proxy);
    let (mut alice, mut bob, bob_name) = stream_wire::pair(&proxy, "alice", "bob");
    let open = |alice: &mut common::ws::Endpoint, bob: &mut common::ws::Endpoint, cseq: u64| {
        let head = format!(
            "POST /s HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: {cseq}\r\nHttpws-Stream: body\r\n\r\n"
        );
        stream_wire::send(alice, head);
        stream_wire::head_of(&stream_wire::recv(bob)).1
    };
    // A window violation.
    let p = open(&mut alice, &mut bob, 1);
    stream_wire::send(
        &mut alice,
        stream_wire::data('>', 1, &vec![0u8; 256 * 1024 + 1]),
    );
    let reset = stream_wire::recv_tagged(&mut bob);
    assert_eq!(
        (reset.cseq, reset.arg.as_deref()),
        (p, Some("flow-control"))
    );
    assert!(stream_wire::recv(&mut alice).starts_with(b"HTTP/1.1 502"));
    by.check();
    // Data after end.
    let p = open(&mut alice, &mut bob, 2);
    stream_wire::send(&mut alice, stream_wire::tag("end", '>', 2, None));
    assert_eq!(stream_wire::recv_tagged(&mut bob).verb, "end");
    stream_wire::send(&mut alice, stream_wire::data('>', 2, b"late"));
    let reset = stream_wire::recv_tagged(&mut bob);
    assert_eq!((reset.cseq, reset.arg.as_deref()), (p, Some("protocol")));
    let answer = stream_wire::recv(&mut alice);
    assert!(answer.starts_with(b"HTTP/1.1 502"), "{answer:?}");
    by.check();
    // Data for streams nobody opened (a caller's is dropped quietly: it may have just ended;
    // the next indication alice gets is the first malformed line's), and malformed tag lines.
    stream_wire::send(&mut alice, stream_wire::data('>', 4242, b"x"));
    stream_wire::send(&mut bob, stream_wire::data('<', 4242, b"x"));
    expect_indication(&mut bob, "unknown-cseq");
    for garbage in [
        &b"~"[..],
        b"~data\n",
        b"~data >x\n",
        b"~credit >1 -5\n",
        b"~nope >1\n",
    ] {
        stream_wire::send(&mut alice, garbage.to_vec());
        expect_indication(&mut alice, "bad-message");
    }
    by.check();
    // A flood of open streams stops at --max-streams, and the rest still work.
    let mut accepted = 0;
    let mut refused = 0;
    for cseq in 100..140u64 {
        let head = format!(
            "POST /s HTTP/1.1\r\nHost: {bob_name}\r\nCSeq: {cseq}\r\nHttpws-Stream: body\r\n\r\n"
        );
        stream_wire::send(&mut alice, head);
    }
    // Each is either relayed to bob or answered target-busy, exactly once.
    let deadline = Instant::now() + IO_TIMEOUT;
    while accepted + refused < 40 && Instant::now() < deadline {
        if let Some(answer) = recv_within(&mut alice, Duration::from_millis(20)) {
            assert!(answer.contains("Httpws-Error: target-busy"), "{answer}");
            refused += 1;
        }
        if recv_within(&mut bob, Duration::from_millis(20)).is_some() {
            accepted += 1;
        }
    }
    assert_eq!(accepted + refused, 40, "every stream head gets one outcome");
    assert!(
        accepted <= 8,
        "{accepted} streams opened past --max-streams 8"
    );
    assert!(refused >= 32, "only {refused} refused");
    by.check();
}

// =============================================================================================
// A target that stops reading
// =============================================================================================

fn zero_window_target_gets_target_busy_and_memory_stays_bounded(driver: Driver) {
    const MAX_QUEUED: usize = 256 * 1024;
    const BODY: usize = 64 * 1024;
    const MAX_REQUESTS: u64 = 400; // 25 MiB: far past any kernel buffer
    const STEADY: usize = 5;
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
    let proxy = Proxy::start(
        driver,
        &["--max-queued-bytes", "262144", "--request-timeout", "3s"],
    );
    let pid = proxy.pid();
    let mut by = Bystanders::register(&proxy);

    // The target: a tiny receive buffer, registered, then never read again.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&proxy.addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let request = proxy.url("/sink").into_client_request().expect("request");
    let (mut sink, _) = tungstenite::client(request, stream).expect("sink handshake");
    assert_eq!(recv_text(&mut sink), ":host sink");

    let mut flooder = connect(&proxy, "/flooder");
    let baseline = vm_rss_kib(pid);
    let body = vec![b'z'; BODY];
    // Every answer the flooder got, by CSeq: 503 target-busy, or 504 for a request the proxy
    // accepted (queued for the sink) and that then timed out.
    let mut answers: BTreeMap<u64, u16> = BTreeMap::new();
    let record = |text: String, answers: &mut BTreeMap<u64, u16>| -> u64 {
        let response = Http::parse(&text);
        let cseq = response.cseq();
        match response.status() {
            503 => assert_proxy_error_with_reason(&response, 503, "target-busy", cseq),
            504 => assert_proxy_error_with_reason(&response, 504, "timeout", cseq),
            _ => panic!("the flooder got {response:?}"),
        }
        assert!(
            answers.insert(cseq, response.status()).is_none(),
            "CSeq {cseq} answered twice"
        );
        cseq
    };
    let mut peak = baseline;
    let mut first_busy = None;
    // Requests in a row, after the first refusal, whose own refusal came while we waited.
    let mut refused_in_a_row = 0;
    let mut sent = 0;
    while refused_in_a_row < STEADY {
        assert!(
            sent < MAX_REQUESTS,
            "{sent} requests of {BODY} bytes to a target that never reads, and the proxy does \
             not refuse them steadily (answers: {answers:?})"
        );
        sent += 1;
        let cseq = sent;
        let mut message = format!(
            "POST /flood/{cseq} HTTP/1.1\r\nHost: sink\r\nCSeq: {cseq}\r\n\
             Content-Length: {BODY}\r\n\r\n"
        )
        .into_bytes();
        message.extend_from_slice(&body);
        flooder
            .ws
            .send(Message::binary(message))
            .expect("send flood request");
        // Until the first refusal, flood as fast as the proxy reads. After it, give each request
        // a moment for its refusal: the proxy may still be moving its queue into the kernel's
        // socket buffer (it refuses by its own queue), so some are accepted after the first
        // 503; once that buffer is full every request is refused.
        let wait = if first_busy.is_none() {
            Duration::from_millis(2)
        } else {
            Duration::from_millis(200)
        };
        let deadline = Instant::now() + wait;
        let mut refused_now = false;
        while let Some(text) = recv_within(
            &mut flooder,
            deadline.saturating_duration_since(Instant::now()),
        ) {
            let answered = record(text, &mut answers);
            if answers[&answered] == 503 {
                first_busy.get_or_insert(answered);
                refused_now |= answered == cseq;
            }
            if refused_now {
                break;
            }
        }
        if first_busy.is_some() {
            refused_in_a_row = if refused_now { refused_in_a_row + 1 } else { 0 };
        }
        if cseq % 16 == 0 {
            peak = peak.max(vm_rss_kib(pid));
            // The bystanders keep relaying while the flood goes on.
            by.check();
        }
    }
    peak = peak.max(vm_rss_kib(pid));
    assert!(
        peak < baseline + 64 * 1024,
        "proxy RSS grew from {baseline} KiB to {peak} KiB queueing for a target that never \
         reads (--max-queued-bytes {MAX_QUEUED})"
    );
    let first_busy = first_busy.expect("refusals were seen");
    by.check();

    // No hang: every request gets exactly one answer, the accepted ones a 504 once the
    // request timeout passes.
    let deadline = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(5);
    while (answers.len() as u64) < sent {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(text) = recv_within(&mut flooder, left) else {
            let missing: Vec<u64> = (1..=sent).filter(|c| !answers.contains_key(c)).collect();
            panic!("requests {missing:?} were never answered");
        };
        record(text, &mut answers);
    }
    let refused = answers.values().filter(|&&s| s == 503).count();
    let timed_out = answers.values().filter(|&&s| s == 504).count();
    assert!(
        timed_out as u64 >= (MAX_QUEUED / BODY) as u64,
        "only {timed_out} requests were queued for the sink before the refusals"
    );
    by.check();
    eprintln!(
        "zero-window target: {sent} sent, {timed_out} queued then timed out, {refused} \
         target-busy (first at CSeq {first_busy}); proxy RSS {baseline} KiB -> peak {peak} KiB"
    );

    drop(flooder);
    drop(sink);
    by.check();
}

// =============================================================================================
// SIGTERM under load
// =============================================================================================

fn sigterm_under_load_answers_every_in_flight_request(driver: Driver) {
    const CALLERS: usize = 4;
    const PER_CALLER: u64 = 50;
    const TOTAL: usize = CALLERS * PER_CALLER as usize;
    const SIGNAL_AFTER: usize = 50;
    const GRACE: Duration = Duration::from_secs(1);
    let mut proxy = Proxy::start(driver, &["--shutdown-grace", "1s"]);
    let mut by = Bystanders::register(&proxy);

    // The slow target: reads every request, then answers them one by one, 10 ms apart.
    let target = connect(&proxy, "/slow-target");
    let (received_tx, received_rx) = mpsc::channel();
    let (answered_tx, answered_rx) = mpsc::channel();
    let target_thread = thread::spawn(move || {
        let mut target = target;
        let mut requests = Vec::with_capacity(TOTAL);
        let mut seen = HashSet::new();
        while requests.len() < TOTAL {
            let request = target.recv_http();
            assert!(request.start.starts_with("GET /load/"), "{request:?}");
            assert!(
                seen.insert(request.cseq()),
                "proxy CSeq repeated: {request:?}"
            );
            requests.push(request);
        }
        received_tx.send(()).expect("main waits");
        for (i, request) in requests.iter().enumerate() {
            let path = request.start.split(' ').nth(1).expect("path").to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{path}",
                request.cseq(),
                path.len()
            );
            if target.ws.send(Message::text(answer)).is_err() {
                break; // the proxy has closed us
            }
            if i + 1 == SIGNAL_AFTER {
                let _ = answered_tx.send(());
            }
            thread::sleep(Duration::from_millis(10));
        }
    });

    let mut callers: Vec<Endpoint> = (0..CALLERS)
        .map(|i| connect(&proxy, &format!("/caller-{i}")))
        .collect();
    for caller in &mut callers {
        for cseq in 1..=PER_CALLER {
            caller.request(
                "slow-target",
                cseq,
                &format!("/load/{}/{cseq}", caller.address),
            );
        }
    }
    let readers: Vec<_> = callers
        .into_iter()
        .map(|mut caller| thread::spawn(move || (caller.address.clone(), until_close(&mut caller))))
        .collect();

    received_rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the target received every request");
    // Under load, before the signal.
    by.check();
    answered_rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the target answered the first requests");

    let signalled = Instant::now();
    // SAFETY: kill(2) on the PID of the child this test spawned.
    unsafe { libc::kill(proxy.pid() as i32, libc::SIGTERM) };

    // New requests during the grace period are refused with 503 target-busy (probed at an
    // address nobody holds: 404 until by-a's shard has seen the signal).
    let probe_deadline = Instant::now() + IO_TIMEOUT;
    for cseq in 1_000u64.. {
        by.a.request("nobody-holds-this", cseq, "/probe");
        let response = by.a.recv_http();
        if response.header("httpws-error") == Some("unknown-address") {
            assert_proxy_error_with_reason(&response, 404, "unknown-address", cseq);
            assert!(
                Instant::now() < probe_deadline,
                "still routing after SIGTERM"
            );
            continue;
        }
        assert_proxy_error_with_reason(&response, 503, "target-busy", cseq);
        break;
    }

    let (mut answered, mut failed, mut refused) = (0usize, 0usize, 0usize);
    for reader in readers {
        let (who, (mut messages, code)) = reader.join().expect("caller thread");
        let last = messages.pop().unwrap_or_default();
        assert!(
            last.starts_with(":error shutdown \""),
            "{who}: the last message before the close must be the shutdown indication, got \
             {last:?}"
        );
        assert_eq!(code, Some(1001), "{who}: close code");
        let mut per_cseq: BTreeMap<u64, u16> = BTreeMap::new();
        for text in &messages {
            let response = Http::parse(text);
            let cseq = response.cseq();
            match (response.status(), response.header("httpws-error")) {
                (200, None) => {
                    assert_eq!(
                        response.body,
                        format!("/load/{who}/{cseq}"),
                        "{who}: {text:?}"
                    );
                    answered += 1;
                }
                (502, Some("target-gone")) => failed += 1,
                (503, Some("target-busy")) => refused += 1,
                other => panic!("{who}: unexpected answer {other:?}: {text:?}"),
            }
            assert!(
                per_cseq.insert(cseq, response.status()).is_none(),
                "{who}: CSeq {cseq} answered twice"
            );
        }
        assert_eq!(
            per_cseq.keys().copied().collect::<Vec<_>>(),
            (1..=PER_CALLER).collect::<Vec<_>>(),
            "{who}: every request answered exactly once"
        );
    }
    assert_eq!(
        answered + failed + refused,
        TOTAL,
        "sent == responses + errors"
    );
    assert!(
        answered >= SIGNAL_AFTER,
        "the {SIGNAL_AFTER} answers sent before the signal were delivered ({answered})"
    );

    // The bystanders are told and closed too, with nothing else pending.
    for ep in [&mut by.a, &mut by.b] {
        let (messages, code) = until_close(ep);
        assert_eq!(messages.len(), 1, "{}: {messages:?}", ep.address);
        assert!(
            messages[0].starts_with(":error shutdown \""),
            "{messages:?}"
        );
        assert_eq!(code, Some(1001));
    }

    let status = proxy
        .wait_exit(GRACE + Duration::from_secs(3))
        .expect("the proxy exits after its grace period");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let took = signalled.elapsed();
    assert!(
        took < GRACE + Duration::from_secs(3),
        "exit took {took:?} (grace {GRACE:?})"
    );
    target_thread.join().expect("target thread");
    eprintln!(
        "sigterm under load: {answered} answered, {failed} target-gone, {refused} target-busy, \
         exit after {took:?}"
    );
}

// =============================================================================================

on_both_drivers!(
    handshake_without_sec_websocket_key_gets_400,
    handshake_with_websocket_version_12_gets_426_naming_13,
    handshake_with_post_gets_400,
    handshake_over_http_1_0_gets_400,
    handshake_of_20_kb_in_1_byte_writes_gets_431_before_the_end,
    unmasked_client_frame_closes_1002,
    rsv_bits_set_close_1002,
    reserved_opcodes_close_1002,
    ping_with_a_126_byte_payload_closes_1002,
    fragmented_control_frames_close_1002,
    declared_2_pow_62_length_closes_1009_without_allocating,
    invalid_close_codes_close_1002,
    random_bytes_get_bad_message_and_the_connection_stays_open,
    http2_preface_gets_bad_message,
    smuggle_transfer_encoding_and_content_length,
    smuggle_content_length_and_transfer_encoding_reversed,
    smuggle_duplicate_content_length,
    smuggle_conflicting_content_lengths,
    smuggle_content_length_with_plus_sign,
    smuggle_content_length_in_hex,
    smuggle_empty_content_length,
    smuggle_content_length_list,
    smuggle_transfer_encoding_gzip,
    smuggle_transfer_encoding_chunked_then_gzip,
    smuggle_transfer_encoding_identity,
    smuggle_duplicate_transfer_encoding,
    smuggle_bare_lf_line_ends,
    smuggle_one_bare_lf_line_end_hiding_a_header,
    smuggle_bare_cr_line_end,
    smuggle_bare_cr_after_the_request_line,
    smuggle_nul_inside_a_header_value,
    smuggle_nul_inside_the_host_value,
    smuggle_cr_inside_a_header_value,
    smuggle_lf_inside_a_header_value,
    smuggle_obs_fold_continuation_line,
    smuggle_missing_host,
    smuggle_duplicate_host,
    smuggle_duplicate_host_with_the_same_value,
    smuggle_absolute_uri_naming_another_host,
    smuggle_body_beyond_content_length,
    smuggle_body_without_any_length,
    smuggle_bytes_after_the_last_chunk,
    response_with_an_unissued_cseq_is_dropped_and_the_caller_unaffected,
    duplicate_in_flight_cseq_is_refused_with_duplicate_cseq,
    message_over_the_size_limit_gets_message_too_large_and_close_1009,
    registration_with_a_wrong_token_gets_401,
    registration_with_a_token_for_another_name_gets_403,
    takeover_with_the_same_token_replaces_the_old_connection,
    a_different_token_cannot_take_a_live_name,
    a_name_held_without_a_token_says_it_frees_itself,
    slowloris_connections_are_closed_at_the_handshake_timeout,
    zero_window_target_gets_target_busy_and_memory_stays_bounded,
    stream_violations_reset_only_their_stream,
    floods_without_reading_are_dropped_at_the_queue_limit,
    tiny_messages_waiting_for_a_non_reader_do_not_pin_shared_blocks,
    sigterm_under_load_answers_every_in_flight_request,
);
