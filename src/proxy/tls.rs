//! TLS for `wss://`: the server configuration loaded from PEM files, and [`TlsStream`], rustls
//! driven over the shard's readiness-based socket.
//!
//! The stream is written here rather than taken from `tokio-rustls` because a connection may
//! change threads after its handshake (it moves to the shard owning its address): the socket
//! travels as a file descriptor and the session as a `rustls::ServerConnection`, and this type
//! can be taken apart into those two and put back together on the other side.

use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use rustls::ServerConnection;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

/// Ciphertext rustls may hold for one connection before writes wait for the socket: bounds
/// per-connection memory the way the plain path's queue limit does.
const TLS_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or is not PEM.
    #[error("cannot read TLS certificate chain {path}: {source}")]
    Cert {
        /// The `--tls-cert` path.
        path: PathBuf,
        /// What reading it failed on.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file is PEM but holds no certificate (a key given as `--tls-cert`?).
    #[error("{path} holds no PEM certificate")]
    NoCert {
        /// The `--tls-cert` path.
        path: PathBuf,
    },
    /// The key file could not be read, or holds no private key rustls knows.
    #[error("cannot read TLS private key {path}: {source}")]
    Key {
        /// The `--tls-key` path.
        path: PathBuf,
        /// What reading it failed on.
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the pair: the key is not the leaf's, or of a kind it cannot use.
    #[error("TLS certificate and key do not fit together: {0}")]
    Config(#[from] rustls::Error),
}

/// Build the server configuration: the chain in `cert` (leaf first), the key in `key`
/// (PKCS#8, PKCS#1 or SEC1 PEM). TLS 1.2 and 1.3, ring's cipher suites, no client certificates.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = crate::tls::load_certificates(cert).map_err(|source| TlsError::Cert {
        path: cert.to_owned(),
        source,
    })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![crate::tls::ALPN_HTTP1.to_vec()];
    // Resumption uses rustls' default stateful cache, shared by all shards; a reload (SIGHUP)
    // starts a new one, so clients do a full handshake once after a certificate renewal.
    Ok(Arc::new(config))
}

/// A server-side TLS session over a shard's socket.
pub struct TlsStream {
    io: TcpStreamPoll,
    tls: Box<ServerConnection>,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").finish_non_exhaustive()
    }
}

impl TlsStream {
    /// Start a session whose client already sent `first` (read off the socket to tell TLS
    /// from plain HTTP); the rest of the TLS handshake runs as the stream is read.
    pub fn accept(
        io: TcpStreamPoll,
        config: Arc<rustls::ServerConfig>,
        mut first: &[u8],
    ) -> io::Result<Self> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        // The limit is part of the session, so it travels with it between shards.
        tls.set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
        while !first.is_empty() {
            if tls.read_tls(&mut first)? == 0 {
                break;
            }
        }
        Ok(Self::from_parts(io, Box::new(tls)))
    }

    /// Put a stream back together after the socket and session changed threads.
    pub fn from_parts(io: TcpStreamPoll, tls: Box<ServerConnection>) -> Self {
        Self { io, tls }
    }

    /// The socket and the session, apart, so that they can move to another shard's thread.
    pub fn into_parts(self) -> (TcpStreamPoll, Box<ServerConnection>) {
        (self.io, self.tls)
    }

    /// Write pending ciphertext until none is left (Ready) or the socket is full (Pending).
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            let mut socket = SocketAdapter {
                io: &mut self.io,
                cx,
            };
            match self.tls.write_tls(&mut socket) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut tcp_closed = false;
        loop {
            // Decrypt whatever records are buffered; an error queues an alert for the peer.
            let state = match this.tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    let _ = this.poll_send_tls(cx);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            };
            // Plaintext already decrypted goes first (it may be all a moved connection has).
            // Only as many bytes as are waiting are initialized: zeroing the whole spare room
            // of the shard's read block on every read would cost a memset per read.
            let waiting = state.plaintext_bytes_to_read();
            if waiting > 0 && buf.remaining() > 0 {
                let dst = buf.initialize_unfilled_to(waiting.min(buf.remaining()));
                let n = this.tls.reader().read(dst)?;
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            // A close_notify, or TCP closed without one: either way the stream has ended. A
            // truncation needs no TLS-level error: the WebSocket close handshake is missing
            // and the connection layer treats that as a dropped peer.
            if state.peer_has_closed() || tcp_closed || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Handshake messages and alerts must go out before we wait for the peer's reply;
            // a full socket here registers for writability, which wakes us just the same.
            if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
                return Poll::Ready(Err(e));
            }
            let mut socket = SocketAdapter {
                io: &mut this.io,
                cx,
            };
            match this.tls.read_tls(&mut socket) {
                Ok(0) => tcp_closed = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Encrypt as much as the buffer limit takes, then push it out. Plaintext accepted here
        // is never lost: what the socket cannot take yet stays queued as ciphertext and goes
        // out on the next write or flush.
        let mut accepted = this.tls.writer().write_vectored(bufs)?;
        let sent = this.poll_send_tls(cx)?;
        if accepted == 0 && bufs.iter().any(|b| !b.is_empty()) {
            if sent.is_pending() {
                return Poll::Pending;
            }
            accepted = this.tls.writer().write_vectored(bufs)?;
            let _ = this.poll_send_tls(cx)?;
        }
        Poll::Ready(Ok(accepted))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        std::task::ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// The socket seen as blocking `Read`/`Write` for rustls: "not ready" becomes `WouldBlock`
/// (with the waker registered by the poll underneath).
struct SocketAdapter<'a, 'b> {
    io: &'a mut TcpStreamPoll,
    cx: &'a mut Context<'b>,
}

impl Read for SocketAdapter<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read_buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut read_buf) {
            Poll::Ready(Ok(())) => Ok(read_buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for SocketAdapter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
