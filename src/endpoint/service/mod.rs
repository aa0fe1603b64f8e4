//! The agent's service side (`--serve URL`): requests arriving over the tunnel are sent to
//! one local service and its responses sent back with the request's CSeq. The service
//! address is fixed at start: a request's target or `Host` can never point the agent anywhere
//! else (no SSRF), and its path stays under the URL's base path ([`path`]). `Host` becomes
//! the service's authority unless `--preserve-host`; the proxy's `Httpws-From` stamp is
//! passed on so the service knows the caller, and nothing the caller wrote can shadow or
//! remove it (the `request` module).
//!
//! Services and callers are told apart in what goes wrong: the caller gets a token and a
//! neutral reason, the agent's log gets the service's address and the OS error.
//!
//! - [`ServiceUrl`] and [`ServiceConfig`]: where requests go, and the limits; `serve` here:
//!   one task per request, from the tunnel to the service and back.
//! - `request` and `response`: each head as the other side gets it; `answer`: the service's
//!   response sent back whole or streamed; `upload`: a request whose body streams in;
//!   `upgrade`: a request to switch protocols, and the byte streams after a `101`.
//! - [`pool`]: the keep-alive connections to the service; [`path`]: the base-path rule.

mod answer;
mod config;
pub mod path;
pub mod pool;
mod request;
mod response;
mod upgrade;
mod upload;
mod url;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use super::http1::Http1Error;
use super::session::{Incoming, Session};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::write;
use pool::{ServiceError, ServicePool};

pub use config::{DEFAULT_SERVICE_TIMEOUT, ServiceConfig};
pub use url::{ServiceUrl, ServiceUrlError};

/// Take the session's incoming requests and answer each from the service, until the
/// session ends.
pub async fn serve(session: Session, config: ServiceConfig) {
    let Some(mut incoming) = session.take_incoming() else {
        tracing::error!("service: the session's requests are already being served");
        return;
    };
    let pool = Arc::new(ServicePool::new(
        config.service.addr.clone(),
        config.max_service_conns,
        config.max_head_bytes,
        config.max_body_bytes.min(session.max_body_bytes()),
    ));
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_incoming.max(1)));
    while let Some(request) = incoming.recv().await {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let session = session.clone();
        let pool = Arc::clone(&pool);
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            forward(&session, request, &pool, &config).await;
            drop(permit);
        });
    }
}

/// One request to the service and back; every failure becomes an HTTP answer (or, once an
/// answer has begun to stream, a reset).
///
/// Each way of answering is boxed: a spawned task's future is copied whole when it is
/// spawned, moved into its task and overwritten when it ends, and unboxed these states made
/// it about 2.9 KiB, copied several times per request (bench/RESULTS.md, the agent's cost).
async fn forward(
    session: &Session,
    mut request: Incoming,
    pool: &ServicePool,
    config: &ServiceConfig,
) {
    let max_body_bytes = config.max_body_bytes.min(session.max_body_bytes());
    let Some(inbound) = request.body.take() else {
        return Box::pin(whole(session, &request, pool, config, max_body_bytes)).await;
    };
    let head = match request::service_head(&request, config) {
        Ok(head) => head,
        Err(why) => {
            let (head, body) = error_answer(AnswerError::BadRequest, &why);
            session.respond(&request, head, body).await;
            return;
        }
    };
    match head.upgrade.clone() {
        Some(protocol) => {
            Box::pin(upgrade::forward(
                session, &request, head, &protocol, inbound, pool, config,
            ))
            .await
        }
        None => {
            Box::pin(upload::forward(
                session, &request, head, inbound, pool, config,
            ))
            .await
        }
    }
}

/// A request that came whole: sent whole, its answer whole or streamed.
async fn whole(
    session: &Session,
    request: &Incoming,
    pool: &ServicePool,
    config: &ServiceConfig,
    max_body_bytes: usize,
) {
    let (head, body, is_head) = match request::service_request(request, config, max_body_bytes) {
        Ok(parts) => parts,
        Err(why) => {
            let (head, body) = error_answer(AnswerError::BadRequest, &why);
            session.respond(request, head, body).await;
            return;
        }
    };
    let opened =
        tokio::time::timeout(config.service_timeout, pool.open(&head, &body, is_head)).await;
    match opened {
        Ok(Ok(mut opened)) => {
            let limits = (config.service_timeout, max_body_bytes);
            let io = (&mut opened.lease.stream, &mut opened.buf);
            let to = (request, pool.addr());
            let clean = answer::answer(session, to, &mut opened.response, io, is_head, limits);
            let clean = clean.await;
            opened.finish(clean);
        }
        Ok(Err(e)) => service_failed(session, request, pool.addr(), e).await,
        Err(_) => timed_out(session, request, config).await,
    }
}

/// The `504` for a service that did not answer within `--service-timeout`.
async fn timed_out(session: &Session, request: &Incoming, config: &ServiceConfig) {
    let reason = format!(
        "the service did not answer within {:?}",
        config.service_timeout
    );
    let (head, body) = error_answer(AnswerError::Timeout, &reason);
    session.respond(request, head, body).await;
}

/// The service failed: the detail (its address, the OS error) is for the operator only;
/// the caller gets a token and a neutral reason.
async fn service_failed(session: &Session, request: &Incoming, service: &str, e: ServiceError) {
    tracing::warn!(%service, error = %e, "service: the service failed");
    let (error, reason) = e.answer();
    let (head, body) = error_answer(error, reason);
    session.respond(request, head, body).await;
}

/// A fresh connection to the service with `head` written on it, for a request whose body
/// (or upgraded bytes) follow, within `--service-timeout`: every connection may be taken by
/// long streams (events, upgraded connections), and a request must not wait for one without
/// end. `None` when it could not be had, and the request has been answered.
async fn fresh_connection<'p>(
    session: &Session,
    request: &Incoming,
    pool: &'p ServicePool,
    head: &[u8],
    config: &ServiceConfig,
) -> Option<pool::Lease<'p>> {
    let leased = async {
        let mut lease = pool.lease(true).await?;
        match tokio::io::AsyncWriteExt::write_all(&mut lease.stream, head).await {
            Ok(()) => Ok(lease),
            Err(e) => Err(ServiceError::BadResponse(Http1Error::Io(e))),
        }
    };
    match tokio::time::timeout(config.service_timeout, leased).await {
        Ok(Ok(lease)) => Some(lease),
        Ok(Err(e)) => {
            service_failed(session, request, pool.addr(), e).await;
            None
        }
        Err(_) => {
            timed_out(session, request, config).await;
            None
        }
    }
}

/// An answer the agent makes itself for the service side.
fn error_answer(error: AnswerError, reason: &str) -> (BytesMut, Bytes) {
    let body = Bytes::from(format!("{reason}\n"));
    let mut head = BytesMut::with_capacity(160);
    write::put_answer_head(&mut head, error, None, body.len());
    (head, body)
}
