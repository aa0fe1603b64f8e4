//! A plain WebSocket echo server on the proxy's stack: the physical baseline for relay
//! benchmarks (`loadgen --direct`).
//!
//! Same building blocks as `httpws proxy`: one `monoio` runtime per thread (io_uring, or the
//! epoll driver with `--driver legacy`), one `SO_REUSEPORT` listener per thread, our opening
//! handshake and frame codec. Every data message comes back unchanged with its opcode (one
//! write per read, however many messages that read held); pings get pongs; a close is
//! answered and the connection ends. A relayed request costs the proxy 2 reads + 2 writes,
//! an echo 1 + 1.
//!
//! ```sh
//! cargo run --release --example echo -- --listen 127.0.0.1:9000
//! target/release/loadgen --direct --proxy ws://127.0.0.1:9000 --conns 1000 --closed-loop
//! ```

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use clap::{Parser, ValueEnum};
use httpws::proto::frame::{self, DecoderConfig, Event, MessageDecoder, OpCode, Role};
use httpws::proto::handshake;
use httpws::proxy::DriverChoice;
use httpws::proxy::runtime::IoDriver;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

/// Largest opening handshake accepted.
const MAX_HANDSHAKE_BYTES: usize = 8 * 1024;
/// Largest message echoed (larger: close 1009).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024 + 64 * 1024;
/// Room offered to each read.
const READ_BYTES: usize = 64 * 1024;
/// io_uring submission queue entries per thread (as the proxy's shards).
const URING_ENTRIES: u32 = 1024;

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DriverArg {
    Auto,
    Uring,
    Legacy,
}

#[derive(Parser, Debug)]
#[command(about = "WebSocket echo server on the httpws stack (baseline for loadgen --direct)")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Threads, each with its own runtime and listener (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// io driver: io_uring where available (auto), io_uring only, or epoll (legacy).
    #[arg(long, value_enum, default_value = "auto")]
    driver: DriverArg,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let driver = IoDriver::resolve(match args.driver {
        DriverArg::Auto => DriverChoice::Auto,
        DriverArg::Uring => DriverChoice::Uring,
        DriverArg::Legacy => DriverChoice::Legacy,
    })?;
    // The first listener fixes the port; the others share it through SO_REUSEPORT.
    let first = bind(args.listen)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr)?);
    }
    let mut handles = Vec::new();
    for (id, listener) in listeners.into_iter().enumerate() {
        handles.push(
            std::thread::Builder::new()
                .name(format!("echo-{id}"))
                .spawn(move || run_thread(driver, listener))?,
        );
    }
    println!(
        "echo listening on ws://{addr} ({threads} threads, {})",
        driver.name()
    );
    for handle in handles {
        match handle.join() {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::other("an echo thread panicked")),
        }
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn run_thread(driver: IoDriver, listener: std::net::TcpListener) -> io::Result<()> {
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
    match driver {
        IoDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(accept_loop(listener)),
        IoDriver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?
            .block_on(accept_loop(listener)),
    }
}

