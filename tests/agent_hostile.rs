//! The endpoint agent's HTTP faces against hostile callers, local clients and services
//! (issue 12): the real proxy and agent binaries, the test service of `common::service` or a
//! service written byte by byte here, and independent clients (curl, raw TCP, tungstenite).
//!
//! Topology: proxy; agent `bob --serve SERVICE` (public where internet callers are tested);
//! agent `alice --listen`; a tungstenite endpoint where a caller must write the tunnel message
//! itself (`mallory`) or a target must write the response itself (`probe`). Each attack is
//! followed by a bystander's request that must still be served.

mod common;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::IO_TIMEOUT;
use common::agent::Agent;
use common::curl::{CurlOut, assert_ok, curl, curl_host, curl_via};
use common::driver::Driver;
use common::fake_proxy::FakeProxy;
use common::http1::{Head, MAX_HEAD, RawResponse, read_head};
use common::message::Http;
use common::ports::dead_port;
use common::proxy::Proxy;
use common::raw_conn::RawConn;
use common::scratch::Scratch;
use common::service::Service;
use common::ws::{Endpoint, connect};

/// A bound that a timed-out request must be answered within, well under [`IO_TIMEOUT`].
const PROMPT: Duration = Duration::from_secs(5);
/// How late the byte-by-byte services below write what they should not: long enough for
/// the agent to have finished the exchange before the bytes arrive.
const LATE: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Set-up.
// ---------------------------------------------------------------------------------------

struct Net {
    // Agents first: they go before the proxy when dropped.
    alice: Agent,
    _bob: Agent,
    proxy: Proxy,
}

impl Net {
    /// `bob --serve <service_url> <bob_extra…>` and `alice --listen <alice_extra…>`.
    fn start(driver: Driver, service_url: &str, bob_extra: &[&str], alice_extra: &[&str]) -> Net {
        let proxy = Proxy::start(driver, &[]);
        let bob = Agent::serve(proxy.addr, "bob", service_url, bob_extra);
        let alice = Agent::listen(proxy.addr, "alice", alice_extra);
        Net {
            alice,
            _bob: bob,
            proxy,
        }
    }

    /// `curl -x ALICE <extra…> <url>`.
    fn via(&mut self, url: &str, extra: &[&str]) -> CurlOut {
        let ingress = self.alice.ingress();
        curl_via(&ingress, url, extra)
    }

    /// `curl -H 'Host: bob' http://PROXY<path>`: bob called from the internet.
    fn public(&self, path: &str, extra: &[&str]) -> CurlOut {
        curl_host(self.proxy.addr, "bob", path, extra)
    }

    /// A raw connection to alice's ingress.
    fn raw(&mut self) -> RawConn {
        RawConn::connect(self.alice.listen_addr(), IO_TIMEOUT)
    }
}

/// The token of an answer bob's agent made. The proxy renames a target's own `Httpws-Error`
/// to `Httpws-Target-Error` on its way to the caller (a target cannot pass its answers off
/// as the proxy's), so the token comes as `Httpws-Target-Error`, and no `Httpws-Error`.
#[track_caller]
fn egress_token<'a>(error: Option<&'a str>, target_error: Option<&'a str>) -> &'a str {
    match (error, target_error) {
        (None, Some(token)) => token,
        other => panic!("expected Httpws-Target-Error alone, got {other:?}"),
    }
}

#[track_caller]
fn curl_token(out: &CurlOut) -> &str {
    egress_token(
        out.header("httpws-error"),
        out.header("httpws-target-error"),
    )
}

#[track_caller]
fn raw_token(r: &RawResponse) -> &str {
    egress_token(r.header("httpws-error"), r.header("httpws-target-error"))
}

#[track_caller]
fn http_token(r: &Http) -> &str {
    egress_token(r.header("httpws-error"), r.header("httpws-target-error"))
}

