//! The endpoint agent (`httpws endpoint`) end to end: the real proxy binary, real agent
//! processes, a real local HTTP service (`common::service`), and curl as the independent
//! HTTP client.
//!
//! Topology for most tests: proxy; agent `bob --serve http://SERVICE`; agent
//! `alice --listen 127.0.0.1:0`; `curl -x http://ALICE http://bob/...`.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::IO_TIMEOUT;
use common::agent::Agent;
use common::curl::{CurlOut, assert_ok, curl, curl_raw, curl_via};
use common::driver::Driver;
use common::ports::dead_port;
use common::proxy::{Proxy, assert_assigned};
use common::raw_conn::RawConn;
use common::scratch::Scratch;
use common::service::{Service, pattern, query_param};

/// A request that must fail fast must fail within this.
const FAST: Duration = Duration::from_secs(2);

struct Net {
    // Agents first: they go before the proxy and the service when dropped.
    alice: Agent,
    _bob: Agent,
    service: Service,
    proxy: Proxy,
}

impl Net {
    fn start(bob_extra: &[&str], alice_extra: &[&str]) -> Net {
        let proxy = Proxy::start(Driver::Uring, &[]);
        let service = Service::start();
        let bob = Agent::serve(proxy.addr, "bob", &service.url(), bob_extra);
        let alice = Agent::listen(proxy.addr, "alice", alice_extra);
        Net {
            alice,
            _bob: bob,
            service,
            proxy,
        }
    }

    fn ingress(&mut self) -> String {
        self.alice.ingress()
    }

    /// `curl -x ALICE <url> <extra…>`.
    fn via(&mut self, url: &str, extra: &[&str]) -> CurlOut {
        let ingress = self.ingress();
        curl_via(&ingress, url, extra)
    }
}

/// The tunnel's own headers never reach the local client.
#[track_caller]
fn assert_no_tunnel_headers(out: &CurlOut) {
    assert_eq!(
        out.header("cseq"),
        None,
        "CSeq leaked to the client: {out:?}"
    );
    assert_eq!(
        out.header("httpws-from"),
        None,
        "Httpws-From leaked to the client: {out:?}"
    );
}

#[track_caller]
fn assert_error(out: &CurlOut, status: u16, token: &str) {
    assert_eq!(
        (out.code, out.header("httpws-error")),
        (status, Some(token)),
        "expected {status} {token}; got {out:?}"
    );
    assert_eq!(
        out.header("cseq"),
        None,
        "CSeq leaked to the client: {out:?}"
    );
}

