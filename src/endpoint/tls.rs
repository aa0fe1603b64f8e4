//! TLS to the proxy (`wss://`): which certificate authorities to trust, and the stream.
//!
//! By default the system's roots (the OS certificate store, as `rustls-native-certs` finds
//! it); with `--ca FILE` only the certificates in that file, which is what a private proxy
//! with its own CA needs. A server certificate that is itself in the file is trusted as
//! itself ([`super::pinned`]), so a self-signed one works however it was made.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::pinned::PinnedOrWebPki;

/// Why no trust anchors could be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The `--ca` file cannot be read as PEM.
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong reading it.
        source: rustls::pki_types::pem::Error,
    },
    /// The `--ca` file holds no certificate rustls can use.
    #[error("CA file {path} holds no usable certificate")]
    NoCa {
        /// The file.
        path: PathBuf,
    },
    /// The OS certificate store is empty or unreadable; why.
    #[error("no system root certificates found ({0}); pass --ca FILE")]
    NoSystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The certificate verifier could not be built.
    #[error("checking certificates: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// The client configuration: roots from `ca` if given (each of its certificates also
/// pinned), else the system's.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = crate::tls::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match ca {
        Some(path) => {
            let certs = crate::tls::load_certificates(path).map_err(|source| TlsError::CaFile {
                path: path.to_owned(),
                source,
            })?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
            if added == 0 {
                return Err(TlsError::NoCa {
                    path: path.to_owned(),
                });
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki::new(webpki, certs)))
                .with_no_client_auth()
        }
        None => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_owned(), |e| e.to_string());
                return Err(TlsError::NoSystemRoots(why));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![crate::tls::ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// The connection to the proxy: plain TCP for `ws://`, TLS over it for `wss://`.
#[derive(Debug)]
pub enum ProxyStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (boxed: a TLS stream is large, and the enum is moved around).
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
