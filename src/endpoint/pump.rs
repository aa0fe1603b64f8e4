//! Bytes between a local socket and a stream exchange, both ways, used by the listener and
//! the service side alike:
//!
//! - [`into_tunnel`]: what a local peer sends (a body read as its framing says, or an
//!   upgraded connection's bytes) into a [`BodyWriter`], each piece read only once the far
//!   side has granted credit for it, so a fast local sender is slowed by TCP, not held here;
//! - [`out_of_tunnel`]: an [`InboundBody`] written to a local peer, raw or chunked, each
//!   piece's credit granted back only once the peer has taken it;
//! - [`splice`]: both at once, for a connection upgraded by a `101`.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::endpoint::body_reader::BodyReader;
use crate::endpoint::http1::{self, BodyLength, CHUNK_END, Http1Error, LAST_CHUNK};
use crate::endpoint::stream::{BodyError, BodyWriter, InboundBody};
use crate::endpoint::timed_write::{within, write_three, write_two};

/// Why bytes stopped before their end (the exchange has been reset by then, or was over).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PumpError {
    /// The local peer's body broke its framing, or its connection failed or closed mid-body.
    #[error("the local side: {0}")]
    Local(#[from] Http1Error),
    /// The local peer sent nothing, or took nothing, for the allowed time.
    #[error("the local side stalled for {0:?}")]
    Stalled(Duration),
    /// The exchange stopped (reset, answered whole, tunnel gone).
    #[error("the stream: {0}")]
    Tunnel(#[from] BodyError),
}

/// Send what `reader` reads from `rd` (starting with `buf`) through `writer`, then `end`.
/// Each read may wait `idle` at most, when given. On an error the writer is dropped, which
/// resets the exchange.
pub(crate) async fn into_tunnel<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    mut reader: BodyReader,
    mut writer: BodyWriter,
    idle: Option<Duration>,
) -> Result<(), PumpError> {
    loop {
        let credit = writer.credit().await?;
        let next = async {
            let next = reader.next(rd, buf, credit);
            match idle {
                Some(limit) => tokio::time::timeout(limit, next)
                    .await
                    .map_err(|_| PumpError::Stalled(limit))?
                    .map_err(PumpError::from),
                None => next.await.map_err(PumpError::from),
            }
        };
        // A reset must not wait for the local peer's next bytes (it may send none).
        let piece = tokio::select! {
            why = writer.closed() => return Err(why.into()),
            piece = next => piece?,
        };
        match piece {
            Some(piece) => writer.send(piece).await?,
            None => {
                writer.end().await?;
                return Ok(());
            }
        }
    }
}

/// Write `body` to `wr` as it arrives, chunk-framed when `chunked` (with the last chunk at
/// its end), each write within `limit`. On an error the caller decides what becomes of
/// `body` (dropping it resets the exchange).
pub(crate) async fn out_of_tunnel<W: AsyncWrite + Unpin>(
    wr: &mut W,
    body: &mut InboundBody,
    chunked: bool,
    limit: Duration,
) -> Result<(), PumpError> {
    let stalled = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::TimedOut => PumpError::Stalled(limit),
        _ => PumpError::Local(e.into()),
    };
    while let Some(piece) = body.chunk().await {
        let piece = piece?;
        let n = piece.len();
        if chunked {
            let mut size = BytesMut::with_capacity(20);
            http1::put_chunk_size(&mut size, n);
            within(limit, write_three(wr, &size, &piece, CHUNK_END))
                .await
                .map_err(stalled)?;
        } else {
            within(limit, write_two(wr, &piece, b""))
                .await
                .map_err(stalled)?;
        }
        body.release(n);
    }
    if chunked {
        within(limit, write_two(wr, LAST_CHUNK, b""))
            .await
            .map_err(stalled)?;
    }
    Ok(())
}

/// An upgraded connection (after a `101`) spliced onto its exchange: the peer's bytes
/// (starting with `buf`) go out through `writer`, the far side's come in through `body`. The
/// peer closing its side ends ours (`end`); the far side's `end` half-closes the peer's. True
/// when both directions ended cleanly; false when one broke, and then the connection is
/// reset, so the peer cannot take a broken stream for a finished one.
pub(crate) async fn splice(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    body: InboundBody,
    writer: BodyWriter,
    limit: Duration,
) -> bool {
    let clean = {
        let (mut rd, mut wr) = stream.split();
        let up = into_tunnel(
            &mut rd,
            buf,
            BodyReader::new(BodyLength::UntilClose),
            writer,
            None,
        );
        let mut body = body;
        let down = async {
            out_of_tunnel(&mut wr, &mut body, false, limit).await?;
            wr.shutdown().await.map_err(|e| PumpError::Local(e.into()))
        };
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => match r {
                    Ok(()) => up_done = true,
                    Err(e) => {
                        tracing::debug!(error = %e, "upgraded connection: the local side's bytes stopped");
                        break false;
                    }
                },
                r = &mut down, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(e) => {
                        tracing::debug!(error = %e, "upgraded connection: the far side's bytes stopped");
                        break false;
                    }
                },
            }
            if up_done && down_done {
                break true;
            }
        }
    };
    if !clean {
        // A reset, not a close: the peer must not read the break as the far side's end.
        reset_on_close(stream);
    }
    clean
}

/// Make the connection end with a TCP reset when it is dropped (`SO_LINGER` of zero, which
/// does not block), so that its peer sees a broken connection rather than an orderly end.
pub(crate) fn reset_on_close(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
