//! A real local HTTP/1.1 web service on std threads: the thing an endpoint agent's `--serve`
//! forwards to. Thread per connection, keep-alive, Content-Length and chunked request bodies,
//! bounded reads with timeouts. It records every request it receives and counts the TCP
//! connections it accepted, so tests can see what the agent sent and whether its pool reuses
//! connections.
//!
//! Routes (any method; HEAD gets the same head with no body):
//! - `/echo`: 200, body = request body; `X-Method`, `X-Path` (path + query), `X-Host`,
//!   `X-From` (the `Httpws-From` received, or `none`), `X-Body-Len`, `X-Chunked: yes|no`.
//! - `/status/N`: status N (no body and no Content-Length for 1xx, 204, 304).
//! - `/slow?ms=N[&bytes=M]`: sleeps N ms, then 200 with `pattern(M)` (default: `slow`).
//! - `/big?bytes=N`: `pattern(N)` with Content-Length.
//! - `/big-chunked?bytes=N`: `pattern(N)` in chunked encoding (chunks of varying sizes).
//! - `/big-close?bytes=N`: `pattern(N)`, no Content-Length, `Connection: close`, then closes.
//! - `/close-after`: 200 `done` with Content-Length and no `Connection: close`, then closes
//!   the connection anyway (a keep-alive connection the service times out).
//! - `/cookies`: two `Set-Cookie` fields and an empty `X-Empty`.
//! - `/interim`: `100 Continue` and `103 Early Hints`, then 200 `final`.
//! - anything else: 404.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request or response head either side of this module reads.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body either side of this module reads.
pub const MAX_BODY: usize = 64 << 20;
/// How long a service connection may sit idle (or a body may stall) before it is closed.
const CONN_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The deterministic body of `n` bytes the `/big*` routes send. A byte shifted, lost or
/// repeated anywhere changes the comparison.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i % 251) as u8) ^ ((i / 251 % 13) as u8))
        .collect()
}

/// One request as the service received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent (path + query, or an absolute URI).
    pub target: String,
    pub version: String,
    /// Header names lowercased, values trimmed, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
    /// Which accepted connection (1-based, in accept order) carried it.
    pub connection: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    open: Mutex<Vec<TcpStream>>,
    requests: Mutex<Vec<Recorded>>,
    arrived: Condvar,
}