/// An answer bob's agent made: the proxy renames a target's own `Httpws-Error` to
/// `Httpws-Target-Error` on its way to the caller, so the token comes under either name.
#[track_caller]
fn assert_egress_error(out: &CurlOut, status: u16, token: &str) {
    // The proxy renamed the egress's Httpws-Error: only its own answers carry that name.
    let marker = (
        out.header("httpws-error"),
        out.header("httpws-target-error"),
    );
    assert_eq!(
        (out.code, marker),
        (status, (None, Some(token))),
        "expected {status} {token} from the egress; got {out:?}"
    );
    assert_eq!(
        out.header("cseq"),
        None,
        "CSeq leaked to the client: {out:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The fixture itself (runs without the agent).
// ---------------------------------------------------------------------------------------

#[test]
fn service_fixture_speaks_http_directly() {
    let service = Service::start();
    let mut conn = RawConn::connect(service.addr, IO_TIMEOUT);

    conn.send(b"POST /echo?x=1 HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let r = conn.response("POST");
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("x-method"), Some("POST"));
    assert_eq!(r.header("x-path"), Some("/echo?x=1"));
    assert_eq!(r.header("x-host"), Some("svc"));
    assert_eq!(r.header("x-from"), Some("none"));
    assert_eq!(r.header("x-body-len"), Some("5"));
    assert_eq!(r.header("x-chunked"), Some("no"));

    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: svc\r\nHttpws-From: alice\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
    )
    .unwrap();
    let r = conn.response("POST");
    assert_eq!(r.body, b"abcde");
    assert_eq!(r.header("x-chunked"), Some("yes"));
    assert_eq!(r.header("x-from"), Some("alice"));

    conn.send(b"HEAD /big?bytes=5000 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let r = conn.response("HEAD");
    assert_eq!(r.header("content-length"), Some("5000"));
    assert!(r.body.is_empty());

    conn.send(b"GET /big-chunked?bytes=400000 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body == pattern(400_000), "chunked body differs");

    conn.send(b"GET /status/204 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!((r.status(), r.header("content-length")), (204, None));

    conn.send(b"GET /big-close?bytes=70000 HTTP/1.1\r\nHost: svc\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.header("content-length"), None);
    assert!(r.body == pattern(70_000), "close-delimited body differs");
    assert_eq!(conn.closed_by_peer(), Ok(true));

    assert_eq!(
        service.connections(),
        1,
        "all of that on one keep-alive connection"
    );
    let seen = service.wait_requests(6, IO_TIMEOUT);
    assert_eq!(seen[1].header("httpws-from"), Some("alice"));
    assert!(seen.iter().all(|r| r.connection == 1));

    // curl straight to the service: the curl helper and the fixture agree.
    let file = Scratch::new();
    let path = file.write("up", &pattern(70_000));
    let data = format!("@{path}");
    let out = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &format!("{}/echo", service.url()),
    ]);
    assert_ok(&out);
    assert_eq!(out.header("x-chunked"), Some("yes"));
    assert!(out.body == pattern(70_000));
    assert_eq!(service.connections(), 2);
}

// ---------------------------------------------------------------------------------------
// Requests and responses through the tunnel.
// ---------------------------------------------------------------------------------------

#[test]
fn get_by_proxy_form_reaches_the_service() {
    let mut net = Net::start(&[], &[]);
    let out = net.via("http://bob/echo?a=1&b=2", &[]);
    assert_ok(&out);
    assert_no_tunnel_headers(&out);
    assert_eq!(out.header("x-method"), Some("GET"));
    assert_eq!(out.header("x-path"), Some("/echo?a=1&b=2"));
    assert_eq!(out.header("x-from"), Some("alice"));
    assert_eq!(out.header("content-length"), Some("0"));
    assert!(out.body.is_empty());

    let seen = net.service.last_request();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/echo?a=1&b=2", "origin-form at the service");
    assert_eq!(seen.all("httpws-from"), vec!["alice"]);
    assert_eq!(
        seen.header("cseq"),
        None,
        "CSeq is stripped before the service"
    );
}

#[test]
fn get_by_host_header_reaches_the_service() {
    let mut net = Net::start(&[], &[]);
    let url = format!("{}/echo?by=host", net.ingress());
    let out = curl(&["-H", "Host: bob", &url]);
    assert_ok(&out);
    assert_no_tunnel_headers(&out);
    assert_eq!(out.header("x-path"), Some("/echo?by=host"));
    assert_eq!(out.header("x-from"), Some("alice"));
    assert_eq!(net.service.last_request().target, "/echo?by=host");
}

#[test]
fn post_with_content_length_round_trips_the_body() {
    let mut net = Net::start(&[], &[]);
    let scratch = Scratch::new();
    let body = pattern(10_000);
    let data = format!("@{}", scratch.write("up", &body));
    let out = net.via(
        "http://bob/echo",
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &data,
        ],
    );
    assert_ok(&out);
    assert_eq!(out.header("x-method"), Some("POST"));
    assert_eq!(out.header("x-body-len"), Some("10000"));
    assert!(out.body == body, "echoed body differs");
    let seen = net.service.last_request();
    assert!(seen.body == body);
    assert_eq!(
        seen.header("content-type"),
        Some("application/octet-stream"),
        "end-to-end headers are forwarded"
    );
}

#[test]
fn chunked_upload_round_trips_the_body() {
    let mut net = Net::start(&[], &[]);
    let scratch = Scratch::new();
    let body = pattern(300_001);
    let data = format!("@{}", scratch.write("up", &body));
    let out = net.via(
        "http://bob/echo",
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Expect:",
            "--data-binary",
            &data,
        ],
    );
    assert_ok(&out);
    assert_eq!(out.header("x-body-len"), Some("300001"));
    assert!(out.body == body, "echoed body differs");
    assert!(net.service.last_request().body == body);
}

#[test]
fn large_bodies_both_directions_are_byte_identical() {
    let mut net = Net::start(&[], &[]);
    let size = 4 * 1024 * 1024 + 123;
    let scratch = Scratch::new();
    let body = pattern(size);
    let data = format!("@{}", scratch.write("up", &body));

    let out = net.via(
        "http://bob/echo",
        &["--max-time", "60", "-H", "Expect:", "--data-binary", &data],
    );
    assert_ok(&out);
    assert_eq!(out.header("x-body-len"), Some(size.to_string().as_str()));
    assert!(
        out.body.len() == size && out.body == body,
        "upload echo differs"
    );

    for route in ["big", "big-chunked", "big-close"] {
        let out = net.via(
            &format!("http://bob/{route}?bytes={size}"),
            &["--max-time", "60"],
        );
        assert_ok(&out);
        assert!(
            out.body.len() == size && out.body == body,
            "/{route}: {} bytes, not the pattern of {size}",
            out.body.len()
        );
        // Protocol 2: the body streams; a length the service declared reaches the client,
        // and a body of unknown length goes chunked.
        if route == "big" {
            assert_eq!(
                out.header("content-length"),
                Some(size.to_string().as_str()),
                "/{route}: the agent answers with the declared Content-Length"
            );
            assert_eq!(out.header("transfer-encoding"), None, "/{route}");
        } else {
            assert_eq!(out.header("transfer-encoding"), Some("chunked"), "/{route}");
        }
    }
}

#[test]
fn head_204_and_304_carry_no_body_and_keep_the_connection_in_sync() {
    let mut net = Net::start(&[], &[]);
    let mut conn = RawConn::connect(net.alice.listen_addr(), IO_TIMEOUT);

    conn.send(b"HEAD http://bob/big?bytes=5000 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("HEAD");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("content-length"),
        Some("5000"),
        "HEAD keeps the service's Content-Length"
    );

    conn.send(b"GET http://bob/status/204 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.header("content-length"),
        None,
        "204 must not carry Content-Length"
    );
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("x-status"), Some("204"));

    conn.send(b"GET http://bob/status/304 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.status(), 304);
    assert_eq!(r.header("transfer-encoding"), None);

    // Had any body bytes followed HEAD/204/304, this response would be garbled.
    conn.send(b"GET http://bob/echo?after=1 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-path"), Some("/echo?after=1"));

    // And curl agrees.
    let out = net.via("http://bob/big?bytes=5000", &["-I"]);
    assert_ok(&out);
    assert_eq!(out.header("content-length"), Some("5000"));
    let out = net.via("http://bob/status/204", &[]);
    assert_eq!((out.exit, out.code), (0, 204), "{out:?}");
    assert!(out.body.is_empty());
}

#[test]
fn service_statuses_pass_through_untouched() {
    let mut net = Net::start(&[], &[]);
    for code in [404u16, 418, 500, 503] {
        let out = net.via(&format!("http://bob/status/{code}"), &[]);
        assert_eq!((out.exit, out.code), (0, code), "{out:?}");
        assert_eq!(
            out.header("httpws-error"),
            None,
            "a service's own {code} is not a tunnel error"
        );
        assert_eq!(out.body_text(), format!("status {code}\n"));
    }
}

