//! A name the proxy assigned is kept across reconnects while the proxy accepts it, and
//! replaced by a new one (logged loudly) when a restarted proxy refuses it: here a tokens
//! file whose token may have only `team-*` names, so assigned `ep-…` names only through
//! `/`. The agent and the Rust library follow the same rules (they share the session).

use std::time::Duration;

use bytes::Bytes;
use httpws::endpoint::client::ConnectError;

use httpws::endpoint::{Endpoint, Fatal, Status};

use crate::common::IO_TIMEOUT;
use crate::common::driver::Driver;
use crate::common::message::Http;
use crate::common::proxy::{Proxy, assert_assigned};
use crate::common::scratch::Scratch;
use crate::common::service::Service;
use crate::common::ws::{bearer, connect_at};
use crate::on_both_drivers;
use crate::support::{LoggedAgent, tokens_file};

const TEAM: &str = "team-token-1";
const OTHER: &str = "other-token-2";

async fn within<F: std::future::Future>(f: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(IO_TIMEOUT, f).await
}

/// Call `target` from a tungstenite endpoint registered as `team-caller`; the response.
fn call(addr: std::net::SocketAddr, target: &str) -> Http {
    let mut caller = connect_at(addr, "/team-caller", &[("Authorization", &bearer(TEAM))])
        .expect("the caller registers");
    caller.request(target, 1, "/echo?via=tunnel");
    caller.recv_http()
}

fn an_assigned_name_the_restarted_proxy_refuses_is_replaced(driver: Driver) {
    let scratch = Scratch::new();
    let tokens = tokens_file(&scratch, &[(TEAM, &["team-*"])]);
    let proxy = Proxy::start(driver, &["--tokens", &tokens]);
    let addr = proxy.addr;
    let service = Service::start();
    let mut agent = LoggedAgent::start(
        &format!("ws://{addr}"),
        &[
            "--token",
            TEAM,
            "--serve",
            &service.url(),
            "--reconnect-max",
            "200ms",
        ],
        &[],
    );
    let first = agent.wait_registered(IO_TIMEOUT);
    assert_assigned(&first);
    assert_eq!(call(addr, &first).status(), 200);

    // A new proxy process on the same port knows nothing of `first`, and this token may
    // register it only through `/`: the agent asks for a new name instead of exiting.
    drop(proxy);
    let _proxy = Proxy::start_on(driver, addr, &["--tokens", &tokens]);
    let second = agent.wait_registered(IO_TIMEOUT);
    assert_assigned(&second);
    assert_ne!(second, first, "a new name");
    let loud = agent.expect_log(&["WARN", "NEW name", &second, &first], IO_TIMEOUT);
    assert!(loud.contains(&second), "{loud}");
    let answer = call(addr, &second);
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("x-from"), Some("team-caller"));
    assert!(agent.running());
}

/// The library: a new name after the restart, and fatal refusals with status and reason.
fn the_library_follows_the_same_rules(driver: Driver) {
    let scratch = Scratch::new();
    let tokens = tokens_file(&scratch, &[(TEAM, &["team-*"]), (OTHER, &["team-*"])]);
    let proxy = Proxy::start(driver, &["--tokens", &tokens]);
    let addr = proxy.addr;
    let url = format!("ws://{addr}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let endpoint = Endpoint::builder(&url)
            .token(TEAM)
            .configure(|c| c.reconnect_max = Duration::from_millis(200))
            .connect()
            .await
            .expect("registers with an assigned name");
        let first = endpoint.address().expect("up").to_string();
        assert_assigned(&first);
        let server = endpoint.clone();
        tokio::spawn(async move {
            server
                .serve(|req: http::Request<Bytes>| async move {
                    let from = req.headers().get("httpws-from").cloned();
                    let mut res = http::Response::new(Bytes::from_static(b"served"));
                    if let Some(from) = from {
                        res.headers_mut().insert("x-from", from);
                    }
                    res
                })
                .await
        });

        drop(proxy);
        let _proxy = Proxy::start_on(driver, addr, &["--tokens", &tokens]);
        let mut status = endpoint.session().status();
        let now = within(
            status
                .wait_for(|s| matches!(s, Status::Up { address, .. } if address.as_str() != first)),
        )
        .await
        .expect("re-registers in time")
        .expect("status")
        .clone();
        let Status::Up { address, .. } = now else {
            unreachable!()
        };
        let second = address.to_string();
        assert_assigned(&second);
        let answer = tokio::task::spawn_blocking(move || call(addr, &second))
            .await
            .expect("caller thread");
        assert_eq!(answer.status(), 200, "{answer:?}");
        assert_eq!(answer.body, "served");
        assert_eq!(answer.header("x-from"), Some("team-caller"));

        // A chosen name the token may not have: fatal at once, with the proxy's reason.
        let refused = within(Endpoint::builder(&url).name("bob").token(TEAM).connect())
            .await
            .expect("in time");
        match refused {
            Err(ConnectError::Fatal(Fatal::Refused { status, reason })) => {
                assert_eq!(status, 403);
                assert!(
                    reason.contains("this token may not register bob"),
                    "{reason}"
                );
            }
            other => panic!("expected a fatal 403, got {:?}", other.err()),
        }
        // A chosen name held by another credential: fatal 409, not a wait.
        let _held = Endpoint::builder(&url)
            .name("team-held")
            .token(TEAM)
            .connect()
            .await
            .expect("the holder registers");
        let refused = within(
            Endpoint::builder(&url)
                .name("team-held")
                .token(OTHER)
                .connect_within(IO_TIMEOUT),
        )
        .await
        .expect("in time");
        match refused {
            Err(ConnectError::Fatal(Fatal::Refused { status, reason })) => {
                assert_eq!(status, 409);
                assert!(reason.contains("team-held"), "{reason}");
            }
            other => panic!("expected a fatal 409, got {:?}", other.err()),
        }
        endpoint.close().await;
    });
}

on_both_drivers!(
    an_assigned_name_the_restarted_proxy_refuses_is_replaced,
    the_library_follows_the_same_rules,
);
