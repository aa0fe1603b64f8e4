//! `--ca FILE` as a pin: a server certificate that is byte for byte one of the file's
//! certificates is trusted as itself, the way `openssl req -x509 … -subj /CN=host` makes one
//! (self-signed, `CA:TRUE`, no subjectAltName), which webpki would refuse as a CA used as an
//! end entity and as valid for no name.
//!
//! What is still checked for a pinned certificate: its validity period, and the handshake
//! signature (the server must hold its private key), both by the same rules as for any
//! other. Its chain and names are not: the user named this exact certificate, so there is
//! nothing a CA or a name could add. Every other certificate goes through webpki unchanged.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::cert_validity;

/// webpki for everything, except that a pinned certificate is accepted as itself.
#[derive(Debug)]
pub struct PinnedOrWebPki {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedOrWebPki {
    /// `webpki` for every certificate but those in `pinned`.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, pinned: Vec<CertificateDer<'static>>) -> Self {
        PinnedOrWebPki { webpki, pinned }
    }

    fn is_pinned(&self, cert: &CertificateDer<'_>) -> bool {
        self.pinned.iter().any(|p| p.as_ref() == cert.as_ref())
    }
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.is_pinned(end_entity) {
            cert_validity::check(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rustls::CertificateError;

    use super::*;

    fn self_signed_ca(not_after: (i32, u8, u8)) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier(pinned: &[&CertificateDer<'static>]) -> PinnedOrWebPki {
        let mut roots = rustls::RootCertStore::empty();
        for cert in pinned {
            roots.add((*cert).clone()).unwrap();
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::crypto_provider(),
        )
        .build()
        .unwrap();
        PinnedOrWebPki::new(webpki, pinned.iter().map(|c| (*c).clone()).collect())
    }

    fn verify(v: &PinnedOrWebPki, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("localhost").unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn a_pinned_certificate_is_trusted_as_itself_while_valid() {
        let good = self_signed_ca((2999, 1, 1));
        let expired = self_signed_ca((2001, 1, 1));
        let stranger = self_signed_ca((2999, 1, 1));
        let v = verifier(&[&good, &expired]);
        assert_eq!(verify(&v, &good), Ok(()));
        assert!(matches!(
            verify(&v, &expired),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredContext { .. }
            ))
        ));
        // Not in the file: webpki decides, and refuses it.
        assert!(verify(&v, &stranger).is_err());
    }
}
