//! A local web service for the stream tests, on std threads (one per connection), that
//! records what it did so the tests can compare what arrived with what was sent:
//!
//! - `/events?n=N&ms=M`: Server-Sent Events, `data: <i>` every M ms (N events), then the
//!   end of the body; the instant each event was written is recorded.
//! - `/download?bytes=N[&length=1]`: `pattern(N)` chunked (with `Content-Length` when
//!   `length=1`); `bytes=0` is endless. Bytes written are counted; a client that goes away
//!   is noticed (its write fails) and recorded.
//! - `/upload`: reads the body (Content-Length or chunked) into `md5sum` as it arrives and
//!   answers the digest.
//! - `/die?after=N[&length=M]`: a body of M bytes declared (chunked when no `length`), of
//!   which N are sent before the connection is reset.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::http1::{Head, MAX_HEAD, read_head};

/// Writes of the download routes, in bytes.
const WRITE_BYTES: usize = 64 * 1024;
/// A connection that sends nothing for this long is closed.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The deterministic byte at offset `i` of every generated body (a byte lost, repeated or
/// moved anywhere changes the digest).
pub fn pattern_byte(i: u64) -> u8 {
    ((i % 251) as u8) ^ ((i / 251 % 13) as u8)
}

/// `pattern_byte` for offsets `from..from + out.len()`.
pub fn fill_pattern(from: u64, out: &mut [u8]) {
    for (k, b) in out.iter_mut().enumerate() {
        *b = pattern_byte(from + k as u64);
    }
}

/// What the service saw and did.
#[derive(Default)]
pub struct Record {
    /// When each SSE event was written.
    pub events_sent: Mutex<Vec<Instant>>,
    /// Download bytes written so far.
    pub written: AtomicU64,
    /// A download's client went away (a write failed).
    pub client_gone: AtomicBool,
    /// Download connections that ended, either way.
    pub downloads_ended: AtomicU64,
}

/// The running service; stops accepting when dropped.
pub struct StreamService {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
    stop: Arc<AtomicBool>,
}

impl StreamService {
    pub fn start() -> StreamService {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stream service");
        let addr = listener.local_addr().expect("its address");
        let record = Arc::new(Record::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, halt) = (Arc::clone(&record), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let rec = Arc::clone(&rec);
                std::thread::spawn(move || {
                    let _ = serve(conn, &rec);
                });
            }
        });
        StreamService { addr, record, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StreamService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn query(target: &str, key: &str) -> Option<u64> {
    let (_, q) = target.split_once('?')?;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn serve(conn: TcpStream, rec: &Record) -> io::Result<()> {
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let Some(raw) = read_head(&mut reader, MAX_HEAD)? else {
            return Ok(());
        };
        let head = Head::parse(&raw).ok_or_else(|| io::Error::other("bad head"))?;
        let (_, target, _) = head
            .request_line()
            .ok_or_else(|| io::Error::other("no line"))?;
        let path = target.split('?').next().unwrap_or("");
        match path {
            "/events" => return events(&mut out, &target, rec),
            "/download" => return download(&mut out, &target, rec),
            "/die" => return die(&mut out, &target),
            "/upload" => upload(&mut reader, &mut out, &head)?,
            _ => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
        }
    }
}

fn events(out: &mut TcpStream, target: &str, rec: &Record) -> io::Result<()> {
    let n = query(target, "n").unwrap_or(5);
    let ms = query(target, "ms").unwrap_or(200);
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
          Connection: close\r\n\r\n",
    )?;
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(ms));
        out.write_all(format!("data: {i}\n\n").as_bytes())?;
        rec.events_sent.lock().unwrap().push(Instant::now());
    }
    out.shutdown(Shutdown::Both)
}

fn download(out: &mut TcpStream, target: &str, rec: &Record) -> io::Result<()> {
    let total = query(target, "bytes").unwrap_or(0);
    let length = query(target, "length") == Some(1);
    let head = if length {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n")
    } else {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
    };
    let result = (|| {
        out.write_all(head.as_bytes())?;
        let mut piece = vec![0u8; WRITE_BYTES];
        let mut sent = 0u64;
        while total == 0 || sent < total {
            let n = if total == 0 {
                WRITE_BYTES
            } else {
                (total - sent).min(WRITE_BYTES as u64) as usize
            };
            fill_pattern(sent, &mut piece[..n]);
            if length {
                out.write_all(&piece[..n])?;
            } else {
                out.write_all(format!("{n:x}\r\n").as_bytes())?;
                out.write_all(&piece[..n])?;
                out.write_all(b"\r\n")?;
            }
            sent += n as u64;
            rec.written.store(sent, Ordering::SeqCst);
        }
        if !length {
            out.write_all(b"0\r\n\r\n")?;
        }
        Ok(())
    })();
    if result.is_err() {
        rec.client_gone.store(true, Ordering::SeqCst);
    }
    rec.downloads_ended.fetch_add(1, Ordering::SeqCst);
    result
}

fn die(out: &mut TcpStream, target: &str) -> io::Result<()> {
    let after = query(target, "after").unwrap_or(1000) as usize;
    let mut body = vec![0u8; after];
    fill_pattern(0, &mut body);
    match query(target, "length") {
        Some(n) => {
            out.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes())?;
            out.write_all(&body)?;
        }
        None => {
            out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            out.write_all(format!("{after:x}\r\n").as_bytes())?;
            out.write_all(&body)?;
            out.write_all(b"\r\n")?;
        }
    }
    out.flush()?;
    // A reset, not a close: the service died.
    socket2::SockRef::from(&*out).set_linger(Some(Duration::ZERO))?;
    Ok(())
}

/// The request body, Content-Length or chunked, through `md5sum`; answers its digest.
fn upload<R: BufRead>(reader: &mut R, out: &mut TcpStream, head: &Head) -> io::Result<()> {
    let mut md5 = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut sink = md5
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("md5sum stdin"))?;
    let mut piece = vec![0u8; WRITE_BYTES];
    let mut received = 0u64;
    if head.header("transfer-encoding").is_some() {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            if size == 0 {
                let mut end = String::new();
                while end != "\r\n" {
                    end.clear();
                    reader.read_line(&mut end)?;
                }
                break;
            }
            let mut left = size;
            while left > 0 {
                let n = left.min(piece.len());
                reader.read_exact(&mut piece[..n])?;
                sink.write_all(&piece[..n])?;
                left -= n;
            }
            received += size as u64;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else {
        let mut left: u64 = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while left > 0 {
            let n = (left as usize).min(piece.len());
            reader.read_exact(&mut piece[..n])?;
            sink.write_all(&piece[..n])?;
            left -= n as u64;
            received += n as u64;
        }
    }
    drop(sink);
    let digest = md5.wait_with_output()?;
    let digest = String::from_utf8_lossy(&digest.stdout);
    let digest = digest.split_whitespace().next().unwrap_or("");
    let body = format!("{digest} {received}");
    out.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}