/// A service written byte by byte: each connection reads request heads (these tests send no
/// request bodies) and hands each to `answer`, which writes whatever it likes and says
/// whether to read another request on the connection.
struct RawService {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

type Answer = dyn Fn(usize, &Head, &mut TcpStream) -> io::Result<bool> + Send + Sync;

impl RawService {
    fn start(
        answer: impl Fn(usize, &Head, &mut TcpStream) -> io::Result<bool> + Send + Sync + 'static,
    ) -> RawService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw service");
        let addr = listener.local_addr().expect("raw service address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let answer: Arc<Answer> = Arc::new(answer);
        let (accept_stop, accept_count) = (stop.clone(), accepted.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let id = accept_count.fetch_add(1, Ordering::SeqCst) + 1;
                let answer = answer.clone();
                thread::spawn(move || serve_raw(stream, id, &*answer));
            }
        });
        RawService {
            addr,
            stop,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RawService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so that its thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve_raw(stream: TcpStream, id: usize, answer: &Answer) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Ok(Some(head)) = read_head(&mut reader, MAX_HEAD) {
        let Some(head) = Head::parse(&head) else {
            return;
        };
        if !matches!(answer(id, &head, &mut writer), Ok(true)) {
            return;
        }
    }
}

/// The request target of a head the raw service read.
fn target(head: &Head) -> String {
    head.request_line().map(|(_, t, _)| t).unwrap_or_default()
}

/// `200 OK` with `body`, keep-alive.
fn ok(out: &mut TcpStream, body: &str) -> io::Result<bool> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    Ok(true)
}

/// Read one request from a tungstenite endpoint and answer it with `response`, a status
/// line and headers to which the request's CSeq is added (then a blank line and `body`).
fn answer_with(probe: &mut Endpoint, response: &str, body: &str) -> Http {
    let request = probe.recv_http();
    let cseq = request.cseq();
    probe.send(&format!("{response}CSeq: {cseq}\r\n\r\n{body}"));
    request
}

// ---------------------------------------------------------------------------------------
// 1, 2: the proxy's stamp reaches the service exactly once; twins of what we set never do.
// ---------------------------------------------------------------------------------------

fn connection_cannot_remove_the_stamp_host_or_framing(driver: Driver) {
    let service = Service::start();
    let mut net = Net::start(driver, &service.url(), &[], &[]);
    let mut mallory = connect(&net.proxy, "/mallory");
    mallory.send(
        "POST /echo HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\
         Connection: Httpws-From, Host, CSeq, Content-Length, X-Hop\r\nX-Hop: 1\r\n\
         Content-Length: 2\r\n\r\nhi",
    );
    let answer = mallory.recv_http();
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("x-from"), Some("mallory"), "{answer:?}");
    let seen = service.last_request();
    assert_eq!(
        seen.all("httpws-from"),
        vec!["mallory"],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.all("host"), vec![service.authority().as_str()]);
    assert_eq!(seen.all("content-length"), vec!["2"]);
    assert_eq!(seen.body, b"hi");
    for gone in ["cseq", "connection", "x-hop"] {
        assert_eq!(seen.header(gone), None, "{gone}: {:?}", seen.headers);
    }
    let out = net.via("http://bob/echo?by=stander", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("alice"));
}

fn twins_of_stamped_headers_never_reach_the_service(driver: Driver) {
    let service = Service::start();
    let mut net = Net::start(driver, &service.url(), &["--public"], &[]);
    // From an endpoint, through the relay.
    let mut mallory = connect(&net.proxy, "/mallory");
    mallory.send(
        "GET /echo HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\nHttpws_From: admin\r\nHTTPWS_FROM: root\r\n\
         Httpws_Error: forbidden\r\nhttpws-target_error: x\r\nContent_Length: 99\r\n\
         X_Forwarded_For: 10.0.0.1\r\nx-forwarded_proto: https\r\nX-Keep: 1\r\n\r\n",
    );
    let answer = mallory.recv_http();
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("x-from"), Some("mallory"));
    let seen = service.last_request();
    assert_eq!(
        seen.all("httpws-from"),
        vec!["mallory"],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-keep"), Some("1"));
    assert!(
        seen.headers.iter().all(|(name, _)| !name.contains('_')),
        "a twin reached the service: {:?}",
        seen.headers
    );
    // From the internet, through the public ingress: the proxy's own X-Forwarded-* in their
    // exact spellings pass, once; their twins do not.
    let out = net.public(
        "/echo",
        &[
            "-H",
            "X_Forwarded_For: 10.0.0.1",
            "-H",
            "X_Forwarded_Host: evil",
            "-H",
            "Httpws_From: admin",
        ],
    );
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("-internet-"));
    let seen = service.last_request();
    assert_eq!(seen.all("httpws-from"), vec!["-internet-"]);
    assert_eq!(
        seen.all("x-forwarded-for"),
        vec!["127.0.0.1"],
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.all("x-forwarded-proto"), vec!["http"]);
    assert!(
        seen.headers.iter().all(|(name, _)| !name.contains('_')),
        "a twin reached the service: {:?}",
        seen.headers
    );
    let out = net.via("http://bob/echo?by=stander", &[]);
    assert_ok(&out);
    assert_eq!(out.header("x-from"), Some("alice"));
}

