//! RFC 6455 frame codec: header parsing and encoding, masking, and message reassembly.
//!
//! Everything here is pure (no I/O) so it can be unit-tested, benchmarked and fuzzed on its own.
//! The rules are the strict ones of RFC 6455 (docs/protocol.md §3): a violation is an error
//! whose [`FrameError::close_code`] is what the connection must be closed with.
//!
//! Two properties matter to the proxy and shape the code:
//! - an unfragmented payload is handed out zero-copy, as a [`Bytes`] view of the read buffer
//!   (unmasked in place), so it can be forwarded to another socket without copying;
//! - nothing is allocated on the peer's say-so: a declared length is checked against the limit
//!   as soon as the header is readable, and an idle [`MessageDecoder`] holds no heap memory.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest possible frame header: 2 fixed bytes, 8 bytes of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames (close, ping, pong) carry at most this many payload bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode. Only the six defined by RFC 6455 exist; the others are rejected on input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    /// A later fragment of the message that a `Text` or `Binary` frame began.
    Continuation = 0,
    /// A data message whose payload must be valid UTF-8 (1007 otherwise).
    Text = 1,
    /// A data message of arbitrary bytes.
    Binary = 2,
    /// Begins or answers the closing handshake; the payload is an optional code and reason.
    Close = 8,
    /// Asks the peer for a `Pong` carrying the same payload.
    Ping = 9,
    /// Answers a `Ping`, or stands alone as a one-way heartbeat.
    Pong = 10,
}

impl OpCode {
    /// Control opcodes have the high bit of the nibble set (RFC 6455 §5.5).
    #[inline]
    pub fn is_control(self) -> bool {
        (self as u8) & 0x08 != 0
    }

    /// The opcode for a 4-bit value, or `None` for the reserved ones (3-7, 11-15).
    #[inline]
    pub fn from_u8(v: u8) -> Option<OpCode> {
        match v {
            0 => Some(OpCode::Continuation),
            1 => Some(OpCode::Text),
            2 => Some(OpCode::Binary),
            8 => Some(OpCode::Close),
            9 => Some(OpCode::Ping),
            10 => Some(OpCode::Pong),
            _ => None,
        }
    }
}

/// Which side is decoding. `Server` decodes frames sent by clients: they MUST be masked.
/// `Client` decodes frames sent by a server: they MUST NOT be masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Decoding what a client sent (the proxy): every frame must be masked.
    Server,
    /// Decoding what a server sent (an endpoint): no frame may be masked.
    Client,
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Set on the last (or only) frame of a message.
    pub fin: bool,
    /// What the frame carries; reserved opcodes never get this far.
    pub opcode: OpCode,
    /// The masking key, present exactly when the sender masked the payload.
    pub mask: Option<[u8; 4]>,
    /// The declared payload length, in bytes (below 2^63); limits are the decoder's to check.
    pub payload_len: u64,
    /// Bytes taken by the header itself (2..=14); the payload starts right after.
    pub header_len: usize,
}

/// Every way a peer can break the protocol. One enum so the caller maps any of them to a
/// close code with [`FrameError::close_code`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A client sent an unmasked frame (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    Unmasked,
    /// A server sent a masked frame (RFC 6455 §5.1).
    #[error("server frame is masked")]
    Masked,
    /// RSV1–3 set, though httpws negotiates no extension.
    #[error("reserved bits (RSV1-3) are set without a negotiated extension")]
    ReservedBits,
    /// Opcode 3–7 or 11–15; carries the 4-bit value.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A close, ping or pong with more than [`MAX_CONTROL_PAYLOAD`] bytes; carries the length.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A close, ping or pong with FIN clear: control frames cannot be fragmented.
    #[error("control frame is fragmented (FIN clear)")]
    FragmentedControl,
    /// A continuation frame when no fragmented message was begun.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message still awaits its continuation.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A message whose declared length would pass `max_message_bytes`; closed with 1009.
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// The message's length so far plus this frame's declared payload, in bytes.
        len: u64,
        /// The decoder's `max_message_bytes`.
        limit: usize,
    },
    /// A text message or close reason that is not UTF-8; closed with 1007.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// A close payload of exactly one byte: half a close code.
    #[error("close payload of 1 byte (a close code needs 2)")]
    InvalidClosePayload,
    /// A close code that may not appear on the wire (see [`is_valid_close_code`]); carries it.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A 64-bit payload length with its top bit set, which RFC 6455 §5.2 forbids.
    #[error("64-bit payload length has its most significant bit set")]
    LengthTopBit,
}

impl FrameError {
    /// The close code to send: 1009 for MessageTooLarge, 1007 for InvalidUtf8, 1002 otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::MessageTooLarge { .. } => 1009,
            FrameError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

/// The header length and declared payload length of the frame at the front of `buf`, without
/// validating anything else. `None` if the header is not complete yet.
#[inline]
fn raw_lengths(buf: &[u8]) -> Option<(usize, u64)> {
    let [_, b1, ..] = *buf else {
        return None;
    };
    let len7 = b1 & 0x7F;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 };
    let payload_len = match len7 {
        126 => u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(buf.get(2..10)?);
            u64::from_be_bytes(be)
        }
        n => u64::from(n),
    };
    (buf.len() >= header_len).then_some((header_len, payload_len))
}

