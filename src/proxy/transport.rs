//! The byte stream under a WebSocket connection: the plain socket (`ws://`) or TLS over it
//! (`wss://`), one type for the handshake, the connection driver and the move between shards.

use std::io::{self, IoSlice};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

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
    Plain(TcpStreamPoll),
    Tls(Box<TlsStream>),
}

/// A transport taken apart to cross to another shard's thread.
#[derive(Debug)]
pub struct DetachedTransport {
    pub fd: OwnedFd,
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
