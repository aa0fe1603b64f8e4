//! HTTP/1.1 message framing for the endpoint's local sides (the agent's listener and service
//! side, the library's conversions): reading a head and a body from a client or service
//! socket, how long a body is, whether a response is a final one, which headers stop at this
//! hop, and the request line and `Content-Length` they write back out.
//!
//! A body that goes whole in a tunnel message is read completely (within a limit) and re-sent
//! with `Content-Length`; chunked and close-delimited bodies are decoded here. A body that
//! streams is read piece by piece ([`body_reader`](super::body_reader)) and, where its length
//! is not known, written out chunked ([`put_chunk_size`], [`LAST_CHUNK`]). Parsing is strict
//! where the framing is concerned (RFC 9112 §6.3): a message whose length is ambiguous is
//! refused, never guessed at.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::proto::http1::chunked::{ChunkedDecoder, DecodeError};
use crate::proto::http1::framing::{self, Framing, FramingError};
use crate::proto::http1::head_scanner::{HeadScanner, ScanError};
use crate::proto::http1::{hop, write};

/// Most header lines accepted in one head (more → too large).
pub const MAX_HEADERS: usize = 100;
/// How much room to make before each read.
const READ_RESERVE_BYTES: usize = 16 * 1024;

/// An empty buffer for [`read_head`], as large as the room it makes before a read: a smaller
/// one would be grown (and its bytes copied) before the first read of every message.
pub fn head_buffer() -> BytesMut {
    BytesMut::with_capacity(READ_RESERVE_BYTES)
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed mid-message")]
    Closed,
    /// Reading from or writing to the peer failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The head is longer than the limit or has more than [`MAX_HEADERS`] lines.
    #[error("head exceeds {limit} bytes or {MAX_HEADERS} header lines")]
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is longer than the limit (declared or actually sent).
    #[error("body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The message breaks HTTP/1.1 syntax or its framing is ambiguous.
    #[error("malformed HTTP message: {0}")]
    Malformed(&'static str),
    /// A `Transfer-Encoding` other than `chunked` alone (`gzip`, `gzip, chunked`,
    /// `identity`): the agent re-frames every body, and doing that to a coded one would
    /// deliver it under a label that no longer says how it is coded.
    #[error("a Transfer-Encoding other than chunked alone")]
    UnsupportedCoding,
}

impl From<FramingError> for Http1Error {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::UnsupportedCoding => Http1Error::UnsupportedCoding,
            other => Http1Error::Malformed(other.reason()),
        }
    }
}

impl From<DecodeError> for Http1Error {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Syntax(e) => Http1Error::Malformed(e.reason()),
            DecodeError::TooLarge { limit } => Http1Error::BodyTooLarge { limit },
        }
    }
}

impl From<httparse::Error> for Http1Error {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => Http1Error::Malformed("more than 100 header lines"),
            httparse::Error::HeaderName => Http1Error::Malformed("invalid header name"),
            httparse::Error::HeaderValue => Http1Error::Malformed("invalid header value"),
            httparse::Error::NewLine => Http1Error::Malformed("invalid line ending"),
            httparse::Error::Status => Http1Error::Malformed("invalid status line"),
            httparse::Error::Token => Http1Error::Malformed("invalid token in request line"),
            httparse::Error::Version => Http1Error::Malformed("invalid HTTP version"),
        }
    }
}

/// How the body of a message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Responses only: everything until the connection closes.
    UntilClose,
}

