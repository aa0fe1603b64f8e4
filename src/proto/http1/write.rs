//! Writing heads: status lines, header lines, and the head of every answer httpws makes
//! itself (the proxy's errors to endpoints and to internet callers, the agent's, the
//! handshake's refusals), so that they all look the same.

use bytes::BytesMut;

use crate::proto::answer_error::AnswerError;
use crate::proto::http1::decimal::put_u64;
use crate::proto::http1::status::reason_phrase;

const CRLF: &[u8] = b"\r\n";

/// Append `HTTP/1.1 <status> <reason>\r\n`.
pub fn put_status_line(dst: &mut BytesMut, status: u16, reason: &[u8]) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    put_u64(dst, u64::from(status));
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(reason);
    dst.extend_from_slice(CRLF);
}

/// Append `name: value\r\n`.
pub fn put_header(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    dst.extend_from_slice(name);
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(CRLF);
}

/// Append `Content-Length: n\r\n`.
pub fn put_content_length(dst: &mut BytesMut, n: u64) {
    dst.extend_from_slice(b"Content-Length: ");
    put_u64(dst, n);
    dst.extend_from_slice(CRLF);
}

/// A chunk's size line, `<hex>\r\n` (chunked transfer coding, RFC 9112 §7.1), built on
/// the stack so that a chunk can be written as size line, payload, CRLF without copying.
#[derive(Clone, Copy, Debug)]
pub struct ChunkSizeLine {
    bytes: [u8; 18],
    start: usize,
}

impl ChunkSizeLine {
    /// The size line of a chunk of `n` bytes.
    pub fn new(n: usize) -> ChunkSizeLine {
        let mut bytes = [0u8; 18];
        bytes[16..].copy_from_slice(CRLF);
        let mut start = 16;
        let mut n = n;
        loop {
            start -= 1;
            bytes[start] = b"0123456789abcdef"[n & 0xf];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        ChunkSizeLine { bytes, start }
    }

    /// The line, CRLF included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// The head of an answer httpws made: the status line with the standard reason phrase,
/// `CSeq` when the answer goes to an endpoint, `Httpws-Error`, and a `text/plain` body of
/// `body_len` bytes. Stops before the blank line, so that callers can add their own lines.
pub fn put_answer_head(dst: &mut BytesMut, error: AnswerError, cseq: Option<u64>, body_len: usize) {
    put_error_head(dst, error.status(), Some(error), cseq, body_len);
}

/// An error head without an `Httpws-Error` token (refusals that are not answers to a relayed
/// request: a registration refused, a local client's malformed request), as
/// [`put_answer_head`].
pub fn put_plain_error_head(dst: &mut BytesMut, status: u16, body_len: usize) {
    put_error_head(dst, status, None, None, body_len);
}

fn put_error_head(
    dst: &mut BytesMut,
    status: u16,
    error: Option<AnswerError>,
    cseq: Option<u64>,
    body_len: usize,
) {
    dst.reserve(160 + body_len);
    put_status_line(dst, status, reason_phrase(status).as_bytes());
    if let Some(cseq) = cseq {
        dst.extend_from_slice(b"CSeq: ");
        put_u64(dst, cseq);
        dst.extend_from_slice(CRLF);
    }
    if let Some(error) = error {
        put_header(dst, b"Httpws-Error", error.token().as_bytes());
    }
    dst.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    put_content_length(dst, body_len as u64);
}

/// A whole answer httpws made for an endpoint: [`put_answer_head`], the blank line, and the
/// body `reason` + `"\n"`.
pub fn put_answer(dst: &mut BytesMut, error: AnswerError, cseq: Option<u64>, reason: &str) {
    put_answer_head(dst, error, cseq, reason.len() + 1);
    dst.extend_from_slice(CRLF);
    dst.extend_from_slice(reason.as_bytes());
    dst.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for (n, line) in [(0, "0\r\n"), (10, "a\r\n"), (4096, "1000\r\n")] {
            assert_eq!(ChunkSizeLine::new(n).as_bytes(), line.as_bytes());
        }
        let widest = ChunkSizeLine::new(usize::MAX);
        assert_eq!(widest.as_bytes().len(), usize::BITS as usize / 4 + 2);
    }

    #[test]
    fn answers_look_the_same_everywhere() {
        let mut dst = BytesMut::new();
        put_answer(
            &mut dst,
            AnswerError::UnknownAddress,
            Some(17),
            "no endpoint holds bob",
        );
        assert_eq!(
            &dst[..],
            b"HTTP/1.1 404 Not Found\r\nCSeq: 17\r\nHttpws-Error: unknown-address\r\n\
              Content-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\n\
              no endpoint holds bob\n"
        );
        let mut dst = BytesMut::new();
        put_plain_error_head(&mut dst, 409, 5);
        assert_eq!(
            &dst[..],
            b"HTTP/1.1 409 Conflict\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 5\r\n"
        );
    }
}