fn listen_keeps_twins_of_tunnel_headers_out_of_the_tunnel(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut probe = connect(&proxy, "/probe");
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let ingress = alice.ingress();
    let call = thread::spawn(move || {
        curl(&[
            "-x",
            &ingress,
            "-H",
            "Httpws_From: admin",
            "-H",
            "HTTPWS_FROM: root",
            "-H",
            "CSEQ: 9",
            "-H",
            "Httpws_Error: forbidden",
            "-H",
            "Content_Length: 5",
            "-H",
            "X-Keep: 1",
            "http://probe/twins",
        ])
    });
    let request = answer_with(&mut probe, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "ok");
    assert_eq!(request.all("httpws-from"), vec!["alice"], "{request:?}");
    assert_eq!(
        request.all("cseq").len(),
        1,
        "only the proxy's: {request:?}"
    );
    assert_eq!(request.header("x-keep"), Some("1"));
    assert!(
        request.headers.iter().all(|(name, _)| !name.contains('_')),
        "a twin entered the tunnel: {request:?}"
    );
    let out = call.join().expect("curl thread");
    assert_ok(&out);
    assert_eq!(out.body_text(), "ok");
}

// ---------------------------------------------------------------------------------------
// 9: --listen passes Httpws-Error and Httpws-Target-Error on, and no other Httpws-* line.
// ---------------------------------------------------------------------------------------

fn listen_passes_the_error_markers_and_nothing_else_of_the_family(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut probe = connect(&proxy, "/probe");
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let ingress = alice.ingress();
    let call = thread::spawn(move || curl(&["-x", &ingress, "http://probe/err"]));
    answer_with(
        &mut probe,
        "HTTP/1.1 503 Service Unavailable\r\n\
         Connection: Httpws-Error, Httpws-Target-Error\r\nHttpws-Error: service-error\r\n\
         Httpws_Error: forged\r\nHttpws-Other: 1\r\nhttpws_from: x\r\nContent-Length: 4\r\n",
        "busy",
    );
    let out = call.join().expect("curl thread");
    assert_eq!((out.exit, out.code), (0, 503), "{out:?}");
    assert_eq!(curl_token(&out), "service-error", "{out:?}");
    assert_eq!(out.body_text(), "busy");
    for gone in ["httpws_error", "httpws-other", "httpws_from", "cseq"] {
        assert_eq!(out.header(gone), None, "{gone}: {:?}", out.headers);
    }
    // The proxy's own answers keep theirs.
    let out = curl(&["-x", &alice.ingress(), "http://nobody/"]);
    assert_eq!(
        (out.code, out.header("httpws-error")),
        (404, Some("unknown-address"))
    );
}

// ---------------------------------------------------------------------------------------
// 3: the pool never hands one caller's bytes to another.
// ---------------------------------------------------------------------------------------

/// A service that writes past its answers: a body (itself a whole response) to a `HEAD`,
/// late; a second response after the first, late; a second response in the same write.
/// Everything else is `200 conn-<connection> <target>`. `written` hears of each late write
/// once it is on the wire.
fn overeager_service(written: mpsc::Sender<()>) -> RawService {
    const SECRET: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET";
    let written = std::sync::Mutex::new(written);
    RawService::start(move |id, head, out| {
        let target = target(head);
        let method = head.request_line().map(|(m, _, _)| m).unwrap_or_default();
        let signal = || {
            let _ = written.lock().unwrap().send(());
        };
        match target.as_str() {
            "/head-body" if method == "HEAD" => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    SECRET.len()
                )?;
                thread::sleep(LATE);
                let _ = out.write_all(SECRET.as_bytes());
                signal();
                Ok(true)
            }
            "/late-second" => {
                ok(out, "first")?;
                thread::sleep(LATE);
                let _ = out.write_all(SECRET.as_bytes());
                signal();
                Ok(true)
            }
            "/same-write" => {
                out.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok{SECRET}").as_bytes(),
                )?;
                Ok(true)
            }
            other => ok(out, &format!("conn-{id} {other}")),
        }
    })
}

