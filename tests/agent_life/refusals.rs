//! The proxy refuses a registration: the agent shows the proxy's reason, stops on a refusal
//! that cannot heal (401, 403, a 409 from a holder with another credential), and keeps
//! retrying one that can (a 409 whose holder may be our own previous connection).

use crate::common::IO_TIMEOUT;
use crate::common::driver::Driver;
use crate::common::proxy::Proxy;
use crate::common::scratch::Scratch;
use crate::common::service::Service;
use crate::common::ws::connect_with;
use crate::on_both_drivers;
use crate::support::{LoggedAgent, tokens_file};

const TEAM: &str = "team-token-1";
const OTHER: &str = "other-token-2";

fn refusals_that_cannot_heal_stop_the_agent_with_the_proxy_reason(driver: Driver) {
    let scratch = Scratch::new();
    let tokens = tokens_file(&scratch, &[(TEAM, &["team-*"])]);
    let proxy = Proxy::start(driver, &["--tokens", &tokens]);
    let url = format!("ws://{}", proxy.addr);
    let service = Service::start();

    // 403: the token may not have this name. The exit error and the log line both carry
    // the proxy's own words, not just "403 Forbidden".
    let mut agent = LoggedAgent::start(
        &url,
        &["--name", "bob", "--token", TEAM, "--serve", &service.url()],
        &[],
    );
    let log = agent.expect_failure(IO_TIMEOUT);
    assert!(log.contains("403"), "{log}");
    assert!(log.contains("this token may not register bob"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("Error:") && l.contains("this token may not register bob")),
        "the exit error names the reason: {log}"
    );

    // 401: no token at all.
    let mut agent = LoggedAgent::start(&url, &["--name", "team-x", "--serve", &service.url()], &[]);
    let log = agent.expect_failure(IO_TIMEOUT);
    assert!(log.contains("401"), "{log}");
    assert!(log.contains("a valid bearer token is required"), "{log}");
}

fn a_name_held_by_another_credential_stops_the_agent(driver: Driver) {
    let scratch = Scratch::new();
    let tokens = tokens_file(&scratch, &[(TEAM, &["*"]), (OTHER, &["*"])]);
    let proxy = Proxy::start(driver, &["--tokens", &tokens]);
    let holder = connect_with(
        &proxy,
        "/bob",
        &[("Authorization", &format!("Bearer {TEAM}"))],
    )
    .expect("the holder registers");
    assert_eq!(holder.address, "bob");
    let service = Service::start();
    // Another token: the holder is not our old connection (ours would have been taken
    // over), so the name will not come free by waiting.
    let mut agent = LoggedAgent::start(
        &format!("ws://{}", proxy.addr),
        &[
            "--name",
            "bob",
            "--token",
            OTHER,
            "--serve",
            &service.url(),
            "--reconnect-max",
            "200ms",
        ],
        &[],
    );
    let log = agent.expect_failure(IO_TIMEOUT);
    assert!(log.contains("409"), "{log}");
    assert!(log.contains("held by another"), "the proxy's reason: {log}");
    // With our own token the same agent takes the name over instead.
    let mut owner = LoggedAgent::start(
        &format!("ws://{}", proxy.addr),
        &["--name", "bob", "--token", TEAM, "--serve", &service.url()],
        &[],
    );
    assert_eq!(owner.wait_registered(IO_TIMEOUT), "bob");
}

fn a_name_held_without_a_token_is_retried_until_it_is_free(driver: Driver) {
    let proxy = Proxy::start(driver, &[]);
    let holder = connect_with(&proxy, "/bob", &[]).expect("the holder registers");
    let service = Service::start();
    let mut agent = LoggedAgent::start(
        &format!("ws://{}", proxy.addr),
        &[
            "--name",
            "bob",
            "--serve",
            &service.url(),
            "--reconnect-max",
            "200ms",
            "--log",
            "debug",
        ],
        &[],
    );
    // The holder may be our own previous connection, which the proxy drops when it times
    // out: retried, with the proxy's reason in the log.
    agent.expect_log(
        &["409", "held by another connection", "retrying"],
        IO_TIMEOUT,
    );
    agent.expect_log(&["attempt=3"], IO_TIMEOUT);
    assert!(agent.running(), "a 409 without a token is retried");
    drop(holder);
    assert_eq!(agent.wait_registered(IO_TIMEOUT), "bob");
    // Nothing fatal was logged on the way.
    assert!(
        !agent.log.iter().any(|l| l.contains("giving up")),
        "{:#?}",
        agent.log
    );
}

on_both_drivers!(
    refusals_that_cannot_heal_stop_the_agent_with_the_proxy_reason,
    a_name_held_by_another_credential_stops_the_agent,
    a_name_held_without_a_token_is_retried_until_it_is_free,
);
