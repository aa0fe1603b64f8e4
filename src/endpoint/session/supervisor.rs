//! The session's life: connect, run the link, fail what waited on it, back off, repeat,
//! until closed or refused for good. Problems no retry can fix stop it; everything else is
//! retried, with a warning for the first failure in a row.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::time::{Instant, sleep};

use super::backoff::Backoff;
use super::connect::{AttemptError, connect};
use super::failure::Fatal;
use super::reader::{LinkEnd, LinkStart, run_link};
use super::shared::{Shared, lock};
use super::status::Status;
use crate::endpoint::config::SessionConfig;
use crate::endpoint::refusal::{self, Verdict};
use crate::endpoint::tls::client_config;

/// A registration that lasted this long resets the reconnect backoff.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// The session's life: connect, run the link, fail what waited on it, back off, repeat.
pub(super) async fn supervise(shared: Arc<Shared>) {
    let config = &shared.config;
    // Problems no retry can fix are found once, here: no trust anchors, or a host that can
    // never match a certificate.
    let tls = if config.proxy.tls {
        let tls = match &config.tls {
            Some(tls) => Ok(tls.clone()),
            None => client_config(None).map_err(|e| e.to_string()),
        };
        let checked = tls.and_then(
            |tls| match ServerName::try_from(config.proxy.host.as_str()) {
                Ok(_) => Ok(tls),
                Err(_) => Err(format!(
                    "{:?} is not a valid TLS server name",
                    config.proxy.host
                )),
            },
        );
        match checked {
            Ok(tls) => Some(tls),
            Err(why) => {
                let fatal = Fatal::Tls(why);
                tracing::error!(error = %fatal, "tunnel: giving up");
                shared.status.send_replace(Status::Failed(fatal));
                return;
            }
        }
    } else {
        None
    };
    let mut stop = shared.stop.subscribe();
    let mut backoff = Backoff::new(config.reconnect_initial, config.reconnect_max);
    let mut generation = 0u64;
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            break;
        }
        let attempt = tokio::select! {
            r = connect(&shared, tls.as_ref()) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match attempt {
            Ok(connected) => {
                generation += 1;
                let started = Instant::now();
                let start = LinkStart {
                    stream: connected.stream,
                    buf: connected.leftover,
                    generation,
                    protocol: connected.protocol,
                };
                let end = run_link(&shared, start, &mut stop).await;
                shared.teardown(generation);
                match end {
                    LinkEnd::Stopped => break,
                    LinkEnd::Fatal(fatal) => {
                        tracing::error!(error = %fatal, "tunnel: giving up");
                        shared.status.send_replace(Status::Failed(fatal));
                        return;
                    }
                    LinkEnd::Lost(reason) => {
                        tracing::warn!(%reason, "tunnel lost; reconnecting");
                        if started.elapsed() >= STABLE_LINK {
                            backoff.reset();
                        }
                        failures = 0;
                    }
                    LinkEnd::NeverRegistered => failures += 1,
                }
            }
            Err(AttemptError::Fatal(fatal)) => {
                tracing::error!(error = %fatal, "tunnel: giving up");
                shared.status.send_replace(Status::Failed(fatal));
                return;
            }
            Err(AttemptError::Refused { status, reason }) => {
                match after_refusal(&shared, status, &reason) {
                    Verdict::GiveUp => {
                        let fatal = Fatal::Refused { status, reason };
                        tracing::error!(error = %fatal, "tunnel: giving up");
                        shared.status.send_replace(Status::Failed(fatal));
                        return;
                    }
                    // At once: the next attempt asks for `/`, which cannot be refused this way.
                    Verdict::NewName => continue,
                    Verdict::Retry => {
                        let e = AttemptError::Refused { status, reason };
                        log_retry(config, &e, failures);
                        failures += 1;
                    }
                }
            }
            Err(e) => {
                log_retry(config, &e, failures);
                failures += 1;
            }
        }
        let delay = backoff.delay();
        tokio::select! {
            _ = sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    shared.teardown(u64::MAX);
    shared.status.send_replace(Status::Closed);
}

/// A failed attempt that will be retried after the backoff delay. The first failure in a
/// row is worth a warning; the rest repeat it.
fn log_retry(config: &SessionConfig, e: &AttemptError, failures: u32) {
    if failures == 0 {
        tracing::warn!(proxy = %config.proxy, error = %e, "tunnel: connect failed; retrying with backoff");
    } else {
        tracing::debug!(proxy = %config.proxy, error = %e, attempt = failures + 1, "tunnel: connect failed");
    }
}

/// What to do after a refusal ([`refusal::judge`]). For [`Verdict::NewName`] the refused
/// assigned name is forgotten here, so that the next attempt asks for `/`.
fn after_refusal(shared: &Shared, status: u16, reason: &str) -> Verdict {
    let config = &shared.config;
    let mut state = lock(&shared.state);
    let assigned = config.name.is_none() && state.address.is_some();
    let verdict = refusal::judge(status, reason, config.token.is_some(), assigned);
    if verdict == Verdict::NewName {
        if let Some(old) = state.address.take() {
            tracing::warn!(name = %old, status, %reason, "tunnel: the proxy refused the name it had assigned; asking for a new one");
            state.refused_name = Some(old);
        }
    }
    verdict
}
