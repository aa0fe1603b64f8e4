//! One local client connection: request after request (keep-alive, pipelining), each sent
//! over the tunnel and answered on the same connection. From a request's first byte it has
//! one deadline for its head and its body; between requests the connection may only idle
//! for so long.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::config::ListenerConfig;
use super::local_error::{LocalError, write_local_error};
use super::request;
use super::response::{Reply, write_response};
use super::timed_write::within;
use crate::endpoint::http1::{self, BodyLength, Http1Error};
use crate::endpoint::session::{Failure, Session};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::write;

/// Serve one client until it closes, idles past its limit, or a request ends the connection.
pub(super) async fn serve_client(
    mut stream: TcpStream,
    session: &Session,
    config: &ListenerConfig,
) -> Result<(), Http1Error> {
    stream.set_nodelay(true)?;
    let limit = config.client_timeout;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // Between requests the client may be idle; a pipelined request has already begun.
        if buf.is_empty() {
            match tokio::time::timeout(config.idle_timeout, stream.read_buf(&mut buf)).await {
                Err(_) | Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        // From its first byte, the request has one deadline for its head and its body.
        let deadline = Instant::now() + limit;
        let head_len = match tokio::time::timeout_at(
            deadline,
            http1::read_head(&mut stream, &mut buf, config.max_head_bytes),
        )
        .await
        {
            Err(_) => {
                write_local_error(&mut stream, &LocalError::too_slow(limit), limit).await?;
                return Ok(());
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(n))) => n,
            Ok(Err(e)) => return refuse(&mut stream, e, config.max_head_bytes, limit).await,
        };
        let parsed = match request::parse_request(&buf[..head_len], config) {
            Ok(parsed) => parsed,
            Err(answer) => {
                write_local_error(&mut stream, &answer, limit).await?;
                if answer.close {
                    return Ok(());
                }
                buf.advance(head_len);
                continue;
            }
        };
        buf.advance(head_len);
        let has_body = parsed.body != BodyLength::Empty;
        if !session.is_up() {
            // Fail fast, before the client sends a body we would only throw away; with a
            // body still unread on the wire the connection cannot be reused.
            let mut answer = LocalError::tunnel(Failure::TunnelDown);
            answer.close = has_body || parsed.close;
            write_local_error(&mut stream, &answer, limit).await?;
            if answer.close {
                return Ok(());
            }
            continue;
        }
        if parsed.expect_continue && has_body {
            within(limit, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await?;
        }
        let read = http1::read_body(&mut stream, &mut buf, parsed.body, config.max_body_bytes);
        let body = match tokio::time::timeout_at(deadline, read).await {
            Err(_) => {
                write_local_error(&mut stream, &LocalError::too_slow(limit), limit).await?;
                return Ok(());
            }
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return refuse(&mut stream, e, config.max_head_bytes, limit).await,
        };
        let mut head = parsed.head;
        if has_body || !body.is_empty() {
            write::put_content_length(&mut head, body.len() as u64);
        }
        let outcome =
            tokio::time::timeout(config.request_timeout, session.request(head, body)).await;
        let close = match outcome {
            Ok(Ok(message)) => {
                let reply = Reply {
                    is_head: parsed.is_head,
                    close: parsed.close,
                    max_body_bytes: session.max_body_bytes(),
                    limit,
                };
                write_response(&mut stream, &message, &reply).await?
            }
            Ok(Err(failure)) => {
                let mut answer = LocalError::tunnel(failure);
                answer.close = parsed.close;
                write_local_error(&mut stream, &answer, limit).await?;
                parsed.close
            }
            Err(_) => {
                let answer = LocalError::answer(
                    AnswerError::Timeout,
                    format!("no response within {:?}", config.request_timeout),
                    parsed.close,
                );
                write_local_error(&mut stream, &answer, limit).await?;
                parsed.close
            }
        };
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// A request that could not be read whole: answer it where there is an answer (a head too
/// large, a malformed one), then end the connection with the error.
async fn refuse(
    stream: &mut TcpStream,
    e: Http1Error,
    max_head_bytes: usize,
    limit: Duration,
) -> Result<(), Http1Error> {
    if let Some(answer) = LocalError::from_http1(&e, max_head_bytes) {
        write_local_error(stream, &answer, limit).await?;
    }
    Err(e)
}
