//! The chunked transfer coding (RFC 9112 §7.1), as its bytes arrive: where a body ends, and
//! its data — decoded into one buffer (the agent re-frames bodies) or split off the received
//! bytes piece by piece without copying (the public ingress streams an upload as data).
//!
//! Each byte is looked at once however the body is split across reads. The grammar is RFC 9112
//! §7.1, read strictly: sizes are hex digits only (no whitespace), every line ends in CRLF,
//! chunk data is followed by CRLF, trailer lines end with an empty line.

use bytes::{Buf, Bytes, BytesMut};

/// Most hex digits in a chunk size (2^64 - 1).
const MAX_SIZE_DIGITS: u8 = 16;
/// Longest chunk-size line extension or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;
/// Most trailer bytes accepted after the last chunk, all lines together (they are relayed
/// or dropped, never used, so a sender must not be able to send them for ever).
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum ChunkedError {
    /// A chunk size that is not 1–16 hex digits ended by `;` or CR.
    BadSize,
    /// Chunk data not followed by CRLF: the size and the data disagree.
    BadDataEnd,
    /// A size, extension or trailer line not ended by CRLF (a bare LF, or a CR alone).
    BadLineEnd,
    /// A chunk extension or trailer line over 4,096 bytes.
    LineTooLong,
    /// More than [`MAX_TRAILER_BYTES`] of trailer lines in all.
    TrailerTooLarge,
}

impl ChunkedError {
    /// The reason, as a static text.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadSize => "invalid chunk size",
            Self::BadDataEnd => "chunk data not followed by CRLF",
            Self::BadLineEnd => "a chunk line does not end in CRLF",
            Self::LineTooLong => "a chunk extension or trailer line is too long",
            Self::TrailerTooLarge => "the trailer fields are too large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (`digits` so far).
    Size {
        digits: u8,
    },
    /// In a chunk extension (`;...`) up to its CR.
    Extension,
    /// Expecting the LF that ends a size line.
    SizeLf,
    /// Inside chunk data: this many bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// The chunked grammar as a state machine, fed bytes as they arrive: [`scan`](Self::scan)
/// finds where a body ends without decoding it (the public ingress relays a chunked body as
/// it came), [`ChunkedDecoder`] decodes one (the agent re-frames bodies). Both are this one
/// machine, so the proxy and the agent can never disagree on where a chunked body ends.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    /// Bytes of the body already looked at (for [`scan`](Self::scan)).
    pos: usize,
    size: u64,
    line: usize,
    /// Trailer bytes so far (bounded by [`MAX_TRAILER_BYTES`]).
    trailer: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    /// A scanner at the start of a body.
    pub fn new() -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0 },
            pos: 0,
            size: 0,
            line: 0,
            trailer: 0,
        }
    }

    /// Look at the bytes of `body` (the whole body received so far, growing between calls)
    /// not seen yet. `Ok(Some(n))`: the chunked body is complete and is `body[..n]`; anything
    /// after it belongs to the next message. `Ok(None)`: more bytes are needed.
    pub fn scan(&mut self, body: &[u8]) -> Result<Option<usize>, ChunkedError> {
        let (used, done) = self.step(body.get(self.pos..).unwrap_or_default(), |_| {})?;
        self.pos += used;
        Ok(done.then_some(self.pos))
    }

    /// Data bytes of the current chunk still to come (0 between chunks).
    pub fn chunk_left(&self) -> u64 {
        match self.state {
            State::Data(left) => left,
            _ => 0,
        }
    }

    /// Run the machine over `input`, from its first byte: how many bytes it used and whether
    /// the body ended there (the rest of `input` is not part of it). `on_data` gets the range
    /// of `input` each piece of chunk data occupies, in order.
    pub fn step(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<(usize, bool), ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            if let State::Data(left) = self.state {
                // Data is handed on, not inspected.
                let take = (input.len() - pos).min(usize::try_from(left).unwrap_or(usize::MAX));
                on_data(pos..pos + take);
                pos += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = input[pos];
            pos += 1;
            self.state = match self.state {
                State::Size { digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == MAX_SIZE_DIGITS {
                            return Err(ChunkedError::BadSize);
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0);
                        self.size = (self.size << 4) | u64::from(v);
                        State::Size { digits: digits + 1 }
                    }
                    b';' if digits > 0 => {
                        self.line = 0;
                        State::Extension
                    }
                    b'\r' if digits > 0 => State::SizeLf,
                    _ => return Err(ChunkedError::BadSize),
                },
                State::Extension => match b {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    _ => {
                        self.line += 1;
                        if self.line > MAX_LINE_BYTES {
                            return Err(ChunkedError::LineTooLong);
                        }
                        State::Extension
                    }
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    let size = std::mem::take(&mut self.size);
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size { digits: 0 },
                State::DataCr | State::DataLf => return Err(ChunkedError::BadDataEnd),
                State::TrailerStart => match b {
                    b'\r' => State::FinalLf,
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    _ => {
                        self.line = 1;
                        self.count_trailer()?;
                        State::TrailerLine
                    }
                },
                State::TrailerLine => match b {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    _ => {
                        self.line += 1;
                        if self.line > MAX_LINE_BYTES {
                            return Err(ChunkedError::LineTooLong);
                        }
                        self.count_trailer()?;
                        State::TrailerLine
                    }
                },
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::FinalLf if b == b'\n' => State::Done,
                State::TrailerLf | State::FinalLf => return Err(ChunkedError::BadLineEnd),
                // Not reached: data is handled above and `Done` returns below.
                State::Data(_) | State::Done => return Err(ChunkedError::BadDataEnd),
            };
            if self.state == State::Done {
                return Ok((pos, true));
            }
        }
        Ok((pos, false))
    }

    fn count_trailer(&mut self) -> Result<(), ChunkedError> {
        self.trailer += 1;
        if self.trailer > MAX_TRAILER_BYTES {
            return Err(ChunkedError::TrailerTooLarge);
        }
        Ok(())
    }
}