/// Read until `buf` holds a whole head; returns its length (the body starts there).
///
/// `Ok(None)`: the peer closed cleanly before sending a byte of a new message. Each byte is
/// scanned once however the head is split across reads, and reading stops as soon as the head
/// passes `max_head_bytes` or [`MAX_HEADERS`] lines. A bare LF line end is malformed.
pub async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    max_head_bytes: usize,
) -> Result<Option<usize>, Http1Error> {
    let mut scanner = HeadScanner::new(max_head_bytes, MAX_HEADERS);
    loop {
        match scanner.scan(buf) {
            Ok(Some(end)) => return Ok(Some(end)),
            Ok(None) => {}
            Err(ScanError::TooLarge) => {
                return Err(Http1Error::HeadTooLarge {
                    limit: max_head_bytes,
                });
            }
            Err(ScanError::BareLf) => return Err(Http1Error::Malformed("bare LF line ending")),
        }
        buf.reserve(READ_RESERVE_BYTES);
        if io.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(Http1Error::Closed)
            };
        }
    }
}

/// The header's value if `name` appears, case-insensitively; errors if it appears twice.
pub fn single_header<'h>(
    headers: &'h [httparse::Header<'_>],
    name: &str,
) -> Result<Option<&'h [u8]>, Http1Error> {
    let mut found = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case(name) && found.replace(h.value).is_some() {
            return Err(Http1Error::Malformed("header repeated"));
        }
    }
    Ok(found)
}

/// The length a request body declares (RFC 9112 §6.3, [`framing::declared`]).
pub fn request_body_length(headers: &[httparse::Header<'_>]) -> Result<BodyLength, Http1Error> {
    Ok(match framing::declared(headers)? {
        Framing::None => BodyLength::Empty,
        Framing::Length(n) => BodyLength::Length(n),
        Framing::Chunked => BodyLength::Chunked,
    })
}

/// The length of a response body, given the request method and the status (RFC 9112 §6.3).
/// A coding other than `chunked` alone is refused as for requests: read to the end and
/// passed on without its label, a `gzip` body would reach the caller as if it were plain.
pub fn response_body_length(
    status: u16,
    request_was_head: bool,
    headers: &[httparse::Header<'_>],
) -> Result<BodyLength, Http1Error> {
    if framing::response_is_bodiless(status, request_was_head) {
        return Ok(BodyLength::Empty);
    }
    Ok(match framing::declared(headers)? {
        Framing::None => BodyLength::UntilClose,
        Framing::Length(n) => BodyLength::Length(n),
        Framing::Chunked => BodyLength::Chunked,
    })
}

/// Read a whole body delimited by `length` from `io`, starting with whatever of it `buf`
/// already holds; consumes exactly the body's bytes from `buf`. More than `max_body_bytes` →
/// [`Http1Error::BodyTooLarge`], checked before reading when the length is declared.
pub async fn read_body<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    length: BodyLength,
    max_body_bytes: usize,
) -> Result<Bytes, Http1Error> {
    let too_large = Http1Error::BodyTooLarge {
        limit: max_body_bytes,
    };
    match length {
        BodyLength::Empty => Ok(Bytes::new()),
        BodyLength::Length(n) => {
            if n > max_body_bytes as u64 {
                return Err(too_large);
            }
            let n = n as usize;
            if buf.len() < n {
                buf.reserve(n - buf.len());
            }
            while buf.len() < n {
                if io.read_buf(buf).await? == 0 {
                    return Err(Http1Error::Closed);
                }
            }
            Ok(buf.split_to(n).freeze())
        }
        BodyLength::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut body = BytesMut::new();
            loop {
                if decoder.decode(buf, &mut body, max_body_bytes)? {
                    return Ok(body.freeze());
                }
                buf.reserve(READ_RESERVE_BYTES);
                if io.read_buf(buf).await? == 0 {
                    return Err(Http1Error::Closed);
                }
            }
        }
        BodyLength::UntilClose => loop {
            if buf.len() > max_body_bytes {
                return Err(too_large);
            }
            buf.reserve(READ_RESERVE_BYTES);
            if io.read_buf(buf).await? == 0 {
                return Ok(buf.split().freeze());
            }
        },
    }
}

