//! The client library (`httpws::endpoint::Endpoint`) against the real proxy binary, with
//! tungstenite endpoints as the independent party on the other side.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::driver::Driver;
use common::proxy::Proxy;
use httpws::endpoint::{Endpoint, Failure, Status, client::RequestError, httpws_error};

/// Bound on every await in these tests.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

fn proxy_url(proxy: &Proxy) -> String {
    format!("ws://{}", proxy.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_requests_reach_an_independent_caller() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let bob = within(Endpoint::builder(&proxy_url(&proxy)).name("bob").connect())
        .await
        .expect("bob registers");
    assert_eq!(bob.address().unwrap().as_str(), "bob");
    let server = bob.clone();
    tokio::spawn(async move {
        server
            .serve(|req: http::Request<Bytes>| async move {
                let from = req.headers()["httpws-from"].to_str().unwrap().to_owned();
                let mut response = http::Response::new(req.body().clone());
                response
                    .headers_mut()
                    .insert("x-from", from.parse().unwrap());
                response
                    .headers_mut()
                    .insert("x-path", req.uri().to_string().parse().unwrap());
                response
            })
            .await
    });

    let addr = proxy.addr;
    let reply = tokio::task::spawn_blocking(move || {
        let mut alice = common::ws::connect_at(addr, "/alice", &[]).unwrap();
        alice.send(
            "POST /sdp?x=1 HTTP/1.1\r\nHost: bob\r\nCSeq: 42\r\nHttpws-From: forged\r\n\
             Content-Length: 5\r\n\r\noffer",
        );
        alice.recv_http()
    })
    .await
    .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.cseq(), 42);
    assert_eq!(
        reply.header("x-from"),
        Some("alice"),
        "the proxy's stamp, not the forgery"
    );
    assert_eq!(reply.header("x-path"), Some("/sdp?x=1"));
    assert_eq!(reply.header("content-length"), Some("5"));
    assert_eq!(reply.body, "offer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_an_independent_target_and_errors_are_responses() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let addr = proxy.addr;
    let target = tokio::task::spawn_blocking(move || {
        let mut bob = common::ws::connect_at(addr, "/bob", &[]).unwrap();
        bob.answer("answer")
    });
    // bob registers before alice asks (the proxy would answer unknown-address otherwise).
    let alice = within(
        Endpoint::builder(&proxy_url(&proxy))
            .name("alice")
            .connect(),
    )
    .await
    .unwrap();
    let mut response = None;
    for _ in 0..50 {
        let req = http::Request::post("http://bob/offer")
            .header("x-app", "1")
            .body(Bytes::from_static(b"v=0"))
            .unwrap();
        let r = within(alice.request_whole(req)).await.unwrap();
        if httpws_error(&r) != Some("unknown-address") {
            response = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = response.expect("bob registered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "answer");
    assert!(response.headers().get("cseq").is_none());
    let seen = target.await.unwrap();
    assert_eq!(seen.start, "POST /offer HTTP/1.1");
    assert_eq!(seen.header("host"), Some("bob"));
    assert_eq!(seen.header("httpws-from"), Some("alice"));
    assert_eq!(seen.header("x-app"), Some("1"));
    assert_eq!(seen.body, "v=0");

    let missing = within(
        alice.request(
            http::Request::get("http://carol/")
                .body(Bytes::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(httpws_error(&missing), Some("unknown-address"));
    let no_target = alice
        .request(http::Request::get("/x").body(Bytes::new()).unwrap())
        .await;
    assert!(matches!(no_target, Err(RequestError::NoTarget)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tunnel_fails_waiters_then_reconnects_under_the_same_name() {
    let mut proxy = Proxy::start(Driver::Uring, &["--shards", "1"]);
    let addr = proxy.addr;
    let alice = within(
        Endpoint::builder(&proxy_url(&proxy))
            .name("alice")
            .configure(|c| c.reconnect_max = Duration::from_millis(200))
            .connect(),
    )
    .await
    .unwrap();
    // A target that reads the request and never answers.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bob = common::ws::connect_at(addr, "/bob", &[]).unwrap();
        let _ = bob.recv();
        let _ = seen_tx.send(());
        let _ = bob.expect_close();
    });
    let mut status = alice.session().status();
    let caller = alice.clone();
    let waiting = tokio::spawn(async move {
        loop {
            let req = http::Request::get("http://bob/")
                .body(Bytes::new())
                .unwrap();
            match caller.request(req).await {
                Ok(r) if httpws_error(&r) == Some("unknown-address") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other.map(|r| r.status()),
            }
        }
    });
    tokio::task::spawn_blocking(move || seen_rx.recv_timeout(LIMIT))
        .await
        .unwrap()
        .expect("bob got the request");
    // Kill the proxy outright: the waiting request must fail, not hang.
    drop(proxy);
    let failed = within(waiting).await.unwrap();
    assert!(
        matches!(failed, Err(RequestError::Tunnel(Failure::TargetGone))),
        "{failed:?}"
    );
    within(status.wait_for(|s| *s == Status::Down))
        .await
        .unwrap();
    let down = alice
        .request(
            http::Request::get("http://bob/")
                .body(Bytes::new())
                .unwrap(),
        )
        .await;
    assert!(
        matches!(down, Err(RequestError::Tunnel(Failure::TunnelDown))),
        "{down:?}"
    );

    proxy = Proxy::start_with_args(&[
        "proxy",
        "--listen",
        &addr.to_string(),
        "--shards",
        "1",
        "--no-pin",
    ]);
    let up = within(status.wait_for(|s| matches!(s, Status::Up { .. })))
        .await
        .unwrap()
        .clone();
    assert!(
        matches!(&up, Status::Up { address, generation: 2 } if address.as_str() == "alice"),
        "{up:?}"
    );
    let back = within(
        alice.request(
            http::Request::get("http://nobody/")
                .body(Bytes::new())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        httpws_error(&back),
        Some("unknown-address"),
        "the new proxy answers"
    );
    alice.close().await;
    assert_eq!(*alice.session().status().borrow(), Status::Closed);
    drop(proxy);
}

/// A fake proxy that registers the endpoint, checks it answers a ping, then goes silent:
/// the endpoint must ping, give up on the silent proxy, and reconnect as the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_proxy_is_detected_and_replaced_by_a_new_connection() {
    use httpws::proto::frame::{DecoderConfig, Event, MessageDecoder, Role};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoint = Endpoint::builder(&format!("ws://{addr}"))
        .name("alice")
        .configure(|c| {
            c.ping_interval = Duration::from_millis(200);
            c.pong_timeout = Duration::from_millis(200);
            c.reconnect_max = Duration::from_millis(100);
        })
        .into_config()
        .unwrap();
    let alice = Endpoint::start(endpoint);

    // Accept one connection, complete the handshake, send `:host alice`; returns the stream
    // and the request line.
    async fn accept(listener: &tokio::net::TcpListener) -> (tokio::net::TcpStream, String) {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let accept = httpws::proto::handshake::accept_key(key.trim().as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        let host = b":host alice";
        stream.write_all(&[0x81, host.len() as u8]).await.unwrap();
        stream.write_all(host).await.unwrap();
        (stream, head.lines().next().unwrap().to_owned())
    }

    /// The next event from the endpoint, or None at end of stream.
    async fn next_event(
        stream: &mut tokio::net::TcpStream,
        buf: &mut bytes::BytesMut,
        decoder: &mut MessageDecoder,
    ) -> Option<Event> {
        let cfg = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1 << 20,
        };
        loop {
            if let Some(event) = decoder.decode(buf, &cfg).expect("client frames are valid") {
                return Some(event);
            }
            if stream.read_buf(buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    let (mut first, line) = within(accept(&listener)).await;
    assert_eq!(line, "GET /alice HTTP/1.1");
    within(alice.session().ready()).await.unwrap();
    // Our ping is answered with the same payload.
    first.write_all(&[0x89, 2, b'p', b'1']).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let mut decoder = MessageDecoder::new();
    let pong = within(next_event(&mut first, &mut buf, &mut decoder)).await;
    assert_eq!(pong, Some(Event::Pong(Bytes::from_static(b"p1"))));
    // Then silence: the endpoint pings us, and we do not answer.
    let ping = within(next_event(&mut first, &mut buf, &mut decoder)).await;
    assert!(matches!(ping, Some(Event::Ping(_))), "{ping:?}");
    // It gives up on this connection and registers again, under the same name.
    let (_second, line) = within(accept(&listener)).await;
    assert_eq!(line, "GET /alice HTTP/1.1");
    let end = within(next_event(&mut first, &mut buf, &mut decoder)).await;
    assert!(
        matches!(end, None | Some(Event::Close { .. })),
        "the silent connection is dropped: {end:?}"
    );
    alice.close().await;
}
