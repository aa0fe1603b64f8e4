//! A client's request to switch protocols (`Connection: upgrade` with `Upgrade: websocket`,
//! or any other), over a protocol-2 tunnel: it goes as a stream request that keeps its
//! `Upgrade`, and a `101` from the far side turns the client's connection into two byte
//! streams, data messages both ways, until each side ends its own or either breaks. Any
//! other answer is an ordinary response, and the (empty) request ends.

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

use super::config::ListenerConfig;
use super::connection::After;
use super::local_error::{LocalError, write_local_error};
use super::request::Parsed;
use super::response::{Reply, put_client_head, write_response};
use super::streamed::write_streamed;
use crate::endpoint::http1::{Http1Error, MAX_HEADERS};
use crate::endpoint::pump::splice;
use crate::endpoint::session::{Session, TunnelResponse};
use crate::endpoint::timed_write::{within, write_two};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::{parse, write};

/// Send the upgrade request and serve its answer; returns what becomes of the client
/// connection (it ends, once it was upgraded: with a reset when a direction broke, so that
/// the client never takes the break for the far side's half-close).
pub(super) async fn upgrade(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    parsed: Parsed,
    protocol: &[u8],
    session: &Session,
    config: &ListenerConfig,
) -> Result<After, Http1Error> {
    let limit = config.client_timeout;
    let mut head = parsed.head;
    write::put_header(&mut head, b"Connection", b"Upgrade");
    write::put_header(&mut head, b"Upgrade", protocol);
    let (writer, pending) = match session.request_streaming(head, None).await {
        Ok(opened) => opened,
        Err(failure) => {
            let mut answer = LocalError::tunnel(failure);
            answer.close = parsed.close;
            write_local_error(stream, &answer, limit).await?;
            return Ok(After::of(parsed.close));
        }
    };
    let reply = Reply {
        is_head: parsed.is_head,
        close: parsed.close,
        http10: parsed.http10,
        max_body_bytes: session.max_body_bytes(),
        limit,
    };
    let response = match tokio::time::timeout(config.request_timeout, pending.wait()).await {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => {
            let mut answer = LocalError::tunnel(failure);
            answer.close = parsed.close;
            write_local_error(stream, &answer, limit).await?;
            return Ok(After::of(parsed.close));
        }
        Err(_) => {
            let why = format!("no response within {:?}", config.request_timeout);
            let answer = LocalError::answer(AnswerError::Timeout, why, parsed.close);
            write_local_error(stream, &answer, limit).await?;
            return Ok(After::of(parsed.close));
        }
    };
    let TunnelResponse { message, body, .. } = response;
    match body {
        // A whole answer ended the exchange: the writer stops without a reset.
        None => {
            drop(writer);
            Ok(After::of(write_response(stream, &message, &reply).await?))
        }
        Some(body) if status(&message) == 101 => {
            write_switch_head(stream, &message, &reply).await?;
            match splice(stream, buf, body, writer, limit).await {
                true => Ok(After::Close),
                false => Ok(After::Abort { reset: true }),
            }
        }
        Some(body) => {
            // Not switched: the request had no body, and ends now.
            let _ = writer.end().await;
            let (mut rd, mut wr) = stream.split();
            let outcome =
                write_streamed(&mut wr, Some((&mut rd, buf)), &message, body, &reply).await?;
            Ok(After::of_streamed(outcome))
        }
    }
}

/// The status of a response head (0 if it cannot be read).
fn status(message: &Bytes) -> u16 {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    match parse::response(&mut resp, message, &mut headers) {
        Ok(httparse::Status::Complete(_)) => resp.code.unwrap_or(0),
        _ => 0,
    }
}

/// The `101` the client gets: the far side's head, with its `Upgrade`.
async fn write_switch_head(
    stream: &mut TcpStream,
    message: &Bytes,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    let _ = parse::response(&mut resp, message, &mut headers);
    let mut head = BytesMut::with_capacity(message.len() + 32);
    put_client_head(&mut head, &resp);
    head.extend_from_slice(b"\r\n");
    within(reply.limit, write_two(stream, &head, b"")).await
}
