//! One local client connection: request after request (keep-alive, pipelining), each sent
//! over the tunnel and answered on the same connection.
//!
//! A request goes one of three ways. A body known to be small, or any body on a protocol-1
//! tunnel, is read whole within the request's deadline and sent with it (as it always was).
//! A larger or open-ended body, on a protocol-2 tunnel, streams: read from the client piece
//! by piece as the far side grants credit, while the answer is awaited, since it may come
//! first. An `Upgrade` request goes to `upgrade`. Whatever the request, the answer may be
//! whole or stream back (`streamed`).

use std::pin::pin;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::time::Instant;

use super::config::ListenerConfig;
use super::local_error::{LocalError, write_local_error};
use super::request::{self, Parsed};
use super::response::{Reply, write_response};
use super::streamed::{Streamed, client_gone, write_streamed};
use super::upgrade::upgrade;
use crate::endpoint::body_reader::BodyReader;
use crate::endpoint::http1::{self, BodyLength, Http1Error};
use crate::endpoint::pump::{self, PumpError};
use crate::endpoint::session::{Failure, Session, TunnelResponse};
use crate::endpoint::stream::{BodyError, WHOLE_BODY_MAX_BYTES};
use crate::endpoint::timed_write::within;
use crate::proto::answer_error::AnswerError;
use crate::proto::handshake::Protocol;
use crate::proto::http1::chunked::ChunkedScanner;
use crate::proto::http1::write;

/// What becomes of the connection after a request.
pub(super) enum After {
    /// Read the next request.
    KeepAlive,
    /// Close it (the client asked, or its next request cannot be found).
    Close,
    /// End it at once, mid-answer: with a TCP reset when `reset` (a close-delimited body
    /// must not seem to have ended).
    Abort { reset: bool },
}

impl After {
    pub(super) fn of(close: bool) -> After {
        if close {
            After::Close
        } else {
            After::KeepAlive
        }
    }

    pub(super) fn of_streamed(streamed: Streamed) -> After {
        match streamed {
            Streamed::Complete { close } => After::of(close),
            Streamed::Broken { reset } => After::Abort { reset },
        }
    }
}

/// How a request travels.
enum Plan {
    /// Its body (if any) read whole, sent in one message.
    Whole,
    /// Its body streams, with this declared length if known.
    Stream(Option<u64>),
    /// It asks to switch to this protocol.
    Upgrade(Vec<u8>),
}

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
        // From its first byte, the request has one deadline for its head and (whole) body.
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
        let streams = session.protocol() == Some(Protocol::V2);
        let parsed = match request::parse_request(&buf[..head_len], config, streams) {
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
        let after = match plan(&parsed, &buf, streams) {
            Plan::Upgrade(protocol) => {
                upgrade(&mut stream, &mut buf, parsed, &protocol, session, config).await?
            }
            Plan::Stream(length) => {
                streamed_request(&mut stream, &mut buf, parsed, length, session, config).await?
            }
            Plan::Whole => {
                whole_request(&mut stream, &mut buf, parsed, deadline, session, config).await?
            }
        };
        match after {
            After::KeepAlive => {}
            After::Close => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            After::Abort { reset } => {
                if reset {
                    pump::reset_on_close(&stream);
                } else {
                    let _ = stream.shutdown().await;
                }
                return Ok(());
            }
        }
    }
}

/// How `parsed` travels: whole when small (or the tunnel carries only whole messages),
/// streamed when large or open-ended, upgraded when it asks to be and can be.
fn plan(parsed: &Parsed, buf: &[u8], streams: bool) -> Plan {
    if !streams {
        return Plan::Whole;
    }
    if let Some(protocol) = &parsed.upgrade {
        // A body before the switch would have to end where the upgraded bytes begin, which
        // a stream cannot say: such a request goes without its `Upgrade`.
        if matches!(parsed.body, BodyLength::Empty | BodyLength::Length(0)) {
            return Plan::Upgrade(protocol.clone());
        }
    }
    match parsed.body {
        BodyLength::Empty | BodyLength::UntilClose => Plan::Whole,
        BodyLength::Length(n) if n <= WHOLE_BODY_MAX_BYTES as u64 => Plan::Whole,
        BodyLength::Length(n) => Plan::Stream(Some(n)),
        // A small chunked body that has arrived whole already goes whole.
        BodyLength::Chunked => match ChunkedScanner::new().scan(buf) {
            Ok(Some(end)) if end <= WHOLE_BODY_MAX_BYTES => Plan::Whole,
            Err(_) => Plan::Whole,
            _ => Plan::Stream(None),
        },
    }
}

