//! What loadgen puts on the wire: masked client frames carrying one HTTP message each, written
//! straight into a connection's outgoing buffer (no allocation per request), and the few
//! things it reads back out of a response besides the CSeq.

use bytes::{BufMut, BytesMut};
use httpws::proto::frame::{self, MAX_HEADER_LEN, OpCode};

/// The close code loadgen closes with, and answers a close without a code with (RFC 6455
/// §7.4.1: normal closure).
pub const CLOSE_NORMAL: u16 = 1000;

/// Append `v` in decimal.
#[inline]
pub fn put_decimal(dst: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
}

/// Append one masked binary frame whose payload is `head` followed by `body`.
#[inline]
pub fn put_masked_message(out: &mut BytesMut, head: &[u8], body: &[u8], mask: [u8; 4]) {
    let len = head.len() + body.len();
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = frame::encode_header(&mut header, true, OpCode::Binary, Some(mask), len as u64);
    out.reserve(n + len);
    out.put_slice(&header[..n]);
    let start = out.len();
    out.put_slice(head);
    out.put_slice(body);
    // Masking is the same XOR as unmasking, from offset 0 of the payload.
    frame::unmask(&mut out[start..], mask);
}

/// Where a request goes: the virtual address `<prefix>-<index>` (relay), or a fixed host
/// (direct: the echo server does not route).
#[derive(Clone, Copy, Debug)]
pub enum Host<'a> {
    Endpoint { prefix: &'a [u8], index: usize },
    Fixed(&'a [u8]),
}

/// Append a request message `POST / HTTP/1.1` with Host, CSeq and Content-Length, body
/// `body`, as one masked frame. `scratch` is reused for the head.
pub fn put_request(
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    host: Host<'_>,
    cseq: u64,
    body: &[u8],
    mask: [u8; 4],
) {
    scratch.clear();
    scratch.extend_from_slice(b"POST / HTTP/1.1\r\nHost: ");
    match host {
        Host::Endpoint { prefix, index } => {
            scratch.extend_from_slice(prefix);
            scratch.push(b'-');
            put_decimal(scratch, index as u64);
        }
        Host::Fixed(name) => scratch.extend_from_slice(name),
    }
    put_message(out, scratch, cseq, body, mask);
}

/// Append the answer an endpoint gives: `200 OK`, the same CSeq, the request's body.
pub fn put_response(
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    cseq: u64,
    body: &[u8],
    mask: [u8; 4],
) {
    scratch.clear();
    scratch.extend_from_slice(b"HTTP/1.1 200 OK");
    put_message(out, scratch, cseq, body, mask);
}

/// End the head begun in `scratch` (its start line and any headers) with `CSeq`,
/// `Content-Length` and the blank line, and append head and `body` as one masked frame.
#[inline]
fn put_message(out: &mut BytesMut, scratch: &mut Vec<u8>, cseq: u64, body: &[u8], mask: [u8; 4]) {
    scratch.extend_from_slice(b"\r\nCSeq: ");
    put_decimal(scratch, cseq);
    scratch.extend_from_slice(b"\r\nContent-Length: ");
    put_decimal(scratch, body.len() as u64);
    scratch.extend_from_slice(b"\r\n\r\n");
    put_masked_message(out, scratch, body, mask);
}

/// Append a masked control frame (pong, close).
pub fn put_control(out: &mut BytesMut, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    frame::encode_frame(out, opcode, Some(mask), payload);
}

/// The `Httpws-Error` token of a response, if it has one (rare path: only non-200 answers are
/// looked at).
pub fn error_token(msg: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(msg).ok()?;
    resp.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("httpws-error"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use httpws::proto::frame::{DecoderConfig, Event, MessageDecoder, Role};
    use httpws::proto::head::{self, HeadKind, HeadLimits};

    fn decode_one(mut wire: BytesMut) -> Vec<u8> {
        let config = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1 << 20,
        };
        match MessageDecoder::new().decode(&mut wire, &config) {
            Ok(Some(Event::Message { opcode, payload })) => {
                assert_eq!(opcode, OpCode::Binary);
                assert!(wire.is_empty());
                payload.to_vec()
            }
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn decimals() {
        for v in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut s = Vec::new();
            put_decimal(&mut s, v);
            assert_eq!(s, v.to_string().as_bytes());
        }
    }

    #[test]
    fn request_round_trips_through_the_server_decoder() {
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        let host = Host::Endpoint {
            prefix: b"lg",
            index: 17,
        };
        put_request(&mut out, &mut scratch, host, 42, &[b'x'; 300], [1, 2, 3, 4]);
        let msg = decode_one(out);
        let info = head::inspect(&msg, &HeadLimits::default()).unwrap();
        assert_eq!(info.kind, HeadKind::Request);
        assert_eq!(info.cseq, 42);
        assert_eq!(info.host_name(&msg), Some(&b"lg-17"[..]));
        assert_eq!(&msg[info.head_len..], &[b'x'; 300][..]);
    }

    #[test]
    fn response_round_trips() {
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        put_response(&mut out, &mut scratch, 9, b"hello", [9, 8, 7, 6]);
        let msg = decode_one(out);
        let info = head::inspect(&msg, &HeadLimits::default()).unwrap();
        assert_eq!(info.kind, HeadKind::Response);
        assert_eq!(info.status, 200);
        assert_eq!(info.cseq, 9);
        assert_eq!(&msg[info.head_len..], b"hello");
        assert_eq!(error_token(&msg), None);
    }

    #[test]
    fn error_tokens() {
        let msg = b"HTTP/1.1 503 Service Unavailable\r\nCSeq: 3\r\nhttpws-error: target-busy\r\n\
                    Content-Length: 0\r\n\r\n";
        assert_eq!(error_token(msg).as_deref(), Some("target-busy"));
    }
}