fn bytes_past_an_answer_never_reach_the_next_caller(driver: Driver) {
    let (written, late) = mpsc::channel();
    let service = overeager_service(written);
    let mut net = Net::start(driver, &service.url(), &[], &[]);

    // Clean exchanges do share a connection: the pool still pools.
    let first = net.via("http://bob/a", &[]);
    let second = net.via("http://bob/b", &[]);
    assert_ok(&first);
    assert_ok(&second);
    let conn = first
        .body_text()
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        second.body_text(),
        format!("{conn} /b"),
        "not reused: {first:?}"
    );

    let out = net.via("http://bob/head-body", &["-I"]);
    assert_ok(&out);
    late.recv_timeout(IO_TIMEOUT)
        .expect("the late body was written");
    let out = net.via("http://bob/after-head", &[]);
    assert_ok(&out);
    assert!(
        out.body_text().ends_with(" /after-head"),
        "{:?}",
        out.body_text()
    );

    let out = net.via("http://bob/late-second", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "first");
    late.recv_timeout(IO_TIMEOUT)
        .expect("the late response was written");
    let out = net.via("http://bob/after-late", &[]);
    assert_ok(&out);
    assert!(
        out.body_text().ends_with(" /after-late"),
        "{:?}",
        out.body_text()
    );

    let out = net.via("http://bob/same-write", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "ok");
    let out = net.via("http://bob/after-same", &[]);
    assert_ok(&out);
    assert!(
        out.body_text().ends_with(" /after-same"),
        "{:?}",
        out.body_text()
    );
    assert!(
        service.connections() >= 4,
        "each tainted connection was dropped"
    );
}

// ---------------------------------------------------------------------------------------
// 4: interim 1xx answers.
// ---------------------------------------------------------------------------------------

fn an_interim_answer_from_the_tunnel_is_502_bad_response(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let mut probe = connect(&proxy, "/probe");
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let mut conn = RawConn::connect(alice.listen_addr(), IO_TIMEOUT);
    for interim in [
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n",
        "HTTP/1.1 100 Continue\r\n",
    ] {
        conn.send(b"GET http://probe/hints HTTP/1.1\r\nHost: probe\r\n\r\n")
            .unwrap();
        answer_with(&mut probe, interim, "");
        // A client reading an interim answer waits for the final one: it must get one.
        let r = conn
            .try_response("GET")
            .unwrap_or_else(|e| panic!("no final answer after {interim:?}: {e}"));
        assert_eq!(r.status(), 502, "{r:?}");
        assert_eq!(r.header("httpws-error"), Some("bad-response"));
    }
    // The same client connection is still in step.
    conn.send(b"GET http://probe/next HTTP/1.1\r\nHost: probe\r\n\r\n")
        .unwrap();
    answer_with(
        &mut probe,
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n",
        "next",
    );
    let r = conn.response("GET");
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"next"[..]));
}

fn interim_answers_from_the_service_are_skipped_and_bounded(driver: Driver) {
    let service = RawService::start(|_, head, out| {
        let target = target(head);
        let n: usize = target
            .strip_prefix("/interim/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for i in 0..n {
            let status = if i == 0 {
                "100 Continue"
            } else {
                "103 Early Hints"
            };
            write!(out, "HTTP/1.1 {status}\r\nLink: </{i}>\r\n\r\n")?;
        }
        ok(out, &format!("final after {n}"))
    });
    let mut net = Net::start(driver, &service.url(), &[], &[]);
    let out = net.via("http://bob/interim/5", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "final after 5");
    let out = net.via("http://bob/interim/100", &[]);
    assert_eq!(out.code, 502, "{out:?}");
    assert_eq!(curl_token(&out), "service-error");
    let out = net.via("http://bob/interim/0", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "final after 0");
}

// ---------------------------------------------------------------------------------------
// 5: Transfer-Encoding other than chunked alone.
// ---------------------------------------------------------------------------------------