#[test]
fn keep_alive_is_reused_on_ingress_and_egress() {
    let mut net = Net::start(&[], &[]);
    let ingress = net.ingress();
    let (exit, stdout, stderr) = curl_raw(&[
        "-sS",
        "-v",
        "--max-time",
        "10",
        "-x",
        &ingress,
        "http://bob/echo?n=1",
        "http://bob/echo?n=2",
    ]);
    assert_eq!(exit, 0, "{stderr}");
    assert!(
        stderr.contains("Re-using existing connection"),
        "curl did not reuse its connection to the agent:\n{stderr}"
    );
    assert_eq!(stdout, "", "empty echo bodies");
    for n in 3..=12 {
        let out = net.via(&format!("http://bob/echo?n={n}"), &[]);
        assert_ok(&out);
        assert_eq!(out.header("x-path"), Some(format!("/echo?n={n}").as_str()));
    }
    let seen = net.service.wait_requests(12, IO_TIMEOUT);
    assert_eq!(seen.len(), 12);
    assert!(
        net.service.connections() <= 2,
        "12 sequential requests took {} service connections: the egress pool is not reused",
        net.service.connections()
    );
}

#[test]
fn a_hundred_concurrent_requests() {
    let mut net = Net::start(&[], &[]);
    let ingress = net.ingress();
    let scratch = Scratch::new();
    let size = |i: usize| 1000 + i * 37;
    let urls: Vec<String> = (0..100)
        .map(|i| format!("http://bob/slow?ms=500&bytes={}", size(i)))
        .collect();
    let files: Vec<String> = (0..100).map(|i| scratch.path(&format!("r{i}"))).collect();
    let mut args = vec![
        "-sS",
        "--max-time",
        "30",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "100",
        "-x",
        &ingress,
        "-w",
        "%{http_code} %{size_download}\\n",
    ];
    for (url, file) in urls.iter().zip(&files) {
        args.extend_from_slice(&["-o", file, url]);
    }
    let started = Instant::now();
    let (exit, stdout, stderr) = curl_raw(&args);
    let elapsed = started.elapsed();
    assert_eq!(exit, 0, "curl --parallel failed: {stderr}");
    let codes: Vec<&str> = stdout.lines().collect();
    assert_eq!(codes.len(), 100, "{stdout}");
    assert!(
        codes.iter().all(|l| l.starts_with("200 ")),
        "not all 200: {stdout}"
    );
    for (i, file) in files.iter().enumerate() {
        let got = std::fs::read(file).expect("response file");
        assert!(
            got == pattern(size(i)),
            "response {i} is {} bytes, not its own pattern of {}: answers mixed up",
            got.len(),
            size(i)
        );
    }
    // Serially, 100 × 500 ms would be 50 s.
    assert!(
        elapsed < Duration::from_secs(20),
        "100 concurrent requests took {elapsed:?}: they were not served concurrently"
    );
    assert_eq!(net.service.requests().len(), 100);
}

#[test]
fn client_cannot_forge_httpws_from_or_inject_cseq() {
    let mut net = Net::start(&[], &[]);
    let out = net.via(
        "http://bob/echo",
        &["-H", "Httpws-From: mallory", "-H", "CSeq: 7"],
    );
    assert_ok(&out);
    assert_no_tunnel_headers(&out);
    assert_eq!(out.header("x-from"), Some("alice"));
    let seen = net.service.last_request();
    assert_eq!(seen.all("httpws-from"), vec!["alice"]);
    assert_eq!(seen.all("cseq"), Vec::<&str>::new());
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let mut net = Net::start(&[], &[]);
    let out = net.via(
        "http://bob/echo",
        &[
            "-H",
            "Connection: X-Hop",
            "-H",
            "X-Hop: 1",
            "-H",
            "Keep-Alive: timeout=5",
            "-H",
            "X-End-To-End: 2",
        ],
    );
    assert_ok(&out);
    let seen = net.service.last_request();
    assert_eq!(seen.header("x-end-to-end"), Some("2"), "{:?}", seen.headers);
    for hop in ["x-hop", "keep-alive", "proxy-connection"] {
        assert_eq!(
            seen.header(hop),
            None,
            "{hop} forwarded: {:?}",
            seen.headers
        );
    }
}

#[test]
fn host_is_rewritten_unless_preserve_host() {
    let mut net = Net::start(&[], &[]);
    let carol = Agent::serve(
        net.proxy.addr,
        "carol",
        &net.service.url(),
        &["--preserve-host"],
    );
    let out = net.via("http://bob/echo", &[]);
    assert_ok(&out);
    assert_eq!(
        out.header("x-host"),
        Some(net.service.authority().as_str()),
        "Host is rewritten to the service authority"
    );
    let out = net.via("http://carol/echo", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-host"), Some("carol"), "--preserve-host");
    assert_eq!(out.header("x-from"), Some("alice"));
    drop(carol);
}

#[test]
fn serve_base_path_is_prefixed() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let service = Service::start();
    let _bob = Agent::serve(proxy.addr, "bob", &format!("{}/api", service.url()), &[]);
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let out = curl_via(&alice.ingress(), "http://bob/echo?q=1", &[]);
    assert_eq!(out.exit, 0, "{out:?}");
    let seen = service.last_request();
    assert_eq!(seen.target, "/api/echo?q=1");
}

// ---------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_target_gets_404_unknown_address() {
    let mut net = Net::start(&[], &[]);
    let out = net.via("http://nobody/echo", &[]);
    assert_eq!(out.exit, 0, "{out:?}");
    assert_error(&out, 404, "unknown-address");
    assert_eq!(net.service.requests().len(), 0);
}

