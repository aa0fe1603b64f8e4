//! Criterion micro benchmarks of the proxy's hot paths: frame decode + unmask, HTTP head
//! inspection + rewrite, and the cross-shard hop; and the kernel's floor under every hop on
//! this machine (a loopback send, a read that finds nothing). Run with `cargo bench --bench
//! micro`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use httpws::proto::frame::{DecoderConfig, MessageDecoder, OpCode, Role, encode_frame, unmask};
use httpws::proto::head::{self, HeadLimits};
use httpws::proto::public_request::{self, Forwarded, IngressHead, ProxyNames};
use httpws::proxy::ids::{CallerKind, ConnKey};
use httpws::proxy::messages::{Delivery, OutFrame, Progress, ShardMessage};
use httpws::proxy::router::ShardRouter;

const REQUEST: &[u8] = b"POST /offer HTTP/1.1\r\nHost: bob\r\nCSeq: 123456\r\n\
Content-Type: application/sdp\r\nContent-Length: 64\r\nHttpws-From: mallory\r\n\r\n\
v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n...";

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_decode_unmask");
    let config = DecoderConfig {
        role: Role::Server,
        max_message_bytes: 16 << 20,
    };
    for size in [64usize, 512, 4096, 65536] {
        let payload = vec![b'x'; size];
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, OpCode::Binary, Some([1, 2, 3, 4]), &payload);
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            let mut decoder = MessageDecoder::new();
            b.iter(|| {
                // The copy stands in for the socket read into the shard buffer.
                let mut buf = BytesMut::from(&wire[..]);
                decoder
                    .decode(&mut buf, &config)
                    .expect("valid frame")
                    .expect("complete frame")
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("unmask");
    for size in [125usize, 4096, 1 << 20] {
        let mut payload = vec![7u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| unmask(&mut payload, [1, 2, 3, 4]));
        });
    }
    group.finish();
}

fn heads(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut group = c.benchmark_group("head");
    group.bench_function("inspect_request", |b| {
        b.iter(|| head::inspect(REQUEST, &limits).expect("valid head"));
    });
    let info = head::inspect(REQUEST, &limits).expect("valid head");
    let mut arena = BytesMut::with_capacity(64 * 1024);
    group.bench_function("rewrite_request", |b| {
        b.iter(|| {
            if arena.capacity() < 1024 {
                arena.reserve(64 * 1024);
            }
            head::write_head(&mut arena, REQUEST, &info, 42, Some("alice"));
            arena.split().freeze()
        });
    });
    group.bench_function("inspect_and_rewrite_request", |b| {
        b.iter(|| {
            let info = head::inspect(REQUEST, &limits).expect("valid head");
            if arena.capacity() < 1024 {
                arena.reserve(64 * 1024);
            }
            head::write_head(&mut arena, REQUEST, &info, 42, Some("alice"));
            arena.split().freeze()
        });
    });
    group.finish();
}

/// What curl sends through the public ingress.
const INGRESS_REQUEST: &[u8] =
    b"GET /api/items?page=2 HTTP/1.1\r\nHost: svc.tunnel.example.com\r\n\
User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
/// A service's answer as the agent relays it.
const INGRESS_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nCSeq: 17\r\nContent-Type: text/plain\r\n\
Connection: keep-alive\r\nContent-Length: 3\r\n\r\nok\n";