/// Parse one frame header from the front of `buf`. Ok(None) if more bytes are needed.
/// Validates: RSV1-3 zero, opcode known, masking per role, control frames have fin set and
/// payload <= 125, 64-bit length has its top bit clear. (Do NOT reject non-minimal length
/// encodings.)
#[inline]
pub fn decode_header(buf: &[u8], role: Role) -> Result<Option<FrameHeader>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    // Everything in the first two bytes is checked before waiting for the rest, so a
    // broken peer is cut off as early as possible.
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBits);
    }
    let raw_opcode = b0 & 0x0F;
    let opcode = OpCode::from_u8(raw_opcode).ok_or(FrameError::ReservedOpcode(raw_opcode))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(FrameError::FragmentedControl);
    }
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(FrameError::Unmasked),
        (Role::Client, true) => return Err(FrameError::Masked),
        _ => {}
    }
    let Some((header_len, payload_len)) = raw_lengths(buf) else {
        return Ok(None);
    };
    if payload_len >> 63 != 0 {
        return Err(FrameError::LengthTopBit);
    }
    // Checked on the decoded length, not the 7-bit field: a short control payload in a
    // non-minimal 16- or 64-bit encoding is legal.
    if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(FrameError::ControlTooLong(payload_len));
    }
    let mask = masked.then(|| {
        let mut key = [0u8; 4];
        key.copy_from_slice(&buf[header_len - 4..header_len]);
        key
    });
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// XOR `payload` with `key` (mask offset 0). Fast: process 8 bytes at a time (u64 from
/// the key repeated), tail bytewise. No unsafe needed (chunks_exact_mut + from_ne_bytes).
#[inline]
pub fn unmask(payload: &mut [u8], key: [u8; 4]) {
    // Native byte order on both sides: the u64 is only a container for 8 key bytes in
    // memory order, so the XOR lines up byte for byte on any endianness.
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // Always Ok (the chunks are exactly 8 long); the `if let` keeps the code panic-free
        // and compiles to nothing.
        if let Ok(word) = <&mut [u8; 8]>::try_from(chunk) {
            *word = (u64::from_ne_bytes(*word) ^ wide).to_ne_bytes();
        }
    }
    // Each chunk was a multiple of 4 long, so the tail starts at key offset 0 again.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Write a frame header into `dst`, return bytes used (2..=14). Uses the minimal length encoding.
#[inline]
pub fn encode_header(
    dst: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) -> usize {
    debug_assert!(
        payload_len >> 63 == 0,
        "RFC 6455 lengths are at most 63 bits"
    );
    dst[0] = (u8::from(fin) << 7) | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if payload_len <= MAX_CONTROL_PAYLOAD as u64 {
        dst[1] = mask_bit | payload_len as u8;
        2
    } else if let Ok(len16) = u16::try_from(payload_len) {
        dst[1] = mask_bit | 126;
        dst[2..4].copy_from_slice(&len16.to_be_bytes());
        4
    } else {
        dst[1] = mask_bit | 127;
        dst[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    };
    if let Some(key) = mask {
        dst[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    n
}

/// Append a whole single frame (fin=1): header + payload, the payload masked with `mask` if given.
pub fn encode_frame(dst: &mut BytesMut, opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) {
    debug_assert!(!opcode.is_control() || payload.len() <= MAX_CONTROL_PAYLOAD);
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, true, opcode, mask, payload.len() as u64);
    // One reservation for the whole frame so the two appends never reallocate twice.
    dst.reserve(n + payload.len());
    dst.put_slice(&header[..n]);
    let start = dst.len();
    dst.put_slice(payload);
    if let Some(key) = mask {
        unmask(&mut dst[start..], key);
    }
}

/// A close frame payload: 2-byte big-endian code + reason, the reason truncated on a char
/// boundary so the whole payload is <= 125 bytes.
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    // A char is at most 4 bytes, so this steps back at most 3 times; `end == 0` is always
    // a boundary, so the loop ends.
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = BytesMut::with_capacity(2 + end);
    out.put_u16(code);
    out.put_slice(&reason.as_bytes()[..end]);
    out.freeze()
}

/// Whether a close code received from a peer is valid (RFC 6455 §7.4: 1000-1003, 1007-1014, 3000-4999).
///
/// 1004-1006 and 1015 are reserved for local use and must never appear on the wire.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Decoding limits for one connection.
#[derive(Clone, Copy, Debug)]
pub struct DecoderConfig {
    /// Which side of the connection decodes, and so which masking rule applies.
    pub role: Role,
    /// The largest data message accepted, summed over all its fragments (1009 beyond it).
    pub max_message_bytes: usize,
}

/// What the decoder yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete data message; opcode is Text or Binary (the opcode of its first frame).
    Message {
        /// `Text` or `Binary`.
        opcode: OpCode,
        /// The whole message, one view of the read buffer when it came in one frame.
        payload: Bytes,
    },
    /// A ping's payload, to be echoed in the pong.
    Ping(Bytes),
    /// A pong's payload, solicited or not.
    Pong(Bytes),
    /// The peer's close frame: it begins the closing handshake, or answers ours.
    Close {
        /// The close code, `None` when the close payload was empty.
        code: Option<u16>,
        /// The close reason, valid UTF-8, possibly empty.
        reason: Bytes,
    },
}