/// What [`ChunkedScanner::take_data`] found next in the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedPiece {
    /// A piece of chunk data, split off the received bytes.
    Data(Bytes),
    /// Everything received has been used up (or no more data was allowed): read more.
    More,
    /// The body is complete; what is left of the received bytes follows it.
    End,
}

impl ChunkedScanner {
    /// The next piece of the body's data in `src` (the bytes received and not used yet, at
    /// the machine's position), of at most `max` bytes: chunk framing is consumed and
    /// dropped (extensions and trailer fields included), data is split off `src` as it is.
    /// `max == 0` takes nothing but framing up to the next data byte.
    pub fn take_data(
        &mut self,
        src: &mut BytesMut,
        max: usize,
    ) -> Result<ChunkedPiece, ChunkedError> {
        // Framing, a byte at a time: only a few bytes per chunk, and stepping one byte never
        // reaches into the data that follows.
        while self.chunk_left() == 0 {
            if src.is_empty() {
                return Ok(ChunkedPiece::More);
            }
            let (used, done) = self.step(&src[..1], |_| {})?;
            src.advance(used);
            if done {
                return Ok(ChunkedPiece::End);
            }
        }
        let left = usize::try_from(self.chunk_left()).unwrap_or(usize::MAX);
        let n = left.min(max).min(src.len());
        if n == 0 {
            return Ok(ChunkedPiece::More);
        }
        let (used, _) = self.step(&src[..n], |_| {})?;
        Ok(ChunkedPiece::Data(src.split_to(used).freeze()))
    }
}

/// Whether `body` is exactly one complete chunked body, with nothing after it.
pub fn is_complete(body: &[u8]) -> bool {
    ChunkedScanner::new().scan(body) == Ok(Some(body.len()))
}

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body breaks the chunked grammar.
    #[error("{0}")]
    Syntax(#[from] ChunkedError),
    /// The body is longer than the limit (a chunk size is checked as soon as it is read).
    #[error("chunked body exceeds {limit} bytes")]
    TooLarge {
        /// The `max_body_bytes` the decoder was given, in bytes.
        limit: usize,
    },
}

/// A chunked body decoded as it arrives: feed it bytes with [`decode`](Self::decode).
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    scanner: ChunkedScanner,
}

