//! `wss://`: the proxy with `--tls-cert/--tls-key`, checked by an independent client
//! (tungstenite over rustls), the agent and the client library with `--ca`, a wrong CA, a
//! plain client on the TLS port, and a certificate renewed with SIGHUP. Certificates are made
//! in the test with rcgen (`common::certs`): a CA, and a leaf for `localhost` and 127.0.0.1
//! signed by it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::IO_TIMEOUT;
use common::agent::Agent;
use common::certs::Certs;
use common::curl::curl;
use common::driver::Driver;
use common::proxy::Proxy;
use common::scratch::Scratch;
use common::service::{Service, pattern};
use common::ws::recv_text;
use rustls::pki_types::ServerName;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// `httpws endpoint --proxy wss://localhost:PORT --name NAME --ca CA <extra…>`.
fn wss_agent(proxy: &Proxy, name: &str, ca: &str, extra: &[&str]) -> Agent {
    let url = format!("wss://localhost:{}", proxy.addr.port());
    let mut args = vec!["--name", name, "--ca", ca];
    args.extend_from_slice(extra);
    Agent::start_url(&url, &args)
}

fn tls_proxy(driver: Driver, certs: &Certs) -> Proxy {
    Proxy::start(
        driver,
        &["--tls-cert", &certs.cert(), "--tls-key", &certs.key()],
    )
}