/// A fragmented message being assembled. Boxed behind an `Option` in [`MessageDecoder`] so
/// an idle decoder is one pointer wide and owns nothing.
#[derive(Debug)]
struct Partial {
    opcode: OpCode,
    // A `Vec` rather than `BytesMut` for `reserve_exact`: growth stays within the limit
    // instead of doubling past it, and `Bytes::from(Vec)` hands it out without a copy.
    data: Vec<u8>,
    /// Text only: `data[..utf8_checked]` is known to be valid UTF-8 (what follows is at most
    /// the start of a character cut by a fragment boundary).
    utf8_checked: usize,
}

/// Per-connection reassembly state. MUST hold no heap buffer unless a fragmented message is
/// in progress (the proxy keeps one per idle connection; keep size_of small, e.g. an Option).
///
/// After `decode` returns an error the connection is broken and must be closed with the
/// error's [`FrameError::close_code`]; the decoder's state is then unspecified.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    partial: Option<Box<Partial>>,
}

impl MessageDecoder {
    /// An idle decoder: no message in progress, nothing allocated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode at most one event from the front of `buf`, consuming exactly the bytes of the
    /// frames it used (split_to, so an unfragmented payload is handed out zero-copy as a
    /// Bytes view of `buf`'s storage, unmasked in place). Ok(None) when `buf` holds only a
    /// partial frame (nothing consumed) or when a non-final fragment was consumed (call
    /// again). A frame whose declared length would take the message over
    /// `max_message_bytes` is rejected as soon as its header is readable, before its payload
    /// arrives (never allocate on the peer's say-so). Control frames may arrive between
    /// fragments. Text messages must be valid UTF-8 (1007), checked fragment by fragment so
    /// a message is failed by the first fragment no continuation could make valid. Close
    /// payload: length 1 is invalid, the code must satisfy is_valid_close_code, the reason
    /// must be UTF-8. Continuation without a message in progress, or a new data frame while
    /// one is in progress, are errors.
    ///
    /// Non-final fragments already complete in `buf` are consumed in the same call, so
    /// Ok(None) always means "`buf` holds no complete frame now: read more": a caller that
    /// stops at the first Ok(None) never leaves a decodable frame behind.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        config: &DecoderConfig,
    ) -> Result<Option<Event>, FrameError> {
        loop {
            let Some(header) = decode_header(buf, config.role)? else {
                return Ok(None);
            };
            if !header.opcode.is_control() {
                let so_far = match (header.opcode, &self.partial) {
                    (OpCode::Continuation, Some(partial)) => partial.data.len(),
                    (OpCode::Continuation, None) => return Err(FrameError::UnexpectedContinuation),
                    (_, Some(_)) => return Err(FrameError::ExpectedContinuation),
                    (_, None) => 0,
                };
                // The limit is enforced on the declared length, before the payload arrives.
                let len = (so_far as u64).saturating_add(header.payload_len);
                if len > config.max_message_bytes as u64 {
                    return Err(FrameError::MessageTooLarge {
                        len,
                        limit: config.max_message_bytes,
                    });
                }
            }
            // No overflow: payload_len < 2^63 (checked by decode_header).
            if (buf.len() as u64) < header.header_len as u64 + header.payload_len {
                return Ok(None);
            }
            // Fits in usize: it is at most `buf.len()`.
            let len = header.payload_len as usize;
            let payload_range = header.header_len..header.header_len + len;
            if let Some(key) = header.mask {
                unmask(&mut buf[payload_range.clone()], key);
            }
            let event = match header.opcode {
                OpCode::Ping => Event::Ping(take_payload(buf, header.header_len, len)),
                OpCode::Pong => Event::Pong(take_payload(buf, header.header_len, len)),
                OpCode::Close => parse_close(take_payload(buf, header.header_len, len))?,
                OpCode::Text | OpCode::Binary if header.fin => {
                    let payload = take_payload(buf, header.header_len, len);
                    complete_message(header.opcode, payload)?
                }
                OpCode::Text | OpCode::Binary => {
                    let mut data = Vec::new();
                    reserve_within(&mut data, len, config.max_message_bytes);
                    data.extend_from_slice(&buf[payload_range]);
                    buf.advance(header.header_len + len);
                    let utf8_checked = match header.opcode {
                        OpCode::Text => check_utf8_prefix(&data, 0)?,
                        _ => 0,
                    };
                    self.partial = Some(Box::new(Partial {
                        opcode: header.opcode,
                        data,
                        utf8_checked,
                    }));
                    continue;
                }
                OpCode::Continuation => {
                    // Present: checked above, before waiting for the payload.
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(FrameError::UnexpectedContinuation);
                    };
                    reserve_within(&mut partial.data, len, config.max_message_bytes);
                    partial.data.extend_from_slice(&buf[payload_range]);
                    buf.advance(header.header_len + len);
                    if partial.opcode == OpCode::Text {
                        partial.utf8_checked =
                            check_utf8_prefix(&partial.data, partial.utf8_checked)?;
                    }
                    if !header.fin {
                        continue;
                    }
                    let Some(partial) = self.partial.take() else {
                        return Err(FrameError::UnexpectedContinuation);
                    };
                    let Partial {
                        opcode,
                        data,
                        utf8_checked,
                    } = *partial;
                    // Checked as it arrived: only a character cut short at the end is left.
                    if opcode == OpCode::Text && utf8_checked != data.len() {
                        return Err(FrameError::InvalidUtf8);
                    }
                    Event::Message {
                        opcode,
                        payload: Bytes::from(data),
                    }
                }
            };
            return Ok(Some(event));
        }
    }

    /// Whether a fragmented message is being assembled.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }
}

