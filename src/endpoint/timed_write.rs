//! Writes to a local peer (a client of the listener, a service), each bounded in time where
//! asked: a peer that stops reading loses its connection rather than holding a slot, or a
//! stream, for ever. Pieces go out with vectored writes, so a head and its body, or a chunk's
//! size line, data and CRLF, cost one system call.

use std::future::Future;
use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `io` within `limit`; past it a `TimedOut` error, which ends the connection.
pub async fn within<T>(
    limit: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(limit, io)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Write head and body with vectored writes (one syscall for a small response).
pub async fn write_two<W: AsyncWrite + Unpin>(
    stream: &mut W,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n >= head.len() {
            body = &body[n - head.len()..];
            head = &[];
        } else {
            head = &head[n..];
        }
    }
    stream.write_all(body).await
}

/// Write three pieces (a chunk's size line, its data, its CRLF) with vectored writes.
pub async fn write_three<W: AsyncWrite + Unpin>(
    stream: &mut W,
    first: &[u8],
    second: &[u8],
    third: &[u8],
) -> std::io::Result<()> {
    let mut pieces = [first, second, third];
    while pieces.iter().any(|p| !p.is_empty()) {
        let slices = pieces.map(IoSlice::new);
        let mut n = stream.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        for piece in &mut pieces {
            let take = n.min(piece.len());
            *piece = &piece[take..];
            n -= take;
        }
    }
    Ok(())
}
