//! The caller's identity and the proxy's own marks survive exactly, on the relay and on the
//! public ingress: no caller can send a twin of a header the proxy stamps (`Httpws_From`
//! becomes `HTTP_HTTPWS_FROM` in a CGI service just like `Httpws-From`), every caller
//! `X-Forwarded-*`/`Forwarded` is dropped at the ingress, a target cannot pass its answers off
//! as the proxy's (`Httpws-Error` is renamed `Httpws-Target-Error`), a `Host` with a bad port
//! is refused whichever way it would route, and only the proxy's own names count as its own
//! pages' origin (a DNS-rebinding page does not).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::IO_TIMEOUT;
use common::curl::curl;
use common::driver::Driver;
use common::handshake::UPGRADE_HEADERS;
use common::proxy::Proxy;
use common::raw_conn::RawConn;
use common::ws::connect;
use tungstenite::Message;

/// Header lines of a raw message's head whose name, folded as CGI-style services fold names
/// (ASCII case ignored, `_` taken for `-`), satisfies `wanted`.
fn lines_where(message: &str, wanted: impl Fn(&str) -> bool) -> Vec<&str> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter(|line| {
            line.split_once(':').is_some_and(|(name, _)| {
                wanted(&name.trim().to_ascii_lowercase().replace('_', "-"))
            })
        })
        .collect()
}

/// Header lines of a raw message whose name is `canonical` (lowercase, `-`) in any spelling.
fn lines_named<'m>(message: &'m str, canonical: &str) -> Vec<&'m str> {
    lines_where(message, |name| name == canonical)
}

/// Lines of a raw message's head whose folded name starts with `prefix`.
fn lines_starting<'m>(message: &'m str, prefix: &str) -> Vec<&'m str> {
    lines_where(message, |name| name.starts_with(prefix))
}

fn cseq_of(message: &str) -> u64 {
    lines_named(message, "cseq")
        .first()
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no CSeq in {message:?}"))
}

// =============================================================================================
// Relay
// =============================================================================================

fn relay_from_twins_never_reach_the_target(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    alice.send(
        "GET /x HTTP/1.1\r\nHttpws_From: admin\r\nHost: bob\r\nHTTPWS-FROM: root\r\n\
         httpws_from: x\r\nCSeq: 5\r\nX-Kept: 1\r\n\r\n",
    );
    let seen = bob.recv();
    assert_eq!(
        lines_named(&seen, "httpws-from"),
        vec!["Httpws-From: alice"],
        "{seen:?}"
    );
    assert_eq!(lines_named(&seen, "x-kept"), vec!["X-Kept: 1"]);
    // bob's own twins in the answer go too, and alice gets her CSeq back.
    let cseq = cseq_of(&seen);
    bob.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nHttpws_From: bob-forged\r\nContent-Length: 2\r\n\r\nok"
    ));
    let answer = alice.recv();
    assert_eq!(
        lines_named(&answer, "httpws-from"),
        Vec::<&str>::new(),
        "{answer:?}"
    );
    assert_eq!(cseq_of(&answer), 5);
}

fn a_targets_own_httpws_error_reaches_the_caller_renamed(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    alice.request("bob", 1, "/");
    let seen = bob.recv();
    // bob pretends the proxy answered: "nobody holds this address".
    bob.send(&format!(
        "HTTP/1.1 404 Not Found\r\nCSeq: {}\r\nHttpws-Error: unknown-address\r\n\
         httpws_error: timeout\r\nContent-Length: 2\r\n\r\nno",
        cseq_of(&seen)
    ));
    let answer = alice.recv();
    assert_eq!(
        lines_named(&answer, "httpws-error"),
        Vec::<&str>::new(),
        "{answer:?}"
    );
    assert_eq!(
        lines_named(&answer, "httpws-target-error"),
        vec![
            "Httpws-Target-Error: unknown-address",
            "Httpws-Target-Error: timeout"
        ],
        "{answer:?}"
    );
    assert!(answer.ends_with("\r\n\r\nno"), "{answer:?}");
    // The proxy's own answers still carry Httpws-Error.
    alice.request("nobody", 2, "/");
    let answer = alice.recv();
    assert_eq!(
        lines_named(&answer, "httpws-error"),
        vec!["Httpws-Error: unknown-address"]
    );
}

// =============================================================================================
// Public ingress
// =============================================================================================

fn ingress_drops_every_forwarding_header_and_every_twin(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut svc = connect(&proxy, "/svc?public=1");
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(
            b"GET /who HTTP/1.1\r\nHost: svc\r\nX-Forwarded-Port: 443\r\n\
              X-Forwarded-Prefix: /admin\r\nX-Forwarded-Ssl: on\r\nX-Forwarded-Server: int\r\n\
              X_Forwarded_For: 10.0.0.1\r\nX-FORWARDED-HOST: intranet\r\nx_forwarded_proto: https\r\n\
              Forwarded: for=10.0.0.1\r\nHttpws_From: admin\r\nHTTPWS_FROM: admin\r\n\
              Httpws_Error: forged\r\nC_Seq: 1\r\n\r\n",
        )
        .expect("send");
    let seen = svc.recv();
    assert_eq!(
        lines_starting(&seen, "x-forwarded-"),
        vec![
            "X-Forwarded-For: 127.0.0.1",
            "X-Forwarded-Host: svc",
            "X-Forwarded-Proto: http"
        ],
        "{seen:?}"
    );
    assert_eq!(lines_named(&seen, "forwarded"), Vec::<&str>::new());
    assert_eq!(
        lines_named(&seen, "httpws-from"),
        vec!["Httpws-From: -internet-"]
    );
    assert_eq!(lines_named(&seen, "httpws-error"), Vec::<&str>::new());
    // `C_Seq` is no twin of `CSeq` (which has no `-`): it passes as any other header.
    assert_eq!(lines_named(&seen, "c-seq"), vec!["C_Seq: 1"]);
    // The answer's own Httpws-Error is renamed for internet callers too.
    svc.ws
        .send(Message::binary(format!(
            "HTTP/1.1 502 Bad Gateway\r\nCSeq: {}\r\nHttpws-Error: target-gone\r\n\
             Content-Length: 4\r\n\r\ngone",
            cseq_of(&seen)
        )))
        .expect("answer");
    let answer = caller.response("GET");
    assert_eq!(answer.status(), 502);
    assert_eq!(answer.all("httpws-error"), Vec::<&str>::new(), "{answer:?}");
    assert_eq!(answer.all("httpws-target-error"), vec!["target-gone"]);
    assert_eq!(answer.body, b"gone");
}