/// The body of a message held whole in memory (a tunnel message), de-framed: a slice of
/// `msg` when it is not chunked.
pub fn message_body(
    msg: &Bytes,
    head_len: usize,
    length: BodyLength,
    max_body_bytes: usize,
) -> Result<Bytes, Http1Error> {
    let rest = msg.len() - head_len.min(msg.len());
    match length {
        BodyLength::Empty => Ok(Bytes::new()),
        BodyLength::Length(n) if n > rest as u64 => Err(Http1Error::Malformed(
            "body shorter than its Content-Length",
        )),
        BodyLength::Length(n) if n < rest as u64 => Err(Http1Error::Malformed(
            "bytes beyond the declared Content-Length",
        )),
        BodyLength::Length(_) | BodyLength::UntilClose => Ok(msg.slice(head_len..)),
        BodyLength::Chunked => {
            let mut src = BytesMut::from(&msg[head_len..]);
            let mut body = BytesMut::new();
            let mut decoder = ChunkedDecoder::default();
            if !decoder.decode(&mut src, &mut body, max_body_bytes)? {
                return Err(Http1Error::Malformed("chunked body is incomplete"));
            }
            if !src.is_empty() {
                return Err(Http1Error::Malformed("bytes after the last chunk"));
            }
            Ok(body.freeze())
        }
    }
}

