//! TLS material both sides load the same way: PEM certificate files, the crypto provider
//! and the ALPN protocol. The proxy's server side is in [`crate::proxy::tls`], the
//! endpoint's client side in [`crate::endpoint::tls`].

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};

/// The only application protocol spoken over TLS: the WebSocket handshake is HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// ring's cipher suites and key exchanges (no C toolchain beyond what ring builds itself).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, in file order (possibly none).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, pem::Error> {
    CertificateDer::pem_file_iter(path)?.collect()
}
