//! A body read from a local socket piece by piece, as its framing says, for a body that
//! streams into the tunnel: a client's request body on the listener, a service's response
//! on the service side. Each piece is at most what the caller can send (its credit), so
//! nothing more than one piece and one read's worth waits here; chunked framing is decoded
//! with the one chunked state machine ([`ChunkedScanner`]).

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::endpoint::http1::{BodyLength, Http1Error};
use crate::proto::http1::chunked::ChunkedScanner;

/// Room made for one read, at most.
const READ_BYTES: usize = 64 * 1024;

/// Where a body read piece by piece stands.
#[derive(Debug)]
pub struct BodyReader {
    framing: Framing,
}

#[derive(Debug)]
enum Framing {
    /// This many bytes still to come.
    Length(u64),
    /// Chunked, decoded as it comes.
    Chunked(ChunkedScanner),
    /// Everything until the peer closes (a response without a length, or an upgraded
    /// connection's bytes).
    UntilClose,
    /// The body has ended.
    Done,
}

impl BodyReader {
    /// A reader for a body framed by `length`.
    pub fn new(length: BodyLength) -> BodyReader {
        BodyReader {
            framing: match length {
                BodyLength::Empty | BodyLength::Length(0) => Framing::Done,
                BodyLength::Length(n) => Framing::Length(n),
                BodyLength::Chunked => Framing::Chunked(ChunkedScanner::new()),
                BodyLength::UntilClose => Framing::UntilClose,
            },
        }
    }

    /// Whether the body has been read to its end (framing consumed exactly).
    pub fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// The next piece of the body, at most `max` bytes (`max` ≥ 1), starting with what `buf`
    /// already holds; `None` at its end. A peer that closes before a framed body's end is
    /// [`Http1Error::Closed`]. Bytes past the body stay in `buf`.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        buf: &mut BytesMut,
        max: usize,
    ) -> Result<Option<Bytes>, Http1Error> {
        let max = max.max(1);
        loop {
            match &mut self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(left) => {
                    if !buf.is_empty() {
                        let n = buf
                            .len()
                            .min(max)
                            .min(usize::try_from(*left).unwrap_or(max));
                        *left -= n as u64;
                        if *left == 0 {
                            self.framing = Framing::Done;
                        }
                        return Ok(Some(buf.split_to(n).freeze()));
                    }
                    let want = usize::try_from(*left).unwrap_or(READ_BYTES).min(READ_BYTES);
                    fill(io, buf, want).await?.ok_or(Http1Error::Closed)?;
                }
                Framing::Chunked(scanner) => {
                    // Feeding at most `max` bytes of framing yields at most `max` of data.
                    let window = buf.len().min(max);
                    let mut data = BytesMut::new();
                    let (used, done) = scanner
                        .step(&buf[..window], |range| data.extend_from_slice(&buf[range]))
                        .map_err(|e| Http1Error::Malformed(e.reason()))?;
                    buf.advance(used);
                    if done {
                        self.framing = Framing::Done;
                    }
                    if !data.is_empty() {
                        return Ok(Some(data.freeze()));
                    }
                    if done {
                        return Ok(None);
                    }
                    if used == 0 || buf.is_empty() {
                        fill(io, buf, READ_BYTES).await?.ok_or(Http1Error::Closed)?;
                    }
                }
                Framing::UntilClose => {
                    if !buf.is_empty() {
                        let n = buf.len().min(max);
                        return Ok(Some(buf.split_to(n).freeze()));
                    }
                    if fill(io, buf, max.min(READ_BYTES)).await?.is_none() {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Read once into `buf`, making room for `want` bytes; `None` when the peer closed.
async fn fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    want: usize,
) -> Result<Option<usize>, Http1Error> {
    buf.reserve(want.max(1));
    match io.read_buf(buf).await? {
        0 => Ok(None),
        n => Ok(Some(n)),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Every piece of a body sent as `wire` in `pieces`, read `max` bytes at a time.
    async fn read_all(
        length: BodyLength,
        wire: &'static [u8],
        max: usize,
    ) -> (Vec<Vec<u8>>, BytesMut) {
        let (mut near, mut far) = tokio::io::duplex(64);
        tokio::spawn(async move {
            for piece in wire.chunks(7) {
                far.write_all(piece).await.unwrap();
            }
        });
        let mut reader = BodyReader::new(length);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        while let Some(piece) = reader.next(&mut near, &mut buf, max).await.unwrap() {
            assert!(!piece.is_empty() && piece.len() <= max, "{piece:?}");
            out.push(piece.to_vec());
        }
        assert!(reader.is_done());
        (out, buf)
    }

    #[tokio::test]
    async fn pieces_never_pass_the_limit_and_leave_what_follows() {
        let (out, _) = read_all(BodyLength::Length(11), b"hello world", 4).await;
        assert_eq!(out.concat(), b"hello world");
        let wire = b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\nT: 1\r\n\r\n";
        let (out, rest) = read_all(BodyLength::Chunked, wire, 3).await;
        assert_eq!(out.concat(), b"hello world");
        assert!(rest.is_empty());
        let (out, _) = read_all(BodyLength::UntilClose, b"to the end", 64).await;
        assert_eq!(out.concat(), b"to the end");
        let (out, _) = read_all(BodyLength::Empty, b"", 8).await;
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_body_cut_short_or_misframed_is_an_error() {
        let (mut near, far) = tokio::io::duplex(64);
        let mut far = far;
        far.write_all(b"abc").await.unwrap();
        drop(far);
        let mut reader = BodyReader::new(BodyLength::Length(5));
        let mut buf = BytesMut::new();
        assert_eq!(
            &reader.next(&mut near, &mut buf, 8).await.unwrap().unwrap()[..],
            b"abc"
        );
        assert!(matches!(
            reader.next(&mut near, &mut buf, 8).await,
            Err(Http1Error::Closed)
        ));
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        let mut reader = BodyReader::new(BodyLength::Chunked);
        assert!(matches!(
            reader.next(&mut tokio::io::empty(), &mut buf, 8).await,
            Err(Http1Error::Malformed(_))
        ));
    }
}
