//! The README's demo command: one process runs a proxy, two endpoints and a web service,
//! and a `curl -x` call must reach the service through the tunnel.

use std::process::Command;

#[test]
fn demo_reaches_the_service_through_the_tunnel() {
    let output = Command::new(env!("CARGO_BIN_EXE_httpws"))
        .args(["--log", "warn", "demo", "--once", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run httpws demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("$ curl -x http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("HTTP/1.1 200 OK"), "{stdout}");
    assert!(
        stdout.contains("You are alice (the proxy's Httpws-From header)."),
        "{stdout}"
    );
    assert!(stdout.contains("You asked for GET /hello."), "{stdout}");
}