/// The running service; stops accepting and closes its connections when dropped.
pub struct Service {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Service {
    pub fn start() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test service");
        let addr = listener.local_addr().expect("service address");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            open: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("test-service-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = accept_shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Ok(clone) = stream.try_clone() {
                        accept_shared.open.lock().unwrap().push(clone);
                    }
                    let conn_shared = accept_shared.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("test-service-conn-{id}"))
                        .spawn(move || serve_connection(stream, id, &conn_shared));
                }
            })
            .expect("spawn the service accept thread");
        Service {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, the value for `--serve`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, what a rewritten `Host` should say.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order (counted when its body was read).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The most recent request; panics if there was none.
    pub fn last_request(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the service received a request")
    }

    /// Block until at least `n` requests have arrived; panics after `timeout`.
    #[track_caller]
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.shared.requests.lock().unwrap();
        while requests.len() < n {
            let now = Instant::now();
            assert!(
                now < deadline,
                "the service saw {} requests within {timeout:?}, expected {n}",
                requests.len()
            );
            requests = self
                .shared
                .arrived
                .wait_timeout(requests, deadline - now)
                .unwrap()
                .0;
        }
        requests.clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn serve_connection(stream: TcpStream, id: usize, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(CONN_READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CONN_READ_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let head = match read_head(&mut reader, MAX_HEAD) {
            Ok(Some(head)) => head,
            _ => return,
        };
        let Some(parsed) = Head::parse(&head) else {
            let _ = writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let Some((method, target, version)) = parsed.request_line() else {
            let _ = writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let chunked = is_chunked(&parsed.headers);
        let body = if chunked {
            read_chunked(&mut reader, MAX_BODY)
        } else {
            match content_length(&parsed.headers) {
                Some(Ok(n)) if n <= MAX_BODY => read_exact_vec(&mut reader, n),
                Some(_) => {
                    let _ = writer.write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                None => Ok(Vec::new()),
            }
        };
        let Ok(body) = body else { return };
        let close = version != "HTTP/1.1"
            || header(&parsed.headers, "connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"));
        let request = Recorded {
            method,
            target,
            version,
            headers: parsed.headers,
            body,
            chunked,
            connection: id,
        };
        {
            let mut requests = shared.requests.lock().unwrap();
            requests.push(request.clone());
            shared.arrived.notify_all();
        }
        match respond(&mut writer, &request, close) {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let _ = writer.flush();
                let _ = writer.shutdown(Shutdown::Write);
                return;
            }
        }
    }
}

/// Write the response; `Ok(true)` when the connection may carry another request.
fn respond(out: &mut TcpStream, req: &Recorded, close: bool) -> io::Result<bool> {
    let head_only = req.method.eq_ignore_ascii_case("HEAD");
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.target.as_str(), ""),
    };
    // An absolute-form target (a client speaking to us as a proxy) still routes by path.
    let path = strip_scheme_authority(path);
    let bytes_param = query_param(query, "bytes").and_then(|v| v.parse::<usize>().ok());
    let connection_line = if close { "Connection: close\r\n" } else { "" };
    match path {
        "/echo" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nX-Method: {}\r\nX-Path: {}\r\nX-Host: {}\r\nX-From: {}\r\n\
                 X-Body-Len: {}\r\nX-Chunked: {}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\n{connection_line}\r\n",
                req.method,
                req.target,
                req.header("host").unwrap_or("none"),
                req.header("httpws-from").unwrap_or("none"),
                req.body.len(),
                if req.chunked { "yes" } else { "no" },
                req.body.len(),
            );
            write_response(out, head.as_bytes(), &req.body, head_only)?;
            Ok(!close)
        }
        p if p.starts_with("/status/") => {
            let code: u16 = p["/status/".len()..].parse().unwrap_or(500);
            if code < 200 || code == 204 || code == 304 {
                let head = format!(
                    "HTTP/1.1 {code} {}\r\nX-Status: {code}\r\n{connection_line}\r\n",
                    reason(code)
                );
                out.write_all(head.as_bytes())?;
            } else {
                let body = format!("status {code}\n");
                let head = format!(
                    "HTTP/1.1 {code} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     {connection_line}\r\n",
                    reason(code),
                    body.len()
                );
                write_response(out, head.as_bytes(), body.as_bytes(), head_only)?;
            }
            Ok(!close)
        }
        "/slow" => {
            let ms = query_param(query, "ms")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1000);
            std::thread::sleep(Duration::from_millis(ms));
            let body = bytes_param.map_or_else(|| b"slow".to_vec(), pattern);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{connection_line}\r\n",
                body.len()
            );
            write_response(out, head.as_bytes(), &body, head_only)?;
            Ok(!close)
        }
        "/big" => {
            let body = pattern(bytes_param.unwrap_or(0));
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\n{connection_line}\r\n",
                body.len()
            );
            write_response(out, head.as_bytes(), &body, head_only)?;
            Ok(!close)
        }
        "/big-chunked" => {
            let body = pattern(bytes_param.unwrap_or(0));
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Transfer-Encoding: chunked\r\n{connection_line}\r\n"
            );
            out.write_all(head.as_bytes())?;
            if !head_only {
                // Chunks of varying sizes, so chunk edges land everywhere.
                let sizes = [1usize, 1000, 65_536, 7, 300_000, 4096];
                let mut at = 0;
                let mut i = 0;
                while at < body.len() {
                    let n = sizes[i % sizes.len()].min(body.len() - at);
                    out.write_all(format!("{n:x}\r\n").as_bytes())?;
                    out.write_all(&body[at..at + n])?;
                    out.write_all(b"\r\n")?;
                    at += n;
                    i += 1;
                }
                out.write_all(b"0\r\nX-Trailer: done\r\n\r\n")?;
            }
            out.flush()?;
            Ok(!close)
        }
        "/close-after" => {
            // Keep-alive by every header, then the socket closes anyway: what a service's
            // idle timeout does to a pooled connection.
            let head = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
            write_response(out, head, b"done", head_only)?;
            Ok(false)
        }
        "/interim" => {
            // Interim 1xx responses before the final one (what a service does when it sees
            // `Expect: 100-continue`, or sends Early Hints).
            out.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            )?;
            out.flush()?;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n{connection_line}\r\n");
            write_response(out, head.as_bytes(), b"final", head_only)?;
            Ok(!close)
        }
        "/cookies" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\n\
                 X-Empty:\r\nContent-Length: 0\r\n{connection_line}\r\n"
            );
            out.write_all(head.as_bytes())?;
            Ok(!close)
        }
        "/big-close" => {
            let body = pattern(bytes_param.unwrap_or(0));
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                         Connection: close\r\n\r\n";
            write_response(out, head, &body, head_only)?;
            Ok(false)
        }
        _ => {
            let body = b"no such route\n";
            let head = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n{connection_line}\r\n",
                body.len()
            );
            write_response(out, head.as_bytes(), body, head_only)?;
            Ok(!close)
        }
    }
}

fn write_response(
    out: &mut TcpStream,
    head: &[u8],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    if head_only || body.is_empty() {
        out.write_all(head)?;
    } else if body.len() <= 64 * 1024 {
        let mut all = head.to_vec();
        all.extend_from_slice(body);
        out.write_all(&all)?;
    } else {
        out.write_all(head)?;
        out.write_all(body)?;
    }
    out.flush()
}

