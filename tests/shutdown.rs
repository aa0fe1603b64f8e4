//! Graceful shutdown on SIGTERM: in-flight requests get their real answer during the grace
//! period, the rest get `target-gone`, every connection is told `:error shutdown` and closed
//! with 1001, the listener stops accepting, and the process exits with status 0.

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::IO_TIMEOUT;
use common::driver::Driver;
use common::handshake::UPGRADE_HEADERS;
use common::message::Http;
use common::proxy::{Proxy, name_on_shard, owner_shard};
use common::ws::{Endpoint, connect, until_close};

/// Start the proxy with `shards` shards and `extra` flags.
fn start(driver: Driver, shards: u32, extra: &[&str]) -> Proxy {
    let shards = shards.to_string();
    let mut args = vec!["--shards", shards.as_str()];
    args.extend_from_slice(extra);
    Proxy::start(driver, &args)
}

/// Send SIGTERM from another thread; the handle yields the exit status.
fn terminate_in_background(mut proxy: Proxy) -> JoinHandle<std::process::ExitStatus> {
    thread::spawn(move || proxy.terminate())
}

/// What a fresh connection attempt met.
#[derive(Debug, PartialEq)]
enum Attempt {
    /// The handshake succeeded: the listener still accepts.
    Accepted,
    /// Refused, reset, or closed without a 101.
    TurnedAway,
}

/// How long a new connection may wait for the proxy to accept or turn it away. Well under
/// the 5 s grace period of the tests below, so a connection left hanging until the process
/// exits is caught.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Open a new TCP connection and try to register. A connection that is neither served nor
/// refused nor closed within `PROBE_TIMEOUT` fails the test.
fn try_new_connection(addr: SocketAddr) -> Attempt {
    let mut stream = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(_) => return Attempt::TurnedAway,
    };
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .expect("timeout");
    let handshake =
        format!("GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\r\n");
    if stream.write_all(handshake.as_bytes()).is_err() {
        return Attempt::TurnedAway;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Attempt::TurnedAway,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.starts_with(b"HTTP/1.1 101") {
                    return Attempt::Accepted;
                }
                // Anything else (e.g. a 503) is a refusal, but the connection must still end.
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                ) =>
            {
                return Attempt::TurnedAway;
            }
            Err(e) => panic!(
                "a new TCP connection was neither refused, served nor closed within \
                 {PROBE_TIMEOUT:?} ({e}); received {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// Wait (bounded, on replies only) until `ep`'s shard has begun shutting down: a request from
/// it to an address nobody holds is then refused with `503 target-busy` instead of being
/// routed and answered `404 unknown-address`.
fn wait_until_draining(ep: &mut Endpoint) {
    let deadline = Instant::now() + IO_TIMEOUT;
    for cseq in 1_000_000u64.. {
        ep.request("nobody-holds-this", cseq, "/probe");
        let response = ep.recv_http();
        assert_eq!(response.cseq(), cseq);
        if response.header("httpws-error") == Some("unknown-address") {
            assert!(
                Instant::now() < deadline,
                "{}: requests are still routed long after SIGTERM",
                ep.address
            );
            continue;
        }
        assert_eq!(response.status(), 503, "{response:?}");
        assert_eq!(response.header("httpws-error"), Some("target-busy"));
        return;
    }
}

/// The connection was told `:error shutdown "…"` as its last message and closed with 1001;
/// returns the messages before the indication.
fn told_shutdown_and_closed(ep: &mut Endpoint) -> Vec<String> {
    let who = ep.address.clone();
    let (mut messages, code) = until_close(ep);
    let last = messages.pop().unwrap_or_default();
    assert!(
        last.starts_with(":error shutdown \"") && last.ends_with('"'),
        "{who}: last message before the close must be the shutdown indication, got {last:?} \
         (all: {messages:?})"
    );
    assert_eq!(code, Some(1001), "{who}: close code");
    messages
}

fn in_flight_request_gets_its_real_answer_during_the_grace_period(driver: Driver) {
    let proxy = start(driver, 2, &["--shutdown-grace", "5s"]);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    let mut carol = connect(&proxy, "/carol");

    assert_ne!(
        owner_shard("alice", 2),
        owner_shard("bob", 2),
        "test setup: caller and target on different shards"
    );

    alice.request("bob", 3, "/slow");
    let seen = bob.recv_http();
    assert_eq!(seen.start, "GET /slow HTTP/1.1");

    let exit = terminate_in_background(proxy);
    wait_until_draining(&mut bob);
    // The target's shard is shutting down; only now does the target answer.
    bob.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 10\r\n\r\nlate, real",
        seen.cseq()
    ));

    let before = told_shutdown_and_closed(&mut alice);
    assert_eq!(
        before.len(),
        1,
        "alice: exactly the response, got {before:?}"
    );
    let response = Http::parse(&before[0]);
    assert_eq!(response.status(), 200);
    assert_eq!(response.cseq(), 3);
    assert_eq!(response.body, "late, real");

    assert_eq!(told_shutdown_and_closed(&mut bob), Vec::<String>::new());
    assert_eq!(told_shutdown_and_closed(&mut carol), Vec::<String>::new());

    let status = exit.join().expect("terminate thread");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

