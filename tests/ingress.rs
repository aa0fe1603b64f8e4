//! The proxy's public HTTP ingress: plain HTTP/1.1 callers from the internet (curl, wrk, raw
//! sockets) routed by `Host` to endpoints that registered as public, through the real `httpws`
//! proxy and agent binaries to a real local service (`common::service`), or to a tungstenite
//! endpoint where the test must see the relayed message byte for byte.
//!
//! Topology for most tests: proxy; agent `svc --serve http://SERVICE --public`; the caller
//! sends `Host: svc` (or `svc.<domain>`) to the proxy's own port.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::IO_TIMEOUT;
use common::agent::Agent;
use common::certs::Certs;
use common::curl::{CurlOut, assert_status, curl, curl_host};
use common::driver::Driver;
use common::http1::RawResponse;
use common::message::Http;
use common::ports::dead_port;
use common::programs;
use common::proxy::{Proxy, name_on_shard};
use common::proxy_errors::assert_proxy_error;
use common::raw_conn::RawConn;
use common::scratch::Scratch;
use common::service::{Service, pattern};
use common::ws::{Endpoint, connect, connect_at, connect_with, recv_data};
use tungstenite::Message;

const DOMAIN: &str = "example.test";

// =============================================================================================
// Helpers
// =============================================================================================

/// A proxy, a service, and the agent `svc` serving it as a public endpoint.
struct Net {
    // The agent first: it goes before the proxy and the service when dropped.
    _agent: Agent,
    service: Service,
    proxy: Proxy,
}

impl Net {
    fn start(driver: Driver, proxy_extra: &[&str]) -> Net {
        Self::start_with(driver, proxy_extra, &["--public", "--preserve-host"])
    }

    fn start_with(driver: Driver, proxy_extra: &[&str], agent_extra: &[&str]) -> Net {
        let proxy = Proxy::start(driver, proxy_extra);
        let service = Service::start();
        let agent = Agent::serve(proxy.addr, "svc", &service.url(), agent_extra);
        Net {
            _agent: agent,
            service,
            proxy,
        }
    }

    /// `curl -H 'Host: <host>' http://PROXY<path> <extra…>`.
    fn curl(&self, host: &str, path: &str, extra: &[&str]) -> CurlOut {
        curl_host(self.proxy.addr, host, path, extra)
    }

    fn raw(&self) -> RawConn {
        RawConn::connect(self.proxy.addr, IO_TIMEOUT)
    }
}

/// A proxy-made error: status and exactly one `Httpws-Error: <token>`.
#[track_caller]
fn assert_curl_error(out: &CurlOut, code: u16, token: &str) {
    assert_status(out, code);
    let tokens: Vec<&str> = out
        .headers
        .iter()
        .filter(|(n, _)| n == "httpws-error")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tokens, vec![token], "Httpws-Error: {out:?}");
}

#[track_caller]
fn assert_raw_error(resp: &RawResponse, code: u16, token: &str) {
    assert_eq!(resp.status(), code, "{resp:?}");
    assert_eq!(resp.all("httpws-error"), vec![token], "{resp:?}");
}

/// The caller's connection headers and the tunnel's own never reach an internet caller.
#[track_caller]
fn assert_no_tunnel_headers(headers: &[(String, String)]) {
    for (name, _) in headers {
        assert!(
            name != "cseq" && name != "httpws-from",
            "tunnel header {name} leaked to the internet caller: {headers:?}"
        );
    }
}

/// Read a binary or text message on a tungstenite endpoint: (was binary, bytes).
fn recv_message(ep: &mut Endpoint) -> (bool, Vec<u8>) {
    match recv_data(&mut ep.ws) {
        Message::Binary(b) => (true, b.to_vec()),
        Message::Text(t) => (false, t.as_bytes().to_vec()),
        _ => unreachable!("recv_data returns data messages only"),
    }
}

/// The next relayed request on a raw endpoint, parsed; asserts it came as a binary message.
fn recv_relayed(ep: &mut Endpoint) -> (Http, Vec<u8>) {
    let (binary, bytes) = recv_message(ep);
    assert!(binary, "ingress requests are relayed as binary messages");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (Http::parse(&text), bytes)
}

fn send_bytes(ep: &mut Endpoint, bytes: &[u8]) {
    ep.ws
        .send(Message::binary(bytes.to_vec()))
        .expect("send a message");
}

/// A tokens file in the test's own directory.
fn tokens_path(test: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ingress-{test}"));
    std::fs::create_dir_all(&dir).expect("tokens dir");
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).expect("write tokens file");
    path
}

// =============================================================================================
// 1. Routing by Host, and what the service sees
// =============================================================================================

