//! `--ca FILE` holding the proxy's own certificate trusts it as itself: the self-signed,
//! `CA:TRUE`, subjectAltName-less certificate `openssl req -x509 -subj /CN=localhost` makes
//! works. Certificates that still fail are logged with what to do about them.

use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::common::IO_TIMEOUT;
use crate::common::curl::curl;
use crate::common::driver::Driver;
use crate::common::programs;
use crate::common::proxy::Proxy;
use crate::common::scratch::Scratch;
use crate::common::service::Service;
use crate::on_both_drivers;
use crate::support::LoggedAgent;

/// A certificate and its key as PEM files in `scratch`: (cert path, key path).
struct Pem {
    cert: String,
    key: String,
}

fn params(cn: &str, ca: bool) -> CertificateParams {
    // No subject alternative names: only the common name says who it is.
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    params
}

fn write(scratch: &Scratch, stem: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Pem {
    Pem {
        cert: scratch.write(&format!("{stem}.pem"), cert.pem().as_bytes()),
        key: scratch.write(&format!("{stem}-key.pem"), key.serialize_pem().as_bytes()),
    }
}

/// What `openssl req -x509 -subj /CN=localhost` makes: self-signed, CA:TRUE, CN only.
fn self_signed_ca(scratch: &Scratch, stem: &str, params: CertificateParams) -> Pem {
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    write(scratch, stem, &cert, &key)
}

fn tls_proxy(driver: Driver, pem: &Pem) -> Proxy {
    Proxy::start(driver, &["--tls-cert", &pem.cert, "--tls-key", &pem.key])
}

/// bob serves, alice listens, both over wss:// trusting `ca`; one call through the tunnel.
fn call_through(proxy: &Proxy, ca: &str) {
    let service = Service::start();
    let port = proxy.addr.port();
    let mut bob = LoggedAgent::start(
        &format!("wss://localhost:{port}"),
        &["--name", "bob", "--ca", ca, "--serve", &service.url()],
        &[],
    );
    assert_eq!(bob.wait_registered(IO_TIMEOUT), "bob");
    // By address too: a pinned certificate needs no name in it.
    let mut alice = LoggedAgent::start(
        &format!("wss://127.0.0.1:{port}"),
        &["--name", "alice", "--ca", ca, "--listen", "127.0.0.1:0"],
        &[],
    );
    let ingress = format!("http://{}", alice.listen_addr());
    assert_eq!(alice.wait_registered(IO_TIMEOUT), "alice");
    let out = curl(&["-x", &ingress, "http://bob/echo"]);
    assert_eq!(out.code, 200, "{out:?}");
    assert_eq!(out.header("x-from"), Some("alice"));
}

fn a_self_signed_ca_certificate_given_with_ca_is_trusted_as_itself(driver: Driver) {
    let scratch = Scratch::new();
    let pem = self_signed_ca(&scratch, "proxy", params("localhost", true));
    let proxy = tls_proxy(driver, &pem);
    call_through(&proxy, &pem.cert);
}

fn the_certificate_openssl_req_x509_makes_works_with_ca_or_skipped(driver: Driver) {
    let Some(openssl) = programs::needed("openssl") else {
        return;
    };
    let scratch = Scratch::new();
    let (cert, key) = (scratch.path("c.pem"), scratch.path("k.pem"));
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-keyout", &key, "-out", &cert])
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = Pem { cert, key };
    let proxy = tls_proxy(driver, &pem);
    call_through(&proxy, &pem.cert);
}

/// Start an agent trusting `ca` against `proxy`; it must keep retrying and log `words`.
fn expect_advice(proxy: &Proxy, ca: &str, words: &[&str]) {
    let service = Service::start();
    let mut agent = LoggedAgent::start(
        &format!("wss://localhost:{}", proxy.addr.port()),
        &[
            "--name",
            "bob",
            "--ca",
            ca,
            "--serve",
            &service.url(),
            "--reconnect-max",
            "200ms",
        ],
        &[],
    );
    agent.expect_log(words, IO_TIMEOUT);
    assert!(
        agent.running(),
        "a certificate problem is retried, not fatal"
    );
}

fn certificates_that_fail_say_what_to_do(driver: Driver) {
    let scratch = Scratch::new();
    // A CA:TRUE certificate as the server's own, and --ca naming some other certificate.
    let proxy_pem = self_signed_ca(&scratch, "proxy", params("localhost", true));
    let other = self_signed_ca(&scratch, "other", params("localhost", true));
    let proxy = tls_proxy(driver, &proxy_pem);
    expect_advice(&proxy, &other.cert, &["CA:TRUE", "--ca FILE"]);
    drop(proxy);

    // A server certificate from a CA we trust, naming its host only in the CN.
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_params = params("test CA", true);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let ca_pem = write(&scratch, "ca", &ca, &ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = params("localhost", false)
        .signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key))
        .expect("leaf");
    let leaf_pem = write(&scratch, "leaf", &leaf, &leaf_key);
    let proxy = tls_proxy(driver, &leaf_pem);
    expect_advice(&proxy, &ca_pem.cert, &["subjectAltName=DNS:localhost"]);
    drop(proxy);

    // A pinned certificate is still held to its validity period.
    let mut expired = params("localhost", true);
    expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let expired = self_signed_ca(&scratch, "expired", expired);
    let proxy = tls_proxy(driver, &expired);
    expect_advice(&proxy, &expired.cert, &["expired", "renew it"]);
}

on_both_drivers!(
    a_self_signed_ca_certificate_given_with_ca_is_trusted_as_itself,
    the_certificate_openssl_req_x509_makes_works_with_ca_or_skipped,
    certificates_that_fail_say_what_to_do,
);