fn reply(parsed: &Parsed, session: &Session, limit: Duration, close: bool) -> Reply {
    Reply {
        is_head: parsed.is_head,
        close,
        http10: parsed.http10,
        max_body_bytes: session.max_body_bytes(),
        limit,
    }
}

/// A request whose body (if any) is read whole and sent in one message.
async fn whole_request(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    parsed: Parsed,
    deadline: Instant,
    session: &Session,
    config: &ListenerConfig,
) -> Result<After, Http1Error> {
    let limit = config.client_timeout;
    let has_body = parsed.body != BodyLength::Empty;
    if parsed.expect_continue && has_body {
        within(limit, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await?;
    }
    let read = http1::read_body(stream, buf, parsed.body, config.max_body_bytes);
    let body = match tokio::time::timeout_at(deadline, read).await {
        Err(_) => {
            write_local_error(stream, &LocalError::too_slow(limit), limit).await?;
            return Ok(After::Close);
        }
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return refuse(stream, e, config.max_head_bytes, limit)
                .await
                .map(|()| After::Close);
        }
    };
    let mut head = parsed.head.clone();
    if has_body || !body.is_empty() {
        write::put_content_length(&mut head, body.len() as u64);
    }
    let outcome = tokio::time::timeout(config.request_timeout, session.request(head, body)).await;
    match outcome {
        Ok(Ok(response)) => {
            let reply = reply(&parsed, session, limit, parsed.close);
            answer(stream, buf, response, &reply).await
        }
        Ok(Err(failure)) => {
            let mut answer = LocalError::tunnel(failure);
            answer.close = parsed.close;
            write_local_error(stream, &answer, limit).await?;
            Ok(After::of(parsed.close))
        }
        Err(_) => {
            timed_out(stream, config, parsed.close).await?;
            Ok(After::of(parsed.close))
        }
    }
}

/// The `504` for a response that did not come within `--request-timeout`.
async fn timed_out(
    stream: &mut TcpStream,
    config: &ListenerConfig,
    close: bool,
) -> std::io::Result<()> {
    let answer = LocalError::answer(
        AnswerError::Timeout,
        format!("no response within {:?}", config.request_timeout),
        close,
    );
    write_local_error(stream, &answer, config.client_timeout).await
}

/// Write the tunnel's answer to a request the client has sent completely: whole, or
/// streamed while the client's connection is watched (a client that leaves resets it).
async fn answer(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    response: TunnelResponse,
    reply: &Reply,
) -> Result<After, Http1Error> {
    let TunnelResponse { message, body, .. } = response;
    match body {
        None => Ok(After::of(write_response(stream, &message, reply).await?)),
        Some(body) => {
            let (mut rd, mut wr) = stream.split();
            let streamed = write_streamed(&mut wr, Some((&mut rd, buf)), &message, body, reply);
            Ok(After::of_streamed(streamed.await?))
        }
    }
}

