//! Test harness: start the real `httpws` binary on `127.0.0.1:0` and talk to it with
//! tungstenite's client (an independent WebSocket implementation) or raw TCP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tungstenite::protocol::WebSocket;
use tungstenite::{Message, client::IntoClientRequest};

/// How long any single read in a test may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Generate one test per io driver from `fn name(driver: Driver)`.
#[macro_export]
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $( #[test] fn $name() { super::$name($crate::common::Driver::Uring) } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name($crate::common::Driver::Epoll) } )*
        }
    };
}

#[derive(Clone, Copy, Debug)]
pub enum Driver {
    /// `--driver auto`: io_uring where the kernel has it (the proxy logs which it chose).
    Uring,
    /// `--driver legacy`: the epoll fallback.
    Epoll,
}

impl Driver {
    pub fn flag(self) -> &'static str {
        match self {
            Driver::Uring => "auto",
            Driver::Epoll => "legacy",
        }
    }
}

/// A running proxy process; killed (by its own PID) when dropped.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    /// The `--http-listen` address from the banner's second line, when that flag was given.
    pub http_addr: Option<SocketAddr>,
}

impl Proxy {
    /// Start with default limits, two shards (unless `extra` names `--shards`), and `extra`.
    pub fn start(driver: Driver, extra: &[&str]) -> Proxy {
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0", "--no-pin"];
        if !extra.contains(&"--shards") {
            args.extend_from_slice(&["--shards", "2"]);
        }
        args.extend_from_slice(&["--driver", driver.flag()]);
        args.extend_from_slice(extra);
        Self::start_with_args(&args)
    }

    pub fn start_with_args(args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_httpws"))
            .args(args)
            .env(
                "HTTPWS_LOG",
                std::env::var("HTTPWS_TEST_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn httpws");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        let (http_tx, http_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line
                    .strip_prefix("httpws proxy listening on ws://")
                    .or_else(|| line.strip_prefix("httpws proxy listening on wss://"))
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("address in banner"));
                } else if let Some(addr) =
                    line.strip_prefix("httpws proxy public HTTP ingress on http://")
                {
                    let _ = http_tx.send(addr.parse::<SocketAddr>().expect("address in banner"));
                }
            }
        });
        let addr = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("proxy did not print its address in time");
            }
        };
        // The ingress line follows the first one; only wait for it when it was asked for.
        let http_addr = if args.contains(&"--http-listen") {
            match http_rx.recv_timeout(IO_TIMEOUT) {
                Ok(addr) => Some(addr),
                Err(_) => {
                    let _ = child.kill();
                    panic!("proxy did not print its public HTTP ingress address in time");
                }
            }
        } else {
            None
        };
        Proxy {
            child,
            addr,
            http_addr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Send SIGTERM and wait (bounded) for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(Duration::from_secs(20))
            .expect("proxy exits after SIGTERM")
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

pub fn recv_text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("read a message") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).expect("utf-8"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a data message, got {other:?}"),
        }
    }
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

/// A parsed HTTP message (start line, headers, body) from a WebSocket message.
#[derive(Debug, Clone)]
pub struct Http {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn parse(text: &str) -> Http {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no head: {text:?}"));
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        Http {
            start,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line")
    }

    pub fn cseq(&self) -> u64 {
        self.header("cseq")
            .and_then(|v| v.parse().ok())
            .expect("a numeric CSeq")
    }
}

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
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
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

    /// Read frames until a close frame; return its code (None if the socket just ended).
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            let mut h = [0u8; 1];
            if self.stream.peek(&mut h).map_or(true, |n| n == 0) {
                return None;
            }
            let (opcode, payload) = self.read_frame();
            if opcode == 8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
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
            let key = [0x12, 0x34, 0x56, 0x78];
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).expect("write frame");
    }
}

/// Parse an `:error <token> "<reason>"` indication into (token, unescaped reason).
#[track_caller]
pub fn parse_error_indication(text: &str) -> (String, String) {
    let rest = text
        .strip_prefix(":error ")
        .unwrap_or_else(|| panic!("expected an :error indication, got {text:?}"));
    let (token, quoted) = rest
        .split_once(' ')
        .unwrap_or_else(|| panic!("no reason in {text:?}"));
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_else(|| panic!("reason not quoted in {text:?}"));
    let mut reason = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => reason.push(chars.next().expect("escape followed by a character")),
            '"' => panic!("unescaped quote inside the reason of {text:?}"),
            c => reason.push(c),
        }
    }
    (token.to_string(), reason)
}

/// The proxy's owner shard for an address: FNV-1a 64 over the name, modulo the shard count.
pub fn owner_shard(name: &str, shards: u64) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash % shards
}

pub mod agent;
pub mod process;
pub mod service;

/// First-byte bits of a raw WebSocket frame, for tests that write frames by hand.
pub mod wire {
    pub const FIN: u8 = 0x80;
    pub const RSV1: u8 = 0x40;
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xa;
}

/// Assert `response` is the proxy's own answer: `status`, `Httpws-Error: token`, `cseq`.
#[track_caller]
pub fn assert_proxy_error(response: &Http, status: u16, token: &str, cseq: u64) {
    assert_eq!(response.status(), status, "{response:?}");
    assert_eq!(
        response.all("httpws-error"),
        vec![token],
        "Httpws-Error token: {response:?}"
    );
    assert_eq!(response.cseq(), cseq, "the caller's CSeq: {response:?}");
}