fn listen_refuses_codings_but_chunked_with_501(driver: Driver) {
    let service = Service::start();
    let mut net = Net::start(driver, &service.url(), &[], &[]);
    for coding in ["gzip, chunked", "gzip", "chunked, gzip", "identity"] {
        let mut conn = net.raw();
        let _ = conn.send(
            format!(
                "POST http://bob/echo HTTP/1.1\r\nHost: bob\r\nTransfer-Encoding: {coding}\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = conn
            .try_response("POST")
            .unwrap_or_else(|e| panic!("no answer to {coding:?}: {e}"));
        assert_eq!(r.status(), 501, "{coding:?}: {r:?}");
        assert_eq!(conn.closed_by_peer(), Ok(true), "{coding:?}");
    }
    assert!(service.requests().is_empty(), "a coded body was relayed");
    let out = net.via(
        "http://bob/echo",
        &["-H", "Transfer-Encoding: chunked", "--data-binary", "hello"],
    );
    assert_ok(&out);
    assert_eq!(out.body_text(), "hello");
}

fn serve_refuses_service_codings_but_chunked_with_502(driver: Driver) {
    let service = RawService::start(|_, head, out| match target(head).as_str() {
        "/gzip" => {
            out.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nGZIPPED",
            )?;
            Ok(false)
        }
        "/gzip-chunked" => {
            out.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n7\r\nGZIPPED\r\n0\r\n\r\n",
            )?;
            Ok(true)
        }
        other => ok(out, other),
    });
    let mut net = Net::start(driver, &service.url(), &[], &[]);
    for path in ["/gzip", "/gzip-chunked"] {
        let out = net.via(&format!("http://bob{path}"), &[]);
        assert_eq!(out.code, 502, "{path}: {out:?}");
        assert_eq!(curl_token(&out), "service-error", "{path}");
        assert!(!out.body_text().contains("GZIPPED"), "{path}: {out:?}");
    }
    let out = net.via("http://bob/plain", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "/plain");
}

// ---------------------------------------------------------------------------------------
// 6: stalls and trickles.
// ---------------------------------------------------------------------------------------

/// alice with one client slot and a 1 s client timeout.
fn one_slot_net(driver: Driver, service: &Service) -> Net {
    Net::start(
        driver,
        &service.url(),
        &[],
        &["--max-clients", "1", "--client-timeout", "1s"],
    )
}

/// A bystander's call through alice's one slot, started now (it waits in the backlog).
fn bystander(net: &mut Net) -> thread::JoinHandle<CurlOut> {
    let ingress = net.alice.ingress();
    thread::spawn(move || curl(&["-x", &ingress, "http://bob/echo?by=stander"]))
}

#[track_caller]
fn assert_bystander_served(call: thread::JoinHandle<CurlOut>) {
    let out = call.join().expect("bystander thread");
    assert_ok(&out);
    assert_eq!(out.header("x-path"), Some("/echo?by=stander"));
}

