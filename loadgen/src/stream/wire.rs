//! What stream mode puts on the wire (docs/protocol.md §12), as masked client frames appended
//! to a connection's outgoing buffer: the requests a caller sends for each kind of stream,
//! the stream heads and whole answers a server gives, the `~data`/`~end`/`~credit`/`~reset`
//! messages, and the event payload that carries its own intended send time.

use bytes::BytesMut;
use httpws::proto::stream::{self, Direction, ResetReason, Verb};

use crate::wire::{Host, put_decimal, put_masked_message};

/// An event's payload starts with this (one SSE `data:` line per event).
const EVENT_PREFIX: &[u8] = b"data: ";
/// Digits of the intended send time (ns) in an event: every u64 fits.
const EVENT_TIME_DIGITS: usize = 20;
/// Digits of the event's sequence number within its stream.
const EVENT_SEQ_DIGITS: usize = 10;
/// The byte a body is made of (download and upload data, event padding).
pub const FILL: u8 = b'x';

/// Paths the loadgen servers answer (the request line says what to stream).
pub const PATH_EVENTS: &[u8] = b"/events";
pub const PATH_BYTES: &[u8] = b"/bytes";
pub const PATH_SINK: &[u8] = b"/sink";
pub const PATH_SMALL: &[u8] = b"/small";

/// Append a stream message (`verb` about `cseq` in `dir`'s numbering) with `payload`, as one
/// masked frame. `tag` is scratch space for the tag line.
pub fn put_stream(
    out: &mut BytesMut,
    tag: &mut BytesMut,
    verb: Verb,
    dir: Direction,
    cseq: u64,
    payload: &[u8],
    mask: [u8; 4],
) {
    tag.clear();
    stream::write_tag(tag, verb, dir, cseq);
    put_masked_message(out, tag, payload, mask);
}

/// Append `~reset <dir><cseq> <reason>`.
pub fn put_reset(
    out: &mut BytesMut,
    tag: &mut BytesMut,
    dir: Direction,
    cseq: u64,
    reason: ResetReason,
    mask: [u8; 4],
) {
    put_stream(out, tag, Verb::Reset(reason), dir, cseq, &[], mask);
}

/// Write event `seq`, meant to be sent at `intended_ns`, into `scratch` as the payload of one
/// data message of exactly `len` bytes (at least [`crate::args::MIN_EVENT_BYTES`]):
/// `data: <intended> <seq><padding>\n\n`.
pub fn event_payload(scratch: &mut Vec<u8>, intended_ns: u64, seq: u64, len: usize) {
    scratch.clear();
    scratch.extend_from_slice(EVENT_PREFIX);
    put_padded(scratch, intended_ns, EVENT_TIME_DIGITS);
    scratch.push(b' ');
    put_padded(
        scratch,
        seq % 10u64.pow(EVENT_SEQ_DIGITS as u32),
        EVENT_SEQ_DIGITS,
    );
    let fill = len.saturating_sub(scratch.len() + 2);
    scratch.resize(scratch.len() + fill, FILL);
    scratch.extend_from_slice(b"\n\n");
}

