//! Frame codec target: `MessageDecoder::decode` over arbitrary bytes for either role, fed read
//! by read as the proxy does and checked against one whole-buffer decode; `decode_header`,
//! `frame_len_hint` and `unmask` on the same bytes; and an `encode_frame` → decode round trip
//! with the input as the payload (whole, fragmented around a control frame, and in a close).

use bytes::{Bytes, BytesMut};
use httpws::proto::frame::{
    self, DecoderConfig, Event, FrameError, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, MessageDecoder,
    OpCode, Role,
};

use super::input::{Params, Splitter};

/// `max_message_bytes` values, around the edges the codec cares about.
const LIMITS: [usize; 8] = [0, 1, 125, 126, 1000, 65_535, 65_536, 1 << 20];
/// Close codes a peer may send; the round trip picks one.
const CLOSE_CODES: [u16; 8] = [1000, 1001, 1002, 1003, 1007, 1014, 3000, 4999];

/// Input: a flags byte (bit 0: role; bits 1-3: limit; the rest: round-trip choices), a
/// read-size seed, then the wire bytes.
pub fn frame(data: &[u8]) {
    let mut params = Params::new(data);
    let flags = params.byte();
    let seed = params.byte();
    let wire = params.rest();
    let role = if flags & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let config = DecoderConfig {
        role,
        max_message_bytes: LIMITS[usize::from(flags >> 1) % LIMITS.len()],
    };

    check_header(wire, Role::Server);
    check_header(wire, Role::Client);
    check_unmask(wire, flags);

    let whole = decode_stream(wire, &config, Splitter::whole());
    let split = decode_stream(wire, &config, Splitter::new(seed));
    assert_eq!(whole, split, "decoding depends on how the bytes were split");

    round_trip(wire, role, flags, seed);
}

/// What decoding a byte stream came to.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<FrameError>,
    /// The undecoded rest, when the stream ended without an error.
    left: Vec<u8>,
}

/// Feed `wire` in reads of `split`'s sizes, decoding after each read until `Ok(None)`, as the
/// proxy's connection loop does. Checks every answer on the way.
fn decode_stream(wire: &[u8], config: &DecoderConfig, mut split: Splitter) -> Outcome {
    let mut buf = BytesMut::new();
    let mut decoder = MessageDecoder::new();
    let mut events = Vec::new();
    let mut rest = wire;
    loop {
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf, config) {
                Ok(Some(event)) => {
                    check_event(&event, config);
                    events.push(event);
                }
                Ok(None) => {
                    check_waiting(&buf, before, config.role);
                    break;
                }
                Err(error) => {
                    assert!(
                        matches!(error.close_code(), 1002 | 1007 | 1009),
                        "{error:?}"
                    );
                    assert!(!error.to_string().is_empty());
                    return Outcome {
                        events,
                        error: Some(error),
                        left: Vec::new(),
                    };
                }
            }
        }
        if rest.is_empty() {
            return Outcome {
                events,
                error: None,
                left: buf.to_vec(),
            };
        }
        let n = split.next_len(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

/// An event the decoder hands out obeys RFC 6455 and the configured limit.
fn check_event(event: &Event, config: &DecoderConfig) {
    match event {
        Event::Message { opcode, payload } => {
            assert!(
                matches!(opcode, OpCode::Text | OpCode::Binary),
                "{opcode:?}"
            );
            assert!(payload.len() <= config.max_message_bytes);
            if *opcode == OpCode::Text {
                assert!(std::str::from_utf8(payload).is_ok(), "text is not UTF-8");
            }
        }
        Event::Ping(payload) | Event::Pong(payload) => {
            assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        }
        Event::Close { code, reason } => {
            assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
            match code {
                Some(code) => {
                    assert!(frame::is_valid_close_code(*code), "close code {code}");
                    assert!(std::str::from_utf8(reason).is_ok());
                }
                None => assert!(reason.is_empty()),
            }
        }
    }
}

/// `Ok(None)` means "no complete frame in `buf`: read more", having consumed only whole
/// non-final fragments.
fn check_waiting(buf: &[u8], before: usize, role: Role) {
    assert!(buf.len() <= before, "decode grew the buffer");
    match frame::decode_header(buf, role) {
        Ok(Some(header)) => {
            let total = header.header_len as u64 + header.payload_len;
            assert!(
                (buf.len() as u64) < total,
                "Ok(None) with a whole frame of {total} bytes in a buffer of {}",
                buf.len()
            );
        }
        Ok(None) => {}
        Err(e) => panic!("Ok(None) although the buffered header is invalid: {e:?}"),
    }
}

/// `decode_header` on raw bytes: what it accepts is consistent, and re-encodes to itself.
fn check_header(wire: &[u8], role: Role) {
    match frame::decode_header(wire, role) {
        Ok(Some(h)) => {
            assert!((2..=MAX_HEADER_LEN).contains(&h.header_len));
            assert!(h.header_len <= wire.len());
            assert_eq!(h.payload_len >> 63, 0);
            assert_eq!(h.mask.is_some(), role == Role::Server);
            if h.opcode.is_control() {
                assert!(h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64);
            }
            assert_eq!(
                frame::frame_len_hint(wire),
                Some(h.header_len as u64 + h.payload_len)
            );
            let mut dst = [0u8; MAX_HEADER_LEN];
            let n = frame::encode_header(&mut dst, h.fin, h.opcode, h.mask, h.payload_len);
            assert!(n <= h.header_len, "the encoding is minimal");
            let again = frame::decode_header(&dst[..n], role);
            let mut want = h;
            want.header_len = n;
            assert_eq!(again, Ok(Some(want)));
        }
        // Any complete header fits in 14 bytes.
        Ok(None) => assert!(wire.len() < MAX_HEADER_LEN),
        Err(e) => assert_eq!(e.close_code(), 1002, "{e:?}"),
    }
}

/// `unmask` is a bytewise XOR with the key repeated, from any alignment, and an involution.
fn check_unmask(wire: &[u8], flags: u8) {
    let key = [
        flags,
        wire.first().copied().unwrap_or(0x5a),
        0xa5,
        flags ^ 0x3c,
    ];
    for skip in 0..2.min(wire.len() + 1) {
        let original = &wire[skip..];
        let mut masked = original.to_vec();
        frame::unmask(&mut masked, key);
        for (i, (&m, &o)) in masked.iter().zip(original).enumerate() {
            assert_eq!(m, o ^ key[i % 4], "byte {i}");
        }
        frame::unmask(&mut masked, key);
        assert_eq!(masked, original);
    }
}

/// One frame with any fin bit, masked if `mask` is given (the decoder's tests do the same).
fn put_frame(dst: &mut BytesMut, fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, p: &[u8]) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = frame::encode_header(&mut header, fin, opcode, mask, p.len() as u64);
    dst.extend_from_slice(&header[..n]);
    let start = dst.len();
    dst.extend_from_slice(p);
    if let Some(key) = mask {
        frame::unmask(&mut dst[start..], key);
    }
}

