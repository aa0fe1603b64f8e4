//! Endpoints written with tungstenite, an independent WebSocket implementation: register at
//! the proxy, send and answer requests, and read what arrives (within a time, or until the
//! close).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tungstenite::protocol::WebSocket;
use tungstenite::{Message, client::IntoClientRequest};

use super::IO_TIMEOUT;
use super::message::Http;
use super::proxy::Proxy;

/// An endpoint connected with tungstenite.
pub struct Endpoint {
    pub ws: WebSocket<TcpStream>,
    pub address: String,
}

/// Why a connection attempt failed: the HTTP status of the refusal, if there was one.
pub fn connect_status(proxy: &Proxy, path: &str) -> Result<Endpoint, u16> {
    connect_with(proxy, path, &[])
}

pub fn connect_with(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> Result<Endpoint, u16> {
    connect_at(proxy.addr, path, headers)
}

/// [`connect_with`] by address, for threads that do not own the [`Proxy`].
pub fn connect_at(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Endpoint, u16> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    match tungstenite::client(request, stream) {
        Ok((mut ws, _response)) => {
            let hello = recv_text(&mut ws);
            let address = hello
                .strip_prefix(":host ")
                .unwrap_or_else(|| panic!("first message must be :host, got {hello:?}"))
                .to_string();
            Ok(Endpoint { ws, address })
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake failed without an HTTP status: {e}"),
    }
}

/// Register `path` ("/bob") and return the endpoint; panics if refused.
pub fn connect(proxy: &Proxy, path: &str) -> Endpoint {
    connect_status(proxy, path).unwrap_or_else(|s| panic!("registration of {path} refused: {s}"))
}

/// Register `name`, with `Authorization: Bearer <token>` when there is a token.
pub fn register(proxy: &Proxy, name: &str, token: Option<&str>) -> Result<Endpoint, u16> {
    let bearer = token.map(bearer);
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    connect_with(proxy, &format!("/{name}"), &headers)
}

/// The `Authorization` value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The next data message (text or binary), skipping pings and pongs.
pub fn recv_data<S: Read + Write>(ws: &mut WebSocket<S>) -> Message {
    loop {
        match ws.read().expect("read a message") {
            m @ (Message::Text(_) | Message::Binary(_)) => return m,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a data message, got {other:?}"),
        }
    }
}

/// The next data message as text (a binary one must be UTF-8).
pub fn recv_text<S: Read + Write>(ws: &mut WebSocket<S>) -> String {
    match recv_data(ws) {
        Message::Text(t) => t.to_string(),
        Message::Binary(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
        _ => unreachable!("recv_data returns data messages only"),
    }
}

/// The next data message within `limit`, or None if nothing arrived (pings are skipped).
pub fn recv_within(ep: &mut Endpoint, limit: Duration) -> Option<String> {
    // A zero timeout means "block forever" to the OS; never ask for less than 1 ms.
    let limit = limit.max(Duration::from_millis(1));
    ep.ws
        .get_mut()
        .set_read_timeout(Some(limit))
        .expect("read timeout");
    let got = loop {
        match ep.ws.read() {
            Ok(Message::Text(t)) => break Some(t.to_string()),
            Ok(Message::Binary(b)) => break Some(String::from_utf8_lossy(&b).into_owned()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(Message::Close(frame)) => panic!("{}: unexpected close {frame:?}", ep.address),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                break None;
            }
            Err(e) => panic!("{}: read failed: {e}", ep.address),
        }
    };
    ep.ws
        .get_mut()
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    got
}

/// Nothing arrives at `ep` within a short window. (Barrier round trips after it prove the
/// same thing without a timeout; this one catches a stray message early.)
#[track_caller]
pub fn assert_quiet(ep: &mut Endpoint) {
    if let Some(text) = recv_within(ep, Duration::from_millis(40)) {
        panic!("{} must receive nothing, got {text:?}", ep.address);
    }
}

/// Everything an endpoint receives until the close frame: the data messages, and the close
/// code (None if the connection ended without one, or a read timed out).
pub fn until_close(ep: &mut Endpoint) -> (Vec<String>, Option<u16>) {
    let mut messages = Vec::new();
    loop {
        match ep.ws.read() {
            Ok(Message::Text(t)) => messages.push(t.to_string()),
            Ok(Message::Binary(b)) => messages.push(String::from_utf8_lossy(&b).into_owned()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(Message::Close(frame)) => return (messages, frame.map(|f| u16::from(f.code))),
            Err(_) => return (messages, None),
        }
    }
}

/// Close `ep` cleanly and wait for the proxy's echo: the connection has ended.
pub fn close_and_wait(mut ep: Endpoint) {
    ep.ws.close(None).expect("send close");
    let _ = ep.expect_close();
}

impl Endpoint {
    pub fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    pub fn recv(&mut self) -> String {
        recv_text(&mut self.ws)
    }

    /// Send `GET <path>` to `target` with `cseq`.
    pub fn request(&mut self, target: &str, cseq: u64, path: &str) {
        self.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: {target}\r\nCSeq: {cseq}\r\n\r\n"
        ));
    }

    /// Read one request and answer it with `200` and `body`, echoing its CSeq. Returns the
    /// request as received.
    pub fn answer(&mut self, body: &str) -> Http {
        let request = Http::parse(&self.recv());
        let cseq = request.header("cseq").expect("relayed request has a CSeq");
        self.send(&format!(
            "HTTP/1.1 200 OK\r\nCSeq: {cseq}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        request
    }

    /// Read the next message and parse it as HTTP.
    pub fn recv_http(&mut self) -> Http {
        Http::parse(&self.recv())
    }

    /// Read until the connection ends; returns the close code if a close frame came.
    pub fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.ws.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}