/// The intended send time (ns) an event payload carries, if it is one.
pub fn event_time(payload: &[u8]) -> Option<u64> {
    let digits = payload
        .strip_prefix(EVENT_PREFIX)?
        .get(..EVENT_TIME_DIGITS)?;
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// `v` in decimal, zero-padded to `width` digits.
fn put_padded(dst: &mut Vec<u8>, v: u64, width: usize) {
    let start = dst.len();
    put_decimal(dst, v);
    let digits = dst.len() - start;
    if digits < width {
        dst.splice(start..start, std::iter::repeat_n(b'0', width - digits));
    }
}

/// What a caller asks a server for.
#[derive(Clone, Copy, Debug)]
pub enum Ask {
    /// An event stream: an event of `bytes` every `interval_us`.
    Events { interval_us: u64, bytes: usize },
    /// A streamed download of `len` bytes (`None`: until the caller resets it), at `rate`
    /// bytes per second (`None`: as fast as the credit allows).
    Bytes { len: Option<u64>, rate: Option<u64> },
    /// A streamed upload of `len` bytes follows the head.
    Sink { len: u64 },
    /// A small whole request whose body comes back whole.
    Small,
}

/// Append the request for `ask` from a caller to `host` as CSeq `cseq`, with `body` (only
/// [`Ask::Small`] has one), as one masked frame.
pub fn put_request(
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    host: Host<'_>,
    cseq: u64,
    ask: Ask,
    body: &[u8],
    mask: [u8; 4],
) {
    scratch.clear();
    match ask {
        Ask::Events { interval_us, bytes } => {
            scratch.extend_from_slice(b"GET ");
            scratch.extend_from_slice(PATH_EVENTS);
            scratch.extend_from_slice(b"?interval_us=");
            put_decimal(scratch, interval_us);
            scratch.extend_from_slice(b"&bytes=");
            put_decimal(scratch, bytes as u64);
        }
        Ask::Bytes { len, rate } => {
            scratch.extend_from_slice(b"GET ");
            scratch.extend_from_slice(PATH_BYTES);
            let mut sep = b'?';
            if let Some(len) = len {
                scratch.extend_from_slice(&[sep, b'n', b'=']);
                put_decimal(scratch, len);
                sep = b'&';
            }
            if let Some(rate) = rate {
                scratch.extend_from_slice(&[sep]);
                scratch.extend_from_slice(b"rate=");
                put_decimal(scratch, rate);
            }
        }
        Ask::Sink { .. } => {
            scratch.extend_from_slice(b"POST ");
            scratch.extend_from_slice(PATH_SINK);
        }
        Ask::Small => {
            scratch.extend_from_slice(b"POST ");
            scratch.extend_from_slice(PATH_SMALL);
        }
    }
    scratch.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    match host {
        Host::Endpoint { prefix, index } => {
            scratch.extend_from_slice(prefix);
            scratch.push(b'-');
            put_decimal(scratch, index as u64);
        }
        Host::Fixed(name) => scratch.extend_from_slice(name),
    }
    scratch.extend_from_slice(b"\r\nCSeq: ");
    put_decimal(scratch, cseq);
    match ask {
        Ask::Events { .. } => scratch.extend_from_slice(b"\r\nAccept: text/event-stream"),
        Ask::Sink { len } => {
            scratch.extend_from_slice(b"\r\nHttpws-Stream: body\r\nContent-Length: ");
            put_decimal(scratch, len);
        }
        Ask::Bytes { .. } | Ask::Small => {}
    }
    if !matches!(ask, Ask::Sink { .. }) {
        scratch.extend_from_slice(b"\r\nContent-Length: ");
        put_decimal(scratch, body.len() as u64);
    }
    scratch.extend_from_slice(b"\r\n\r\n");
    put_masked_message(out, scratch, body, mask);
}

/// Append a stream head answering `cseq`: `200 OK`, `Httpws-Stream: body`, and the length
/// when it is known.
pub fn put_stream_response(
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    cseq: u64,
    content_type: &[u8],
    len: Option<u64>,
    mask: [u8; 4],
) {
    scratch.clear();
    scratch.extend_from_slice(b"HTTP/1.1 200 OK\r\nCSeq: ");
    put_decimal(scratch, cseq);
    scratch.extend_from_slice(b"\r\nContent-Type: ");
    scratch.extend_from_slice(content_type);
    if let Some(len) = len {
        scratch.extend_from_slice(b"\r\nContent-Length: ");
        put_decimal(scratch, len);
    }
    scratch.extend_from_slice(b"\r\nHttpws-Stream: body\r\n\r\n");
    put_masked_message(out, scratch, &[], mask);
}

/// Append a whole answer to `cseq` with `status` and `body`.
pub fn put_whole_response(
    out: &mut BytesMut,
    scratch: &mut Vec<u8>,
    cseq: u64,
    status: &[u8],
    body: &[u8],
    mask: [u8; 4],
) {
    scratch.clear();
    scratch.extend_from_slice(b"HTTP/1.1 ");
    scratch.extend_from_slice(status);
    scratch.extend_from_slice(b"\r\nCSeq: ");
    put_decimal(scratch, cseq);
    scratch.extend_from_slice(b"\r\nContent-Length: ");
    put_decimal(scratch, body.len() as u64);
    scratch.extend_from_slice(b"\r\n\r\n");
    put_masked_message(out, scratch, body, mask);
}

/// The request target of a request message (between the method and the version).
pub fn request_target(msg: &[u8]) -> &[u8] {
    let line_end = msg.iter().position(|&b| b == b'\r').unwrap_or(msg.len());
    let line = &msg[..line_end];
    let mut parts = line.split(|&b| b == b' ');
    parts.next();
    parts.next().unwrap_or_default()
}

/// The path of a request target (before any `?`).
pub fn target_path(target: &[u8]) -> &[u8] {
    target.split(|&b| b == b'?').next().unwrap_or_default()
}

/// The decimal value of query parameter `name` in a request target.
pub fn query_u64(target: &[u8], name: &[u8]) -> Option<u64> {
    let query = target.splitn(2, |&b| b == b'?').nth(1)?;
    query.split(|&b| b == b'&').find_map(|pair| {
        let value = pair.strip_prefix(name)?.strip_prefix(b"=")?;
        std::str::from_utf8(value).ok()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use httpws::proto::frame::{DecoderConfig, Event, MessageDecoder, OpCode, Role};
    use httpws::proto::head::{self, HeadKind, HeadLimits};

    fn decode_one(mut wire: BytesMut) -> Vec<u8> {
        let config = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1 << 20,
        };
        match MessageDecoder::new().decode(&mut wire, &config) {
            Ok(Some(Event::Message { opcode, payload })) => {
                assert_eq!(opcode, OpCode::Binary);
                payload.to_vec()
            }
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn events_carry_their_time() {
        let mut p = Vec::new();
        event_payload(&mut p, 1_234_567_890_123, 7, 64);
        assert_eq!(p.len(), 64);
        assert!(p.starts_with(b"data: 00000001234567890123 0000000007x"));
        assert!(p.ends_with(b"x\n\n"));
        assert_eq!(event_time(&p), Some(1_234_567_890_123));
        event_payload(&mut p, u64::MAX, u64::MAX, crate::args::MIN_EVENT_BYTES);
        assert_eq!(p.len(), crate::args::MIN_EVENT_BYTES);
        assert_eq!(event_time(&p), Some(u64::MAX));
        assert_eq!(event_time(b"data: 12x"), None);
        assert_eq!(event_time(b"nope"), None);
    }

    #[test]
    fn stream_messages_parse_back() {
        let mut out = BytesMut::new();
        let mut tag = BytesMut::new();
        put_stream(
            &mut out,
            &mut tag,
            Verb::Data,
            Direction::Incoming,
            5,
            b"abc",
            [1, 2, 3, 4],
        );
        let msg = decode_one(out);
        let parsed = stream::parse(&msg).unwrap();
        assert_eq!(parsed.verb, Verb::Data);
        assert_eq!(parsed.dir, Direction::Incoming);
        assert_eq!(parsed.cseq, 5);
        assert_eq!(&msg[parsed.payload_at..], b"abc");
    }

    #[test]
    fn requests_say_what_to_stream() {
        let host = Host::Endpoint {
            prefix: b"lg",
            index: 3,
        };
        let mut scratch = Vec::new();
        for (ask, target, streamed) in [
            (
                Ask::Events {
                    interval_us: 1000,
                    bytes: 64,
                },
                &b"/events?interval_us=1000&bytes=64"[..],
                false,
            ),
            (
                Ask::Bytes {
                    len: Some(9),
                    rate: None,
                },
                b"/bytes?n=9",
                false,
            ),
            (
                Ask::Bytes {
                    len: None,
                    rate: None,
                },
                b"/bytes",
                false,
            ),
            (
                Ask::Bytes {
                    len: None,
                    rate: Some(5),
                },
                b"/bytes?rate=5",
                false,
            ),
            (Ask::Sink { len: 10 }, b"/sink", true),
        ] {
            let mut out = BytesMut::new();
            put_request(&mut out, &mut scratch, host, 11, ask, &[], [0, 0, 0, 1]);
            let msg = decode_one(out);
            let info = head::inspect(&msg, &HeadLimits::default()).unwrap();
            assert_eq!(info.kind, HeadKind::Request);
            assert_eq!(info.cseq, 11);
            assert_eq!(info.stream, streamed);
            assert_eq!(info.host_name(&msg), Some(&b"lg-3"[..]));
            assert_eq!(request_target(&msg), target);
        }
        assert_eq!(query_u64(b"/bytes?n=9", b"n"), Some(9));
        assert_eq!(
            query_u64(b"/events?interval_us=5&bytes=64", b"bytes"),
            Some(64)
        );
        assert_eq!(query_u64(b"/bytes", b"n"), None);
        assert_eq!(query_u64(b"/bytes?n=1&rate=5", b"rate"), Some(5));
        assert_eq!(target_path(b"/bytes?n=9"), b"/bytes");
    }

    #[test]
    fn stream_heads_are_stream_heads() {
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        put_stream_response(
            &mut out,
            &mut scratch,
            4,
            b"text/event-stream",
            None,
            [5; 4],
        );
        let msg = decode_one(out);
        let info = head::inspect(&msg, &HeadLimits::default()).unwrap();
        assert_eq!(info.kind, HeadKind::Response);
        assert_eq!(info.status, 200);
        assert!(info.stream);
        assert_eq!(info.head_len, msg.len());
    }
}