/// Headers that describe this connection only and never travel past the agent (RFC 9110
/// §7.6.1; the list every hop applies, [`hop::is_hop_by_hop`], plus the proxy credentials), and
/// the framing headers the agent always rewrites itself.
pub fn is_hop_by_hop(name: &str) -> bool {
    const AGENT_HOP: [&str; 4] = [
        "proxy-authorization",
        "proxy-authenticate",
        "transfer-encoding",
        "content-length",
    ];
    hop::is_hop_by_hop(name.as_bytes()) || AGENT_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The header names a `Connection` header lists (they are hop-by-hop too), bounded.
pub fn connection_listed<'h>(headers: &'h [httparse::Header<'_>]) -> Vec<&'h [u8]> {
    hop::connection_listed(headers, MAX_HEADERS)
}

/// Whether `name` must not be copied to the next hop: hop-by-hop, or listed in `Connection`.
pub fn stops_here(name: &str, listed: &[&[u8]]) -> bool {
    is_hop_by_hop(name)
        || listed
            .iter()
            .any(|l| l.eq_ignore_ascii_case(name.as_bytes()))
}

/// Append `<method> <target> HTTP/1.1\r\n`: every request the agent or the library writes
/// is HTTP/1.1, whatever version the local client spoke.
pub fn put_request_line(head: &mut BytesMut, method: &str, target: &str) {
    head.extend_from_slice(method.as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Append the `Content-Length` of a response passed on to the next hop: the body's real
/// length, except that an answer to `HEAD` and a `304` keep the length its sender `declared`
/// (the resource's, though no body follows) and a `204` has none.
pub fn put_response_length(
    head: &mut BytesMut,
    status: u16,
    request_was_head: bool,
    declared: Option<&[u8]>,
    body_len: usize,
) {
    if request_was_head || status == 304 {
        if let Some(value) = declared {
            write::put_header(head, b"Content-Length", value);
        }
    } else if status != 204 {
        write::put_content_length(head, body_len as u64);
    }
}

/// The last chunk of a chunked body, with no trailer (RFC 9112 §7.1).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// What ends each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// Append the size line of a chunk of `len` bytes (`len` > 0: a zero size is the last chunk).
pub fn put_chunk_size(dst: &mut BytesMut, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[at..]);
    dst.extend_from_slice(b"\r\n");
}

/// Whether a request or response asks to switch protocols: an `Upgrade` header, named by
/// `Connection` (RFC 9110 §7.8); its value when it does.
pub fn upgrade<'h>(headers: &'h [httparse::Header<'_>]) -> Option<&'h [u8]> {
    if !hop::connection_lists(headers, b"upgrade") {
        return None;
    }
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .map(|h| h.value)
        .filter(|v| !v.trim_ascii().is_empty())
}

/// Refuse an interim status (`100 Continue`, `103 Early Hints`) as the answer to a request:
/// the tunnel carries one answer per request, so passed on as the final one it would leave
/// the caller waiting for a response that never comes.
pub fn refuse_interim(status: u16) -> Result<(), Http1Error> {
    if (100..200).contains(&status) {
        return Err(Http1Error::Malformed(
            "an interim 1xx status is not an answer",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &'static [u8])]) -> Vec<httparse::Header<'static>> {
        list.iter()
            .map(|&(name, value)| httparse::Header { name, value })
            .collect()
    }

    #[test]
    fn content_length_rules() {
        let ok = headers(&[("Content-Length", b"10")]);
        assert_eq!(request_body_length(&ok).unwrap(), BodyLength::Length(10));
        // One rule with the proxy's (docs/protocol.md §9): even a list of equal values, or
        // the same value twice, is refused.
        for same in [
            headers(&[("Content-Length", b"5, 5")]),
            headers(&[("Content-Length", b"5"), ("content-length", b"5")]),
        ] {
            assert!(request_body_length(&same).is_err());
        }
        for bad in [
            &b"+10"[..],
            b"0x10",
            b"",
            b"1 0",
            b"-1",
            b"5, 6",
            b"99999999999999999999",
        ] {
            let h = vec![httparse::Header {
                name: "Content-Length",
                value: bad,
            }];
            assert!(request_body_length(&h).is_err(), "{bad:?} accepted");
        }
        let differ = headers(&[("Content-Length", b"5"), ("Content-Length", b"6")]);
        assert!(request_body_length(&differ).is_err());
    }

    #[test]
    fn transfer_encoding_rules() {
        for chunked in [&b"chunked"[..], b"Chunked", b" CHUNKED "] {
            let h = vec![httparse::Header {
                name: "Transfer-Encoding",
                value: chunked,
            }];
            assert_eq!(request_body_length(&h).unwrap(), BodyLength::Chunked);
            assert_eq!(
                response_body_length(200, false, &h).unwrap(),
                BodyLength::Chunked
            );
        }
        // Every other coding is refused, requests and responses alike: never de-framed and
        // passed on without its label.
        for coded in [
            &b"gzip, chunked"[..],
            b"gzip",
            b"chunked, gzip",
            b"identity",
            b"chunked, chunked",
            b"chunked,",
            b"",
        ] {
            let h = vec![httparse::Header {
                name: "Transfer-Encoding",
                value: coded,
            }];
            assert!(
                matches!(request_body_length(&h), Err(Http1Error::UnsupportedCoding)),
                "{coded:?}"
            );
            assert!(
                matches!(
                    response_body_length(200, false, &h),
                    Err(Http1Error::UnsupportedCoding)
                ),
                "{coded:?}"
            );
        }
        let both = headers(&[("Transfer-Encoding", b"chunked"), ("Content-Length", b"3")]);
        assert!(matches!(
            request_body_length(&both),
            Err(Http1Error::Malformed(_))
        ));
        let coded_and_length = headers(&[("Transfer-Encoding", b"gzip"), ("Content-Length", b"3")]);
        assert!(matches!(
            request_body_length(&coded_and_length),
            Err(Http1Error::Malformed(_))
        ));
        let twice = headers(&[
            ("Transfer-Encoding", b"chunked"),
            ("Transfer-Encoding", b"chunked"),
        ]);
        assert!(matches!(
            request_body_length(&twice),
            Err(Http1Error::Malformed(_))
        ));
    }

    #[test]
    fn response_without_body() {
        let h = headers(&[("Content-Length", b"10")]);
        for (status, head) in [(200, true), (204, false), (304, false), (101, false)] {
            assert_eq!(
                response_body_length(status, head, &h).unwrap(),
                BodyLength::Empty
            );
        }
        assert_eq!(
            response_body_length(200, false, &[]).unwrap(),
            BodyLength::UntilClose
        );
    }

    #[test]
    fn chunked_decoding_byte_by_byte() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let mut dec = ChunkedDecoder::default();
        let mut body = BytesMut::new();
        let mut src = BytesMut::new();
        let mut done = false;
        for &b in wire.iter() {
            src.extend_from_slice(&[b]);
            if dec.decode(&mut src, &mut body, 100).unwrap() {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(&body[..], b"Wikipedia");
        assert!(
            src.is_empty(),
            "the byte after the trailer has not been fed yet"
        );
    }

    #[test]
    fn chunked_limits_and_errors() {
        let mut body = BytesMut::new();
        let mut src = BytesMut::from(&b"10\r\n"[..]);
        assert!(matches!(
            ChunkedDecoder::default().decode(&mut src, &mut body, 15),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut src = BytesMut::from(&b"3\r\nabcX\r\n"[..]);
        assert!(
            ChunkedDecoder::default()
                .decode(&mut src, &mut body, 15)
                .is_err()
        );
        let mut src = BytesMut::from(&b"zz\r\n"[..]);
        assert!(
            ChunkedDecoder::default()
                .decode(&mut src, &mut body, 15)
                .is_err()
        );
    }

    #[test]
    fn message_body_framings() {
        let msg = Bytes::from_static(b"HEAD\r\n\r\nhello");
        assert_eq!(
            message_body(&msg, 8, BodyLength::Length(5), 100).unwrap(),
            "hello"
        );
        assert!(message_body(&msg, 8, BodyLength::Length(6), 100).is_err());
        assert!(message_body(&msg, 8, BodyLength::Length(4), 100).is_err());
        assert_eq!(
            message_body(&msg, 8, BodyLength::UntilClose, 100).unwrap(),
            "hello"
        );
        let chunked = Bytes::from_static(b"H\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            message_body(&chunked, 5, BodyLength::Chunked, 100).unwrap(),
            "hello"
        );
    }

    #[tokio::test]
    async fn read_head_split_and_limits() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in [&b"GET / HT"[..], b"TP/1.1\r\nHost: x\r", b"\n\r\nBODY"] {
                b.write_all(piece).await.unwrap();
            }
        });
        let mut buf = BytesMut::new();
        let n = read_head(&mut a, &mut buf, 1024).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");

        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = b.write_all(&[b'a'; 300]).await;
        });
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_head(&mut a, &mut buf, 100).await,
            Err(Http1Error::HeadTooLarge { limit: 100 })
        ));
    }

    #[test]
    fn chunk_sizes_in_hex() {
        for (len, line) in [(1, "1\r\n"), (255, "ff\r\n"), (65536, "10000\r\n")] {
            let mut dst = BytesMut::new();
            put_chunk_size(&mut dst, len);
            assert_eq!(&dst[..], line.as_bytes());
        }
    }

    #[test]
    fn upgrade_needs_connection_to_name_it() {
        let asks = headers(&[
            ("Connection", b"keep-alive, Upgrade"),
            ("Upgrade", b"websocket"),
        ]);
        assert_eq!(upgrade(&asks), Some(&b"websocket"[..]));
        assert_eq!(upgrade(&headers(&[("Upgrade", b"websocket")])), None);
        assert_eq!(upgrade(&headers(&[("Connection", b"upgrade")])), None);
    }

    #[test]
    fn hop_by_hop_and_close() {
        let h = headers(&[("Connection", b"close, X-Secret"), ("X-Secret", b"1")]);
        let listed = connection_listed(&h);
        assert!(stops_here("x-secret", &listed));
        assert!(stops_here("Keep-Alive", &listed));
        assert!(!stops_here("Accept", &listed));
        assert!(hop::wants_close(1, &h));
        assert!(hop::wants_close(0, &[]));
        assert!(!hop::wants_close(1, &[]));
        let ka = headers(&[("Connection", b"keep-alive")]);
        assert!(!hop::wants_close(0, &ka));
    }
}
