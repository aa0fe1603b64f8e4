//! Finding the end of a chunked body as its bytes arrive, without decoding it: the public
//! ingress relays a chunked request body as it came, and only needs to know where it ends.
//!
//! Each byte is looked at once however the body is split across reads. The grammar is RFC 9112
//! §7.1, read strictly: sizes are hex digits only (no whitespace), every line ends in CRLF,
//! chunk data is followed by CRLF, trailer lines end with an empty line.

/// Most hex digits in a chunk size (2^64 - 1).
const MAX_SIZE_DIGITS: u8 = 16;
/// Longest chunk-size line extension or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size")]
    BadSize,
    #[error("chunk data not followed by CRLF")]
    BadDataEnd,
    #[error("a chunk line does not end in CRLF")]
    BadLineEnd,
    #[error("a chunk extension or trailer line is too long")]
    LineTooLong,
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

/// Incremental scanner: feed it the body as it grows with [`scan`](Self::scan).
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    /// Bytes of `body` already looked at.
    pos: usize,
    size: u64,
    line: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    pub fn new() -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0 },
            pos: 0,
            size: 0,
            line: 0,
        }
    }

    /// Look at the bytes of `body` (the whole body received so far, growing between calls)
    /// not seen yet. `Ok(Some(n))`: the chunked body is complete and is `body[..n]`; anything
    /// after it belongs to the next message. `Ok(None)`: more bytes are needed.
    pub fn scan(&mut self, body: &[u8]) -> Result<Option<usize>, ChunkedError> {
        while self.pos < body.len() {
            if let State::Data(left) = self.state {
                // Data is skipped, not inspected.
                let take = (body.len() - self.pos).min(usize::try_from(left).unwrap_or(usize::MAX));
                self.pos += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = body[self.pos];
            self.pos += 1;
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
                        State::TrailerLine
                    }
                },
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::FinalLf if b == b'\n' => State::Done,
                State::TrailerLf | State::FinalLf => return Err(ChunkedError::BadLineEnd),
                // Not reached: data is skipped above and `Done` returns below.
                State::Data(_) | State::Done => return Err(ChunkedError::BadDataEnd),
            };
            if self.state == State::Done {
                return Ok(Some(self.pos));
            }
        }
        Ok(None)
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