fn a_stalled_request_body_gets_408_and_frees_its_slot(driver: Driver) {
    let service = Service::start();
    let mut net = one_slot_net(driver, &service);
    let mut stalled = net.raw();
    stalled
        .send(b"POST http://bob/echo HTTP/1.1\r\nHost: bob\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let started = Instant::now();
    let call = bystander(&mut net);
    let r = stalled.response("POST");
    assert_eq!(r.status(), 408, "{r:?}");
    assert!(
        started.elapsed() < PROMPT,
        "408 after {:?}",
        started.elapsed()
    );
    assert_eq!(stalled.closed_by_peer(), Ok(true));
    assert_bystander_served(call);
    assert!(service.requests().iter().all(|r| r.target != "/echo"));
}

fn a_trickled_head_gets_408(driver: Driver) {
    let service = Service::start();
    let mut net = one_slot_net(driver, &service);
    let mut conn = net.raw();
    let mut writer = conn.stream.try_clone().expect("clone");
    // One byte per 50 ms: each read succeeds, the head never ends within the deadline.
    let trickle = thread::spawn(move || {
        let head = b"GET http://bob/echo HTTP/1.1\r\nHost: bob\r\nX-Slow: ";
        for &b in head.iter().chain([b'a'; 200].iter()) {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(LATE);
        }
    });
    let started = Instant::now();
    let call = bystander(&mut net);
    let r = conn.response("GET");
    assert_eq!(r.status(), 408, "{r:?}");
    assert!(
        started.elapsed() < PROMPT,
        "408 after {:?}",
        started.elapsed()
    );
    assert_bystander_served(call);
    trickle.join().expect("trickle thread");
}

fn a_client_that_never_reads_its_answer_frees_its_slot(driver: Driver) {
    let service = Service::start();
    let mut net = one_slot_net(driver, &service);
    // A small receive window, and nothing read: the 10 MB answer cannot be written.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect_timeout(&net.alice.listen_addr().into(), IO_TIMEOUT)
        .expect("connect");
    let mut lazy: TcpStream = socket.into();
    lazy.write_all(b"GET http://bob/big?bytes=10000000 HTTP/1.1\r\nHost: bob\r\n\r\n")
        .unwrap();
    let call = bystander(&mut net);
    assert_bystander_served(call);
    drop(lazy);
}

fn a_stalled_service_body_gets_504(driver: Driver) {
    let service = RawService::start(|_, head, out| match target(head).as_str() {
        "/stall" => {
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")?;
            // Hold the connection open until the agent gives up on it.
            let mut rest = Vec::new();
            let _ = io::Read::read_to_end(out, &mut rest);
            Ok(false)
        }
        other => ok(out, other),
    });
    let mut net = Net::start(driver, &service.url(), &["--service-timeout", "1s"], &[]);
    let out = net.via("http://bob/stall", &[]);
    assert_eq!(out.code, 504, "{out:?}");
    assert_eq!(curl_token(&out), "timeout");
    assert!(out.elapsed < PROMPT, "{out:?}");
    assert!(!out.body_text().contains("only ten"), "{out:?}");
    let out = net.via("http://bob/next", &[]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "/next");
}

// ---------------------------------------------------------------------------------------
// 7: --serve http://host/base keeps callers under /base.
// ---------------------------------------------------------------------------------------

/// Targets with dot segments, and where the service must see them.
const CONFINED: [(&str, &str); 6] = [
    ("/../admin", "/base/admin"),
    ("/a/../../admin?x=/../", "/base/admin?x=/../"),
    ("/%2e%2e/admin", "/base/admin"),
    ("/%2E./admin", "/base/admin"),
    ("/.%2e/x/./y", "/base/x/y"),
    ("/..", "/base/"),
];

/// Targets that hide a dot segment from us but perhaps not from the service.
const REFUSED: [&str; 5] = [
    "/..%2fadmin",
    "/..%5Cadmin",
    "/..\\admin",
    "/..;/admin",
    "/x/%2e%2e%2f%2e%2e%2fadmin",
];

fn serve_base_path_confines_relay_and_public_callers(driver: Driver) {
    let service = Service::start();
    let url = format!("{}/base", service.url());
    let mut net = Net::start(driver, &url, &["--public"], &[]);
    let proxy = net.proxy.addr;
    for (path, want) in CONFINED {
        // Through alice (proxy-style, as an HTTP client sends it) and the relay.
        let mut conn = net.raw();
        conn.send(format!("GET http://bob{path} HTTP/1.1\r\nHost: bob\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(
            conn.response("GET").status(),
            404,
            "{path}: the service's own 404"
        );
        assert_eq!(service.last_request().target, want, "{path} via the relay");
        // From the internet.
        let mut conn = RawConn::connect(proxy, IO_TIMEOUT);
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: bob\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(conn.response("GET").status(), 404, "{path}");
        assert_eq!(
            service.last_request().target,
            want,
            "{path} via the public ingress"
        );
    }
    // curl, told not to squash the dots itself (the service answers 404 under /base).
    let out = net.via("http://bob/x/../../../echo", &["--path-as-is"]);
    assert_eq!((out.exit, out.code), (0, 404), "{out:?}");
    assert_eq!(service.last_request().target, "/base/echo");
    let out = net.public("/%2e%2e/%2e%2e/echo?q", &["--path-as-is"]);
    assert_eq!((out.exit, out.code), (0, 404), "{out:?}");
    assert_eq!(service.last_request().target, "/base/echo?q");

    let served = service.requests().len();
    for path in REFUSED {
        let mut conn = net.raw();
        conn.send(format!("GET http://bob{path} HTTP/1.1\r\nHost: bob\r\n\r\n").as_bytes())
            .unwrap();
        let r = conn.response("GET");
        assert_eq!((r.status(), raw_token(&r)), (400, "bad-request"), "{path}");
        let mut conn = RawConn::connect(proxy, IO_TIMEOUT);
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: bob\r\n\r\n").as_bytes())
            .unwrap();
        let r = conn.response("GET");
        assert_eq!((r.status(), raw_token(&r)), (400, "bad-request"), "{path}");
    }
    assert_eq!(
        service.requests().len(),
        served,
        "a refused path reached the service"
    );

    // Forms only an endpoint can send: absolute-form with dots, `*`, authority-form.
    let mut mallory = connect(&net.proxy, "/mallory");
    mallory.send("GET http://bob/../echo HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n");
    let r = mallory.recv_http();
    assert_eq!(r.status(), 404, "{r:?}");
    assert_eq!(service.last_request().target, "/base/echo");
    for (cseq, line) in [(2, "OPTIONS *"), (3, "GET bob:80")] {
        mallory.send(&format!(
            "{line} HTTP/1.1\r\nHost: bob\r\nCSeq: {cseq}\r\n\r\n"
        ));
        let r = mallory.recv_http();
        assert_eq!(
            (r.status(), http_token(&r)),
            (400, "bad-request"),
            "{line}: {r:?}"
        );
    }
    assert_eq!(service.requests().len(), served + 1);
}

// ---------------------------------------------------------------------------------------
// 8: answers that reach callers name nothing internal; the log does.
// ---------------------------------------------------------------------------------------

/// `httpws endpoint --name bob --serve URL --public <extra…>` with its warnings logged to a
/// file, started and registered.
struct LoggedBob {
    child: Child,
    scratch: Scratch,
}

impl LoggedBob {
    fn start(proxy: SocketAddr, service_url: &str, extra: &[&str]) -> LoggedBob {
        let scratch = Scratch::new();
        let log = std::fs::File::create(scratch.path("log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_httpws"))
            .args(["endpoint", "--proxy", &format!("ws://{proxy}")])
            .args(["--name", "bob", "--public", "--serve", service_url])
            .args(extra)
            .env("HTTPWS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn httpws endpoint");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("httpws endpoint registered as bob") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(IO_TIMEOUT).expect("bob registered");
        LoggedBob { child, scratch }
    }

    /// The log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path("log")).unwrap_or_default()
    }
}

impl Drop for LoggedBob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a caller must never learn about bob's side: the service's address and port, OS
/// error text.
#[track_caller]
fn assert_neutral(what: &str, text: &str, service: SocketAddr) {
    for secret in [
        service.to_string(),
        service.port().to_string(),
        "127.0.0.1".to_string(),
        "os error".to_string(),
        "refused".to_string(),
        "reset".to_string(),
    ] {
        assert!(
            !text.contains(&secret),
            "{what} reveals {secret:?}: {text:?}"
        );
    }
}

fn egress_errors_tell_callers_a_token_and_a_neutral_reason(driver: Driver) {
    // A service that is not there.
    let proxy = Proxy::start(driver, &[]);
    let nowhere = dead_port();
    let bob = LoggedBob::start(proxy.addr, &format!("http://{nowhere}"), &[]);
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let ingress = alice.ingress();
    for out in [
        curl(&["-x", &ingress, "http://bob/x"]),
        curl(&["-H", "Host: bob", &format!("http://{}/x", proxy.addr)]),
    ] {
        assert_eq!(out.code, 502, "{out:?}");
        assert_eq!(curl_token(&out), "service-unavailable");
        assert_eq!(out.body_text(), "the service is unavailable\n");
        assert_neutral("the answer", &format!("{:?}", out.headers), nowhere);
    }
    let log = bob.log();
    let naming = log
        .lines()
        .filter(|l| l.contains(&nowhere.to_string()))
        .count();
    assert_eq!(
        naming, 2,
        "one log line per failure names the service:\n{log}"
    );
    drop(bob);

    // A service that resets, one that answers garbage, one too slow, and a refused path.
    let service =
        RawService::start(
            |_, head, out| match target(head).trim_start_matches("/base") {
                "/reset" => {
                    let _ = socket2::SockRef::from(&*out).set_linger(Some(Duration::ZERO));
                    Ok(false)
                }
                "/garbage" => {
                    out.write_all(b"NOT HTTP AT ALL\r\n\r\n")?;
                    Ok(false)
                }
                "/slow" => {
                    thread::sleep(Duration::from_secs(2));
                    ok(out, "late")
                }
                _ => ok(out, &target(head)),
            },
        );
    let bob = LoggedBob::start(
        proxy.addr,
        &format!("{}/base", service.url()),
        &["--service-timeout", "500ms"],
    );
    for (path, status, token) in [
        ("/reset", 502, "service-error"),
        ("/garbage", 502, "service-error"),
        ("/slow", 504, "timeout"),
        ("/..%2f", 400, "bad-request"),
    ] {
        for out in [
            curl(&["-x", &ingress, &format!("http://bob{path}")]),
            curl(&["-H", "Host: bob", &format!("http://{}{path}", proxy.addr)]),
        ] {
            assert_eq!(out.code, status, "{path}: {out:?}");
            assert_eq!(curl_token(&out), token, "{path}: {out:?}");
            assert_neutral(path, &out.body_text(), service.addr);
            assert!(
                !out.body_text().contains("/base"),
                "{path}: {:?}",
                out.body_text()
            );
        }
    }
    assert!(
        bob.log().contains(&service.addr.to_string()),
        "{}",
        bob.log()
    );
    let out = curl(&["-x", &ingress, "http://bob/fine"]);
    assert_ok(&out);
    assert_eq!(out.body_text(), "/base/fine");
}

// ---------------------------------------------------------------------------------------
// 10: a --listen address in use.
// ---------------------------------------------------------------------------------------

#[test]
fn listen_on_an_address_in_use_names_it_and_exits() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args([
            "endpoint",
            "--proxy",
            "ws://127.0.0.1:1",
            "--listen",
            &addr.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn httpws endpoint");
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the agent keeps running with --listen {addr} taken");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "{status:?}");
    assert!(
        stderr.contains(&format!("--listen {addr} is in use")),
        "{stderr:?}"
    );
    for noise in ["Some(", "os error"] {
        assert!(!stderr.contains(noise), "{noise}: {stderr:?}");
    }
    drop(taken);
}

// ---------------------------------------------------------------------------------------
// 11: a hostile proxy (played by the test: tests/common/fake_proxy.rs).
// ---------------------------------------------------------------------------------------

/// Ping frames written in one go by the flooding proxy.
const PINGS_PER_BATCH: usize = 512;
/// What the flooding proxy writes at most before the test calls the agent defenceless: far
/// more than the agent may owe it (64 Ki control frames waiting) plus every socket buffer.
const FLOOD_LIMIT_BYTES: usize = 256 << 20;

/// A proxy that sends pings without end and reads nothing: the pongs the agent owes it can
/// never leave, and must not pile up in the agent without bound. The agent gives that tunnel
/// up (the proxy's writes fail) and connects again.
#[test]
fn a_proxy_that_never_reads_cannot_pile_pongs_up_in_the_agent() {
    let fake = FakeProxy::bind();
    let _bob = Agent::start_url(&fake.url(), &["--name", "bob", "--listen", "127.0.0.1:0"]);
    let mut tunnel = fake.accept("bob");
    // Unmasked server ping frames with the largest control payload (125 bytes).
    let mut batch = Vec::with_capacity(PINGS_PER_BATCH * 127);
    for _ in 0..PINGS_PER_BATCH {
        batch.extend_from_slice(&[0x89, 125]);
        batch.extend_from_slice(&[b'p'; 125]);
    }
    let socket = tunnel.socket();
    let mut sent = 0usize;
    while sent < FLOOD_LIMIT_BYTES {
        match socket.write_all(&batch) {
            Ok(()) => sent += batch.len(),
            Err(e) => match e.kind() {
                io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted => break,
                _ => panic!("writing pings to the agent after {sent} bytes: {e}"),
            },
        }
    }
    assert!(
        sent < FLOOD_LIMIT_BYTES,
        "the agent took {sent} bytes of pings from a proxy that reads nothing, and kept the tunnel"
    );
    // It comes back on a tunnel of its own.
    let _again = fake.accept("bob");
}

on_both_drivers!(
    connection_cannot_remove_the_stamp_host_or_framing,
    twins_of_stamped_headers_never_reach_the_service,
    listen_keeps_twins_of_tunnel_headers_out_of_the_tunnel,
    listen_passes_the_error_markers_and_nothing_else_of_the_family,
    bytes_past_an_answer_never_reach_the_next_caller,
    an_interim_answer_from_the_tunnel_is_502_bad_response,
    interim_answers_from_the_service_are_skipped_and_bounded,
    listen_refuses_codings_but_chunked_with_501,
    serve_refuses_service_codings_but_chunked_with_502,
    a_stalled_request_body_gets_408_and_frees_its_slot,
    a_trickled_head_gets_408,
    a_client_that_never_reads_its_answer_frees_its_slot,
    a_stalled_service_body_gets_504,
    serve_base_path_confines_relay_and_public_callers,
    egress_errors_tell_callers_a_token_and_a_neutral_reason,
);