type TlsSocket = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// TLS to the proxy with rustls, checked against `config`'s roots for "localhost".
fn tls_connect(
    proxy: &Proxy,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsSocket, std::io::Error> {
    let tcp = TcpStream::connect(proxy.addr)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Drive the handshake now, so that a bad certificate shows up here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Register `name` over wss:// with tungstenite (an independent WebSocket client) on rustls.
fn wss_endpoint(proxy: &Proxy, certs: &Certs, name: &str) -> WebSocket<TlsSocket> {
    let tls = tls_connect(proxy, certs.client_config()).expect("TLS handshake");
    let request = format!("wss://localhost:{}/{name}", proxy.addr.port())
        .into_client_request()
        .expect("request");
    let (mut ws, response) = tungstenite::client(request, tls).expect("WebSocket handshake");
    assert_eq!(response.status().as_u16(), 101);
    assert_eq!(recv_text(&mut ws), format!(":host {name}"));
    ws
}

/// One request from `caller` to `target` with a body spanning several TLS records, answered
/// by `target` with the body reversed.
fn exchange(caller: &mut WebSocket<TlsSocket>, target: &mut WebSocket<TlsSocket>, to: &str) {
    let body: String = (0..70_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    caller
        .send(Message::text(format!(
            "POST /x HTTP/1.1\r\nHost: {to}\r\nCSeq: 7\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )))
        .expect("send request");
    let request = recv_text(target);
    assert!(request.ends_with(&body), "the body arrives whole");
    let cseq = request
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .expect("CSeq")
        .to_owned();
    let reversed: String = body.chars().rev().collect();
    target
        .send(Message::text(format!(
            "HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {}\r\n\r\n{reversed}",
            reversed.len()
        )))
        .expect("send response");
    let response = recv_text(caller);
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        &response[..40]
    );
    assert!(response.contains("CSeq: 7\r\n"));
    assert!(response.ends_with(&reversed));
}

fn independent_client_over_wss(driver: Driver) {
    let certs = Certs::new("a");
    let proxy = tls_proxy(driver, &certs);
    // Several names, so that with two shards some registrations move to the other shard
    // together with their TLS session.
    let mut endpoints: Vec<(String, WebSocket<TlsSocket>)> = (0..6)
        .map(|i| {
            let name = format!("tls-{i}");
            let ws = wss_endpoint(&proxy, &certs, &name);
            (name, ws)
        })
        .collect();
    for i in 0..endpoints.len() {
        let j = (i + 1) % endpoints.len();
        let (left, right) = endpoints.split_at_mut(i.max(j));
        let (caller, target) = if i < j {
            (&mut left[i], &mut right[0])
        } else {
            (&mut right[0], &mut left[j])
        };
        let to = target.0.clone();
        exchange(&mut caller.1, &mut target.1, &to);
    }
}

fn plain_client_on_the_tls_port_is_told_to_use_tls(driver: Driver) {
    let certs = Certs::new("a");
    let proxy = tls_proxy(driver, &certs);
    // A plaintext handshake (a ws:// URL pointed at the wss:// port) gets a plain-HTTP 400
    // that says what to do, as nginx answers plain HTTP on its HTTPS port.
    let mut plain = TcpStream::connect(proxy.addr).expect("connect");
    plain.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    plain
        .write_all(
            b"GET /bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    assert!(
        answer.ends_with("\r\n\r\nthis port speaks TLS: use wss:// (or https://)\n"),
        "{answer:?}"
    );
    // Bytes that are neither TLS nor HTTP get no answer at all.
    let mut junk = TcpStream::connect(proxy.addr).expect("connect");
    junk.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    junk.write_all(b"\x00\x01\x02junk\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = junk.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
    // TLS clients are unaffected, and the name was not taken by the plaintext attempt.
    let mut a = wss_endpoint(&proxy, &certs, "alice");
    let mut b = wss_endpoint(&proxy, &certs, "bob");
    exchange(&mut a, &mut b, "bob");
}

fn untrusted_certificate_is_refused_by_the_client(driver: Driver) {
    let certs = Certs::new("a");
    let other = Certs::new("b");
    let proxy = tls_proxy(driver, &certs);
    let Err(err) = tls_connect(&proxy, other.client_config()) else {
        panic!("a certificate from an unknown CA must fail the handshake");
    };
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "error names the certificate: {err}"
    );
    // The agent with the wrong --ca never registers, and says why.
    let service = Service::start();
    let serve = service.url();
    let mut agent = wss_agent(
        &proxy,
        "bob",
        &other.ca(),
        &["--serve", &serve, "--reconnect-max", "200ms"],
    );
    assert_eq!(agent.try_registered(Duration::from_secs(2)), None);
    assert!(agent.running(), "a TLS failure is retried, not fatal");
    // ...and bob is still free for the agent with the right CA.
    drop(agent);
    let mut good = wss_agent(&proxy, "bob", &certs.ca(), &["--serve", &serve]);
    assert_eq!(good.wait_registered(IO_TIMEOUT), "bob");
}

fn agents_over_wss(driver: Driver) {
    let certs = Certs::new("a");
    let proxy = tls_proxy(driver, &certs);
    let service = Service::start();
    let mut bob = wss_agent(&proxy, "bob", &certs.ca(), &["--serve", &service.url()]);
    assert_eq!(bob.wait_registered(IO_TIMEOUT), "bob");
    let mut alice = wss_agent(&proxy, "alice", &certs.ca(), &["--listen", "127.0.0.1:0"]);
    let ingress = alice.ingress();
    assert_eq!(alice.wait_registered(IO_TIMEOUT), "alice");
    let scratch = Scratch::new();
    let upload = scratch.write("up", &pattern(4 * 1024 * 1024 + 123));
    let out = curl(&[
        "-x",
        &ingress,
        "--data-binary",
        &format!("@{upload}"),
        "http://bob/echo",
    ]);
    assert_eq!(out.code, 200, "{}", out.stderr);
    assert_eq!(out.body, pattern(4 * 1024 * 1024 + 123));
    assert_eq!(service.last_request().header("httpws-from"), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_library_over_wss() {
    let certs = Certs::new("a");
    let proxy = tls_proxy(Driver::Uring, &certs);
    let url = format!("wss://localhost:{}", proxy.addr.port());
    let limit = Duration::from_secs(10);
    let bob = tokio::time::timeout(
        limit,
        httpws::endpoint::Endpoint::builder(&url)
            .name("bob")
            .ca_file(certs.ca())
            .connect(),
    )
    .await
    .expect("in time")
    .expect("bob registers over wss");
    let server = bob.clone();
    tokio::spawn(async move {
        server
            .serve(|req: http::Request<Bytes>| async move {
                http::Response::new(Bytes::from(format!("hello {}", req.uri().path())))
            })
            .await
    });
    let alice = httpws::endpoint::Endpoint::builder(&url)
        .name("alice")
        .tls_config(certs.client_config())
        .connect()
        .await
        .expect("alice registers with her own rustls config");
    let request = http::Request::get("http://bob/tls")
        .body(Bytes::new())
        .expect("request");
    let response = tokio::time::timeout(limit, alice.request_whole(request))
        .await
        .expect("in time")
        .expect("a response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"hello /tls");

    // A wrong CA: the library keeps retrying (the certificate may be fixed), so connect
    // reports that no registration came in time rather than a fatal refusal.
    let other = Certs::new("b");
    let refused = httpws::endpoint::Endpoint::builder(&url)
        .name("carol")
        .ca_file(other.ca())
        .connect_within(Duration::from_millis(1500))
        .await;
    assert!(
        matches!(
            refused,
            Err(httpws::endpoint::client::ConnectError::Timeout(_))
        ),
        "{:?}",
        refused.err()
    );
    // A CA file that is not PEM is refused up front.
    let scratch = Scratch::new();
    let junk = scratch.write("junk.pem", b"not a certificate");
    let err = httpws::endpoint::Endpoint::builder(&url)
        .ca_file(&junk)
        .connect()
        .await
        .err()
        .expect("junk CA file");
    assert!(err.to_string().contains("junk.pem"), "{err}");
}

#[test]
fn sighup_reloads_the_certificate() {
    let old = Certs::new("old");
    let mut proxy = tls_proxy(Driver::Uring, &old);
    let mut before = wss_endpoint(&proxy, &old, "before");
    let mut peer = wss_endpoint(&proxy, &old, "peer");
    // Renew: a certificate from another CA written over the same files.
    let new = Certs::new("new");
    std::fs::copy(new.cert(), old.cert()).expect("copy cert");
    std::fs::copy(new.key(), old.key()).expect("copy key");
    // SAFETY: kill(2) on the proxy child's own PID.
    assert_eq!(unsafe { libc::kill(proxy.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + IO_TIMEOUT;
    while tls_connect(&proxy, new.client_config()).is_err() {
        assert!(Instant::now() < deadline, "new certificate not served");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        tls_connect(&proxy, old.client_config()).is_err(),
        "the old certificate is no longer served"
    );
    // Connections made under the old certificate carry on.
    exchange(&mut before, &mut peer, "peer");
    let mut after = wss_endpoint(&proxy, &new, "after");
    exchange(&mut after, &mut before, "before");
    // A broken renewal keeps the working certificate.
    std::fs::write(old.cert(), b"garbage").expect("write");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(proxy.pid() as i32, libc::SIGHUP) }, 0);
    let _ = wss_endpoint(&proxy, &new, "still-works");
    assert!(proxy.terminate().success());
}

#[test]
fn tls_flags_are_checked_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--tls-cert", "x.pem"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
    let scratch = Scratch::new();
    let bogus = scratch.write("bogus.pem", b"nothing here");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .args(["--tls-cert", &bogus, "--tls-key", &bogus])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bogus.pem"), "{stderr}");
}

on_both_drivers!(
    independent_client_over_wss,
    plain_client_on_the_tls_port_is_told_to_use_tls,
    untrusted_certificate_is_refused_by_the_client,
    agents_over_wss,
);
