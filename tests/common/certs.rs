//! Certificates made with rcgen for TLS tests: a CA, and a leaf for `localhost` and
//! 127.0.0.1 signed by it, as PEM files in a scratch directory; and a rustls client that
//! trusts that CA.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;

use super::scratch::Scratch;

/// A CA and a server certificate it signed, as PEM files in a scratch directory.
pub struct Certs {
    scratch: Scratch,
    ca_der: CertificateDer<'static>,
}

impl Certs {
    pub fn new(label: &str) -> Certs {
        let scratch = Scratch::new();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("httpws test CA {label}"));
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");
        scratch.write("ca.pem", ca.pem().as_bytes());
        scratch.write("cert.pem", leaf.pem().as_bytes());
        scratch.write("key.pem", leaf_key.serialize_pem().as_bytes());
        Certs {
            scratch,
            ca_der: ca.der().clone(),
        }
    }

    pub fn ca(&self) -> String {
        self.scratch.path("ca.pem")
    }
    pub fn cert(&self) -> String {
        self.scratch.path("cert.pem")
    }
    pub fn key(&self) -> String {
        self.scratch.path("key.pem")
    }

    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}
