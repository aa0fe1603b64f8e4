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

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http1::{
    Head, MAX_BODY, MAX_HEAD, content_length, header, is_chunked, read_chunked, read_exact_vec,
    read_head,
};

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
