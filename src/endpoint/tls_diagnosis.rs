//! What a failed connection to the proxy means for the person running the agent, when the
//! TLS layer is the cause: a URL whose scheme does not match the port (`ws://` at a TLS
//! port, `wss://` at a plain one), or a certificate that does not verify, with what to do
//! about it.

use std::net::IpAddr;

use rustls::{CertificateError, InvalidMessage};

/// The URL's scheme and the server disagree about TLS. Retrying cannot fix a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemeMismatch {
    /// `ws://`, and the server answered with a TLS record.
    #[error("the server speaks TLS at this address: use wss://")]
    ServerSpeaksTls,
    /// `wss://`, and the server answered our TLS hello with something that is not TLS.
    #[error("the server does not speak TLS: use ws://")]
    ServerSpeaksPlain,
}

/// TLS record types a server may open with: alert (21) or handshake (22).
const TLS_ALERT: u8 = 0x15;
const TLS_HANDSHAKE: u8 = 0x16;
/// The first byte of every TLS record version (SSL 3.0 to TLS 1.3 all say 3.x).
const TLS_MAJOR_VERSION: u8 = 0x03;

/// Whether the first bytes a server sent to our plain handshake are a TLS record: what a
/// TLS server answers a client that did not say hello in TLS.
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [TLS_ALERT | TLS_HANDSHAKE, TLS_MAJOR_VERSION, ..])
}

/// The rustls error inside a failed TLS handshake's I/O error, if that is what failed it.
pub fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A TLS handshake that failed because the server's first bytes were no TLS record (an
/// HTTP answer has an invalid record type) means the port speaks plain TCP.
pub fn plain_server(e: &rustls::Error) -> Option<SchemeMismatch> {
    matches!(
        e,
        rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)
    )
    .then_some(SchemeMismatch::ServerSpeaksPlain)
}

/// webpki's name for a certificate with `CA:TRUE` presented as the server's own, which
/// rustls passes on only as an opaque error (its `Display` is the variant's name).
const CA_USED_AS_END_ENTITY: &str = "CaUsedAsEndEntity";

/// What to do about a certificate the agent did not accept from the proxy at `host`.
pub fn certificate_advice(e: &rustls::Error, host: &str) -> Option<String> {
    let rustls::Error::InvalidCertificate(cert) = e else {
        return None;
    };
    let pin = "or pass that very certificate with --ca FILE to trust it as itself";
    let advice = match cert {
        CertificateError::UnknownIssuer => format!(
            "it is not signed by a CA this agent trusts: pass the CA's certificate with --ca \
             FILE, {pin}"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let san = match host.parse::<IpAddr>() {
                Ok(_) => format!("IP:{host}"),
                Err(_) => format!("DNS:{host}"),
            };
            format!(
                "it does not name {host} in its subjectAltName (the common name is not \
                 used): make it with -addext subjectAltName={san}, {pin}"
            )
        }
        CertificateError::Other(other) if other.to_string() == CA_USED_AS_END_ENTITY => format!(
            "it is a CA certificate (CA:TRUE, as `openssl req -x509` makes by default) used as \
             the server's own: give the proxy a certificate signed by that CA, {pin}"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired (or this machine's clock is wrong): renew it".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet: check this machine's clock".to_owned()
        }
        _ => return None,
    };
    Some(advice)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::OtherError;

    use super::*;

    #[test]
    fn tls_records_are_recognised() {
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(b"HTTP/1.1 400 Bad Request"));
        assert!(!looks_like_tls(&[0x16]));
        assert!(!looks_like_tls(&[0x17, 0x03]));
    }

    #[test]
    fn advice_names_the_fix() {
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let advice = certificate_advice(&name, "relay.example").unwrap();
        assert!(
            advice.contains("subjectAltName=DNS:relay.example"),
            "{advice}"
        );
        let advice = certificate_advice(&name, "127.0.0.1").unwrap();
        assert!(advice.contains("subjectAltName=IP:127.0.0.1"), "{advice}");
        let issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(
            certificate_advice(&issuer, "h")
                .unwrap()
                .contains("--ca FILE")
        );
        let plain = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
        assert_eq!(
            plain_server(&plain),
            Some(SchemeMismatch::ServerSpeaksPlain)
        );
        assert_eq!(certificate_advice(&plain, "h"), None);
    }

    /// The opaque error is recognised by the name webpki gives it: the real one, made by
    /// rustls' own verifier from a CA:TRUE certificate, so a rename upstream fails here.
    #[test]
    fn a_ca_certificate_as_the_server_s_own_is_recognised() {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::crypto_provider(),
        )
        .build()
        .unwrap();
        let err = verifier
            .verify_server_cert(
                cert.der(),
                &[],
                &ServerName::try_from("localhost").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        let advice = certificate_advice(&err, "localhost").expect("advice");
        assert!(advice.contains("CA:TRUE"), "{err}: {advice}");
        // And nothing else that is opaque is taken for it.
        let other = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
            Arc::new(std::io::Error::other("something")),
        )));
        assert_eq!(certificate_advice(&other, "h"), None);
    }
}
