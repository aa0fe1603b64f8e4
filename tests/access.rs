//! The tokens file: who may register which names (401/403/409, takeover by the same token),
//! access rules between endpoints (403 `forbidden` with the caller's CSeq), and reload on
//! SIGHUP without dropping connections. Real proxy, tungstenite endpoints.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::driver::Driver;
use common::proxy::Proxy;
use common::proxy_errors::parse_error_indication;
use common::ws::{bearer, connect_with, register};

fn sha256_hex(token: &str) -> String {
    httpws::proxy::access::hash_token(token)
}

/// A tokens file in the test's own directory.
fn tokens_file(test: &str, extra_names_for_b: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("access-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.toml");
    write_tokens(&path, extra_names_for_b);
    path
}

fn write_tokens(path: &PathBuf, extra_names_for_b: &str) {
    let text = format!(
        r#"
[[tokens]]
label = "team-a"
sha256 = "{a}"
names = ["team-a-*"]

[[tokens]]
label = "team-b"
sha256 = "{b}"
names = ["team-b-*"{extra_names_for_b}]

[[tokens]]
label = "ops"
sha256 = "{ops}"
names = ["*"]

[[rules]]
targets = ["team-a-*"]
accept_from = ["team-a-*", "ops"]
"#,
        a = sha256_hex("token-a"),
        b = sha256_hex("token-b"),
        ops = sha256_hex("token-ops"),
    );
    // Write then rename, so a reload never reads a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn start(test: &str, driver: Driver) -> (Proxy, PathBuf) {
    let path = tokens_file(test, "");
    let proxy = Proxy::start(driver, &["--tokens", path.to_str().unwrap()]);
    (proxy, path)
}

fn registration_needs_an_allowed_token(driver: Driver) {
    let (proxy, _) = start(&format!("register-{driver:?}"), driver);
    assert_eq!(
        register(&proxy, "team-a-1", None).err(),
        Some(401),
        "no token"
    );
    assert_eq!(
        register(&proxy, "team-a-1", Some("not-a-token")).err(),
        Some(401),
        "unknown token"
    );
    assert_eq!(
        register(&proxy, "team-a-1", Some("token-b")).err(),
        Some(403),
        "valid token, another team's name"
    );
    let query = connect_with(&proxy, "/team-b-9?access_token=token-b", &[]);
    assert_eq!(query.map(|e| e.address).ok().as_deref(), Some("team-b-9"));
    let mut a1 = register(&proxy, "team-a-1", Some("token-a")).expect("allowed");
    assert_eq!(a1.address, "team-a-1");
    // Assigned names (path `/`) need a valid token, any one.
    assert_eq!(connect_with(&proxy, "/", &[]).err(), Some(401));
    let assigned = connect_with(&proxy, "/", &[("Authorization", &bearer("token-b"))])
        .expect("any valid token may take an assigned name");
    assert!(assigned.address.starts_with("ep-"));

    // ops may register any name, but not one team-a holds: only the same token takes over.
    assert_eq!(
        register(&proxy, "team-a-1", Some("token-ops")).err(),
        Some(409)
    );
    let mut newcomer = register(&proxy, "team-a-1", Some("token-a")).expect("takeover");
    let (token, _) = parse_error_indication(&a1.recv());
    assert_eq!(token, "replaced");
    assert_eq!(a1.expect_close(), Some(1000));
    // The newcomer holds the name and is reachable.
    let mut caller = register(&proxy, "team-a-2", Some("token-a")).unwrap();
    caller.request("team-a-1", 5, "/ping");
    let seen = newcomer.answer("pong");
    assert_eq!(seen.header("httpws-from"), Some("team-a-2"));
    assert_eq!(caller.recv_http().cseq(), 5);
}

fn access_rules_answer_forbidden_with_the_callers_cseq(driver: Driver) {
    let (proxy, _) = start(&format!("rules-{driver:?}"), driver);
    let mut target = register(&proxy, "team-a-1", Some("token-a")).unwrap();
    let mut outsider = register(&proxy, "team-b-1", Some("token-b")).unwrap();
    let mut ops = register(&proxy, "ops", Some("token-ops")).unwrap();
    let mut other = register(&proxy, "team-b-2", Some("token-b")).unwrap();

    outsider.request("team-a-1", 77, "/secret");
    let refused = outsider.recv_http();
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.cseq(), 77);
    assert_eq!(refused.header("httpws-error"), Some("forbidden"));
    // The same name in another case or with a port is the same target: still refused.
    outsider.request("TEAM-A-1:8080", 78, "/secret");
    assert_eq!(outsider.recv_http().status(), 403);

    ops.request("team-a-1", 1, "/ok");
    let seen = target.answer("for ops");
    assert_eq!(seen.header("httpws-from"), Some("ops"));
    assert_eq!(ops.recv_http().body, "for ops");
    // Targets no rule names accept everyone.
    target.request("team-b-2", 2, "/hello");
    other.answer("hi");
    assert_eq!(target.recv_http().status(), 200);
}

fn sighup_reloads_without_dropping_connections(driver: Driver) {
    let (proxy, path) = start(&format!("reload-{driver:?}"), driver);
    let mut a = register(&proxy, "team-a-1", Some("token-a")).unwrap();
    let mut b = register(&proxy, "team-a-2", Some("token-a")).unwrap();
    assert_eq!(register(&proxy, "shared", Some("token-b")).err(), Some(403));

    write_tokens(&path, r#", "shared""#);
    // SAFETY: kill(2) on the PID of a child this test spawned.
    unsafe { libc::kill(proxy.pid() as i32, libc::SIGHUP) };
    // The reload is asynchronous: retry (bounded) until the new name is accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shared = loop {
        match register(&proxy, "shared", Some("token-b")) {
            Ok(ep) => break ep,
            Err(403) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(status) => panic!("the reloaded file was not applied: {status}"),
        }
    };
    assert_eq!(shared.address, "shared");
    // Connections made before the reload still work.
    a.request("team-a-2", 9, "/after-reload");
    b.answer("still here");
    assert_eq!(a.recv_http().body, "still here");

    // A broken file is refused and the last good one stays in force.
    std::fs::write(&path, "this is not toml [").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(proxy.pid() as i32, libc::SIGHUP) };
    assert!(register(&proxy, "team-a-3", Some("token-a")).is_ok());
    assert_eq!(
        register(&proxy, "team-a-4", None).err(),
        Some(401),
        "still closed"
    );
}

fn proxy_refuses_to_start_with_a_bad_tokens_file(_driver: Driver) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("access-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.toml");
    std::fs::write(
        &path,
        "[[tokens]]\nlabel = 'x'\nsha256 = 'short'\nnames = ['a']\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--tokens"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("64 hex digits"), "{err}");
}

on_both_drivers!(
    registration_needs_an_allowed_token,
    access_rules_answer_forbidden_with_the_callers_cseq,
    sighup_reloads_without_dropping_connections,
    proxy_refuses_to_start_with_a_bad_tokens_file,
);
