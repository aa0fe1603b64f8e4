//! HTTP/1.1 read by hand, for the service and for tests that read raw responses: heads,
//! Content-Length and chunked bodies, and whole responses framed as a client must frame them.

use std::io::{self, BufRead, Read};
use std::num::ParseIntError;

/// Largest request or response head either side reads.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body either side reads.
pub const MAX_BODY: usize = 64 << 20;
/// Longest chunk-size line a chunked body may have.
const MAX_CHUNK_LINE: usize = 1024;
/// Longest trailer line after the last chunk.
const MAX_TRAILER_LINE: usize = 8192;

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
pub fn content_length(headers: &[(String, String)]) -> Option<Result<usize, ParseIntError>> {
    let value = header(headers, "content-length")?;
    Some(value.trim().parse::<usize>())
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
        let line = read_line_bounded(reader, MAX_CHUNK_LINE)?;
        let text = std::str::from_utf8(&line)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size not utf-8"))?;
        let size_text = text.trim_end().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            loop {
                let trailer = read_line_bounded(reader, MAX_TRAILER_LINE)?;
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
                Some(Err(_)) => {
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