/// Drop the header and split the payload off the front of `buf` as a view of its storage.
#[inline]
fn take_payload(buf: &mut BytesMut, header_len: usize, len: usize) -> Bytes {
    buf.advance(header_len);
    buf.split_to(len).freeze()
}

#[inline]
fn complete_message(opcode: OpCode, payload: Bytes) -> Result<Event, FrameError> {
    if opcode == OpCode::Text && std::str::from_utf8(&payload).is_err() {
        return Err(FrameError::InvalidUtf8);
    }
    Ok(Event::Message { opcode, payload })
}

/// Check `data[from..]`, the part of a text message not checked yet: Err if it holds a
/// sequence that no further bytes could make valid, else how much of `data` is now known to
/// be valid (a character cut short at the end waits for the next fragment). Each byte is
/// checked once (at most 3 again at a fragment boundary), so fail-fast costs nothing extra.
fn check_utf8_prefix(data: &[u8], from: usize) -> Result<usize, FrameError> {
    let unchecked = data.get(from..).unwrap_or_default();
    match std::str::from_utf8(unchecked) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() => Ok(from + e.valid_up_to()),
        Err(_) => Err(FrameError::InvalidUtf8),
    }
}

fn parse_close(mut payload: Bytes) -> Result<Event, FrameError> {
    match payload.len() {
        0 => Ok(Event::Close {
            code: None,
            reason: payload,
        }),
        1 => Err(FrameError::InvalidClosePayload),
        _ => {
            let code = payload.get_u16();
            if !is_valid_close_code(code) {
                return Err(FrameError::InvalidCloseCode(code));
            }
            if std::str::from_utf8(&payload).is_err() {
                return Err(FrameError::InvalidUtf8);
            }
            Ok(Event::Close {
                code: Some(code),
                reason: payload,
            })
        }
    }
}

/// Make room for `additional` more bytes, growing geometrically (amortised O(1) for many
/// small fragments) but never past `limit`, which the caller has checked `len + additional`
/// against.
fn reserve_within(data: &mut Vec<u8>, additional: usize, limit: usize) {
    let needed = data.len() + additional;
    if needed > data.capacity() {
        let target = needed
            .max(data.capacity() * 2)
            .max(128)
            .min(limit)
            .max(needed);
        data.reserve_exact(target - data.len());
    }
}

