//! Tokens off the command line: `HTTPWS_TOKEN` and `--token-file PATH` register against a
//! tokens-file proxy; the token never appears in the log (even at debug) or in `--help`;
//! a missing, empty or doubly given token is a clear start-up error.

use std::process::Command;

use crate::common::IO_TIMEOUT;
use crate::common::driver::Driver;
use crate::common::proxy::Proxy;
use crate::common::scratch::Scratch;
use crate::common::service::Service;
use crate::on_both_drivers;
use crate::support::{LoggedAgent, tokens_file};

/// A token no other text in the output could contain by accident.
const TOKEN: &str = "tok-9f8e7d6c5b4a";

fn the_token_comes_from_the_environment_or_a_file_and_is_never_logged(driver: Driver) {
    let scratch = Scratch::new();
    let tokens = tokens_file(&scratch, &[(TOKEN, &["team-*"])]);
    let proxy = Proxy::start(driver, &["--tokens", &tokens]);
    let url = format!("ws://{}", proxy.addr);
    let service = Service::start();
    let serve = service.url();

    let mut from_env = LoggedAgent::start(
        &url,
        &["--name", "team-env", "--serve", &serve, "--log", "trace"],
        &[("HTTPWS_TOKEN", TOKEN)],
    );
    assert_eq!(from_env.wait_registered(IO_TIMEOUT), "team-env");

    // First line only, its line end trimmed.
    let file = scratch.write(
        "token",
        format!("{TOKEN}\r\nsecond line ignored\n").as_bytes(),
    );
    let mut from_file = LoggedAgent::start(
        &url,
        &[
            "--name",
            "team-file",
            "--token-file",
            &file,
            "--serve",
            &serve,
            "--log",
            "trace",
        ],
        &[],
    );
    assert_eq!(from_file.wait_registered(IO_TIMEOUT), "team-file");

    for agent in [&mut from_env, &mut from_file] {
        // Logged at trace from start to shutdown, and nothing of it holds the token.
        let status = agent.terminate(IO_TIMEOUT).expect("exits after SIGTERM");
        assert!(status.success(), "{status:?}");
        let log = agent.everything();
        assert!(log.contains("tunnel registered"), "{log}");
        assert!(log.contains("closing the tunnel"), "{log}");
        assert!(!log.contains(TOKEN), "the token is in the output: {log}");
    }
}

fn endpoint(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_httpws"));
    command
        .arg("endpoint")
        .args(args)
        .env_remove("HTTPWS_TOKEN")
        .env("RUST_BACKTRACE", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run httpws endpoint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn help_shows_the_token_sources_but_never_the_token() {
    let (ok, help) = endpoint(&["--help"], &[("HTTPWS_TOKEN", TOKEN)]);
    assert!(ok, "{help}");
    assert!(help.contains("--token-file"), "{help}");
    assert!(help.contains("HTTPWS_TOKEN"), "{help}");
    assert!(!help.contains(TOKEN), "--help printed the token: {help}");
}

#[test]
fn bad_token_sources_are_clear_errors() {
    let scratch = Scratch::new();
    let base = [
        "--proxy",
        "ws://127.0.0.1:9",
        "--serve",
        "http://127.0.0.1:9",
    ];
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (ok, text) = endpoint(&args, env);
        assert!(!ok, "{extra:?} must not start: {text}");
        assert!(!text.contains(TOKEN), "the token is in the error: {text}");
        text
    };

    let missing = scratch.path("no-such-token");
    let text = run(&["--token-file", &missing], &[]);
    assert!(
        text.contains(&missing) && text.contains("No such file"),
        "{text}"
    );

    let empty = scratch.write("empty", b"\n");
    let text = run(&["--token-file", &empty], &[]);
    assert!(text.contains("empty"), "{text}");

    let file = scratch.write("token", TOKEN.as_bytes());
    let text = run(&["--token", TOKEN, "--token-file", &file], &[]);
    assert!(text.contains("both give a token"), "{text}");
    let text = run(&["--token-file", &file], &[("HTTPWS_TOKEN", TOKEN)]);
    assert!(text.contains("HTTPWS_TOKEN in the environment"), "{text}");

    let spaced = scratch.write("spaced", format!("{TOKEN} x\n").as_bytes());
    let text = run(&["--token-file", &spaced], &[]);
    assert!(text.contains("visible ASCII"), "{text}");
    let text = run(&[], &[("HTTPWS_TOKEN", &format!("{TOKEN}\nInjected: 1"))]);
    assert!(text.contains("visible ASCII"), "{text}");
}

on_both_drivers!(the_token_comes_from_the_environment_or_a_file_and_is_never_logged);