/// A request whose body streams: the body goes as the far side's credit allows, while its
/// answer is awaited (it may come before the body ends). Once the body is complete, the
/// answer has `--request-timeout`, and a client that leaves meanwhile gives the exchange up
/// (`reset cancel`).
async fn streamed_request(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    parsed: Parsed,
    length: Option<u64>,
    session: &Session,
    config: &ListenerConfig,
) -> Result<After, Http1Error> {
    let limit = config.client_timeout;
    let (writer, pending) = match session.request_streaming(parsed.head.clone(), length).await {
        Ok(opened) => opened,
        Err(failure) => {
            // The body stays unread: the connection cannot go on.
            let mut answer = LocalError::tunnel(failure);
            answer.close = true;
            write_local_error(stream, &answer, limit).await?;
            return Ok(After::Close);
        }
    };
    if parsed.expect_continue {
        within(limit, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await?;
    }
    let (mut rd, mut wr) = stream.split();
    let reader = BodyReader::new(parsed.body);
    // A stalled client body is given the client timeout per read, not for the whole body.
    let mut pump = Box::pin(pump::into_tunnel(&mut rd, buf, reader, writer, Some(limit)));
    let mut wait = pin!(pending.wait());
    // Whether the pump has stopped without the body's end (a future that completed is
    // never polled again).
    let mut pump_stopped = false;
    let answered = loop {
        tokio::select! {
            r = &mut pump, if !pump_stopped => match r {
                Ok(()) => break None,
                // The far side answered, reset, or the tunnel dropped: the answer (or the
                // failure) is on its way.
                Err(PumpError::Tunnel(_)) => pump_stopped = true,
                // The client's body broke: the exchange was reset, no answer will come.
                Err(e) => {
                    drop(pump);
                    return client_broke(&mut wr, &e, config).await;
                }
            },
            response = &mut wait => break Some(response),
        }
    };
    let Some(response) = answered else {
        // The body is complete.
        drop(pump);
        let deadline = Instant::now() + config.request_timeout;
        let mut watching = true;
        let response = loop {
            tokio::select! {
                response = &mut wait => break response,
                _ = tokio::time::sleep_until(deadline) => {
                    let answer = LocalError::answer(
                        AnswerError::Timeout,
                        format!("no response within {:?}", config.request_timeout),
                        parsed.close,
                    );
                    write_local_error(&mut wr, &answer, limit).await?;
                    return Ok(After::of(parsed.close));
                }
                gone = client_gone(&mut rd, buf), if watching => {
                    if gone {
                        // Nobody to answer: the exchange is given up as `wait` goes.
                        return Ok(After::Close);
                    }
                    // Bytes of a next request: kept, and the watch ends.
                    watching = false;
                }
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(failure) => {
                let mut answer = LocalError::tunnel(failure);
                answer.close = parsed.close;
                write_local_error(&mut wr, &answer, limit).await?;
                return Ok(After::of(answer.close));
            }
        };
        let TunnelResponse { message, body, .. } = response;
        let reply = reply(&parsed, session, limit, parsed.close);
        return match body {
            None => Ok(After::of(write_response(&mut wr, &message, &reply).await?)),
            Some(body) => {
                let streamed =
                    write_streamed(&mut wr, Some((&mut rd, buf)), &message, body, &reply);
                Ok(After::of_streamed(streamed.await?))
            }
        };
    };
    // Answered before the body ended: what is left of it stays unread, so the connection
    // ends after the answer.
    let response = match response {
        Ok(response) => response,
        Err(failure) => {
            drop(pump);
            let mut answer = LocalError::tunnel(failure);
            answer.close = true;
            write_local_error(&mut wr, &answer, limit).await?;
            return Ok(After::Close);
        }
    };
    let TunnelResponse { message, body, .. } = response;
    let reply = reply(&parsed, session, limit, true);
    let none: Option<(&mut ReadHalf<'_>, &mut BytesMut)> = None;
    match body {
        // A whole answer ends the exchange; what is left of the body is not wanted.
        None => {
            drop(pump);
            Ok(After::of(write_response(&mut wr, &message, &reply).await?))
        }
        // The body stopped (the stream was reset meanwhile): the answer goes as far as it can.
        Some(body) if pump_stopped => {
            drop(pump);
            let streamed = write_streamed(&mut wr, none, &message, body, &reply);
            Ok(After::of_streamed(streamed.await?))
        }
        Some(body) => {
            // Both bodies stream at once.
            let written = write_streamed(&mut wr, none, &message, body, &reply);
            let (streamed, pumped) = tokio::join!(written, &mut pump);
            // The answer's head said `Connection: close`: the body's end was not known yet.
            match pumped {
                Ok(()) => Ok(After::of_streamed(streamed?)),
                Err(_) => Ok(After::Abort { reset: false }),
            }
        }
    }
}

/// The client's streamed body broke before any answer: say why where there is a way to,
/// then end the connection.
async fn client_broke<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    e: &PumpError,
    config: &ListenerConfig,
) -> Result<After, Http1Error> {
    let limit = config.client_timeout;
    let answer = match e {
        PumpError::Stalled(_) => Some(LocalError::too_slow(limit)),
        PumpError::Local(e) => LocalError::from_http1(e, config.max_head_bytes),
        PumpError::Tunnel(BodyError::Answered) | PumpError::Tunnel(_) => None,
    };
    if let Some(answer) = answer {
        write_local_error(wr, &answer, limit).await?;
    }
    Ok(After::Close)
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
