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
//! - `request` and `response`: each message as the other side gets it.
//! - [`pool`]: the keep-alive connections to the service; [`path`]: the base-path rule.

mod config;
pub mod path;
pub mod pool;
mod request;
mod response;
mod url;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use super::session::{Incoming, Session};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::write;
use pool::ServicePool;

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
            let max_body_bytes = config.max_body_bytes.min(session.max_body_bytes());
            let (head, body) = forward(&request, &pool, &config, max_body_bytes).await;
            session.respond(&request, head, body).await;
            drop(permit);
        });
    }
}

/// One request to the service and back; every failure becomes an HTTP answer.
async fn forward(
    request: &Incoming,
    pool: &ServicePool,
    config: &ServiceConfig,
    max_body_bytes: usize,
) -> (BytesMut, Bytes) {
    let (head, body, is_head) = match request::service_request(request, config, max_body_bytes) {
        Ok(parts) => parts,
        Err(why) => return error_answer(AnswerError::BadRequest, &why),
    };
    let service = &config.service.addr;
    let sent = tokio::time::timeout(config.service_timeout, pool.send(&head, &body, is_head)).await;
    match sent {
        Ok(Ok(response)) => match response::tunnel_response(&response.head, response.body, is_head)
        {
            Ok(answer) => answer,
            Err(why) => {
                tracing::warn!(%service, error = why, "service: unusable response from the service");
                error_answer(
                    AnswerError::ServiceError,
                    "the service sent no usable response",
                )
            }
        },
        Ok(Err(e)) => {
            // The detail (the service's address, the OS error) is for the operator only.
            tracing::warn!(%service, error = %e, "service: the service failed");
            let (error, reason) = e.answer();
            error_answer(error, reason)
        }
        Err(_) => error_answer(
            AnswerError::Timeout,
            &format!(
                "the service did not answer within {:?}",
                config.service_timeout
            ),
        ),
    }
}

/// An answer the agent makes itself for the service side.
fn error_answer(error: AnswerError, reason: &str) -> (BytesMut, Bytes) {
    let body = Bytes::from(format!("{reason}\n"));
    let mut head = BytesMut::with_capacity(160);
    write::put_answer_head(&mut head, error, None, body.len());
    (head, body)
}