fn public_endpoint_is_reached_by_address_and_by_subdomain(driver: Driver) {
    let net = Net::start(driver, &["--domain", DOMAIN]);
    let forged = [
        "-H",
        "CSeq: 77",
        "-H",
        "Httpws-From: mallory",
        "-H",
        "X-Forwarded-For: 6.6.6.6",
        "-H",
        "X-Forwarded-Host: evil.example",
        "-H",
        "X-Forwarded-Proto: https",
        "-H",
        "Forwarded: for=6.6.6.6",
        "-H",
        "X-Keep: kept",
    ];

    // `Host: svc`.
    let out = net.curl("svc", "/echo?q=1", &forged);
    assert_status(&out, 200);
    assert_eq!(out.header("x-path"), Some("/echo?q=1"));
    assert_eq!(out.header("x-from"), Some("-internet-"));
    assert_no_tunnel_headers(&out.headers);
    let seen = net.service.last_request();
    assert_eq!(seen.all("httpws-from"), vec!["-internet-"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-host"), vec!["svc"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-proto"), vec!["http"], "{seen:?}");
    assert_eq!(seen.all("host"), vec!["svc"], "{seen:?}");
    assert_eq!(seen.all("cseq"), Vec::<&str>::new(), "{seen:?}");
    assert_eq!(seen.all("forwarded"), Vec::<&str>::new(), "{seen:?}");
    assert_eq!(seen.all("x-keep"), vec!["kept"], "{seen:?}");

    // `svc.example.test:PORT`, resolved by curl itself (the Host curl writes).
    let port = net.proxy.addr.port();
    let resolve = format!("svc.{DOMAIN}:{port}:127.0.0.1");
    let url = format!("http://svc.{DOMAIN}:{port}/echo?q=2");
    let mut args = vec!["--resolve", &resolve];
    args.extend_from_slice(&forged);
    args.push(&url);
    let out = curl(&args);
    assert_status(&out, 200);
    assert_eq!(out.header("x-path"), Some("/echo?q=2"));
    assert_eq!(out.header("x-from"), Some("-internet-"));
    let seen = net.service.last_request();
    assert_eq!(seen.all("host"), vec!["svc"], "{seen:?}");
    assert_eq!(seen.all("httpws-from"), vec!["-internet-"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"], "{seen:?}");
    assert_eq!(
        seen.all("x-forwarded-host"),
        vec![format!("svc.{DOMAIN}:{port}").as_str()],
        "{seen:?}"
    );

    // A port in Host is ignored; an absolute-form target that names the Host is relayed in
    // origin form.
    let out = net.curl("svc:8080", "/echo?port", &[]);
    assert_status(&out, 200);
    assert_eq!(out.header("x-path"), Some("/echo?port"));
    let mut raw = net.raw();
    raw.send(b"GET http://svc/echo?abs HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("GET");
    assert_eq!(resp.header("x-path"), Some("/echo?abs"), "{resp:?}");
    // Names compare case-insensitively, the domain too.
    let out = net.curl("SVC.Example.TEST", "/echo?q=3", &[]);
    assert_status(&out, 200);
    assert_eq!(out.header("x-path"), Some("/echo?q=3"));
    // Exactly the domain is the proxy itself, not an endpoint.
    let out = net.curl(DOMAIN, "/echo", &[]);
    assert_curl_error(&out, 404, "unknown-address");
    assert_eq!(net.service.requests().len(), 5, "only the relayed requests");
}

/// What the target's WebSocket carries, byte for byte: one CSeq, `Httpws-From: -internet-`,
/// no connection headers, a chunked body decoded into one whole message with its length (a
/// protocol-1 target takes whole messages; trailer fields are dropped); and the answer as the
/// caller gets it.
fn relayed_message_and_answer_are_rewritten(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut ep = connect(&proxy, "/raw?public=1");
    assert_eq!(ep.address, "raw");
    let mut client = RawConn::connect(proxy.addr, IO_TIMEOUT);
    client
        .send(
            b"POST /p/a?q=1 HTTP/1.1\r\nHost: raw\r\nCSeq: 99\r\nHttpws-From: mallory\r\n\
              X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\
              Connection: keep-alive, X-Conn-Option\r\nKeep-Alive: timeout=5\r\n\
              Proxy-Connection: keep-alive\r\nX-Conn-Option: secret\r\n\
              TE: trailers\r\nX-Keep: yes\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n3;ext=1\r\n\x00\xff!\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .expect("send");
    let (seen, bytes) = recv_relayed(&mut ep);
    assert_eq!(seen.start, "POST /p/a?q=1 HTTP/1.1", "{seen:?}");
    assert_eq!(seen.all("host"), vec!["raw"]);
    assert_eq!(seen.all("httpws-from"), vec!["-internet-"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-host"), vec!["raw"], "{seen:?}");
    assert_eq!(seen.all("x-forwarded-proto"), vec!["http"], "{seen:?}");
    assert_eq!(seen.all("cseq").len(), 1, "exactly one CSeq: {seen:?}");
    let cseq = seen.cseq();
    for gone in [
        "forwarded",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "x-conn-option",
    ] {
        assert_eq!(seen.all(gone), Vec::<&str>::new(), "{gone}: {seen:?}");
    }
    assert_eq!(seen.all("x-keep"), vec!["yes"]);
    assert_eq!(
        seen.all("transfer-encoding"),
        Vec::<&str>::new(),
        "{seen:?}"
    );
    assert_eq!(seen.all("httpws-stream"), Vec::<&str>::new(), "{seen:?}");
    assert_eq!(seen.all("x-trailer"), Vec::<&str>::new(), "{seen:?}");
    assert_eq!(seen.all("content-length"), vec!["8"], "{seen:?}");
    let body_at = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    assert_eq!(
        &bytes[body_at..],
        &b"hello\x00\xff!"[..],
        "the chunked body arrives decoded"
    );

    // An answer without a length (and with the target's own connection header) reaches the
    // caller with a Content-Length, without CSeq, and the caller's connection stays open.
    send_bytes(
        &mut ep,
        format!(
            "HTTP/1.1 201 Created\r\nCSeq: {cseq}\r\nConnection: close\r\nX-Reply: 1\r\n\r\n\
             no length here"
        )
        .as_bytes(),
    );
    let resp = client.response("POST");
    assert_eq!(resp.status(), 201, "{resp:?}");
    assert_eq!(resp.header("content-length"), Some("14"), "{resp:?}");
    assert_eq!(resp.body, b"no length here");
    assert_eq!(resp.header("x-reply"), Some("1"));
    assert_eq!(resp.all("connection"), Vec::<&str>::new(), "{resp:?}");
    assert_no_tunnel_headers(&resp.head.headers);

    // A chunked answer on the same connection is relayed as chunked.
    client
        .send(b"GET /chunked HTTP/1.1\r\nHost: raw\r\n\r\n")
        .expect("send");
    let (seen, _) = recv_relayed(&mut ep);
    assert_eq!(seen.start, "GET /chunked HTTP/1.1");
    send_bytes(
        &mut ep,
        format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            seen.cseq()
        )
        .as_bytes(),
    );
    let resp = client.response("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.body, b"abcde");

    // HEAD: the target's head (with its Content-Length) and no body, and the connection
    // carries on framed correctly.
    client
        .send(b"HEAD /h HTTP/1.1\r\nHost: raw\r\n\r\n")
        .expect("send");
    let (seen, _) = recv_relayed(&mut ep);
    assert_eq!(seen.start, "HEAD /h HTTP/1.1");
    send_bytes(
        &mut ep,
        format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 1234\r\n\r\n",
            seen.cseq()
        )
        .as_bytes(),
    );
    let resp = client.response("HEAD");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("content-length"), Some("1234"));
    client
        .send(b"GET /after-head HTTP/1.1\r\nHost: raw\r\n\r\n")
        .expect("send");
    let (seen, _) = recv_relayed(&mut ep);
    assert_eq!(seen.start, "GET /after-head HTTP/1.1");
    ep.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 2\r\n\r\nok",
        seen.cseq()
    ));
    let resp = client.response("GET");
    assert_eq!(
        resp.body, b"ok",
        "no HEAD body bytes were left on the connection"
    );
}

// =============================================================================================
// 2–3. Refusals and failures
// =============================================================================================

fn private_endpoint_is_forbidden_to_the_internet(driver: Driver) {
    let net = Net::start_with(driver, &[], &["--preserve-host"]);
    let out = net.curl("svc", "/echo", &[]);
    assert_curl_error(&out, 403, "forbidden");
    assert_no_tunnel_headers(&out.headers);
    // The refusal is the proxy's, made before anything was relayed.
    assert!(
        net.service.requests().is_empty(),
        "the service saw a request"
    );
    // The same for a raw endpoint that did not ask to be public, and the connection stays
    // usable after a 403.
    let mut ep = connect(&net.proxy, "/quiet");
    let mut raw = net.raw();
    raw.send(b"GET /x HTTP/1.1\r\nHost: quiet\r\n\r\n").unwrap();
    assert_raw_error(&raw.response("GET"), 403, "forbidden");
    raw.send(b"GET /y HTTP/1.1\r\nHost: quiet\r\n\r\n").unwrap();
    assert_raw_error(&raw.response("GET"), 403, "forbidden");
    // The private endpoint still takes calls from endpoints.
    let mut caller = connect(&net.proxy, "/caller");
    caller.request("quiet", 4, "/from-an-endpoint");
    let seen = ep.answer("hi");
    assert_eq!(seen.start, "GET /from-an-endpoint HTTP/1.1", "{seen:?}");
    assert_eq!(caller.recv_http().cseq(), 4);
}

fn unknown_address_gets_404(driver: Driver) {
    let net = Net::start(driver, &[]);
    let out = net.curl("nobody", "/", &[]);
    assert_curl_error(&out, 404, "unknown-address");
    // A Host that is not a virtual address at all.
    let out = net.curl("bad_name", "/", &[]);
    assert_curl_error(&out, 400, "bad-request");
    // The proxy itself (IP literal / localhost) without --serve-client.
    for host in ["127.0.0.1", "localhost:1234", "[::1]:80"] {
        let out = net.curl(host, "/httpws.js", &[]);
        assert_curl_error(&out, 404, "unknown-address");
    }
    assert!(net.service.requests().is_empty());
}

fn service_down_gets_502(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let dead = format!("http://{}", dead_port());
    let _agent = Agent::serve(proxy.addr, "svc", &dead, &["--public"]);
    let out = curl_host(proxy.addr, "svc", "/echo", &[]);
    assert_status(&out, 502);
    assert_no_tunnel_headers(&out.headers);
}

fn slow_service_gets_504_at_the_request_timeout(driver: Driver) {
    let proxy = Proxy::start(driver, &["--request-timeout", "500ms"]);
    // Accepted by the kernel (backlog), never read, never answered.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().unwrap());
    let _agent = Agent::serve(proxy.addr, "svc", &url, &["--public"]);
    let out = curl_host(proxy.addr, "svc", "/never", &[]);
    assert_curl_error(&out, 504, "timeout");
    assert!(
        out.elapsed >= Duration::from_millis(400) && out.elapsed < Duration::from_secs(5),
        "504 after {:?}",
        out.elapsed
    );
    // The connection is usable after a 504: keep-alive on a raw socket.
    let mut raw = RawConn::connect(proxy.addr, IO_TIMEOUT);
    raw.send(b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n").unwrap();
    assert_raw_error(&raw.response("GET"), 504, "timeout");
    raw.send(b"GET /b HTTP/1.1\r\nHost: nobody\r\n\r\n")
        .unwrap();
    assert_raw_error(&raw.response("GET"), 404, "unknown-address");
    drop(silent);
}

/// Strictly framed heads: each shape gets 400 `bad-request`, `Connection: close`, and the
/// socket closed; the proxy keeps serving everyone else.
fn malformed_requests_get_400_and_the_proxy_keeps_serving(driver: Driver) {
    let net = Net::start(driver, &["--http-listen", "127.0.0.1:0"]);
    let cases: &[(&str, &[u8])] = &[
        (
            "Content-Length and Transfer-Encoding",
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding then Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 3\r\n\r\n0\r\n\r\n",
        ),
        (
            "duplicate Content-Length",
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "Content-Length with a sign",
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: +3\r\n\r\nabc",
        ),
        (
            "Content-Length not a number",
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 0x3\r\n\r\nabc",
        ),
        (
            "Content-Length list",
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 3, 3\r\n\r\nabc",
        ),
        (
            "duplicate Host",
            b"GET /echo HTTP/1.1\r\nHost: svc\r\nHost: other\r\n\r\n",
        ),
        ("missing Host", b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n"),
        ("empty Host", b"GET /echo HTTP/1.1\r\nHost: \r\n\r\n"),
        (
            "bare LF line ends",
            b"GET /echo HTTP/1.1\nHost: svc\n\n",
        ),
        (
            "one bare LF hiding a header",
            b"GET /echo HTTP/1.1\r\nHost: svc\nX-Hidden: 1\r\n\r\n",
        ),
        (
            "absolute-form naming another host",
            b"GET http://other/echo HTTP/1.1\r\nHost: svc\r\n\r\n",
        ),
        (
            "target not a path",
            b"GET echo HTTP/1.1\r\nHost: svc\r\n\r\n",
        ),
        (
            "Host not a virtual address",
            b"GET /echo HTTP/1.1\r\nHost: svc_1\r\n\r\n",
        ),
        ("not HTTP", b"HELLO THERE\r\n\r\n"),
    ];
    let http = net.proxy.http_addr.expect("--http-listen address");
    for (what, request) in cases {
        // The first request on the WebSocket port (read by the handshake reader), the second
        // request of a keep-alive connection there, and the first on the --http-listen port.
        for (mode, addr, first) in [
            ("first on --listen", net.proxy.addr, false),
            ("second on --listen", net.proxy.addr, true),
            ("first on --http-listen", http, false),
        ] {
            let mut raw = RawConn::connect(addr, IO_TIMEOUT);
            if first {
                raw.send(b"GET /echo HTTP/1.1\r\nHost: svc\r\n\r\n")
                    .unwrap();
                assert_eq!(
                    raw.response("GET").status(),
                    200,
                    "{what}, {mode}: first request"
                );
            }
            raw.send(request).unwrap();
            let resp = raw
                .try_response("GET")
                .unwrap_or_else(|e| panic!("{what}, {mode}: no response: {e}"));
            assert_eq!(resp.status(), 400, "{what}, {mode}: {resp:?}");
            assert_eq!(
                resp.header("connection"),
                Some("close"),
                "{what}, {mode}: {resp:?}"
            );
            // The handshake reader answers framing errors it sees first without the token
            // (see the report); everywhere else the refusal names `bad-request`.
            if mode != "first on --listen" || resp.header("httpws-error").is_some() {
                assert_eq!(
                    resp.header("httpws-error"),
                    Some("bad-request"),
                    "{what}, {mode}: {resp:?}"
                );
            }
            assert_eq!(
                raw.closed_by_peer(),
                Ok(true),
                "{what}, {mode}: the socket closes"
            );
        }
    }
    assert!(
        net.service
            .requests()
            .iter()
            .all(|r| r.method == "GET" && r.body.is_empty()),
        "nothing malformed was relayed"
    );
    let out = net.curl("svc", "/echo", &["--data-binary", "still here"]);
    assert_status(&out, 200);
    assert_eq!(out.body, b"still here");
}

fn unsupported_requests_get_405_and_501(driver: Driver) {
    let net = Net::start(driver, &[]);
    let mut raw = net.raw();
    raw.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: gzip\r\n\r\n")
        .unwrap();
    let resp = raw.response("POST");
    assert_eq!(resp.status(), 501, "{resp:?}");
    assert_eq!(raw.closed_by_peer(), Ok(true));

    let mut raw = net.raw();
    raw.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        .unwrap();
    assert_eq!(raw.response("POST").status(), 501);

    let mut raw = net.raw();
    raw.send(b"CONNECT svc:443 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("CONNECT");
    assert_eq!(resp.status(), 405, "{resp:?}");
    assert_eq!(raw.closed_by_peer(), Ok(true));
    assert!(net.service.requests().is_empty());
}

/// 413 for a declared body over `--max-message-bytes` (answered without reading it), and for
/// a chunked body that grows past it on its way to a protocol-1 target (which takes whole
/// messages only); 431 for a head over `--max-handshake-bytes` (a caller's head has a
/// registration's limit, first request or not).
fn limits_give_413_and_431(driver: Driver) {
    let net = Net::start(
        driver,
        &[
            "--max-message-bytes",
            "65536",
            "--max-handshake-bytes",
            "4096",
        ],
    );
    // Just under the limit goes through.
    let scratch = Scratch::new();
    let file = scratch.write("body", &pattern(60_000));
    let data = format!("@{file}");
    let out = net.curl("svc", "/echo", &["--data-binary", &data]);
    assert_status(&out, 200);
    assert_eq!(out.body, pattern(60_000));

    let mut raw = net.raw();
    raw.send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let resp = raw.response("POST");
    assert_raw_error(&resp, 413, "message-too-large");
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(raw.closed_by_peer(), Ok(true));

    // The same with the whole body already on its way: the caller still reads the 413 (the
    // proxy drains what it refused for a moment before closing).
    for _ in 0..3 {
        let mut raw = net.raw();
        let mut request =
            b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 200000\r\n\r\n".to_vec();
        request.extend_from_slice(&[b'x'; 200_000]);
        raw.send(&request).unwrap();
        let resp = raw.response("POST");
        assert_raw_error(&resp, 413, "message-too-large");
    }

    // Chunked, to a protocol-1 target: the proxy stops at the limit, whatever the chunk sizes
    // claim. (To the agent, a protocol-2 target, a chunked body streams without a limit.)
    let _old = connect(&net.proxy, "/old?public=1");
    let mut raw = net.raw();
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: old\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..9 {
        request.extend_from_slice(b"2000\r\n");
        request.extend_from_slice(&[b'x'; 0x2000]);
        request.extend_from_slice(b"\r\n");
    }
    raw.send(&request).unwrap();
    let resp = raw.response("POST");
    assert_raw_error(&resp, 413, "message-too-large");

    // A head over the limit, as the first request and as the second on a connection.
    let mut raw = net.raw();
    let big = format!(
        "GET /echo HTTP/1.1\r\nHost: svc\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    raw.send(big.as_bytes()).unwrap();
    assert_eq!(raw.response("GET").status(), 431);
    let mut raw = net.raw();
    raw.send(b"GET /echo HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    assert_eq!(raw.response("GET").status(), 200);
    let big = format!(
        "GET /echo HTTP/1.1\r\nHost: svc\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    raw.send(big.as_bytes()).unwrap();
    let resp = raw.response("GET");
    assert_eq!(resp.status(), 431, "{resp:?}");
    assert_eq!(raw.closed_by_peer(), Ok(true));

    // Too many header lines.
    let mut raw = net.raw();
    raw.send(b"GET /echo HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    assert_eq!(raw.response("GET").status(), 200);
    let mut many = String::from("GET /echo HTTP/1.1\r\nHost: svc\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    raw.send(many.as_bytes()).unwrap();
    assert_eq!(raw.response("GET").status(), 431);

    let out = net.curl("svc", "/echo", &[]);
    assert_status(&out, 200);
}

// =============================================================================================
// 4. Keep-alive and pipelining
// =============================================================================================

fn keep_alive_close_and_http_1_0(driver: Driver) {
    let net = Net::start(driver, &[]);
    // Three requests, three answers, one connection.
    let mut raw = net.raw();
    for i in 0..3 {
        let body = format!("body-{i}");
        raw.send(
            format!(
                "POST /echo?n={i} HTTP/1.1\r\nHost: svc\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let resp = raw.response("POST");
        assert_eq!(resp.status(), 200, "request {i}: {resp:?}");
        assert_eq!(resp.header("x-path"), Some(format!("/echo?n={i}").as_str()));
        assert_eq!(resp.body, body.as_bytes());
        assert_eq!(resp.header("connection"), None, "{resp:?}");
    }

    // `Connection: close`: answered with `Connection: close`, then the socket closes.
    raw.send(b"GET /echo?last HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = raw.response("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("x-path"), Some("/echo?last"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(raw.closed_by_peer(), Ok(true));

    // HTTP/1.0 closes unless it asks for keep-alive.
    let mut raw = net.raw();
    raw.send(b"GET /echo?v=10 HTTP/1.0\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(raw.closed_by_peer(), Ok(true));

    let mut raw = net.raw();
    for i in 0..2 {
        raw.send(
            format!("GET /echo?ka={i} HTTP/1.0\r\nHost: svc\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let resp = raw.response("GET");
        assert_eq!(
            resp.header("x-path"),
            Some(format!("/echo?ka={i}").as_str())
        );
        assert_eq!(resp.header("connection"), None);
        assert!(resp.header("content-length").is_some());
    }
}

fn pipelined_requests_are_answered_in_order(driver: Driver) {
    let net = Net::start(driver, &[]);
    let mut raw = net.raw();
    raw.send(
        b"GET /echo?n=1 HTTP/1.1\r\nHost: svc\r\n\r\n\
          POST /echo?n=2 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\ntwo\
          POST /echo?n=3 HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nthree\r\n0\r\n\r\n\
          HEAD /big?bytes=10 HTTP/1.1\r\nHost: svc\r\n\r\n\
          GET /echo?n=5 HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let first = raw.response("GET");
    assert_eq!(first.header("x-path"), Some("/echo?n=1"));
    assert!(first.body.is_empty());
    let second = raw.response("POST");
    assert_eq!(second.header("x-path"), Some("/echo?n=2"));
    assert_eq!(second.body, b"two");
    let third = raw.response("POST");
    assert_eq!(third.header("x-path"), Some("/echo?n=3"));
    assert_eq!(third.body, b"three");
    let fourth = raw.response("HEAD");
    assert_eq!(fourth.status(), 200);
    assert_eq!(fourth.header("content-length"), Some("10"));
    let fifth = raw.response("GET");
    assert_eq!(fifth.header("x-path"), Some("/echo?n=5"), "{fifth:?}");
    assert_eq!(fifth.header("connection"), Some("close"));
    assert_eq!(raw.closed_by_peer(), Ok(true));
    let paths: Vec<String> = net
        .service
        .wait_requests(5, IO_TIMEOUT)
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/echo?n=1",
            "/echo?n=2",
            "/echo?n=3",
            "/big?bytes=10",
            "/echo?n=5"
        ]
    );
}

// =============================================================================================
// 5. Bodies
// =============================================================================================

fn request_and_response_bodies(driver: Driver) {
    let net = Net::start(driver, &[]);
    let scratch = Scratch::new();
    let mib = pattern(1 << 20);
    let file = scratch.write("mib", &mib);
    let data = format!("@{file}");

    // 1 MiB by Content-Length, echoed byte for byte.
    let out = net.curl("svc", "/echo", &["--data-binary", &data, "-H", "Expect:"]);
    assert_status(&out, 200);
    assert_eq!(out.header("x-body-len"), Some("1048576"));
    assert!(out.body == mib, "1 MiB echo differs");

    // Larger than a whole message may be (--max-message-bytes, 16 MiB): a body over a stream
    // window goes to the agent (protocol 2) as a stream, of any length.
    let big = pattern(20 << 20);
    let big_file = scratch.write("big", &big);
    let out = net.curl(
        "svc",
        "/echo",
        &["--data-binary", &format!("@{big_file}"), "-H", "Expect:"],
    );
    assert_status(&out, 200);
    assert_eq!(out.header("x-body-len"), Some("20971520"));
    assert!(out.body == big, "20 MiB echo differs");

    // Chunked upload: it streams, decoded, to the agent.
    let out = net.curl(
        "svc",
        "/echo",
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &data,
            "-H",
            "Expect:",
        ],
    );
    assert_status(&out, 200);
    assert!(out.body == mib, "chunked echo differs");

    // Expect: 100-continue: curl waits up to --expect100-timeout for the 100; it came fast.
    let out = net.curl(
        "svc",
        "/echo",
        &[
            "--data-binary",
            &data,
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "8",
        ],
    );
    assert_status(&out, 200);
    assert!(out.body == mib, "100-continue echo differs");
    assert!(
        out.elapsed < Duration::from_secs(6),
        "curl waited {:?} for 100 Continue",
        out.elapsed
    );
    // The service does not see the caller's Expect (the proxy answered it).
    assert_eq!(net.service.last_request().header("expect"), None);

    // The same on a raw socket: the 100 comes before any body byte is sent.
    let mut raw = net.raw();
    raw.send(
        b"PUT /echo HTTP/1.1\r\nHost: svc\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    raw.reader.read_exact(&mut interim).expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw.send(b"hello").unwrap();
    let resp = raw.response("PUT");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, b"hello");
    // Chunked with Expect.
    raw.send(
        b"PUT /echo HTTP/1.1\r\nHost: svc\r\nExpect: 100-continue\r\n\
          Transfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    raw.reader.read_exact(&mut interim).expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw.send(b"2\r\nok\r\n0\r\n\r\n").unwrap();
    assert_eq!(raw.response("PUT").body, b"ok");

    // HEAD: the head only (curl -I, and a raw connection that goes on after it).
    let out = net.curl("svc", "/big?bytes=1000", &["-I"]);
    assert_status(&out, 200);
    assert_eq!(out.header("content-length"), Some("1000"));
    raw.send(b"HEAD /big?bytes=1000 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("HEAD");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("content-length"), Some("1000"));
    raw.send(b"GET /echo?after-head HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("GET");
    assert_eq!(
        resp.header("x-path"),
        Some("/echo?after-head"),
        "no body bytes followed the HEAD answer: {resp:?}"
    );

    // Large responses, with a length, chunked, and close-delimited at the service: all arrive
    // intact; one of unknown length streams through the agent, and reaches an HTTP/1.1 caller
    // chunked.
    let out = net.curl("svc", "/big?bytes=3000000", &[]);
    assert_status(&out, 200);
    assert!(out.body == pattern(3_000_000), "/big differs");
    let out = net.curl("svc", "/big-chunked?bytes=500000", &[]);
    assert_status(&out, 200);
    assert!(out.body == pattern(500_000), "/big-chunked differs");
    let out = net.curl("svc", "/big-close?bytes=200000", &[]);
    assert_status(&out, 200);
    assert_eq!(
        out.header("transfer-encoding"),
        Some("chunked"),
        "{:?}",
        out.headers
    );
    assert!(out.body == pattern(200_000), "/big-close differs");
    let mut raw = net.raw();
    raw.send(b"GET /big-close?bytes=1000 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("GET");
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.body, pattern(1000));
    // And the connection is still good (the service's close did not close it).
    raw.send(b"GET /status/204 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let resp = raw.response("GET");
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.header("content-length"), None, "{resp:?}");
    raw.send(b"GET /echo?after HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    assert_eq!(raw.response("GET").header("x-path"), Some("/echo?after"));
}

// =============================================================================================
// 6. The --http-listen listener
// =============================================================================================

fn http_listen_serves_the_ingress_and_refuses_upgrades(driver: Driver) {
    let proxy = Proxy::start(driver, &["--http-listen", "127.0.0.1:0"]);
    let http = proxy
        .http_addr
        .expect("the banner names the ingress address");
    assert_ne!(http, proxy.addr);
    let service = Service::start();
    let _agent = Agent::serve(proxy.addr, "svc", &service.url(), &["--public"]);

    let out = curl_host(
        http,
        "svc",
        "/echo?via=http-listen",
        &["--data-binary", "hi"],
    );
    assert_status(&out, 200);
    assert_eq!(out.header("x-path"), Some("/echo?via=http-listen"));
    assert_eq!(out.body, b"hi");
    assert_eq!(
        service.last_request().header("httpws-from"),
        Some("-internet-")
    );
    let out = curl_host(http, "nobody", "/", &[]);
    assert_curl_error(&out, 404, "unknown-address");

    // A caller's head there has the same limit as on --listen (--max-handshake-bytes).
    let mut raw = RawConn::connect(http, IO_TIMEOUT);
    raw.send(
        format!(
            "GET /echo HTTP/1.1\r\nHost: svc\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(7_000)
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(raw.response("GET").status(), 200);
    let mut raw = RawConn::connect(http, IO_TIMEOUT);
    raw.send(
        format!(
            "GET /echo HTTP/1.1\r\nHost: svc\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(10_000)
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(raw.response("GET").status(), 431);

    // On --listen, a registration is only taken as the first request of a connection; a
    // later upgrade addressed to the proxy is refused (one to an endpoint passes through).
    let mut raw = RawConn::connect(proxy.addr, IO_TIMEOUT);
    raw.send(b"GET /echo HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    assert_eq!(raw.response("GET").status(), 200);
    raw.send(
        b"GET /late HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    assert_raw_error(&raw.response("GET"), 400, "bad-request");
    assert_eq!(raw.closed_by_peer(), Ok(true));

    // A WebSocket registration on --http-listen is refused; there an upgrade to an endpoint
    // (even by a bare name) is a call, here to one that is not registered.
    let mut raw = RawConn::connect(http, IO_TIMEOUT);
    raw.send(
        b"GET /sneaky HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    assert_raw_error(&raw.response("GET"), 404, "unknown-address");
    let mut stream = TcpStream::connect(http).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(
            b"GET /sneaky HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the refusal");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("Httpws-Error: bad-request"), "{answer}");
    // tungstenite agrees, and the name was not taken.
    let refused = connect_at(http, "/sneaky", &[]);
    assert_eq!(refused.err(), Some(400));
    let out = curl_host(http, "sneaky", "/", &[]);
    assert_curl_error(&out, 404, "unknown-address");
    // The WebSocket listener still registers.
    let mut ep = connect(&proxy, "/sneaky?public=1");
    let mut raw = RawConn::connect(http, IO_TIMEOUT);
    raw.send(b"GET /ws-ok HTTP/1.1\r\nHost: sneaky\r\n\r\n")
        .unwrap();
    let seen = ep.answer("yes");
    assert_eq!(seen.start, "GET /ws-ok HTTP/1.1");
    assert_eq!(raw.response("GET").body, b"yes");
}

// =============================================================================================
// 7. Tokens file
// =============================================================================================

fn tokens_file_public_flag_and_internet_rules(driver: Driver) {
    let hash = httpws::proxy::access::hash_token;
    let text = format!(
        r#"
[[tokens]]
label = "private-only"
sha256 = "{private}"
names = ["*"]
public = false

[[tokens]]
label = "any"
sha256 = "{any}"
names = ["*"]

[[rules]]
targets = ["svc"]
accept_from = ["-internet-"]

[[rules]]
targets = ["locked"]
accept_from = ["alice"]
"#,
        private = hash("tok-private"),
        any = hash("tok-any"),
    );
    let path = tokens_path(&format!("tokens-{driver:?}"), &text);
    let proxy = Proxy::start(driver, &["--tokens", path.to_str().unwrap()]);
    let bearer = |t: &str| format!("Bearer {t}");

    // `public = false`: that token cannot register a public endpoint, but a private one.
    assert_eq!(
        connect_with(
            &proxy,
            "/pub1?public=1",
            &[("Authorization", &bearer("tok-private"))]
        )
        .err(),
        Some(403)
    );
    let private = connect_with(
        &proxy,
        "/priv1",
        &[("Authorization", &bearer("tok-private"))],
    );
    assert_eq!(private.map(|e| e.address).ok().as_deref(), Some("priv1"));

    // The agent's --public uses `?public=1`: refused with that token too (it never registers,
    // and the name stays free), while the other token registers it.
    let service = Service::start();
    let _agent = Agent::serve(
        proxy.addr,
        "svc",
        &service.url(),
        &["--public", "--token", "tok-any"],
    );
    // `accept_from = ["-internet-"]`: the internet is let in...
    let out = curl_host(proxy.addr, "svc", "/echo", &[]);
    assert_status(&out, 200);
    // ...and an endpoint caller is not.
    let mut alice = connect_with(&proxy, "/alice", &[("Authorization", &bearer("tok-any"))])
        .expect("alice registers");
    alice.request("svc", 7, "/echo");
    assert_proxy_error(&alice.recv_http(), 403, "forbidden", 7);

    // A public endpoint whose rule does not list `-internet-` is closed to it.
    let mut locked = connect_with(
        &proxy,
        "/locked?public=1",
        &[("Authorization", &bearer("tok-any"))],
    )
    .expect("locked registers");
    let out = curl_host(proxy.addr, "locked", "/", &[]);
    assert_curl_error(&out, 403, "forbidden");
    alice.request("locked", 8, "/from-alice");
    let seen = locked.answer("welcome");
    assert_eq!(seen.header("httpws-from"), Some("alice"));
    assert_eq!(alice.recv_http().cseq(), 8);
    assert_eq!(service.requests().len(), 1, "only the internet's request");
}

fn agent_with_public_flag_and_a_private_token_is_refused(driver: Driver) {
    let hash = httpws::proxy::access::hash_token;
    let text = format!(
        "[[tokens]]\nlabel = \"p\"\nsha256 = \"{}\"\nnames = [\"*\"]\npublic = false\n",
        hash("tok-private")
    );
    let path = tokens_path(&format!("agent-{driver:?}"), &text);
    let proxy = Proxy::start(driver, &["--tokens", path.to_str().unwrap()]);
    let service = Service::start();
    // Without --public the token registers an agent.
    let private = Agent::serve(
        proxy.addr,
        "other",
        &service.url(),
        &["--token", "tok-private"],
    );
    drop(private);
    // With --public the proxy answers 403, which the agent takes as final: it gives up.
    let mut agent = Agent::start(
        proxy.addr,
        &[
            "--name",
            "svc",
            "--serve",
            &service.url(),
            "--token",
            "tok-private",
            "--public",
        ],
    );
    let status = agent
        .wait_exit(IO_TIMEOUT)
        .expect("the agent gives up on a 403");
    assert!(!status.success(), "{status:?}");
    // The name stayed free: the same token takes it as a private endpoint.
    let ep = connect_with(&proxy, "/svc", &[("Authorization", "Bearer tok-private")])
        .expect("the name is free");
    assert_eq!(ep.address, "svc");
    let out = curl_host(proxy.addr, "svc", "/", &[]);
    assert_curl_error(&out, 403, "forbidden");
}

// =============================================================================================
// 8. The proxy's own pages
// =============================================================================================

fn serve_client_serves_httpws_js(driver: Driver) {
    let js = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/httpws.js"))
        .expect("clients/js/httpws.js");
    let proxy = Proxy::start(driver, &["--serve-client", "--domain", DOMAIN]);
    let host = proxy.addr.to_string();
    for host in [host.as_str(), "localhost", DOMAIN] {
        let out = curl_host(proxy.addr, host, "/httpws.js", &[]);
        assert_status(&out, 200);
        assert!(
            out.header("content-type")
                .is_some_and(|t| t.starts_with("text/javascript")),
            "{:?}",
            out.headers
        );
        assert!(
            out.body == js,
            "{host}: /httpws.js differs from clients/js/httpws.js"
        );
    }
    // With the URL curl builds itself (Host: 127.0.0.1:PORT).
    let out = curl(&[&format!("http://{}/httpws.js?v=1", proxy.addr)]);
    assert_status(&out, 200);
    assert_eq!(out.body.len(), js.len());
    let out = curl(&["-I", &format!("http://{}/httpws.js", proxy.addr)]);
    assert_status(&out, 200);
    assert_eq!(
        out.header("content-length"),
        Some(js.len().to_string().as_str())
    );
    let out = curl(&[&format!("http://{}/other", proxy.addr)]);
    assert_curl_error(&out, 404, "unknown-address");
    // Keep-alive across the proxy's own pages, HEAD without a body among them.
    let mut raw = RawConn::connect(proxy.addr, IO_TIMEOUT);
    for method in ["GET", "HEAD", "GET"] {
        raw.send(format!("{method} /httpws.js HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .unwrap();
        let resp = raw.response(method);
        assert_eq!(resp.status(), 200);
        if method == "GET" {
            assert!(resp.body == js);
        }
    }

    let plain = Proxy::start(driver, &[]);
    let out = curl(&[&format!("http://{}/httpws.js", plain.addr)]);
    assert_curl_error(&out, 404, "unknown-address");
}

// =============================================================================================
// 9. wrk
// =============================================================================================

fn wrk_sees_no_errors_or_skipped(driver: Driver) {
    let Some(wrk) = programs::needed("wrk") else {
        return;
    };
    let net = Net::start(driver, &[]);
    let url = format!("http://{}/echo", net.proxy.addr);
    let output = Command::new(wrk)
        .args([
            "-t1",
            "-c16",
            "-d1s",
            "--timeout",
            "5s",
            "-H",
            "Host: svc",
            &url,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wrk failed: {text} {:?}",
        output.stderr
    );
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    let requests: u64 = text
        .lines()
        .find_map(|l| l.split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in {text}"));
    assert!(requests > 16, "only {requests} requests: {text}");
}

// =============================================================================================
// 10. Isolation
// =============================================================================================

/// Ingress callers that stall (a half-sent head, a body that never comes, a request to a
/// target that never answers) do not disturb endpoints relaying to each other, or other
/// ingress callers.
fn stalled_ingress_callers_do_not_disturb_relay_traffic(driver: Driver) {
    let net = Net::start(driver, &[]);
    let mut silent = connect(&net.proxy, "/silent?public=1");
    let mut a = connect(&net.proxy, "/ep-a");
    let mut b = connect(&net.proxy, "/ep-b");

    let mut half_head = net.raw();
    half_head.send(b"GET /echo HTTP/1.1\r\nHost: sv").unwrap();
    let mut half_body = net.raw();
    half_body
        .send(b"POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut waiting = net.raw();
    waiting
        .send(b"GET /wait HTTP/1.1\r\nHost: silent\r\n\r\n")
        .unwrap();
    let (held, _) = recv_relayed(&mut silent);
    assert_eq!(held.start, "GET /wait HTTP/1.1");

    for cseq in 1..=20 {
        a.request("ep-b", cseq, &format!("/n/{cseq}"));
        let seen = b.answer("pong");
        assert_eq!(seen.start, format!("GET /n/{cseq} HTTP/1.1"));
        assert_eq!(seen.header("httpws-from"), Some("ep-a"));
        let resp = a.recv_http();
        assert_eq!(resp.cseq(), cseq);
        assert_eq!(resp.body, "pong");
    }
    let out = net.curl("svc", "/echo?bystander", &[]);
    assert_status(&out, 200);

    // The stalled callers finish normally.
    half_head.send(b"c\r\n\r\n").unwrap();
    assert_eq!(half_head.response("GET").status(), 200);
    half_body.send(b"defghij").unwrap();
    assert_eq!(half_body.response("POST").body, b"abcdefghij");
    silent.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 4\r\n\r\nlate",
        held.cseq()
    ));
    assert_eq!(waiting.response("GET").body, b"late");

    // An ingress caller that goes away mid-request leaves the target's answer nowhere to go,
    // and nothing breaks.
    let mut gone = net.raw();
    gone.send(b"GET /gone HTTP/1.1\r\nHost: silent\r\n\r\n")
        .unwrap();
    let (held, _) = recv_relayed(&mut silent);
    drop(gone);
    silent.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        held.cseq()
    ));
    let mut again = net.raw();
    again
        .send(b"GET /again HTTP/1.1\r\nHost: silent\r\n\r\n")
        .unwrap();
    let (held, _) = recv_relayed(&mut silent);
    assert_eq!(held.start, "GET /again HTTP/1.1");
    silent.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 2\r\n\r\nok",
        held.cseq()
    ));
    assert_eq!(again.response("GET").body, b"ok");
}

/// SIGTERM: an ingress request in flight gets its real answer during the grace period, marked
/// `Connection: close`, and every ingress connection is closed; the proxy exits 0.
fn sigterm_answers_ingress_requests_in_flight_then_closes(driver: Driver) {
    // One shard, so the ingress connections and the target drain together.
    let proxy = Proxy::start(driver, &["--shards", "1", "--shutdown-grace", "5s"]);
    let mut ep = connect(&proxy, "/raw?public=1");
    let mut idle = RawConn::connect(proxy.addr, IO_TIMEOUT);
    idle.send(b"GET /a HTTP/1.1\r\nHost: nobody\r\n\r\n")
        .unwrap();
    let resp = idle.response("GET");
    assert_raw_error(&resp, 404, "unknown-address");
    assert_eq!(
        resp.header("connection"),
        None,
        "still keep-alive: {resp:?}"
    );
    let mut busy = RawConn::connect(proxy.addr, IO_TIMEOUT);
    busy.send(b"GET /in-flight HTTP/1.1\r\nHost: raw\r\n\r\n")
        .unwrap();
    let (seen, _) = recv_relayed(&mut ep);
    assert_eq!(seen.start, "GET /in-flight HTTP/1.1");

    let mut proxy = proxy;
    let exit = std::thread::spawn(move || proxy.terminate());
    // Draining: a request to an address nobody holds is refused (503) instead of routed.
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    for cseq in 1_000u64.. {
        ep.request("nobody-holds-this", cseq, "/probe");
        let response = ep.recv_http();
        if response.header("httpws-error") == Some("target-busy") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never drained");
    }
    ep.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 4\r\n\r\nreal",
        seen.cseq()
    ));
    let resp = busy.response("GET");
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert_eq!(resp.body, b"real");
    assert_eq!(resp.header("connection"), Some("close"), "{resp:?}");
    assert_eq!(busy.closed_by_peer(), Ok(true));
    assert_eq!(
        idle.closed_by_peer(),
        Ok(true),
        "idle keep-alive connection closed"
    );
    let status = exit.join().expect("terminate thread");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The ingress on a `--tls-cert` proxy: HTTPS callers reach the public endpoint, and the
/// service learns `X-Forwarded-Proto: https`.
fn https_callers_on_a_tls_proxy(driver: Driver) {
    let certs = Certs::new("ingress");
    let (ca_path, cert, key) = (certs.ca(), certs.cert(), certs.key());

    let proxy = Proxy::start(driver, &["--tls-cert", &cert, "--tls-key", &key]);
    let service = Service::start();
    let mut agent = Agent::start_url(
        &format!("wss://localhost:{}", proxy.addr.port()),
        &[
            "--name",
            "svc",
            "--serve",
            &service.url(),
            "--ca",
            &ca_path,
            "--public",
        ],
    );
    assert_eq!(agent.wait_registered(IO_TIMEOUT), "svc");
    let url = format!("https://127.0.0.1:{}/echo?tls", proxy.addr.port());
    let out = curl(&[
        "--cacert",
        &ca_path,
        "-H",
        "Host: svc",
        "--data-binary",
        "sealed",
        &url,
    ]);
    assert_status(&out, 200);
    assert_eq!(out.body, b"sealed");
    let seen = service.last_request();
    assert_eq!(seen.all("x-forwarded-proto"), vec!["https"], "{seen:?}");
    assert_eq!(seen.all("httpws-from"), vec!["-internet-"], "{seen:?}");
    let url = format!("https://127.0.0.1:{}/", proxy.addr.port());
    let out = curl(&["--cacert", &ca_path, "-H", "Host: nobody", &url]);
    assert_curl_error(&out, 404, "unknown-address");
}

/// Ingress connections land on any shard and targets live on every shard: each pair works.
fn every_shard_reaches_every_shard(driver: Driver) {
    const SHARDS: u64 = 3;
    let proxy = Proxy::start(driver, &["--shards", "3"]);
    let names: Vec<String> = (0..SHARDS)
        .map(|shard| name_on_shard("t", shard, SHARDS))
        .collect();
    let mut eps: Vec<Endpoint> = names
        .iter()
        .map(|n| connect(&proxy, &format!("/{n}?public=1")))
        .collect();
    // Fresh connections spread over the shards' listeners; each asks every target.
    for round in 0..6 {
        let mut raw = RawConn::connect(proxy.addr, IO_TIMEOUT);
        for (name, ep) in names.iter().zip(eps.iter_mut()) {
            raw.send(format!("GET /{round} HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
                .unwrap();
            let (seen, _) = recv_relayed(ep);
            assert_eq!(seen.start, format!("GET /{round} HTTP/1.1"));
            let body = format!("{name}-{round}");
            ep.send(&format!(
                "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: {}\r\n\r\n{body}",
                seen.cseq(),
                body.len()
            ));
            assert_eq!(raw.response("GET").body, body.as_bytes());
        }
    }
}

/// A target's answer whose framing does not hold (a body shorter than its Content-Length, an
/// incomplete chunked body, a body on a 204, an interim 1xx as the answer) must not leave the
/// caller hanging or its keep-alive connection out of step: 502 `bad-response`, and the next
/// request on the connection is answered correctly.
fn broken_answers_from_the_target_do_not_desync_the_caller(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut ep = connect(&proxy, "/raw?public=1");
    let broken = [
        ("short body", "Content-Length: 10\r\n\r\nshort"),
        (
            "incomplete chunked body",
            "Transfer-Encoding: chunked\r\n\r\n3\r\nab",
        ),
        ("204 with a body", "\r\nextra"),
        ("interim answer", "\r\n"),
    ];
    for (what, rest) in broken {
        let mut client = RawConn::connect(proxy.addr, Duration::from_secs(3));
        client
            .send(b"GET /broken HTTP/1.1\r\nHost: raw\r\n\r\n")
            .unwrap();
        let (seen, _) = recv_relayed(&mut ep);
        let status = match what {
            "204 with a body" => "204 No Content",
            "interim answer" => "100 Continue",
            _ => "200 OK",
        };
        send_bytes(
            &mut ep,
            format!("HTTP/1.1 {status}\r\nCSeq: {}\r\n{rest}", seen.cseq()).as_bytes(),
        );
        let resp = client
            .try_response("GET")
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        assert_raw_error(&resp, 502, "bad-response");
        client
            .send(b"GET /next HTTP/1.1\r\nHost: raw\r\n\r\n")
            .unwrap();
        let (seen, _) = recv_relayed(&mut ep);
        ep.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 4\r\n\r\nnext",
            seen.cseq()
        ));
        let resp = client
            .try_response("GET")
            .unwrap_or_else(|e| panic!("{what}: no answer to the next request: {e}"));
        assert_eq!(resp.body, b"next", "{what}: {resp:?}");
    }
}

on_both_drivers!(
    public_endpoint_is_reached_by_address_and_by_subdomain,
    relayed_message_and_answer_are_rewritten,
    private_endpoint_is_forbidden_to_the_internet,
    unknown_address_gets_404,
    service_down_gets_502,
    slow_service_gets_504_at_the_request_timeout,
    malformed_requests_get_400_and_the_proxy_keeps_serving,
    unsupported_requests_get_405_and_501,
    limits_give_413_and_431,
    keep_alive_close_and_http_1_0,
    pipelined_requests_are_answered_in_order,
    request_and_response_bodies,
    http_listen_serves_the_ingress_and_refuses_upgrades,
    tokens_file_public_flag_and_internet_rules,
    agent_with_public_flag_and_a_private_token_is_refused,
    serve_client_serves_httpws_js,
    wrk_sees_no_errors_or_skipped,
    stalled_ingress_callers_do_not_disturb_relay_traffic,
    sigterm_answers_ingress_requests_in_flight_then_closes,
    https_callers_on_a_tls_proxy,
    every_shard_reaches_every_shard,
    broken_answers_from_the_target_do_not_desync_the_caller,
);