async fn accept_loop(listener: std::net::TcpListener) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(async move {
                    let _ = serve(stream).await;
                });
            }
            Err(_) => {
                // Out of descriptors and the like: back off briefly, keep serving.
                monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Read more bytes onto the end of `buf`; returns the buffer and how many arrived.
async fn read_more(stream: &mut TcpStream, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
    buf.reserve(READ_BYTES);
    let len = buf.len();
    let (result, slice) = stream.read(buf.slice_mut(len..)).await;
    (result, slice.into_inner())
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::new();
    // The opening handshake.
    loop {
        match handshake::parse_upgrade(&buf, MAX_HANDSHAKE_BYTES) {
            Ok(Some((request, head_len))) => {
                let (result, _) = stream
                    .write_all(handshake::response_101(
                        &request.accept_key,
                        request.protocol,
                    ))
                    .await;
                result?;
                buf.advance(head_len);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                let (result, _) = stream.write_all(e.response()).await;
                return result.map(drop);
            }
        }
        let (result, b) = read_more(&mut stream, buf).await;
        buf = b;
        if result? == 0 {
            return Ok(());
        }
    }
    // Messages: everything decoded from one read is answered in one write.
    let config = DecoderConfig {
        role: Role::Server,
        max_message_bytes: MAX_MESSAGE_BYTES,
    };
    let mut decoder = MessageDecoder::new();
    let mut out = BytesMut::with_capacity(READ_BYTES);
    loop {
        let closing = echo_all(&mut decoder, &config, &mut buf, &mut out);
        if !out.is_empty() {
            let (result, o) = stream.write_all(out).await;
            out = o;
            result?;
            out.clear();
        }
        if closing {
            return Ok(());
        }
        let (result, b) = read_more(&mut stream, buf).await;
        buf = b;
        if result? == 0 {
            return Ok(());
        }
    }
}

/// Answer every complete frame in `buf` into `out`; true when the connection must end
/// (a close frame, or a protocol error answered with its close code).
fn echo_all(
    decoder: &mut MessageDecoder,
    config: &DecoderConfig,
    buf: &mut BytesMut,
    out: &mut BytesMut,
) -> bool {
    loop {
        match decoder.decode(buf, config) {
            Ok(Some(Event::Message { opcode, payload })) => {
                frame::encode_frame(out, opcode, None, &payload);
            }
            Ok(Some(Event::Ping(payload))) => {
                frame::encode_frame(out, OpCode::Pong, None, &payload)
            }
            Ok(Some(Event::Pong(_))) => {}
            Ok(Some(Event::Close { code, .. })) => {
                let payload = code.map_or_else(bytes::Bytes::new, |c| frame::close_payload(c, ""));
                frame::encode_frame(out, OpCode::Close, None, &payload);
                return true;
            }
            Ok(None) => return false,
            Err(e) => {
                let payload = frame::close_payload(e.close_code(), "");
                frame::encode_frame(out, OpCode::Close, None, &payload);
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: OpCode, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        frame::encode_frame(&mut b, opcode, Some([1, 2, 3, 4]), payload);
        b
    }

    fn decode_all(mut wire: BytesMut) -> Vec<Event> {
        let config = DecoderConfig {
            role: Role::Client,
            max_message_bytes: 1 << 20,
        };
        let mut decoder = MessageDecoder::new();
        let mut events = Vec::new();
        while let Ok(Some(e)) = decoder.decode(&mut wire, &config) {
            events.push(e);
        }
        assert!(wire.is_empty(), "trailing bytes");
        events
    }

    #[test]
    fn echoes_messages_pings_and_close_in_one_buffer() {
        let config = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1 << 20,
        };
        let mut input = masked(OpCode::Binary, b"POST / HTTP/1.1\r\nCSeq: 1\r\n\r\n");
        input.extend_from_slice(&masked(OpCode::Text, b"hello"));
        input.extend_from_slice(&masked(OpCode::Ping, b"p"));
        let half = masked(OpCode::Binary, b"split across reads");
        input.extend_from_slice(&half[..5]);
        let mut out = BytesMut::new();
        let mut decoder = MessageDecoder::new();
        assert!(!echo_all(&mut decoder, &config, &mut input, &mut out));
        assert_eq!(input.len(), 5, "the partial frame waits for more bytes");
        input.extend_from_slice(&half[5..]);
        input.extend_from_slice(&masked(OpCode::Close, &frame::close_payload(1000, "bye")));
        assert!(echo_all(&mut decoder, &config, &mut input, &mut out));
        let events = decode_all(out);
        assert_eq!(events.len(), 5);
        assert_eq!(
            events[0],
            Event::Message {
                opcode: OpCode::Binary,
                payload: bytes::Bytes::from_static(b"POST / HTTP/1.1\r\nCSeq: 1\r\n\r\n"),
            }
        );
        assert_eq!(
            events[1],
            Event::Message {
                opcode: OpCode::Text,
                payload: bytes::Bytes::from_static(b"hello"),
            }
        );
        assert_eq!(events[2], Event::Pong(bytes::Bytes::from_static(b"p")));
        assert!(
            matches!(&events[3], Event::Message { payload, .. } if &payload[..] == b"split across reads")
        );
        assert!(matches!(
            events[4],
            Event::Close {
                code: Some(1000),
                ..
            }
        ));
    }

    #[test]
    fn unmasked_client_frame_is_closed_with_1002() {
        let config = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1 << 20,
        };
        let mut input = BytesMut::new();
        frame::encode_frame(&mut input, OpCode::Binary, None, b"x");
        let mut out = BytesMut::new();
        assert!(echo_all(
            &mut MessageDecoder::new(),
            &config,
            &mut input,
            &mut out
        ));
        let events = decode_all(out);
        assert!(matches!(
            events[0],
            Event::Close {
                code: Some(1002),
                ..
            }
        ));
    }
}