/// `payload` goes out with `encode_frame` (and as fragments, and as a close reason) and
/// decodes back to exactly what was sent, for a decoder whose limit is the payload's size.
fn round_trip(payload: &[u8], role: Role, flags: u8, seed: u8) {
    // Clients mask what they send, servers do not.
    let mask = (role == Role::Server).then_some([seed, flags, 0x00, 0xff ^ seed]);
    let opcode = if std::str::from_utf8(payload).is_ok() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let ping = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let code = CLOSE_CODES[usize::from(flags >> 4) % CLOSE_CODES.len()];
    let close = frame::close_payload(code, &String::from_utf8_lossy(payload));

    let mut wire = BytesMut::new();
    let mut expected = Vec::new();
    let message = Event::Message {
        opcode,
        payload: Bytes::copy_from_slice(payload),
    };
    // 1. The whole message in one frame.
    frame::encode_frame(&mut wire, opcode, mask, payload);
    expected.push(message);
    // 2. A ping.
    frame::encode_frame(&mut wire, OpCode::Ping, mask, ping);
    expected.push(Event::Ping(Bytes::copy_from_slice(ping)));
    // 3. The same message in fragments (at most 32, some possibly empty), a pong after the
    //    first one.
    //    (When the first fragment is the last, the message is decoded before the pong.)
    let mut split = Splitter::new(seed);
    let mut rest = payload;
    for i in 0..32 {
        let n = if i == 31 {
            rest.len()
        } else {
            split.next_len(rest.len())
        };
        let (piece, after) = rest.split_at(n);
        rest = after;
        let op = if i == 0 { opcode } else { OpCode::Continuation };
        put_frame(&mut wire, rest.is_empty(), op, mask, piece);
        if rest.is_empty() {
            expected.push(Event::Message {
                opcode,
                payload: Bytes::copy_from_slice(payload),
            });
        }
        if i == 0 {
            frame::encode_frame(&mut wire, OpCode::Pong, mask, ping);
            expected.push(Event::Pong(Bytes::copy_from_slice(ping)));
        }
        if rest.is_empty() {
            break;
        }
    }
    // 4. A close carrying (a prefix of) the payload as its reason.
    frame::encode_frame(&mut wire, OpCode::Close, mask, &close);
    expected.push(Event::Close {
        code: Some(code),
        reason: close.slice(2..),
    });

    let config = DecoderConfig {
        role,
        max_message_bytes: payload.len(),
    };
    let got = decode_stream(&wire, &config, Splitter::new(seed.rotate_left(3)));
    assert_eq!(
        got,
        Outcome {
            events: expected,
            error: None,
            left: Vec::new(),
        },
        "round trip"
    );
}
