//! A request whose body streams in over the tunnel, sent to the service as it arrives: with
//! `Content-Length` when the caller declared one, chunked when not, each piece's credit
//! granted back only once the service has taken it (a service that reads slowly slows the
//! caller). The service may answer before the body ends, and its answer may stream while
//! the body still does (an echo, say).
//!
//! It takes a fresh connection: a pooled one the service has closed while idle could not be
//! retried once body bytes have gone.

use std::pin::pin;

use tokio::time::Instant;

use super::answer::answer;
use super::config::ServiceConfig;
use super::pool::{HeadError, ServicePool, read_response_head};
use super::request::ServiceHead;
use super::{fresh_connection, service_failed, timed_out};
use crate::endpoint::http1;
use crate::endpoint::pump::{PumpError, out_of_tunnel};
use crate::endpoint::session::{Incoming, Session};
use crate::endpoint::stream::InboundBody;
use crate::proto::http1::write;

/// Send `request` (head `head`, body streaming in `body`) to the service and answer it.
pub(super) async fn forward(
    session: &Session,
    request: &Incoming,
    head: ServiceHead,
    mut body: InboundBody,
    pool: &ServicePool,
    config: &ServiceConfig,
) {
    let ServiceHead {
        lines: mut wire,
        is_head,
        ..
    } = head;
    let chunked = match body.declared_len() {
        Some(n) => {
            write::put_content_length(&mut wire, n);
            false
        }
        None => {
            wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            true
        }
    };
    wire.extend_from_slice(b"\r\n");
    let Some(mut lease) = fresh_connection(session, request, pool, &wire, config).await else {
        return;
    };
    let mut buf = http1::head_buffer();
    let max_body_bytes = config.max_body_bytes.min(session.max_body_bytes());
    let limits = (config.service_timeout, max_body_bytes);
    let clean = {
        let (mut rd, mut wr) = lease.stream.split();
        let mut pump = pin!(out_of_tunnel(
            &mut wr,
            &mut body,
            chunked,
            config.service_timeout
        ));
        let mut pumped: Option<bool> = None;
        let mut deadline: Option<Instant> = None;
        let response = {
            let mut read = pin!(read_response_head(
                &mut rd,
                &mut buf,
                is_head,
                false,
                pool.max_head_bytes
            ));
            loop {
                tokio::select! {
                    r = &mut pump, if pumped.is_none() => {
                        match r {
                            Ok(()) => pumped = Some(true),
                            // The caller reset the exchange, or the tunnel dropped: nobody to answer.
                            Err(PumpError::Tunnel(e)) => {
                                tracing::debug!(error = %e, "service: a streamed request stopped");
                                return;
                            }
                            // The service stopped taking the body; it may have answered already
                            // (a 413, say), and has the service timeout to.
                            Err(e) => {
                                tracing::debug!(error = %e, "service: the service stopped reading the body");
                                pumped = Some(false);
                            }
                        }
                        // The service timeout runs from when the body is over.
                        deadline = Some(Instant::now() + config.service_timeout);
                    }
                    response = &mut read => break response,
                    _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                        return timed_out(session, request, config).await;
                    }
                }
            }
        };
        let mut response = match response {
            Ok(response) => response,
            Err(HeadError::NothingBack(e) | HeadError::Failed(e)) => {
                return service_failed(session, request, pool.addr(), e.into()).await;
            }
        };
        // The rest of the response is read from `buf` on: the head is out of it.
        match pumped {
            Some(done) => {
                let io = (&mut rd, &mut buf);
                let answered = answer(
                    session,
                    (request, pool.addr()),
                    &mut response,
                    io,
                    is_head,
                    limits,
                )
                .await;
                answered && done && response.keep
            }
            None => {
                // Answered while the body still streams: both go on at once.
                let io = (&mut rd, &mut buf);
                let answered = answer(
                    session,
                    (request, pool.addr()),
                    &mut response,
                    io,
                    is_head,
                    limits,
                );
                let (answered, pumped) = tokio::join!(answered, &mut pump);
                answered && pumped.is_ok() && response.keep
            }
        }
    };
    drop(body);
    if clean && buf.is_empty() {
        lease.give_back();
    }
}