fn strip_scheme_authority(path: &str) -> &str {
    match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    }
}

pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        418 => "I'm a teapot",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Whatever",
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 reading helpers, shared by the service and by tests that read raw responses.
// ---------------------------------------------------------------------------------------

/// Read one head (through the blank line). `Ok(None)` on a clean end of stream before any
/// byte; an error if it is longer than `max` or the stream ends inside it.
pub fn read_head<R: BufRead>(reader: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let room = (max + 1).saturating_sub(head.len()) as u64;
        let before = head.len();
        let n = reader.by_ref().take(room).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof inside a head",
                ))
            };
        }
        if head.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let line = &head[before..];
        if !line.ends_with(b"\n") {
            continue;
        }
        // Tolerate empty lines before a request line (RFC 9112 §2.2).
        if before == 0 && (line == b"\r\n" || line == b"\n") {
            head.clear();
            continue;
        }
        if line == b"\r\n" || line == b"\n" {
            return Ok(Some(head));
        }
    }
}

/// A parsed head: the start line and the header fields (names lowercased).
#[derive(Clone, Debug)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn parse(head: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start = lines.next()?.to_string();
        let mut headers = Vec::new();
        for line in lines {
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return None;
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        Some(Head { start, headers })
    }

    /// (method, target, version) of a request line.
    pub fn request_line(&self) -> Option<(String, String, String)> {
        let mut parts = self.start.split(' ');
        let method = parts.next()?.to_string();
        let target = parts.next()?.to_string();
        let version = parts.next()?.to_string();
        if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
            return None;
        }
        Some((method, target, version))
    }

    /// The status code of a status line.
    pub fn status(&self) -> Option<u16> {
        self.start.split(' ').nth(1)?.parse().ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    })
}

/// `None`: no Content-Length; `Some(Err)`: an unusable one.
pub fn content_length(headers: &[(String, String)]) -> Option<Result<usize, ()>> {
    let value = header(headers, "content-length")?;
    Some(value.trim().parse::<usize>().map_err(|_| ()))
}

pub fn read_exact_vec<R: Read>(reader: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; n];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn read_line_bounded<R: BufRead>(reader: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(max as u64)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk line"));
    }
    Ok(line)
}

/// Decode a chunked body (trailers are read and dropped).
pub fn read_chunked<R: BufRead>(reader: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line_bounded(reader, 1024)?;
        let text = std::str::from_utf8(&line)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size not utf-8"))?;
        let size_text = text.trim_end().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            loop {
                let trailer = read_line_bounded(reader, 8192)?;
                if trailer == b"\r\n" || trailer == b"\n" {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let end = read_line_bounded(reader, 2)?;
        if end != b"\r\n" && end != b"\n" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk not followed by CRLF",
            ));
        }
    }
}

/// A response read off a raw connection.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub head: Head,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn status(&self) -> u16 {
        self.head.status().expect("a status line")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Read one response (skipping any 1xx) to a request with `method`. The body is framed the
/// way a client must frame it: none for HEAD/204/304, then chunked, Content-Length, or
/// read-to-end.
pub fn read_response<R: BufRead>(reader: &mut R, method: &str) -> io::Result<RawResponse> {
    loop {
        let head = read_head(reader, MAX_HEAD)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))?;
        let head = Head::parse(&head)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed response head"))?;
        let status = head
            .status()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no status"))?;
        if (100..200).contains(&status) {
            continue;
        }
        let body = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
            Vec::new()
        } else if is_chunked(&head.headers) {
            read_chunked(reader, MAX_BODY)?
        } else {
            match content_length(&head.headers) {
                Some(Ok(n)) => read_exact_vec(reader, n)?,
                Some(Err(())) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad Content-Length",
                    ));
                }
                None => {
                    let mut all = Vec::new();
                    reader.take(MAX_BODY as u64).read_to_end(&mut all)?;
                    all
                }
            }
        };
        return Ok(RawResponse { head, body });
    }
}

/// A raw keep-alive client connection for tests that need byte-level control.
pub struct RawConn {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl RawConn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, timeout).expect("tcp connect");
        stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(timeout))
            .expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        RawConn { reader, stream }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    #[track_caller]
    pub fn response(&mut self, method: &str) -> RawResponse {
        read_response(&mut self.reader, method)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    pub fn try_response(&mut self, method: &str) -> io::Result<RawResponse> {
        read_response(&mut self.reader, method)
    }

    /// Whether the peer closes the connection (reads end of stream, or a reset) within the
    /// read timeout, with no further bytes first. Returns `Err(bytes)` if data came instead.
    pub fn closed_by_peer(&mut self) -> Result<bool, Vec<u8>> {
        let mut buf = [0u8; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => Ok(true),
            Ok(n) => Err(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(true),
            Err(_) => Ok(false),
        }
    }
}
