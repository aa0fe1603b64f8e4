//! What a new user meets when starting the proxy: a port another proxy holds is refused (never
//! silently shared), bind errors name the flag and the address, and logs written to anything
//! but a terminal carry no colour codes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::driver::Driver;
use common::process::run_bounded;
use common::proxy::Proxy;
use common::ws::connect;

/// How long a proxy that cannot start may take to say so and exit.
const START_LIMIT: Duration = Duration::from_secs(10);

fn httpws(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_httpws"));
    command
        .args(args)
        .env("HTTPWS_LOG", "info")
        .env_remove("NO_COLOR");
    command
}

fn a_second_proxy_on_a_port_a_proxy_holds_refuses_to_start(driver: Driver) {
    let first = Proxy::start(driver, &[]);
    let taken = first.addr.to_string();
    let (ok, output) = run_bounded(
        &mut httpws(&[
            "proxy",
            "--listen",
            &taken,
            "--no-pin",
            "--driver",
            driver.flag(),
        ]),
        START_LIMIT,
    );
    assert!(
        !ok,
        "a second proxy started on {taken}, held by another one:\n{output}"
    );
    assert!(
        output.contains(&format!("--listen {taken} is in use")),
        "the refusal names the flag and the address:\n{output}"
    );
    assert!(!output.contains("Some("), "{output}");
    // The first proxy still has the port to itself: every registration reaches it.
    for i in 0..20 {
        let mut ep = connect(&first, &format!("/still-{i}"));
        ep.ws.close(None).expect("close");
    }
}

fn a_second_proxy_on_a_held_http_listen_port_refuses_to_start(driver: Driver) {
    let first = Proxy::start(driver, &["--http-listen", "127.0.0.1:0"]);
    let taken = first.http_addr.expect("--http-listen address").to_string();
    let (ok, output) = run_bounded(
        &mut httpws(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            &taken,
            "--no-pin",
            "--driver",
            driver.flag(),
        ]),
        START_LIMIT,
    );
    assert!(!ok, "a second proxy took --http-listen {taken}:\n{output}");
    assert!(
        output.contains(&format!("--http-listen {taken} is in use")),
        "{output}"
    );
}

fn a_listen_address_of_another_host_is_named(driver: Driver) {
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
    let (ok, output) = run_bounded(
        &mut httpws(&[
            "proxy",
            "--listen",
            "192.0.2.1:8080",
            "--driver",
            driver.flag(),
        ]),
        START_LIMIT,
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("--listen 192.0.2.1:8080 is not an address of this host"),
        "{output}"
    );
}

fn logs_to_a_pipe_have_no_colour_codes(driver: Driver) {
    let mut child = httpws(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--no-pin",
    ])
    .args(["--driver", driver.flag()])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn httpws");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + START_LIMIT;
    let line = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("shard starting") => break line,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("the proxy did not log its shards starting");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !line.contains('\u{1b}'),
        "escape codes in a log line written to a pipe: {line:?}"
    );
    assert!(line.contains("INFO"), "{line:?}");
}

on_both_drivers!(
    a_second_proxy_on_a_port_a_proxy_holds_refuses_to_start,
    a_second_proxy_on_a_held_http_listen_port_refuses_to_start,
    a_listen_address_of_another_host_is_named,
    logs_to_a_pipe_have_no_colour_codes,
);