#[test]
fn unreachable_service_gets_502_service_unavailable() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let nowhere = format!("http://{}", dead_port());
    let _bob = Agent::serve(proxy.addr, "bob", &nowhere, &[]);
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let ingress = alice.ingress();
    for _ in 0..2 {
        let out = curl_via(&ingress, "http://bob/echo", &[]);
        assert_egress_error(&out, 502, "service-unavailable");
        assert_eq!(
            out.body_text(),
            "the service is unavailable\n",
            "no address: {out:?}"
        );
        assert!(out.elapsed < Duration::from_secs(5), "{out:?}");
    }
}

#[test]
fn slow_service_gets_504_and_the_pool_recovers() {
    let mut net = Net::start(&["--service-timeout", "300ms"], &[]);
    let out = net.via("http://bob/slow?ms=3000", &[]);
    assert_egress_error(&out, 504, "timeout");
    assert!(
        out.elapsed < Duration::from_millis(2500),
        "504 came after {:?}, not after the 300ms service timeout",
        out.elapsed
    );
    // The timed-out service connection must not be reused: its late answer would be read
    // as the answer to the next request.
    for n in 0..3 {
        let out = net.via(&format!("http://bob/echo?n={n}"), &[]);
        assert_ok(&out);
        assert_eq!(out.header("x-path"), Some(format!("/echo?n={n}").as_str()));
    }
    // Responses arriving at the service side in time are fine.
    let out = net.via("http://bob/slow?ms=10", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "slow");
}

#[test]
fn ingress_request_timeout_gets_504() {
    let mut net = Net::start(&[], &["--request-timeout", "500ms"]);
    let out = net.via("http://bob/slow?ms=3000", &[]);
    assert_eq!(out.code, 504, "{out:?}");
    assert!(out.header("httpws-error").is_some(), "{out:?}");
    assert!(out.elapsed < Duration::from_millis(2500), "{out:?}");
    let out = net.via("http://bob/echo", &[]);
    assert_ok(&out);
}

// ---------------------------------------------------------------------------------------
// Tunnel loss and reconnection.
// ---------------------------------------------------------------------------------------

#[test]
fn tunnel_down_fails_fast_with_502() {
    let nowhere = dead_port();
    let mut alice = Agent::start(
        nowhere,
        &[
            "--name",
            "alice",
            "--listen",
            "127.0.0.1:0",
            "--reconnect-max",
            "500ms",
        ],
    );
    let ingress = alice.ingress();
    for _ in 0..3 {
        let out = curl_via(&ingress, "http://bob/echo", &["--max-time", "5"]);
        assert_error(&out, 502, "tunnel-down");
        assert!(out.elapsed < FAST, "took {:?}", out.elapsed);
    }
    assert!(alice.try_registered(Duration::ZERO).is_none());
    assert!(alice.running(), "the agent keeps running without a proxy");
}

#[test]
fn tunnel_dropped_while_waiting_gives_target_gone() {
    let mut net = Net::start(&[], &[]);
    let ingress = net.ingress();
    let waiter = std::thread::spawn(move || {
        let out = curl_via(&ingress, "http://bob/slow?ms=6000", &["--max-time", "10"]);
        (out, Instant::now())
    });
    // The request reached the service: it is in flight at alice, the proxy and bob.
    net.service.wait_requests(1, IO_TIMEOUT);
    let killed = Instant::now();
    drop(net.proxy);
    let (out, done) = waiter.join().expect("curl thread");
    assert_error(&out, 502, "target-gone");
    assert!(
        done.duration_since(killed) < FAST,
        "answered {:?} after the tunnel dropped",
        done.duration_since(killed)
    );
}

#[test]
fn proxy_restart_agents_reregister_and_outage_fails_fast() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let addr = proxy.addr;
    let service = Service::start();
    let mut bob = Agent::serve(addr, "bob", &service.url(), &["--reconnect-max", "500ms"]);
    let mut alice = Agent::listen(addr, "alice", &["--reconnect-max", "500ms"]);
    let ingress = alice.ingress();
    assert_ok(&curl_via(&ingress, "http://bob/echo", &[]));

    drop(proxy); // SIGKILL by PID, reaped

    for n in 0..5 {
        let out = curl_via(
            &ingress,
            &format!("http://bob/echo?outage={n}"),
            &["--max-time", "5"],
        );
        assert_eq!(out.code, 502, "request {n} during the outage: {out:?}");
        assert!(
            matches!(
                out.header("httpws-error"),
                Some("tunnel-down" | "target-gone")
            ),
            "{out:?}"
        );
        assert!(out.elapsed < FAST, "request {n} took {:?}", out.elapsed);
    }

    let _proxy = Proxy::start_on(Driver::Uring, addr, &[]);
    assert_eq!(bob.wait_registered(IO_TIMEOUT), "bob");
    assert_eq!(alice.wait_registered(IO_TIMEOUT), "alice");
    let out = curl_via(&ingress, "http://bob/echo?after=restart", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("alice"));
    assert_eq!(out.header("x-path"), Some("/echo?after=restart"));
}

#[test]
fn assigned_name_is_kept_across_reconnects() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let addr = proxy.addr;
    let service = Service::start();
    let mut anon = Agent::start(
        addr,
        &["--serve", &service.url(), "--reconnect-max", "500ms"],
    );
    let name = anon.wait_registered(IO_TIMEOUT);
    assert_assigned(&name);
    drop(proxy);
    let _proxy = Proxy::start_on(Driver::Uring, addr, &[]);
    assert_eq!(
        anon.wait_registered(IO_TIMEOUT),
        name,
        "same name after reconnecting"
    );
    let mut alice = Agent::listen(addr, "alice", &[]);
    let out = curl_via(&alice.ingress(), &format!("http://{name}/echo"), &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("alice"));
}

