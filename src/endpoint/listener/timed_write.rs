//! Writes to a local client, each bounded in time: a client that stops reading loses its
//! connection rather than holding one of the `--max-clients` slots.

use std::future::Future;
use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `io` within `limit`; past it a `TimedOut` error, which ends the connection.
pub(super) async fn within<T>(
    limit: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(limit, io)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Write head and body with vectored writes (one syscall for a small response).
pub(super) async fn write_two<W: AsyncWrite + Unpin>(
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
