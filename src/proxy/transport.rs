//! The byte stream under a WebSocket connection: the plain socket (`ws://`) or TLS over it
//! (`wss://`), one type for the handshake, the connection driver and the move between shards.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use monoio::io::IntoPollIo;
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::net::TcpStream;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use rustls::ServerConnection;

use crate::proxy::tls::TlsStream;

/// A connection's stream. TLS is boxed: its session is large and most deployments that use
/// it terminate TLS for every connection, while the plain variant stays a bare socket.
#[derive(Debug)]
pub enum Transport {
    /// `ws://` (and plain-HTTP ingress callers): the socket itself.
    Plain(TcpStreamPoll),
    /// `wss://` (and `https://` ingress callers): a rustls session over the socket.
    Tls(Box<TlsStream>),
}

/// A transport taken apart to cross to another shard's thread.
#[derive(Debug)]
pub struct DetachedTransport {
    /// The socket, out of the old shard's runtime.
    pub fd: OwnedFd,
    /// The TLS session, with whatever plaintext it has already decrypted; `None` for plain.
    pub tls: Option<Box<ServerConnection>>,
}

impl Transport {
    /// Take the transport apart so that another thread can [`attach`](Self::attach) it.
    pub fn detach(self) -> io::Result<DetachedTransport> {
        let (io, tls) = match self {
            Transport::Plain(io) => (io, None),
            Transport::Tls(stream) => {
                let (io, tls) = stream.into_parts();
                (io, Some(tls))
            }
        };
        let stream = io.try_into_comp_io().map_err(|(e, _)| e)?;
        // SAFETY: `into_raw_fd` gives up ownership of the descriptor, which the OwnedFd takes.
        let fd = unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) };
        Ok(DetachedTransport { fd, tls })
    }

    /// Rebuild a detached transport on the current shard's runtime.
    pub fn attach(detached: DetachedTransport) -> io::Result<Self> {
        let std_stream = std::net::TcpStream::from(detached.fd);
        let io = TcpStream::from_std(std_stream)?.into_poll_io()?;
        Ok(match detached.tls {
            None => Transport::Plain(io),
            Some(tls) => Transport::Tls(Box::new(TlsStream::from_parts(io, tls))),
        })
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// Read from `io` into the spare capacity of `buf` (the caller reserves room first).
pub fn poll_read_buf(
    io: &mut Transport,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let mut read_buf = ReadBuf::uninit(spare);
    match Pin::new(io).poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => {
            let n = read_buf.filled().len();
            let len = buf.len();
            // SAFETY: `ReadBuf` counts as filled only bytes the read initialized, and those
            // are the first `n` bytes of `buf`'s spare capacity.
            unsafe { buf.set_len(len + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Most pieces [`write_all`] takes: an ingress response is head, end of head, body.
const MAX_PIECES: usize = 3;

/// Write every byte of `pieces` (at most three) with vectored writes, then flush
/// (TLS holds ciphertext otherwise). Nothing is allocated. Used where a connection has no
/// driver: refusals, handshakes and the public ingress.
pub async fn write_all(io: &mut Transport, pieces: &[&[u8]]) -> io::Result<()> {
    let mut parts: [&[u8]; MAX_PIECES] = [&[]; MAX_PIECES];
    let count = pieces.len().min(MAX_PIECES);
    parts[..count].copy_from_slice(&pieces[..count]);
    let mut first = 0;
    loop {
        while first < count && parts[first].is_empty() {
            first += 1;
        }
        if first == count {
            break;
        }
        let mut slices = [IoSlice::new(&[]); MAX_PIECES];
        for (slice, part) in slices.iter_mut().zip(&parts[first..count]) {
            *slice = IoSlice::new(part);
        }
        let live = &slices[..count - first];
        let n = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, live)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 && first < count {
            let len = parts[first].len();
            if len <= left {
                left -= len;
                first += 1;
            } else {
                parts[first] = &parts[first][left..];
                left = 0;
            }
        }
    }
    std::future::poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
}