/// A fake proxy: accept one WebSocket, record the handshake, send `:host NAME`.
#[allow(clippy::result_large_err)] // tungstenite's handshake callback signature
fn fake_accept(
    listener: &TcpListener,
    name: &str,
) -> (
    tungstenite::WebSocket<std::net::TcpStream>,
    String,
    Option<String>,
) {
    let (stream, _) = listener.accept().expect("accept the agent");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut seen = (String::new(), None);
    let mut ws = tungstenite::accept_hdr(
        stream,
        |req: &tungstenite::handshake::server::Request,
         resp: tungstenite::handshake::server::Response| {
            seen.0 = req.uri().to_string();
            seen.1 = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap_or("").to_string());
            Ok(resp)
        },
    )
    .expect("websocket handshake");
    ws.send(tungstenite::Message::text(format!(":host {name}")))
        .expect("send :host");
    (ws, seen.0, seen.1)
}

#[test]
fn registers_with_name_and_token_and_drops_a_silent_proxy() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let accepted = fake_accept(&listener, "bob");
            // Keep the socket open but never read again: pings go unanswered.
            if tx.send(accepted).is_err() {
                return;
            }
        }
    });
    let mut bob = Agent::start(
        addr,
        &[
            "--name",
            "bob",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "s3cret",
            "--ping-interval",
            "200ms",
            "--pong-timeout",
            "300ms",
            "--reconnect-max",
            "200ms",
        ],
    );
    let (_first, target, auth) = rx.recv_timeout(IO_TIMEOUT).expect("the agent connects");
    // The token may travel as `Authorization: Bearer` or as `?access_token=`.
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    assert_eq!(path, "/bob");
    let token = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .or_else(|| query_param(query, "access_token"));
    assert_eq!(
        token,
        Some("s3cret"),
        "target {target:?}, authorization {auth:?}"
    );
    assert_eq!(bob.wait_registered(IO_TIMEOUT), "bob");
    // The fake stops answering; the agent must notice by itself and come back.
    let (_second, path, _) = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the agent reconnects after its pings go unanswered");
    assert!(path.starts_with("/bob"), "{path:?}");
    assert_eq!(bob.wait_registered(IO_TIMEOUT), "bob");
}

// ---------------------------------------------------------------------------------------
// Malformed and oversized requests at the ingress.
// ---------------------------------------------------------------------------------------

fn strict_net() -> Net {
    Net::start(
        &[],
        &["--max-head-bytes", "1024", "--max-body-bytes", "1000"],
    )
}

/// Send `bytes` on a fresh ingress connection; return the response and whether the agent
/// then closed the connection.
fn raw_exchange(net: &mut Net, bytes: &[u8], method: &str) -> (u16, Option<String>, bool) {
    let mut conn = RawConn::connect(net.alice.listen_addr(), Duration::from_secs(5));
    // The agent may answer and close before reading everything; that is its right.
    let _ = conn.send(bytes);
    let response = conn
        .try_response(method)
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(bytes)));
    let closed = conn.closed_by_peer().unwrap_or(false);
    (
        response.status(),
        response.header("httpws-error").map(str::to_string),
        closed,
    )
}