impl ChunkedDecoder {
    /// Consume as much of `src` as belongs to the body, appending its data to `body`.
    /// `Ok(true)` once the body is complete (what follows it stays in `src`). The data may
    /// not take `body` past `max_body_bytes`: a chunk that would is refused as soon as its
    /// size is read.
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
        body: &mut BytesMut,
        max_body_bytes: usize,
    ) -> Result<bool, DecodeError> {
        let too_large = DecodeError::TooLarge {
            limit: max_body_bytes,
        };
        let mut over = false;
        let (used, done) = self.scanner.step(src, |range| {
            if body.len() + range.len() > max_body_bytes {
                over = true;
            } else {
                body.extend_from_slice(&src[range]);
            }
        })?;
        if over
            || (body.len() as u64).saturating_add(self.scanner.chunk_left()) > max_body_bytes as u64
        {
            return Err(too_large);
        }
        src.advance(used);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(body: &[u8]) -> Result<Option<usize>, ChunkedError> {
        ChunkedScanner::new().scan(body)
    }

    #[test]
    fn finds_the_end_whole_and_byte_by_byte() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        assert_eq!(whole(body), Ok(Some(end)));
        let mut s = ChunkedScanner::new();
        let mut found = None;
        for n in 1..=body.len() {
            if let Some(e) = s.scan(&body[..n]).unwrap() {
                found = Some(e);
                break;
            }
        }
        assert_eq!(found, Some(end));
    }

    /// Everything `take_data` yields for `body` fed in reads of `read` bytes with at most
    /// `max` per piece: the data, and what was left after the end.
    fn take_all(body: &[u8], read: usize, max: usize) -> (Vec<u8>, Vec<u8>) {
        let mut s = ChunkedScanner::new();
        let mut src = BytesMut::new();
        let mut data = Vec::new();
        let mut fed = 0;
        loop {
            match s.take_data(&mut src, max).unwrap() {
                ChunkedPiece::Data(piece) => {
                    assert!(!piece.is_empty() && piece.len() <= max, "{}", piece.len());
                    data.extend_from_slice(&piece);
                }
                ChunkedPiece::More => {
                    assert!(fed < body.len(), "ran out of input before the end");
                    let n = read.min(body.len() - fed);
                    src.extend_from_slice(&body[fed..fed + n]);
                    fed += n;
                }
                ChunkedPiece::End => {
                    let mut rest = src.to_vec();
                    rest.extend_from_slice(&body[fed..]);
                    return (data, rest);
                }
            }
        }
    }

    #[test]
    fn take_data_splits_off_the_data_however_it_arrives() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for read in [1, 2, 3, 7, body.len()] {
            for max in [1, 4, 64] {
                let (data, rest) = take_all(body, read, max);
                assert_eq!(data, b"hello0123456789", "read {read} max {max}");
                assert_eq!(rest, b"NEXT", "read {read} max {max}");
            }
        }
        let mut s = ChunkedScanner::new();
        let mut src = BytesMut::from(&b"5\r\nhello\r\n"[..]);
        assert_eq!(s.take_data(&mut src, 0), Ok(ChunkedPiece::More));
        assert_eq!(&src[..], b"hello\r\n", "framing went, data stayed");
        let mut src = BytesMut::from(&b"5\r\nhel\nlo"[..]);
        let mut s = ChunkedScanner::new();
        assert_eq!(
            s.take_data(&mut src, 64),
            Ok(ChunkedPiece::Data(Bytes::from_static(b"hel\nl")))
        );
        assert_eq!(s.take_data(&mut src, 64), Err(ChunkedError::BadDataEnd));
    }

    #[test]
    fn incomplete_is_none() {
        assert_eq!(whole(b"5\r\nhel"), Ok(None));
        assert_eq!(whole(b"0\r\n"), Ok(None));
        assert_eq!(whole(b"0\r\n\r"), Ok(None));
        assert_eq!(whole(b""), Ok(None));
    }

    #[test]
    fn refuses_loose_syntax() {
        assert_eq!(
            whole(b" 5\r\nhello\r\n0\r\n\r\n"),
            Err(ChunkedError::BadSize)
        );
        assert_eq!(
            whole(b"5 \r\nhello\r\n0\r\n\r\n"),
            Err(ChunkedError::BadSize)
        );
        assert_eq!(whole(b"\r\n"), Err(ChunkedError::BadSize));
        assert_eq!(whole(b"-1\r\n"), Err(ChunkedError::BadSize));
        assert_eq!(whole(b"5\nhello\r\n"), Err(ChunkedError::BadSize));
        assert_eq!(whole(b"5\r\nhelloXX"), Err(ChunkedError::BadDataEnd));
        assert_eq!(whole(b"0\r\n\n"), Err(ChunkedError::BadLineEnd));
        assert_eq!(whole(b"0\r\nX: 1\n\r\n"), Err(ChunkedError::BadLineEnd));
        assert_eq!(
            whole(b"10000000000000000\r\n"),
            Err(ChunkedError::BadSize),
            "17 hex digits"
        );
    }

    #[test]
    fn agrees_with_the_whole_body_checker_on_relayed_shapes() {
        // Sizes up to u64::MAX are accepted as syntax; the caller's byte limit stops the data.
        assert_eq!(whole(b"ffffffffffffffff\r\nab"), Ok(None));
        let long = format!("1;{}\r\n", "x".repeat(MAX_LINE_BYTES + 1));
        assert_eq!(whole(long.as_bytes()), Err(ChunkedError::LineTooLong));
    }
}
