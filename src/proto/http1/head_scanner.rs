//! Finding the end of an HTTP/1.1 head as its bytes arrive, in linear time.
//!
//! A head may arrive one byte per read. Re-parsing the whole buffer after every read (what a
//! naive `httparse` loop does) costs O(n²) per head, which a slow client turns into a CPU
//! attack; [`HeadScanner`] looks at each byte once, keeps the size and line-count limits as it
//! goes (so an over-long head is refused as soon as it passes a limit, not when it ends), and
//! only then is the complete head handed to the parser, once.

/// Why a head cannot be accepted, found while it was still arriving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// More bytes than the size limit, or more lines than the line limit, without an end.
    #[error("head exceeds the size or header-count limit")]
    TooLarge,
    /// A line ends in LF alone. RFC 9112 §2.2 lets a recipient accept that, but two parsers
    /// then disagree on where lines end, which is how headers get smuggled: refused.
    #[error("bare LF line ending")]
    BareLf,
}

/// Incremental end-of-head detection with limits. Feed it the same growing buffer each time.
#[derive(Clone, Debug)]
pub struct HeadScanner {
    /// Bytes of the buffer already looked at.
    scanned: usize,
    /// Lines ended so far (request or status line included).
    lines: usize,
    max_bytes: usize,
    max_lines: usize,
}

impl HeadScanner {
    /// `max_bytes`: largest head, blank line included; `max_headers`: most header lines.
    pub fn new(max_bytes: usize, max_headers: usize) -> Self {
        Self {
            scanned: 0,
            lines: 0,
            max_bytes,
            // The start line, the headers, and the blank line that ends the head.
            max_lines: max_headers.saturating_add(2),
        }
    }

    /// Look at the bytes of `buf` not seen before. `Ok(Some(n))`: the head is `buf[..n]`;
    /// `Ok(None)`: read more. `buf` must only grow between calls (same head, more bytes).
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ScanError> {
        let end = buf.len().min(self.max_bytes);
        for i in self.scanned..end {
            if buf[i] != b'\n' {
                continue;
            }
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(ScanError::BareLf);
            }
            self.lines += 1;
            // "\r\n\r\n": this line was empty. (i >= 3 is implied by two CRLFs ending here.)
            if i >= 3 && buf[i - 2] == b'\n' {
                return Ok(Some(i + 1));
            }
            if self.lines >= self.max_lines {
                return Err(ScanError::TooLarge);
            }
        }
        self.scanned = end;
        if buf.len() >= self.max_bytes {
            return Err(ScanError::TooLarge);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `head` one byte at a time, as a slow client would.
    fn bytewise(head: &[u8], max_bytes: usize, max_headers: usize) -> Result<usize, ScanError> {
        let mut s = HeadScanner::new(max_bytes, max_headers);
        for n in 1..=head.len() {
            if let Some(end) = s.scan(&head[..n])? {
                return Ok(end);
            }
        }
        Err(ScanError::TooLarge)
    }

    #[test]
    fn finds_the_end_however_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(bytewise(head, 1024, 10), Ok(27));
        let mut s = HeadScanner::new(1024, 10);
        assert_eq!(s.scan(head), Ok(Some(27)));
        let mut s = HeadScanner::new(1024, 10);
        assert_eq!(s.scan(&head[..25]), Ok(None));
        assert_eq!(s.scan(&head[..26]), Ok(None));
        assert_eq!(s.scan(head), Ok(Some(27)));
    }

    #[test]
    fn size_limit_is_inclusive_and_checked_early() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(bytewise(head, head.len(), 10), Ok(head.len()));
        assert_eq!(bytewise(head, head.len() - 1, 10), Err(ScanError::TooLarge));
        // Refused once the limit is reached, not when the head finally ends.
        let mut s = HeadScanner::new(8, 10);
        assert_eq!(s.scan(b"GET /aaa"), Err(ScanError::TooLarge));
    }

    #[test]
    fn line_limit() {
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(bytewise(head, 1024, 2), Ok(head.len()));
        assert_eq!(bytewise(head, 1024, 1), Err(ScanError::TooLarge));
    }

    #[test]
    fn bare_lf_is_refused() {
        assert_eq!(
            bytewise(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 1024, 10),
            Err(ScanError::BareLf)
        );
        assert_eq!(
            bytewise(b"GET / HTTP/1.1\r\nHost: a\r\n\n", 1024, 10),
            Err(ScanError::BareLf)
        );
        assert_eq!(bytewise(b"\n", 1024, 10), Err(ScanError::BareLf));
    }

    #[test]
    fn linear_in_bytes_fed() {
        // 20 KB in 1-byte steps against an 8 KiB limit: refused at the limit, each byte
        // looked at once (the scanner's position only moves forward).
        let flood = b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(512);
        let mut s = HeadScanner::new(8 * 1024, 1000);
        let mut verdict = Ok(None);
        for n in 1..=flood.len() {
            verdict = s.scan(&flood[..n]);
            if verdict != Ok(None) {
                assert_eq!(n, 8 * 1024);
                break;
            }
            assert_eq!(s.scanned, n);
        }
        assert_eq!(verdict, Err(ScanError::TooLarge));
    }
}