#[track_caller]
fn still_works(net: &mut Net) {
    let out = net.via("http://bob/echo?still=works", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-path"), Some("/echo?still=works"));
}

#[test]
fn garbage_request_line_gets_400_and_close() {
    let mut net = strict_net();
    let (status, _, closed) = raw_exchange(&mut net, b"THIS IS NOT HTTP\r\n\r\n", "GET");
    assert_eq!(status, 400);
    assert!(closed, "the agent closes the connection after a 400");
    let (status, _, closed) = raw_exchange(
        &mut net,
        b"GET http://bob/echo HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET",
    );
    assert_eq!(status, 400);
    assert!(closed);
    still_works(&mut net);
    assert_eq!(
        net.service.requests().len(),
        1,
        "nothing malformed reached the service"
    );
}

#[test]
fn oversized_head_gets_431_and_close() {
    let mut net = strict_net();
    let request = format!(
        "GET http://bob/echo HTTP/1.1\r\nHost: bob\r\nX-Big: {}\r\n\r\n",
        "x".repeat(2000)
    );
    let (status, _, closed) = raw_exchange(&mut net, request.as_bytes(), "GET");
    assert_eq!(status, 431);
    assert!(closed, "the agent closes the connection after a 431");
    still_works(&mut net);
    assert_eq!(net.service.requests().len(), 1);
}

#[test]
fn oversized_body_gets_413_and_close() {
    let mut net = strict_net();
    // Declared too large: refused on the head alone, before any body is sent.
    let (status, _, closed) = raw_exchange(
        &mut net,
        b"POST http://bob/echo HTTP/1.1\r\nHost: bob\r\nContent-Length: 5000\r\n\r\n",
        "POST",
    );
    assert_eq!(status, 413);
    assert!(closed, "the agent closes the connection after a 413");

    // Chunked, growing past the limit.
    let mut chunked =
        b"POST http://bob/echo HTTP/1.1\r\nHost: bob\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"3e8\r\n");
        chunked.extend_from_slice(&[b'a'; 1000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, _, closed) = raw_exchange(&mut net, &chunked, "POST");
    assert_eq!(status, 413);
    assert!(closed);

    // Exactly at the limit is fine.
    let scratch = Scratch::new();
    let data = format!("@{}", scratch.write("up", &pattern(1000)));
    let out = net.via("http://bob/echo", &["--data-binary", &data]);
    assert_ok(&out);
    assert!(out.body == pattern(1000));
    still_works(&mut net);
    assert_eq!(net.service.requests().len(), 2);
}

#[test]
fn connect_gets_405() {
    let mut net = strict_net();
    let (status, _, _) = raw_exchange(
        &mut net,
        b"CONNECT bob:443 HTTP/1.1\r\nHost: bob:443\r\n\r\n",
        "CONNECT",
    );
    assert_eq!(status, 405);
    still_works(&mut net);
}

#[test]
fn expect_100_continue_is_answered() {
    let mut net = Net::start(&[], &[]);
    let scratch = Scratch::new();
    let data = format!("@{}", scratch.write("up", &pattern(20_000)));
    // curl waits --expect100-timeout for the 100 before sending the body; an agent that
    // ignores Expect leaves it waiting past --max-time.
    let out = net.via(
        "http://bob/echo",
        &[
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "20",
            "--max-time",
            "8",
            "--data-binary",
            &data,
        ],
    );
    assert_ok(&out);
    assert!(out.body == pattern(20_000));
}

// ---------------------------------------------------------------------------------------
// Listen and serve in one agent.
// ---------------------------------------------------------------------------------------

#[test]
fn one_agent_listens_and_serves() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let carol_service = Service::start();
    let dave_service = Service::start();
    let both = |name: &str, service: &Service| {
        Agent::listen(proxy.addr, name, &["--serve", &service.url()])
    };
    let mut carol = both("carol", &carol_service);
    let mut dave = both("dave", &dave_service);

    // Carol calls herself.
    let out = curl_via(&carol.ingress(), "http://carol/echo?self=1", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("carol"));
    assert_eq!(carol_service.last_request().target, "/echo?self=1");

    // Carol and dave call each other.
    let out = curl_via(&carol.ingress(), "http://dave/echo?from=carol", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("carol"));
    let out = curl_via(&dave.ingress(), "http://carol/echo?from=dave", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("dave"));
    assert_eq!(dave_service.last_request().target, "/echo?from=carol");
    assert_eq!(carol_service.last_request().target, "/echo?from=dave");
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 details at the ingress and the egress.
// ---------------------------------------------------------------------------------------

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut net = Net::start(&[], &[]);
    let mut conn = RawConn::connect(net.alice.listen_addr(), IO_TIMEOUT);
    conn.send(
        b"GET http://bob/slow?ms=300 HTTP/1.1\r\nHost: bob\r\n\r\n\
          POST http://bob/echo?second HTTP/1.1\r\nHost: bob\r\nContent-Length: 3\r\n\r\nabc\
          GET http://bob/echo?third HTTP/1.1\r\nHost: bob\r\n\r\n",
    )
    .unwrap();
    let first = conn.response("GET");
    assert_eq!((first.status(), first.body.as_slice()), (200, &b"slow"[..]));
    let second = conn.response("POST");
    assert_eq!(second.header("x-path"), Some("/echo?second"));
    assert_eq!(second.body, b"abc");
    let third = conn.response("GET");
    assert_eq!(third.header("x-path"), Some("/echo?third"));
}

#[test]
fn http_1_0_and_connection_close_end_the_client_connection() {
    let mut net = Net::start(&[], &[]);
    let addr = net.alice.listen_addr();

    let mut conn = RawConn::connect(addr, Duration::from_secs(5));
    conn.send(b"GET http://bob/echo?v=10 HTTP/1.0\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-path"), Some("/echo?v=10"));
    assert_eq!(
        conn.closed_by_peer(),
        Ok(true),
        "HTTP/1.0 without keep-alive closes"
    );

    let mut conn = RawConn::connect(addr, Duration::from_secs(5));
    conn.send(b"GET http://bob/echo?close=1 HTTP/1.1\r\nHost: bob\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.header("x-path"), Some("/echo?close=1"));
    assert_eq!(
        conn.closed_by_peer(),
        Ok(true),
        "Connection: close is honoured"
    );
}

#[test]
fn methods_queries_and_target_forms_pass_through() {
    let mut net = Net::start(&[], &[]);
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let out = net.via("http://bob/echo?m=1", &["-X", method]);
        assert_ok(&out);
        assert_eq!(out.header("x-method"), Some(method));
    }
    // Percent-encoding and odd query bytes arrive exactly as sent.
    let out = net.via("http://bob/echo?x=%2F%20&y=a+b&z=%E2%82%AC", &[]);
    assert_ok(&out);
    assert_eq!(
        out.header("x-path"),
        Some("/echo?x=%2F%20&y=a+b&z=%E2%82%AC")
    );
    // A port in the target and upper case in the name do not matter.
    let out = net.via("http://BOB:8080/echo?port=1", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-path"), Some("/echo?port=1"));
    // An empty POST is a POST with an empty body.
    let out = net.via(
        "http://bob/echo",
        &["-X", "POST", "-H", "Content-Length: 0"],
    );
    assert_ok(&out);
    assert_eq!(
        (out.header("x-method"), out.header("x-body-len")),
        (Some("POST"), Some("0"))
    );
}

#[test]
fn repeated_and_empty_response_headers_survive() {
    let mut net = Net::start(&[], &[]);
    let mut conn = RawConn::connect(net.alice.listen_addr(), IO_TIMEOUT);
    conn.send(b"GET http://bob/cookies HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.all("set-cookie"),
        vec!["a=1; Path=/", "b=2; HttpOnly"],
        "both Set-Cookie fields, in order"
    );
    assert_eq!(r.header("x-empty"), Some(""));
}

#[test]
fn close_delimited_service_response_keeps_the_client_connection() {
    let mut net = Net::start(&[], &[]);
    let mut conn = RawConn::connect(net.alice.listen_addr(), IO_TIMEOUT);
    conn.send(b"GET http://bob/big-close?bytes=70000 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert!(r.body == pattern(70_000));
    // Protocol 2: a body of unknown length streams, and reaches the client chunked.
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // The service's `Connection: close` is about the service's hop, not the client's.
    conn.send(b"GET http://bob/echo?again=1 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn
        .try_response("GET")
        .expect("the client connection survives a close-delimited service response");
    assert_eq!(r.header("x-path"), Some("/echo?again=1"));
}

#[test]
fn a_pooled_connection_the_service_closed_is_not_a_failure() {
    let mut net = Net::start(&[], &[]);
    for n in 0..3 {
        let out = net.via("http://bob/close-after", &[]);
        assert_ok(&out);
        assert_eq!(out.body_text(), "done");
        // The service closed that connection after answering; the next request must not
        // fail because the pool handed out the dead one.
        let out = net.via(&format!("http://bob/echo?after-close={n}"), &[]);
        assert_ok(&out);
        assert_eq!(
            out.header("x-path"),
            Some(format!("/echo?after-close={n}").as_str())
        );
    }
}

#[test]
fn service_response_over_the_body_limit_is_502_and_the_agent_survives() {
    let mut net = Net::start(&["--max-body-bytes", "10000"], &[]);
    let out = net.via("http://bob/big?bytes=20000", &[]);
    assert_eq!(
        out.code,
        502,
        "{:?}",
        (out.code, &out.headers, out.body.len())
    );
    assert_egress_error(&out, 502, "service-error");
    let out = net.via("http://bob/big?bytes=10000", &[]);
    assert_ok(&out);
    assert!(out.body == pattern(10_000));
    still_works(&mut net);
}

#[test]
fn a_client_that_goes_away_does_not_hurt_the_agent() {
    let mut net = Net::start(&[], &[]);
    let addr = net.alice.listen_addr();
    // Half a head, then gone.
    let mut conn = RawConn::connect(addr, IO_TIMEOUT);
    conn.send(b"GET http://bob/echo HTTP/1.1\r\nHo").unwrap();
    drop(conn);
    // A whole request, then gone before the answer.
    let mut conn = RawConn::connect(addr, IO_TIMEOUT);
    conn.send(b"GET http://bob/slow?ms=300 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    drop(conn);
    net.service.wait_requests(1, IO_TIMEOUT);
    still_works(&mut net);
    // After the orphaned answer came back too.
    let out = net.via("http://bob/slow?ms=400", &[]);
    assert_ok(&out);
    still_works(&mut net);
}

#[test]
fn a_replaced_agent_gives_up_and_the_newcomer_serves() {
    let mut net = Net::start(&["--token", "t0ken"], &[]);
    let newcomer_service = Service::start();
    let _newcomer = Agent::serve(
        net.proxy.addr,
        "bob",
        &newcomer_service.url(),
        &["--token", "t0ken"],
    );
    let status = net
        ._bob
        .wait_exit(IO_TIMEOUT)
        .expect("the replaced agent stops instead of fighting for the name");
    assert!(!status.success(), "replaced is an error exit: {status:?}");
    let out = net.via("http://bob/echo?who=new", &[]);
    assert_ok(&out);
    assert_eq!(newcomer_service.last_request().target, "/echo?who=new");
    assert_eq!(net.service.requests().len(), 0);
}

#[test]
fn interim_1xx_responses_from_the_service_are_skipped() {
    let mut net = Net::start(&[], &[]);
    let out = net.via("http://bob/interim", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "final");
    let mut conn = RawConn::connect(net.alice.listen_addr(), IO_TIMEOUT);
    conn.send(b"GET http://bob/interim HTTP/1.1\r\nHost: bob\r\n\r\nGET http://bob/echo?next HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let r = conn.response("GET");
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"final"[..]));
    let r = conn.response("GET");
    assert_eq!(r.header("x-path"), Some("/echo?next"));
}

#[test]
fn content_length_with_chunked_is_not_misread() {
    let mut net = strict_net();
    let mut conn = RawConn::connect(net.alice.listen_addr(), Duration::from_secs(5));
    conn.send(
        b"POST http://bob/echo HTTP/1.1\r\nHost: bob\r\nContent-Length: 100\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .unwrap();
    // RFC 9112 §6.3: chunked wins (or the request is refused); never wait for 100 bytes.
    let r = conn
        .try_response("POST")
        .expect("an answer, not a wait for Content-Length bytes");
    assert!(
        r.status() == 400 || (r.status() == 200 && r.body == b"hello"),
        "{} {:?}",
        r.status(),
        String::from_utf8_lossy(&r.body)
    );
    still_works(&mut net);
}

#[test]
fn requests_without_a_usable_target_get_400() {
    let mut net = strict_net();
    // Origin-form with no Host: nowhere to send it.
    let (status, _, _) = raw_exchange(&mut net, b"GET /echo HTTP/1.1\r\n\r\n", "GET");
    assert_eq!(status, 400);
    // Not a virtual address.
    let (status, _, _) = raw_exchange(
        &mut net,
        b"GET /echo HTTP/1.1\r\nHost: not_an_address!\r\n\r\n",
        "GET",
    );
    assert_eq!(status, 400);
    still_works(&mut net);
}

#[test]
fn the_service_pool_respects_max_service_conns() {
    let mut net = Net::start(&["--max-service-conns", "2"], &[]);
    let ingress = net.ingress();
    let mut args = vec![
        "-sS",
        "--max-time",
        "30",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "10",
        "-x",
        &ingress,
        "-w",
        "%{http_code}\\n",
    ];
    let urls: Vec<String> = (0..10)
        .map(|i| format!("http://bob/slow?ms=200&i={i}"))
        .collect();
    for url in &urls {
        args.extend_from_slice(&["-o", "/dev/null", url]);
    }
    let (exit, stdout, stderr) = curl_raw(&args);
    assert_eq!(exit, 0, "{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| *l == "200").count(),
        10,
        "{stdout}"
    );
    assert_eq!(net.service.requests().len(), 10);
    assert!(
        net.service.connections() <= 2,
        "{} service connections with --max-service-conns 2",
        net.service.connections()
    );
}

#[test]
fn sigterm_closes_the_tunnel_and_frees_the_name() {
    let mut net = Net::start(&[], &[]);
    assert_ok(&net.via("http://bob/echo", &[]));
    let status = net
        ._bob
        .terminate(IO_TIMEOUT)
        .expect("the agent exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    // The close reached the proxy: the name is free at once, not after a ping timeout.
    let out = net.via("http://bob/echo", &[]);
    assert_error(&out, 404, "unknown-address");
    assert!(out.elapsed < FAST);
}

#[test]
fn bad_command_lines_are_refused() {
    let run = |args: &[&str]| {
        let mut agent = Agent::start_url("ws://127.0.0.1:1", args);
        agent
            .wait_exit(IO_TIMEOUT)
            .unwrap_or_else(|| panic!("the agent with {args:?} keeps running"))
    };
    assert!(!run(&[]).success(), "neither --listen nor --serve");
    assert!(!run(&["--serve", "ftp://127.0.0.1:1"]).success());
    assert!(!run(&["--listen", "127.0.0.1:0", "--name", "Not Valid!"]).success());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert!(
        !run(&["--listen", &addr]).success(),
        "--listen on a port in use"
    );
}

#[test]
fn service_response_over_the_message_limit_streams_and_the_agent_survives() {
    // Protocol 2: a response larger than one message streams instead of being refused.
    let mut net = Net::start(&["--max-message-bytes", "200000"], &[]);
    let out = net.via("http://bob/big-chunked?bytes=400000", &[]);
    assert_ok(&out);
    assert!(out.body == pattern(400_000));
    let out = net.via("http://bob/big?bytes=100000", &[]);
    assert_ok(&out);
    assert!(out.body == pattern(100_000));
    still_works(&mut net);
}

// ---------------------------------------------------------------------------------------
// Served requests whose streamed body is left unread (the client library as the target).
// ---------------------------------------------------------------------------------------

/// The largest body bob's handler takes whole (its tunnel's message limit less the head
/// allowance): anything longer it refuses `413` without reading it.
const HANDLER_BODY_BYTES: usize = 128 * 1024;

/// bob is the client library serving a handler of whole requests; an upload over what it
/// takes is refused `413` before it is read. The body it leaves unread must not reset the
/// exchange: the caller gets the handler's answer, not `502 target-gone`.
fn a_served_body_left_unread_does_not_lose_its_answer(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bob = runtime
        .block_on(
            httpws::endpoint::Endpoint::builder(&format!("ws://{}", proxy.addr))
                .name("bob")
                .configure(|c| c.max_message_bytes = HANDLER_BODY_BYTES + 64 * 1024)
                .connect(),
        )
        .expect("bob registers");
    let server = bob.clone();
    runtime.spawn(async move {
        server
            .serve(|req: http::Request<bytes::Bytes>| async move {
                http::Response::new(bytes::Bytes::from(format!("{} bytes", req.body().len())))
            })
            .await
    });
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let scratch = Scratch::new();
    let upload = scratch.write("upload", &pattern(4 * HANDLER_BODY_BYTES));
    let ingress = alice.ingress();
    let out = curl_via(
        &ingress,
        "http://bob/upload",
        &["--data-binary", &format!("@{upload}")],
    );
    assert_eq!(
        out.code, 413,
        "the handler's refusal did not reach the caller: exit {}, headers {:?}, {}",
        out.exit, out.headers, out.stderr
    );
    // A body it takes still arrives whole.
    let small = scratch.write("small", &pattern(HANDLER_BODY_BYTES / 2));
    let out = curl_via(
        &ingress,
        "http://bob/upload",
        &["--data-binary", &format!("@{small}")],
    );
    assert_ok(&out);
    assert_eq!(out.body_text(), format!("{} bytes", HANDLER_BODY_BYTES / 2));
    runtime.block_on(bob.close());
}

/// An endless response body that says when it is dropped.
struct Endless(std::sync::mpsc::Sender<()>);

impl http_body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        let piece = bytes::Bytes::from(vec![b'e'; 64 * 1024]);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// bob (the client library, `credit_timeout` of 1 s) answers after the proxy's
/// `--request-timeout` has answered the caller `504`: the proxy drops the late answer
/// quietly and will never grant it credit, so its body, streaming, must be given up (the
/// exchange reset `timeout`) rather than held for ever with whatever it holds (a service
/// connection, on the agent's `--serve` side).
fn a_late_streamed_answer_is_given_up_when_no_credit_comes(driver: Driver) {
    let proxy = Proxy::start(driver, &["--request-timeout", "1s"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bob = runtime
        .block_on(
            httpws::endpoint::Endpoint::builder(&format!("ws://{}", proxy.addr))
                .name("bob")
                .configure(|c| c.credit_timeout = Duration::from_secs(1))
                .connect(),
        )
        .expect("bob registers");
    let answer_now = std::sync::Arc::new(tokio::sync::Notify::new());
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    let service = {
        let answer_now = std::sync::Arc::clone(&answer_now);
        tower::service_fn(move |_: http::Request<httpws::endpoint::body::Body>| {
            let answer_now = std::sync::Arc::clone(&answer_now);
            let body = Endless(dropped_tx.clone());
            async move {
                answer_now.notified().await;
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            }
        })
    };
    let server = bob.clone();
    runtime.spawn(async move { server.serve(service).await });
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let out = curl_via(&alice.ingress(), "http://bob/late", &[]);
    assert_eq!(out.code, 504, "{:?} {}", out.headers, out.stderr);
    answer_now.notify_one();
    assert!(
        dropped.recv_timeout(IO_TIMEOUT).is_ok(),
        "the late answer's body is still held, waiting for credit that never comes"
    );
    runtime.block_on(bob.close());
}

on_both_drivers!(
    a_served_body_left_unread_does_not_lose_its_answer,
    a_late_streamed_answer_is_given_up_when_no_credit_comes,
);