/// The public ingress's per-request head work: check the caller's head and write the relayed
/// one; on the way back, write the caller's response head from the target's message.
fn ingress_heads(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let domains = vec!["tunnel.example.com".to_owned()];
    let forwarded = Forwarded {
        peer: "203.0.113.7".parse().expect("ip"),
        tls: false,
    };
    let mut arena = BytesMut::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("ingress");
    group.bench_function("parse_request", |b| {
        b.iter(|| {
            if arena.capacity() < 1024 {
                arena.reserve(64 * 1024);
            }
            let parsed = public_request::parse_request(
                INGRESS_REQUEST,
                ProxyNames {
                    domains: &domains,
                    public_names: &[],
                },
                forwarded,
                &mut arena,
            );
            assert!(matches!(parsed, Ok(IngressHead::Relay(_))));
            arena.split().freeze()
        });
    });
    group.bench_function("inspect_and_write_response", |b| {
        b.iter(|| {
            let info = head::inspect(INGRESS_RESPONSE, &limits).expect("valid head");
            if arena.capacity() < 1024 {
                arena.reserve(64 * 1024);
            }
            head::write_http_head(&mut arena, INGRESS_RESPONSE, &info, b"ok\n", false)
                .expect("relayable");
            arena.split().freeze()
        });
    });
    group.finish();
}

fn delivery(cseq: u64) -> ShardMessage {
    ShardMessage::Respond(Delivery {
        to: ConnKey {
            index: 1,
            generation: 0,
        },
        kind: CallerKind::WebSocket,
        origin_cseq: cseq,
        frame: OutFrame {
            head: Bytes::from_static(b"head"),
            body: Bytes::new(),
        },
        progress: Progress::Ends,
    })
}

fn cross_shard(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_shard");
    // The queue cost alone: push on one shard's queue, pop on the other, same thread.
    let router = ShardRouter::new(2);
    group.bench_function("send_and_drain", |b| {
        let mut cseq = 0;
        b.iter(|| {
            cseq += 1;
            router.send(0, 1, delivery(cseq)).expect("room");
            router.drain(1, 1, drop)
        });
    });
    // A real hop between two threads: shard 0 sends, a spinning shard 1 drains and answers,
    // shard 0 drains the answer. One iteration = one round trip = two hops.
    let router = Arc::new(ShardRouter::new(2));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (router, stop) = (router.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                router.drain(1, 64, |m| {
                    let mut m = m;
                    while let Err(back) = router.send(1, 0, m) {
                        m = back;
                    }
                });
                std::hint::spin_loop();
            }
        })
    };
    group.bench_function("round_trip_two_threads", |b| {
        let mut cseq = 0;
        b.iter(|| {
            cseq += 1;
            router.send(0, 1, delivery(cseq)).expect("room");
            while router.drain(0, 1, drop) == 0 {
                std::hint::spin_loop();
            }
        });
    });
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
    group.finish();
}

/// The kernel's share of a relayed message, which no change in the proxy removes: the send
/// of a small frame on loopback TCP (which runs the receiver's TCP processing, and wakes it,
/// inside the sender's syscall), and the read that finds nothing (what monoio's readiness
/// mode spends after every read that drained a socket).
fn kernel_floor(c: &mut Criterion) {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};

    let mut group = c.benchmark_group("kernel_floor");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut quiet = TcpStream::connect(addr).expect("connect");
    let (_quiet_peer, _) = listener.accept().expect("accept");
    quiet.set_nonblocking(true).expect("nonblocking");
    let mut buf = vec![0u8; 64 * 1024];
    group.bench_function("read_finds_nothing", |b| {
        b.iter(|| match quiet.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("an idle socket read {other:?}"),
        });
    });

    let mut sender = TcpStream::connect(addr).expect("connect");
    sender.set_nodelay(true).expect("nodelay");
    let (mut receiver, _) = listener.accept().expect("accept");
    // A peer that reads as the frames come (and sleeps in read() whenever it has caught up).
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(receiver.read(&mut buf), Ok(n) if n > 0) {}
    });
    let frame = [b'x'; 64];
    group.throughput(Throughput::Elements(1));
    group.bench_function("send_64_bytes_to_a_reading_peer", |b| {
        b.iter(|| sender.write_all(&frame).expect("send"));
    });
    drop(sender);
    reader.join().expect("reader thread");
    group.finish();
}

criterion_group!(
    benches,
    frames,
    heads,
    ingress_heads,
    cross_shard,
    kernel_floor
);
criterion_main!(benches);
