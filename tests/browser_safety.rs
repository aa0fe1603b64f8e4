//! Web pages must not drive the relay: `--allowed-origins` on the proxy's WebSocket
//! handshake, and the agent's ingress refusing cross-origin requests, cross-site fetches and
//! DNS-rebinding `Host` values. curl and tungstenite send the headers a browser would.

mod common;

use common::IO_TIMEOUT;
use common::agent::Agent;
use common::curl::{curl, curl_via};
use common::driver::Driver;
use common::proxy::Proxy;
use common::service::Service;
use common::ws::connect_with;

fn handshake_origins(driver: Driver) {
    // Default: no page may connect; clients without Origin are not pages and are unaffected.
    let proxy = Proxy::start(driver, &[]);
    let refused = connect_with(&proxy, "/page", &[("Origin", "http://evil.example")]);
    assert_eq!(refused.err(), Some(403));
    let mut plain = connect_with(&proxy, "/agent", &[]).expect("no Origin: not a browser");
    let mut peer = connect_with(&proxy, "/peer", &[]).expect("peer");
    plain.request("peer", 1, "/after");
    peer.answer("ok");
    assert_eq!(plain.recv_http().status(), 200);
    // The refused page did not take its name either.
    assert!(connect_with(&proxy, "/page", &[]).is_ok());

    // A list: exactly those origins, compared case-insensitively, no others.
    let proxy = Proxy::start(
        driver,
        &[
            "--allowed-origins",
            "https://App.Example.com,http://localhost:3000",
        ],
    );
    for (i, (origin, expect)) in [
        ("https://app.example.com", Ok(())),
        ("HTTPS://APP.EXAMPLE.COM", Ok(())),
        ("http://localhost:3000", Ok(())),
        ("http://localhost:3001", Err(403)),
        ("https://app.example.com.evil.example", Err(403)),
        ("null", Err(403)),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("/page-{i}");
        let got = connect_with(&proxy, &name, &[("Origin", origin)]).map(|_| ());
        assert_eq!(got, expect, "{origin}");
    }

    // `*`: any page.
    let proxy = Proxy::start(driver, &["--allowed-origins", "*"]);
    assert!(connect_with(&proxy, "/any", &[("Origin", "http://whatever.example")]).is_ok());
}

#[test]
fn bad_allowed_origins_flag_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .args(["--allowed-origins", "app.example.com/path"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an origin"), "{stderr}");
}

/// The agent's ingress against what browsers send. Each refusal is 403 `forbidden`, nothing
/// reaches the service, and the same client without the browser's headers goes through.
#[test]
fn ingress_refuses_web_pages() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let service = Service::start();
    let _bob = Agent::serve(proxy.addr, "bob", &service.url(), &[]);
    let mut alice = Agent::listen(proxy.addr, "alice", &[]);
    let ingress = alice.ingress();
    let port = alice.listen_addr().port();
    let via_proxy = |extra: &[&str]| curl_via(&ingress, "http://bob/echo", extra);

    // A page on another origin calling the ingress with fetch() (Origin is sent).
    let page = via_proxy(&["-H", "Origin: http://evil.example"]);
    assert_eq!(page.code, 403);
    assert_eq!(page.header("httpws-error"), Some("forbidden"));
    assert!(page.body_text().contains("--allowed-origins"));
    // An <img> or <form> from another site: no Origin on a GET, but Sec-Fetch-Site.
    let img = via_proxy(&["-H", "Sec-Fetch-Site: cross-site"]);
    assert_eq!(img.code, 403);
    let same_site = via_proxy(&["-H", "Sec-Fetch-Site: same-site"]);
    assert_eq!(same_site.code, 403);
    // DNS rebinding: evil.example resolves to the ingress; the page fetches its own origin.
    let host = format!("rebind.evil.example:{port}");
    let resolve = format!("rebind.evil.example:{port}:127.0.0.1");
    let rebound = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Sec-Fetch-Site: same-origin",
        &format!("http://{host}/secret"),
    ]);
    assert_eq!(rebound.code, 403);
    assert!(rebound.body_text().contains("DNS rebinding"));
    assert!(
        service.requests().is_empty(),
        "no refused request reached the service"
    );

    // The same requests without a browser's headers: a typed URL, a deliberate Host.
    let typed = via_proxy(&["-H", "Sec-Fetch-Site: none"]);
    assert_eq!(typed.code, 200, "{}", typed.stderr);
    let ingress_addr = alice.listen_addr();
    let by_host = curl(&["-H", "Host: bob", &format!("http://{ingress_addr}/echo")]);
    assert_eq!(by_host.code, 200);
    assert_eq!(service.requests().len(), 2);
}

#[test]
fn ingress_allowed_origins() {
    let proxy = Proxy::start(Driver::Uring, &[]);
    let service = Service::start();
    let _bob = Agent::serve(proxy.addr, "bob", &service.url(), &[]);
    let mut alice = Agent::listen(
        proxy.addr,
        "alice",
        &["--allowed-origins", "http://localhost:3000"],
    );
    let ingress = alice.ingress();
    let ok = curl(&[
        "-x",
        &ingress,
        "-H",
        "Origin: http://localhost:3000",
        "http://bob/echo",
    ]);
    assert_eq!(ok.code, 200, "{}", ok.stderr);
    let other = curl(&[
        "-x",
        &ingress,
        "-H",
        "Origin: http://localhost:3001",
        "http://bob/echo",
    ]);
    assert_eq!(other.code, 403);
    assert_eq!(
        service
            .wait_requests(1, IO_TIMEOUT)
            .first()
            .and_then(|r| r.header("origin").map(str::to_owned)),
        Some("http://localhost:3000".to_owned()),
        "an allowed page's Origin is passed on for the service to see"
    );
}

on_both_drivers!(handshake_origins);
