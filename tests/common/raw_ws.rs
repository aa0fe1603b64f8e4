//! A WebSocket client written by hand over TCP, for the frames no library would send: after
//! a valid handshake it writes any first byte, mask or length, and reads frames as they come.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::IO_TIMEOUT;
use super::handshake::UPGRADE_HEADERS;
use super::proxy::Proxy;
use super::wire::{CLOSE, PING, PONG};

/// The mask key of every masked frame this client sends.
const MASK_KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A raw TCP client for sending deliberately broken bytes after a valid handshake.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    /// Handshake by hand for `path`, and swallow the 101 and the `:host` frame.
    pub fn connect(proxy: &Proxy, path: &str) -> RawClient {
        Self::handshake(TcpStream::connect(proxy.addr).expect("tcp connect"), path)
    }

    /// [`connect`](Self::connect) with a receive buffer of `rcvbuf` bytes, for a client that
    /// will stop reading: the proxy's writes then back up after a few KiB.
    pub fn connect_small_window(proxy: &Proxy, path: &str, rcvbuf: usize) -> RawClient {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        socket.connect(&proxy.addr.into()).expect("connect");
        Self::handshake(socket.into(), path)
    }

    fn handshake(mut stream: TcpStream, path: &str) -> RawClient {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("write handshake");
        let mut client = RawClient { stream };
        let head = client.read_until(b"\r\n\r\n");
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let (_, payload) = client.read_frame();
        assert!(payload.starts_with(b":host "));
        client
    }

    fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while !out.ends_with(end) {
            self.stream.read_exact(&mut byte).expect("read");
            out.push(byte[0]);
        }
        out
    }

    /// Read one unmasked server frame: (opcode, payload).
    pub fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h).expect("frame header");
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            self.stream.read_exact(&mut b).expect("len16");
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.stream.read_exact(&mut b).expect("len64");
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        self.stream.read_exact(&mut payload).expect("payload");
        (h[0] & 0x0f, payload)
    }

    /// Whether the peer has ended the connection (nothing more to read).
    fn ended(&mut self) -> bool {
        let mut h = [0u8; 1];
        self.stream.peek(&mut h).map_or(true, |n| n == 0)
    }

    /// Read frames until a close frame; return its code (None if the socket just ended).
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            if self.ended() {
                return None;
            }
            let (opcode, payload) = self.read_frame();
            if opcode == CLOSE {
                return close_code(&payload);
            }
        }
    }

    /// Read server frames until a close frame (skipping pings and pongs): the data frames
    /// before it, and the close code (None if the socket ended without a close frame).
    pub fn frames_until_close(&mut self) -> (Vec<(u8, Vec<u8>)>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            if self.ended() {
                return (frames, None);
            }
            let (opcode, payload) = self.read_frame();
            match opcode {
                CLOSE => return (frames, close_code(&payload)),
                PING | PONG => continue,
                _ => frames.push((opcode, payload)),
            }
        }
    }

    /// Send one frame with the given first byte (FIN/RSV/opcode), masked if `mask`.
    pub fn send_frame(&mut self, first: u8, payload: &[u8], mask: bool) {
        let mut frame = vec![first];
        let mask_bit = if mask { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if mask {
            frame.extend_from_slice(&MASK_KEY);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK_KEY[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).expect("write frame");
    }
}

/// The code of a close frame's payload; None when it carries none.
fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}
