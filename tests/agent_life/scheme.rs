//! A URL whose scheme does not match the port stops the agent with the fix: `ws://` at a
//! TLS port ("use wss://"), `wss://` at a plain one ("use ws://"), whether the server
//! answers with a TLS record, an HTTP refusal with a reason, or plain HTTP to a TLS hello.
//! Fake servers on raw TCP, and the real proxy on both kinds of port.

use rcgen::{CertificateParams, KeyPair};

use crate::common::IO_TIMEOUT;
use crate::common::driver::Driver;
use crate::common::proxy::Proxy;
use crate::common::scratch::Scratch;
use crate::on_both_drivers;
use crate::support::{LoggedAgent, answering_server};

/// What a TLS server answers bytes that are not a ClientHello: a fatal alert record
/// (TLS 1.2 record header, alert level 2 "fatal", description 50 "decode_error").
const TLS_ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
/// The refusal a proxy gives a plaintext request on its TLS port.
const PLAIN_ON_TLS: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 33\r\nConnection: close\r\n\r\nthis port speaks TLS: use wss://\n";
/// What a plain HTTP server answers a TLS ClientHello.
const HTTP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

fn agent(url: &str) -> LoggedAgent {
    LoggedAgent::start(
        url,
        &[
            "--name",
            "bob",
            "--serve",
            "http://127.0.0.1:9",
            "--reconnect-max",
            "200ms",
        ],
        &[],
    )
}

#[test]
fn ws_at_a_server_answering_in_tls_says_use_wss() {
    let addr = answering_server(TLS_ALERT);
    let log = agent(&format!("ws://{addr}")).expect_failure(IO_TIMEOUT);
    assert!(
        log.contains("the server speaks TLS at this address: use wss://"),
        "{log}"
    );
}

#[test]
fn a_400_with_a_reason_stops_the_agent_and_shows_the_reason() {
    let addr = answering_server(PLAIN_ON_TLS);
    let log = agent(&format!("ws://{addr}")).expect_failure(IO_TIMEOUT);
    assert!(log.contains("400"), "{log}");
    assert!(log.contains("this port speaks TLS: use wss://"), "{log}");
}

#[test]
fn wss_at_a_plain_http_server_says_use_ws() {
    let addr = answering_server(HTTP_400);
    let log = agent(&format!("wss://localhost:{}", addr.port())).expect_failure(IO_TIMEOUT);
    assert!(
        log.contains("the server does not speak TLS: use ws://"),
        "{log}"
    );
}

fn the_real_proxy_ports_say_which_scheme_they_speak(driver: Driver) {
    let plain = Proxy::start(driver, &[]);
    let log = agent(&format!("wss://localhost:{}", plain.addr.port())).expect_failure(IO_TIMEOUT);
    assert!(log.contains("use ws://"), "{log}");

    let scratch = Scratch::new();
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let cert_path = scratch.write("cert.pem", cert.pem().as_bytes());
    let key_path = scratch.write("key.pem", key.serialize_pem().as_bytes());
    let tls = Proxy::start(driver, &["--tls-cert", &cert_path, "--tls-key", &key_path]);
    // A TLS alert today, or a 400 whose reason says the same: either way, the fix.
    let log = agent(&format!("ws://{}", tls.addr)).expect_failure(IO_TIMEOUT);
    assert!(log.contains("use wss://"), "{log}");
}

on_both_drivers!(the_real_proxy_ports_say_which_scheme_they_speak);
