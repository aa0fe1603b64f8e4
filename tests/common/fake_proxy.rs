//! A proxy played by the test, for what the real one never does: an agent connects to it,
//! is answered with protocol 2 (`Sec-WebSocket-Protocol: httpws.2`) and `:host NAME`, and
//! then gets whatever the test writes, frame by frame or byte by byte, while the test reads
//! what the agent sends with tungstenite (an implementation independent of the agent's).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use tungstenite::handshake::server::{Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

use super::IO_TIMEOUT;
use super::stream_wire::{Tagged, tagged};

/// A listening fake proxy; every connection to it waits in a queue until accepted.
pub struct FakeProxy {
    pub addr: SocketAddr,
    accepted: Receiver<TcpStream>,
}

impl FakeProxy {
    pub fn bind() -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake proxy");
        let addr = listener.local_addr().expect("local addr");
        let (tx, accepted) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                if tx.send(stream).is_err() {
                    return;
                }
            }
        });
        FakeProxy { addr, accepted }
    }

    /// `ws://ADDR`, for `--proxy`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The next agent to connect (within `limit`), registered as `name` on protocol 2.
    #[track_caller]
    pub fn accept_within(&self, name: &str, limit: Duration) -> Option<Tunnel> {
        let stream = self.accepted.recv_timeout(limit).ok()?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let choose_v2 = |req: &Request, mut resp: Response| {
            let offered = req
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|p| p.trim() == "httpws.2"));
            assert!(offered, "the agent offers protocol 2: {:?}", req.headers());
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("httpws.2"),
            );
            Ok(resp)
        };
        let mut ws = tungstenite::accept_hdr(stream, choose_v2).expect("websocket handshake");
        ws.send(Message::text(format!(":host {name}")))
            .expect("send :host");
        Some(Tunnel { ws })
    }

    /// [`accept_within`](Self::accept_within) [`IO_TIMEOUT`]; panics if no agent comes.
    #[track_caller]
    pub fn accept(&self, name: &str) -> Tunnel {
        self.accept_within(name, IO_TIMEOUT)
            .unwrap_or_else(|| panic!("no agent connected to the fake proxy as {name}"))
    }
}

/// One agent's tunnel to the fake proxy.
pub struct Tunnel {
    pub ws: WebSocket<TcpStream>,
}

/// What the agent sent: an HTTP message (head as text, body) or a stream message.
#[derive(Debug)]
pub enum FromAgent {
    Http { head: String, body: Vec<u8> },
    Stream(Tagged),
}

impl Tunnel {
    /// The socket under the WebSocket, for writing raw frames.
    pub fn socket(&mut self) -> &mut TcpStream {
        self.ws.get_mut()
    }

    /// Send one binary message.
    pub fn send(&mut self, bytes: impl Into<Vec<u8>>) {
        self.ws
            .send(Message::binary(bytes.into()))
            .expect("send to the agent");
    }

    /// The next data message from the agent (pings and pongs skipped), within the socket's
    /// read timeout; `None` once the agent has closed the tunnel.
    pub fn next(&mut self) -> Option<FromAgent> {
        self.next_within(IO_TIMEOUT)
            .unwrap_or_else(|| panic!("nothing from the agent within {IO_TIMEOUT:?}"))
    }

    /// [`next`](Self::next) within `limit`: `None` if nothing came in time, `Some(None)` once
    /// the agent has closed the tunnel.
    pub fn next_within(&mut self, limit: Duration) -> Option<Option<FromAgent>> {
        self.ws
            .get_mut()
            .set_read_timeout(Some(limit))
            .expect("timeout");
        loop {
            let bytes = match self.ws.read() {
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Ok(Message::Binary(b)) => b.to_vec(),
                Ok(Message::Text(t)) => t.as_bytes().to_vec(),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => return Some(None),
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Some(None);
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Some(None);
                }
                Err(e) => panic!("reading from the agent: {e}"),
            };
            if bytes.first() == Some(&b'~') {
                return Some(Some(FromAgent::Stream(tagged(&bytes))));
            }
            let end = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(bytes.len(), |i| i + 4);
            return Some(Some(FromAgent::Http {
                head: String::from_utf8_lossy(&bytes[..end]).into_owned(),
                body: bytes[end..].to_vec(),
            }));
        }
    }

    /// The next HTTP message from the agent; panics on a stream message or a close.
    #[track_caller]
    pub fn next_http(&mut self) -> (String, Vec<u8>) {
        match self.next() {
            Some(FromAgent::Http { head, body }) => (head, body),
            other => panic!("expected an HTTP message from the agent, got {other:?}"),
        }
    }
}

impl Tunnel {
    /// A streamed request from the agent: its head, its CSeq, and its data up to its `end`.
    #[track_caller]
    pub fn streamed_request(&mut self) -> (String, u64, Vec<u8>) {
        let (head, _) = self.next_http();
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nhttpws-stream: body\r\n"),
            "not a stream head: {head}"
        );
        let cseq = cseq_of(&head);
        let mut body = Vec::new();
        loop {
            match self.next() {
                Some(FromAgent::Stream(t)) if t.cseq == cseq && t.verb == "data" => {
                    body.extend_from_slice(&t.payload)
                }
                Some(FromAgent::Stream(t)) if t.cseq == cseq && t.verb == "end" => {
                    return (head, cseq, body);
                }
                other => panic!("expected the body of request {cseq}, got {other:?}"),
            }
        }
    }

    /// The token of the agent's `reset` of exchange `cseq` (marked `dir`), if one comes
    /// within `limit`; other messages meanwhile are passed over.
    pub fn reset_within(&mut self, dir: char, cseq: u64, limit: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.next_within(left)? {
                Some(FromAgent::Stream(t))
                    if t.verb == "reset" && t.dir == dir && t.cseq == cseq =>
                {
                    return t.arg;
                }
                Some(_) => {}
                None => return None,
            }
        }
    }
}

/// The value of `CSeq` in a head.
pub fn cseq_of(head: &str) -> u64 {
    head.lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no CSeq in {head:?}"))
}