/// Each caller sends `cseqs` to `target`; the target reads them all and never answers; after
/// SIGTERM and the grace period each caller gets one `502 target-gone` per CSeq, then the
/// shutdown indication and 1001.
fn unanswered_requests_fail_with_target_gone(
    proxy: Proxy,
    callers: &[&str],
    target: &str,
    grace: Duration,
) {
    let cseqs = [10u64, 11, 12];
    let mut target_ep = connect(&proxy, &format!("/{target}"));
    let mut caller_eps: Vec<Endpoint> = callers
        .iter()
        .map(|c| connect(&proxy, &format!("/{c}")))
        .collect();
    for ep in &mut caller_eps {
        for cseq in cseqs {
            ep.request(target, cseq, &format!("/never/{cseq}"));
        }
    }
    // Every request has reached the target: all are in flight there.
    for _ in 0..callers.len() * cseqs.len() {
        assert!(target_ep.recv_http().start.starts_with("GET /never/"));
    }

    let signalled = Instant::now();
    let exit = terminate_in_background(proxy);

    for ep in &mut caller_eps {
        let who = ep.address.clone();
        let before = told_shutdown_and_closed(ep);
        let elapsed = signalled.elapsed();
        assert!(
            elapsed >= grace,
            "{who}: closed {elapsed:?} after SIGTERM, before the {grace:?} grace period \
             ended; received {before:?}"
        );
        let mut answered = HashSet::new();
        for text in &before {
            let response = Http::parse(text);
            assert_eq!(response.status(), 502, "{who}: {text:?}");
            assert_eq!(
                response.header("httpws-error"),
                Some("target-gone"),
                "{who}: {text:?}"
            );
            assert!(
                answered.insert(response.cseq()),
                "{who}: CSeq answered twice: {before:?}"
            );
        }
        assert_eq!(
            answered,
            HashSet::from(cseqs),
            "{who}: one target-gone per in-flight CSeq, got {before:?}"
        );
    }
    assert_eq!(
        told_shutdown_and_closed(&mut target_ep),
        Vec::<String>::new()
    );

    let status = exit.join().expect("terminate thread");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

fn unanswered_requests_get_target_gone_after_the_grace_period(driver: Driver) {
    let proxy = start(driver, 2, &["--shutdown-grace", "300ms"]);
    unanswered_requests_fail_with_target_gone(
        proxy,
        &["alice", "carol"],
        "bob",
        Duration::from_millis(300),
    );
}

fn cross_shard_target_gone_is_delivered_before_the_close(driver: Driver) {
    const SHARDS: u64 = 4;
    let target = name_on_shard("target", 0, SHARDS);
    // One caller on every shard: three across a shard boundary, one beside the target.
    let callers: Vec<String> = (0..SHARDS)
        .map(|s| name_on_shard("caller", s, SHARDS))
        .collect();
    let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
    let proxy = start(driver, SHARDS as u32, &["--shutdown-grace", "300ms"]);
    unanswered_requests_fail_with_target_gone(proxy, &callers, &target, Duration::from_millis(300));
}

/// A grace period longer than two seconds: callers on shards with nothing pending of their own
/// must still wait for the target's shard and get their `target-gone` before the close.
fn cross_shard_target_gone_after_a_long_grace_period(driver: Driver) {
    const SHARDS: u64 = 4;
    let target = name_on_shard("target", 1, SHARDS);
    let callers: Vec<String> = (0..SHARDS)
        .map(|s| name_on_shard("caller", s, SHARDS))
        .collect();
    let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
    let proxy = start(driver, SHARDS as u32, &["--shutdown-grace", "3s"]);
    unanswered_requests_fail_with_target_gone(proxy, &callers, &target, Duration::from_secs(3));
}

fn listener_stops_accepting_after_sigterm(driver: Driver) {
    let proxy = start(driver, 2, &["--shutdown-grace", "5s"]);
    let addr = proxy.addr;
    assert_eq!(try_new_connection(addr), Attempt::Accepted);
    let mut alice = connect(&proxy, "/alice");
    let mut bob = connect(&proxy, "/bob");
    // Keep a request in flight so the process stays up (in its grace period) meanwhile.
    alice.request("bob", 1, "/hold");
    let seen = bob.recv_http();

    let exit = terminate_in_background(proxy);
    // Both shards (alice's and bob's) have seen the signal.
    assert_ne!(owner_shard("alice", 2), owner_shard("bob", 2));
    wait_until_draining(&mut alice);
    wait_until_draining(&mut bob);
    for _ in 0..8 {
        assert_eq!(try_new_connection(addr), Attempt::TurnedAway);
    }

    // The process was alive all along: the held request still gets its answer.
    bob.send(&format!(
        "HTTP/1.1 200 OK\r\nCSeq: {}\r\nContent-Length: 4\r\n\r\ndone",
        seen.cseq()
    ));
    let before = told_shutdown_and_closed(&mut alice);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(Http::parse(&before[0]).body, "done");
    told_shutdown_and_closed(&mut bob);
    assert_eq!(exit.join().expect("terminate thread").code(), Some(0));
}

on_both_drivers!(
    in_flight_request_gets_its_real_answer_during_the_grace_period,
    unanswered_requests_get_target_gone_after_the_grace_period,
    cross_shard_target_gone_is_delivered_before_the_close,
    cross_shard_target_gone_after_a_long_grace_period,
    listener_stops_accepting_after_sigterm,
);
