//! TLS to the proxy (`wss://`): which certificate authorities to trust, and the stream.
//!
//! By default the system's roots (the OS certificate store, as `rustls-native-certs` finds
//! it); with `--ca FILE` only the certificates in that file, which is what a private proxy
//! with its own CA (or a self-signed certificate) needs.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why no trust anchors could be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CA file {path} holds no usable certificate")]
    NoCa { path: PathBuf },
    #[error("no system root certificates found ({0}); pass --ca FILE")]
    NoSystemRoots(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The client configuration: roots from `ca` if given, else the system's.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = crate::tls::load_certificates(path).map_err(|source| TlsError::CaFile {
                path: path.to_owned(),
                source,
            })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::NoCa {
                    path: path.to_owned(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_owned(), |e| e.to_string());
                return Err(TlsError::NoSystemRoots(why));
            }
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![crate::tls::ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// The connection to the proxy: plain TCP for `ws://`, TLS over it for `wss://`.
#[derive(Debug)]
pub enum ProxyStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ProxyStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ProxyStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ProxyStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ProxyStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ProxyStream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