fn a_host_with_a_domain_must_still_carry_a_valid_port(driver: Driver) {
    let proxy = Proxy::start(driver, &["--domain", "example.test"]);
    let mut wiki = connect(&proxy, "/wiki?public=1");
    for host in [
        "wiki.example.test:@evil.example",
        "wiki.example.test:80@evil.example",
        "wiki.example.test:99999",
        "wiki.example.test:",
        "example.test:x",
    ] {
        let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
        caller
            .send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .expect("send");
        let answer = caller.response("GET");
        assert_eq!(answer.status(), 400, "Host: {host}: {answer:?}");
        assert_eq!(answer.all("httpws-error"), vec!["bad-request"], "{host}");
    }
    // Nothing reached wiki: the next thing it sees is this well-formed call, which works.
    let mut caller = RawConn::connect(proxy.addr, IO_TIMEOUT);
    caller
        .send(b"GET /fine HTTP/1.1\r\nHost: wiki.example.test:8080\r\n\r\n")
        .expect("send");
    let seen = wiki.recv();
    assert!(seen.starts_with("GET /fine HTTP/1.1\r\n"), "{seen:?}");
    assert_eq!(
        lines_named(&seen, "x-forwarded-host"),
        vec!["X-Forwarded-Host: wiki.example.test:8080"]
    );
    wiki.ws
        .send(Message::binary(format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 2\r\n\r\nok",
            cseq_of(&seen)
        )))
        .expect("answer");
    let answer = caller.response("GET");
    assert_eq!((answer.status(), &answer.body[..]), (200, &b"ok"[..]));
}

// =============================================================================================
// Pages the proxy serves: whose origin is its own
// =============================================================================================

/// The status of a registration handshake sent with this `Host` and `Origin`.
fn handshake_status(addr: SocketAddr, path: &str, host: &str, origin: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n{UPGRADE_HEADERS}\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("write");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    let line = String::from_utf8_lossy(&line);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

fn serve_demo_pages_connect_back_only_under_the_proxys_own_names(driver: Driver) {
    let proxy = Proxy::start(
        driver,
        &[
            "--serve-demo",
            "--public-name",
            "relay.test",
            "--domain",
            "tunnel.test",
        ],
    );
    let port = proxy.addr.port();
    let own = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("relay.test:{port}"),
        format!("tunnel.test:{port}"),
    ];
    for (i, host) in own.iter().enumerate() {
        let status = handshake_status(
            proxy.addr,
            &format!("/own-{i}"),
            host,
            &format!("http://{host}"),
        );
        assert_eq!(status, 101, "a page served under {host} connecting back");
    }
    // A name the attacker's DNS points at the proxy: Origin equals Host, and still refused.
    for (i, host) in [
        format!("rebound.evil.example:{port}"),
        format!("relay.test.evil.example:{port}"),
    ]
    .iter()
    .enumerate()
    {
        let status = handshake_status(
            proxy.addr,
            &format!("/victim-{i}"),
            host,
            &format!("http://{host}"),
        );
        assert_eq!(status, 403, "a page under {host} is not the proxy's");
    }
    // A page of an endpoint (`wiki.<domain>`) opening a WebSocket to its own origin reaches
    // that endpoint, never the registration: here no `wiki` is registered.
    let host = format!("wiki.tunnel.test:{port}");
    let status = handshake_status(proxy.addr, "/victim", &host, &format!("http://{host}"));
    assert_eq!(status, 404, "an upgrade to wiki.tunnel.test is wiki's");
    // Another port of the same name is another origin.
    let status = handshake_status(
        proxy.addr,
        "/other-port",
        &format!("127.0.0.1:{port}"),
        "http://127.0.0.1:1",
    );
    assert_eq!(status, 403);
    // --public-name is the proxy for the ingress too: its pages, not an endpoint's.
    let out = curl(&[
        "-sS",
        "-H",
        "Host: relay.test",
        &format!("http://{}/webrtc/", proxy.addr),
    ]);
    assert_eq!(out.code, 200, "{out:?}");
    assert!(out.body_text().contains("<html"), "{out:?}");
}

on_both_drivers!(
    relay_from_twins_never_reach_the_target,
    a_targets_own_httpws_error_reaches_the_caller_renamed,
    ingress_drops_every_forwarding_header_and_every_twin,
    a_host_with_a_domain_must_still_carry_a_valid_port,
    serve_demo_pages_connect_back_only_under_the_proxys_own_names,
);