/// If `buf` starts with a complete frame header, the total bytes (header + payload) of that
/// frame, so a reader can reserve once for a large frame. None if the header is incomplete.
///
/// Nothing is validated here: check the header with [`decode_header`] (or let
/// [`MessageDecoder::decode`] reject it) before reserving on the strength of this number.
#[inline]
pub fn frame_len_hint(buf: &[u8]) -> Option<u64> {
    let (header_len, payload_len) = raw_lengths(buf)?;
    Some((header_len as u64).saturating_add(payload_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const SERVER: DecoderConfig = DecoderConfig {
        role: Role::Server,
        max_message_bytes: 1 << 20,
    };
    const CLIENT: DecoderConfig = DecoderConfig {
        role: Role::Client,
        max_message_bytes: 1 << 20,
    };

    /// One frame with any fin bit, masked with `mask` if given.
    fn frame(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, fin, opcode, mask, payload.len() as u64);
        let mut out = header[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            unmask(&mut out[start..], key);
        }
        out
    }

    /// A client-to-server (masked) frame.
    fn cframe(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        frame(fin, opcode, Some(KEY), payload)
    }

    fn decode_all(bytes: &[u8], config: &DecoderConfig) -> Result<Vec<Event>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut decoder = MessageDecoder::new();
        let mut events = Vec::new();
        while let Some(event) = decoder.decode(&mut buf, config)? {
            events.push(event);
        }
        assert!(buf.is_empty(), "left {} bytes undecoded", buf.len());
        Ok(events)
    }

    fn decode_one(bytes: &[u8], config: &DecoderConfig) -> Result<Option<Event>, FrameError> {
        MessageDecoder::new().decode(&mut BytesMut::from(bytes), config)
    }

    #[test]
    fn opcode_values() {
        for v in 0..=15u8 {
            match OpCode::from_u8(v) {
                Some(op) => {
                    assert_eq!(op as u8, v);
                    assert_eq!(op.is_control(), v >= 8);
                }
                None => assert!(matches!(v, 3..=7 | 11..=15)),
            }
        }
    }

    #[test]
    fn header_round_trips() {
        for (len, plain_len) in [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 32, 10),
            ((1 << 63) - 1, 10),
        ] {
            for (mask, role) in [(None, Role::Client), (Some(KEY), Role::Server)] {
                for (fin, opcode) in [
                    (true, OpCode::Binary),
                    (false, OpCode::Text),
                    (false, OpCode::Continuation),
                ] {
                    let mut dst = [0u8; MAX_HEADER_LEN];
                    let n = encode_header(&mut dst, fin, opcode, mask, len);
                    let expect_len = plain_len + if mask.is_some() { 4 } else { 0 };
                    assert_eq!(n, expect_len, "len {len}");
                    let expected = FrameHeader {
                        fin,
                        opcode,
                        mask,
                        payload_len: len,
                        header_len: n,
                    };
                    assert_eq!(decode_header(&dst[..n], role), Ok(Some(expected)));
                    assert_eq!(frame_len_hint(&dst[..n]), Some(n as u64 + len));
                    // Any shorter prefix is incomplete, never an error.
                    for cut in 0..n {
                        assert_eq!(decode_header(&dst[..cut], role), Ok(None));
                        assert_eq!(frame_len_hint(&dst[..cut]), None);
                    }
                }
            }
        }
    }

    #[test]
    fn control_header_round_trip() {
        for opcode in [OpCode::Close, OpCode::Ping, OpCode::Pong] {
            let mut dst = [0u8; MAX_HEADER_LEN];
            let n = encode_header(&mut dst, true, opcode, Some(KEY), 125);
            let header = decode_header(&dst[..n], Role::Server).unwrap().unwrap();
            assert_eq!(
                (header.opcode, header.payload_len, header.fin),
                (opcode, 125, true)
            );
        }
    }

    #[test]
    fn non_minimal_lengths_accepted() {
        // A 5-byte ping in 16-bit and 64-bit length encodings.
        let short16 = [0x89, 126, 0, 5];
        let short64 = [0x89, 127, 0, 0, 0, 0, 0, 0, 0, 5];
        for bytes in [&short16[..], &short64[..]] {
            let header = decode_header(bytes, Role::Client).unwrap().unwrap();
            assert_eq!(header.payload_len, 5);
            assert_eq!(header.header_len, bytes.len());
            let mut full = bytes.to_vec();
            full.extend_from_slice(b"hello");
            assert_eq!(
                decode_all(&full, &CLIENT),
                Ok(vec![Event::Ping(Bytes::from_static(b"hello"))])
            );
        }
    }

    #[test]
    fn masking_round_trip() {
        let original: Vec<u8> = (0..1031u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in (0..=40).chain([63, 64, 65, 1000, 1001, 1031]) {
            let mut data = original[..len].to_vec();
            unmask(&mut data, KEY);
            let naive: Vec<u8> = original[..len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ KEY[i % 4])
                .collect();
            assert_eq!(data, naive, "len {len}");
            unmask(&mut data, KEY);
            assert_eq!(data, &original[..len], "len {len}");
        }
    }

    #[test]
    fn encode_frame_then_decode() {
        let payload: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        for len in [0, 1, 125, 126, 65535, 65536, 70_000] {
            let mut wire = BytesMut::new();
            encode_frame(&mut wire, OpCode::Binary, Some(KEY), &payload[..len]);
            assert_eq!(frame_len_hint(&wire), Some(wire.len() as u64));
            // Masked on the wire (for a long enough payload, the bytes differ).
            if len > 8 {
                assert_ne!(&wire[wire.len() - len..], &payload[..len]);
            }
            let events = decode_all(&wire, &SERVER).unwrap();
            assert_eq!(
                events,
                vec![Event::Message {
                    opcode: OpCode::Binary,
                    payload: Bytes::copy_from_slice(&payload[..len])
                }]
            );
            let mut plain = BytesMut::new();
            encode_frame(&mut plain, OpCode::Text, None, b"hi");
            assert_eq!(&plain[..], &[0x81, 2, b'h', b'i']);
        }
    }

    #[test]
    fn header_errors() {
        // Unmasked client frame at a server, masked server frame at a client.
        assert_eq!(
            decode_header(&[0x82, 0], Role::Server),
            Err(FrameError::Unmasked)
        );
        assert_eq!(
            decode_header(&[0x82, 0x80, 1, 2, 3, 4], Role::Client),
            Err(FrameError::Masked)
        );
        for rsv in [0x40, 0x20, 0x10] {
            assert_eq!(
                decode_header(&[0x82 | rsv, 0x80], Role::Server),
                Err(FrameError::ReservedBits)
            );
        }
        for op in [3u8, 7, 0xB, 0xF] {
            assert_eq!(
                decode_header(&[0x80 | op, 0x80], Role::Server),
                Err(FrameError::ReservedOpcode(op))
            );
        }
        // Ping of 126 bytes (16-bit form) and of 2^16 bytes (64-bit form).
        assert_eq!(
            decode_header(&[0x89, 126, 0, 126], Role::Client),
            Err(FrameError::ControlTooLong(126))
        );
        assert_eq!(
            decode_header(&[0x8A, 127, 0, 0, 0, 0, 0, 1, 0, 0], Role::Client),
            Err(FrameError::ControlTooLong(65536))
        );
        assert_eq!(
            decode_header(&[0x09, 0x80], Role::Server),
            Err(FrameError::FragmentedControl)
        );
        assert_eq!(
            decode_header(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0], Role::Client),
            Err(FrameError::LengthTopBit)
        );
        // First-two-byte problems are reported before the rest of the header arrives.
        assert_eq!(
            decode_header(&[0x82, 0xFF], Role::Client),
            Err(FrameError::Masked)
        );
        assert_eq!(decode_header(&[0x82], Role::Client), Ok(None));
        assert_eq!(decode_header(&[], Role::Client), Ok(None));
    }

    #[test]
    fn decoder_errors() {
        let cont = cframe(true, OpCode::Continuation, b"x");
        assert_eq!(
            decode_one(&cont, &SERVER),
            Err(FrameError::UnexpectedContinuation)
        );

        let mut wire = cframe(false, OpCode::Text, b"a");
        wire.extend(cframe(true, OpCode::Binary, b"b"));
        assert_eq!(
            decode_all(&wire, &SERVER),
            Err(FrameError::ExpectedContinuation)
        );

        let bad = cframe(true, OpCode::Text, &[0x66, 0xff, 0x6f]);
        assert_eq!(decode_one(&bad, &SERVER), Err(FrameError::InvalidUtf8));

        let close1 = cframe(true, OpCode::Close, &[3]);
        assert_eq!(
            decode_one(&close1, &SERVER),
            Err(FrameError::InvalidClosePayload)
        );

        let close1005 = cframe(true, OpCode::Close, &1005u16.to_be_bytes());
        assert_eq!(
            decode_one(&close1005, &SERVER),
            Err(FrameError::InvalidCloseCode(1005))
        );

        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend_from_slice(&[0xce, 0xba, 0xe1]);
        let close_bad = cframe(true, OpCode::Close, &bad_reason);
        assert_eq!(
            decode_one(&close_bad, &SERVER),
            Err(FrameError::InvalidUtf8)
        );

        // Header errors come through the decoder unchanged.
        assert_eq!(
            decode_one(&frame(true, OpCode::Ping, None, b""), &SERVER),
            Err(FrameError::Unmasked)
        );
        assert_eq!(
            decode_one(&cframe(true, OpCode::Ping, b""), &CLIENT),
            Err(FrameError::Masked)
        );
    }

    #[test]
    fn close_codes_map() {
        let too_large = FrameError::MessageTooLarge { len: 2, limit: 1 };
        assert_eq!(too_large.close_code(), 1009);
        assert_eq!(FrameError::InvalidUtf8.close_code(), 1007);
        for err in [
            FrameError::Unmasked,
            FrameError::Masked,
            FrameError::ReservedBits,
            FrameError::ReservedOpcode(3),
            FrameError::ControlTooLong(126),
            FrameError::FragmentedControl,
            FrameError::UnexpectedContinuation,
            FrameError::ExpectedContinuation,
            FrameError::InvalidClosePayload,
            FrameError::InvalidCloseCode(1005),
            FrameError::LengthTopBit,
        ] {
            assert_eq!(err.close_code(), 1002, "{err}");
        }
        assert_eq!(
            too_large.to_string(),
            "message of 2 bytes exceeds the limit of 1"
        );
    }

    #[test]
    fn huge_declared_length_rejected_from_header_alone() {
        // Only the 10-byte header of a frame declaring 2^62 bytes (unmasked: server to client).
        let mut dst = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut dst, true, OpCode::Binary, None, 1 << 62);
        assert_eq!(n, 10);
        let mut buf = BytesMut::from(&dst[..n]);
        let capacity = buf.capacity();
        let mut decoder = MessageDecoder::new();
        assert_eq!(
            decoder.decode(&mut buf, &CLIENT),
            Err(FrameError::MessageTooLarge {
                len: 1 << 62,
                limit: CLIENT.max_message_bytes
            })
        );
        // Nothing consumed, nothing reserved, no reassembly buffer started.
        assert_eq!(buf.len(), n);
        assert_eq!(buf.capacity(), capacity);
        assert!(!decoder.in_progress());
        assert_eq!(frame_len_hint(&buf), Some(10 + (1 << 62)));
    }

    #[test]
    fn message_limit_counts_all_fragments() {
        let config = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 10,
        };
        assert!(decode_all(&cframe(true, OpCode::Binary, &[0; 10]), &config).is_ok());
        assert_eq!(
            decode_one(&cframe(true, OpCode::Binary, &[0; 11]), &config),
            Err(FrameError::MessageTooLarge { len: 11, limit: 10 })
        );
        // 6 + 5 over two fragments; the second is rejected from its header alone.
        let mut buf = BytesMut::from(&cframe(false, OpCode::Binary, &[0; 6])[..]);
        let second = cframe(true, OpCode::Continuation, &[0; 5]);
        buf.extend_from_slice(&second[..6]);
        let mut decoder = MessageDecoder::new();
        assert_eq!(
            decoder.decode(&mut buf, &config),
            Err(FrameError::MessageTooLarge { len: 11, limit: 10 })
        );
        // Control frames are not counted against the message limit.
        assert!(decode_all(&cframe(true, OpCode::Ping, &[0; 100]), &config).is_ok());
    }

    #[test]
    fn fragmented_text_with_ping_between() {
        // "héllo wörld" split inside the two-byte 'é' and 'ö'.
        let text = "héllo wörld".as_bytes();
        let mut wire = cframe(false, OpCode::Text, &text[..2]);
        wire.extend(cframe(false, OpCode::Continuation, &text[2..9]));
        wire.extend(cframe(true, OpCode::Ping, b"are you there"));
        wire.extend(cframe(false, OpCode::Continuation, &[]));
        wire.extend(cframe(true, OpCode::Continuation, &text[9..]));

        let mut buf = BytesMut::from(&wire[..]);
        let mut decoder = MessageDecoder::new();
        assert_eq!(
            decoder.decode(&mut buf, &SERVER),
            Ok(Some(Event::Ping(Bytes::from_static(b"are you there"))))
        );
        assert!(decoder.in_progress());
        assert_eq!(
            decoder.decode(&mut buf, &SERVER),
            Ok(Some(Event::Message {
                opcode: OpCode::Text,
                payload: Bytes::from_static(text)
            }))
        );
        assert!(!decoder.in_progress());
        assert!(buf.is_empty());
        assert_eq!(decoder.decode(&mut buf, &SERVER), Ok(None));
    }

    #[test]
    fn fragmented_invalid_utf8_detected_when_complete() {
        let mut wire = cframe(false, OpCode::Text, b"ok ");
        wire.extend(cframe(true, OpCode::Continuation, &[0xc3]));
        assert_eq!(decode_all(&wire, &SERVER), Err(FrameError::InvalidUtf8));
        // Binary is never checked.
        let mut wire = cframe(false, OpCode::Binary, b"ok ");
        wire.extend(cframe(true, OpCode::Continuation, &[0xc3]));
        assert_eq!(
            decode_all(&wire, &SERVER),
            Ok(vec![Event::Message {
                opcode: OpCode::Binary,
                payload: Bytes::from_static(b"ok \xc3")
            }])
        );
    }

    #[test]
    fn fragmented_invalid_utf8_fails_fast() {
        // Autobahn 6.4.1: the second fragment holds U+110000 (out of range) and is rejected
        // before the final fragment is sent.
        let valid = "κόσμε".as_bytes();
        let mut buf = BytesMut::from(&cframe(false, OpCode::Text, valid)[..]);
        let mut decoder = MessageDecoder::new();
        assert_eq!(decoder.decode(&mut buf, &SERVER), Ok(None));
        assert!(decoder.in_progress());
        buf.extend(cframe(
            false,
            OpCode::Continuation,
            &[0xf4, 0x90, 0x80, 0x80],
        ));
        assert_eq!(
            decoder.decode(&mut buf, &SERVER),
            Err(FrameError::InvalidUtf8)
        );
        // 6.4.2: the fragment ends on the first byte that makes it invalid (0xf4 0x90).
        let mut wire = cframe(false, OpCode::Text, valid);
        wire.extend(cframe(false, OpCode::Continuation, &[0xf4, 0x90]));
        assert_eq!(decode_all(&wire, &SERVER), Err(FrameError::InvalidUtf8));
        // A first fragment that is invalid on its own is rejected at once too.
        assert_eq!(
            decode_one(&cframe(false, OpCode::Text, &[0x61, 0xff]), &SERVER),
            Err(FrameError::InvalidUtf8)
        );
        // A character cut by a fragment boundary is not an error until it proves wrong:
        // 0xf4 may start a character, 0xf4 0x90 may not.
        let mut buf = BytesMut::from(&cframe(false, OpCode::Text, &[0x61, 0xf4])[..]);
        let mut decoder = MessageDecoder::new();
        assert_eq!(decoder.decode(&mut buf, &SERVER), Ok(None));
        buf.extend(cframe(false, OpCode::Continuation, &[0x90]));
        assert_eq!(
            decoder.decode(&mut buf, &SERVER),
            Err(FrameError::InvalidUtf8)
        );
        // The same cut completed correctly (U+10FFFF), over three fragments.
        let mut wire = cframe(false, OpCode::Text, &[0x61, 0xf4]);
        wire.extend(cframe(false, OpCode::Continuation, &[0x8f]));
        wire.extend(cframe(true, OpCode::Continuation, &[0xbf, 0xbf]));
        assert_eq!(
            decode_all(&wire, &SERVER),
            Ok(vec![Event::Message {
                opcode: OpCode::Text,
                payload: Bytes::from_static("a\u{10FFFF}".as_bytes())
            }])
        );
        // Binary fragments are never checked.
        let mut wire = cframe(false, OpCode::Binary, &[0xff]);
        wire.extend(cframe(true, OpCode::Continuation, &[0xfe]));
        assert!(decode_all(&wire, &SERVER).is_ok());
    }

    #[test]
    fn byte_by_byte_input() {
        let mut wire = cframe(true, OpCode::Text, "hello, wörld".as_bytes());
        let single_len = wire.len();
        // Then a fragmented message, to check fragments split mid-frame too.
        wire.extend(cframe(false, OpCode::Binary, &[1; 200]));
        wire.extend(cframe(true, OpCode::Continuation, &[2; 3]));

        let mut buf = BytesMut::new();
        let mut decoder = MessageDecoder::new();
        let mut events = Vec::new();
        for (i, &byte) in wire.iter().enumerate() {
            buf.put_u8(byte);
            let before = buf.len();
            match decoder.decode(&mut buf, &SERVER).unwrap() {
                Some(event) => events.push((i + 1, event)),
                None => {
                    // Nothing consumed unless a whole non-final fragment was there.
                    assert!(buf.len() == before || buf.is_empty(), "at byte {i}");
                }
            }
        }
        let mut expected_binary = vec![1u8; 200];
        expected_binary.extend_from_slice(&[2; 3]);
        assert_eq!(
            events,
            vec![
                (
                    single_len,
                    Event::Message {
                        opcode: OpCode::Text,
                        payload: Bytes::from_static("hello, wörld".as_bytes())
                    }
                ),
                (
                    wire.len(),
                    Event::Message {
                        opcode: OpCode::Binary,
                        payload: Bytes::from(expected_binary)
                    }
                ),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_frame_consumes_nothing() {
        let wire = cframe(true, OpCode::Binary, &[9; 300]);
        let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
        let mut decoder = MessageDecoder::new();
        assert_eq!(decoder.decode(&mut buf, &SERVER), Ok(None));
        assert_eq!(buf.len(), wire.len() - 1);
        assert_eq!(
            &buf[..],
            &wire[..wire.len() - 1],
            "not unmasked before complete"
        );
    }

    #[test]
    fn complete_fragments_consumed_in_one_call() {
        // Two whole non-final fragments and half of the last: one call consumes both.
        let first = cframe(false, OpCode::Binary, b"ab");
        let second = cframe(false, OpCode::Continuation, b"cd");
        let last = cframe(true, OpCode::Continuation, b"ef");
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&first);
        buf.extend_from_slice(&second);
        buf.extend_from_slice(&last[..3]);
        let mut decoder = MessageDecoder::new();
        assert_eq!(decoder.decode(&mut buf, &SERVER), Ok(None));
        assert!(decoder.in_progress());
        assert_eq!(&buf[..], &last[..3]);
        buf.extend_from_slice(&last[3..]);
        assert_eq!(
            decoder.decode(&mut buf, &SERVER),
            Ok(Some(Event::Message {
                opcode: OpCode::Binary,
                payload: Bytes::from_static(b"abcdef")
            }))
        );
    }

    #[test]
    fn close_code_validity() {
        for code in [999, 1004, 1005, 1006, 1015, 2999, 5000, 0, u16::MAX] {
            assert!(!is_valid_close_code(code), "{code}");
            let frame = cframe(true, OpCode::Close, &close_payload(code, "bye"));
            assert_eq!(
                decode_one(&frame, &SERVER),
                Err(FrameError::InvalidCloseCode(code))
            );
        }
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(is_valid_close_code(code), "{code}");
            let frame = cframe(true, OpCode::Close, &close_payload(code, "bye"));
            assert_eq!(
                decode_one(&frame, &SERVER),
                Ok(Some(Event::Close {
                    code: Some(code),
                    reason: Bytes::from_static(b"bye")
                }))
            );
        }
    }

    #[test]
    fn empty_close() {
        assert_eq!(
            decode_one(&cframe(true, OpCode::Close, &[]), &SERVER),
            Ok(Some(Event::Close {
                code: None,
                reason: Bytes::new()
            }))
        );
    }

    #[test]
    fn close_payload_truncates_on_char_boundary() {
        assert_eq!(&close_payload(1000, "")[..], &[0x03, 0xe8]);
        let ascii = close_payload(1001, &"a".repeat(300));
        assert_eq!(ascii.len(), MAX_CONTROL_PAYLOAD);
        // 'é' is 2 bytes: 123 would split one, so 122 bytes of reason are kept.
        let accented = close_payload(1000, &"é".repeat(100));
        assert_eq!(accented.len(), 124);
        assert!(std::str::from_utf8(&accented[2..]).is_ok());
        // '€' is 3 bytes: 41 of them are exactly 123.
        assert_eq!(
            close_payload(1000, &"€".repeat(50)).len(),
            MAX_CONTROL_PAYLOAD
        );
        // Always decodable by a strict peer.
        let frame = cframe(true, OpCode::Close, &accented);
        assert!(decode_one(&frame, &SERVER).is_ok());
    }

    #[test]
    fn payload_is_zero_copy() {
        for (config, mask) in [(SERVER, Some(KEY)), (CLIENT, None)] {
            let body: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
            let mut wire = frame(true, OpCode::Binary, mask, &body);
            let header_len = wire.len() - body.len();
            wire.extend(frame(true, OpCode::Ping, mask, b"p"));
            let mut buf = BytesMut::from(&wire[..]);
            let base = buf.as_ptr() as usize;
            let mut decoder = MessageDecoder::new();
            let Some(Event::Message { payload, .. }) = decoder.decode(&mut buf, &config).unwrap()
            else {
                panic!("expected a message");
            };
            assert_eq!(payload, &body[..]);
            assert_eq!(payload.as_ptr() as usize, base + header_len);
            let Some(Event::Ping(ping)) = decoder.decode(&mut buf, &config).unwrap() else {
                panic!("expected a ping");
            };
            let ping_header = if mask.is_some() { 6 } else { 2 };
            assert_eq!(ping.as_ptr() as usize, base + wire.len() - 1);
            assert_eq!(
                ping.len() + ping_header,
                wire.len() - header_len - body.len()
            );
        }
    }

    #[test]
    fn idle_decoder_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<MessageDecoder>(),
            std::mem::size_of::<usize>()
        );
        assert!(!MessageDecoder::new().in_progress());
    }

    #[test]
    fn pong_and_server_side_roles() {
        let wire = frame(true, OpCode::Pong, None, b"pong");
        assert_eq!(
            decode_one(&wire, &CLIENT),
            Ok(Some(Event::Pong(Bytes::from_static(b"pong"))))
        );
    }
}
