//! The service's answer, sent back over the tunnel: whole when its body is known to be
//! small (or the tunnel carries only whole messages), else streamed as the service writes
//! it, read from the service only as the caller grants credit, so a slow caller slows the
//! service's writes rather than growing the agent.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncRead;

use super::response::{ResponseHead, tunnel_response, tunnel_stream_head};
use super::{error_answer, service_failed};
use crate::endpoint::body_reader::BodyReader;
use crate::endpoint::http1::{self, BodyLength};
use crate::endpoint::pump::{self, PumpError};
use crate::endpoint::session::{Incoming, Session};
use crate::endpoint::stream::WHOLE_BODY_MAX_BYTES;
use crate::proto::answer_error::AnswerError;
use crate::proto::handshake::Protocol;
use crate::proto::http1::chunked::ChunkedScanner;

/// Whether a response body goes whole: it has none, it is known to be small (a small chunked
/// one already read whole counts), or the tunnel cannot stream it.
fn goes_whole(response: &ResponseHead, buf: &[u8], streams: bool) -> bool {
    !streams
        || match response.length {
            BodyLength::Empty => true,
            BodyLength::Length(n) => n <= WHOLE_BODY_MAX_BYTES as u64,
            BodyLength::Chunked => matches!(
                ChunkedScanner::new().scan(buf),
                Ok(Some(end)) if end <= WHOLE_BODY_MAX_BYTES
            ),
            BodyLength::UntilClose => false,
        }
}

/// Answer `to` with the service's (at `service`) `response`, whose body is read from `rd` (starting with
/// `buf`). `limit`: how long reading a whole body (of at most `max_body_bytes`) may take.
/// True when the body was read exactly to its end, so that the connection may be reused.
pub(super) async fn answer<R: AsyncRead + Unpin>(
    session: &Session,
    (to, service): (&Incoming, &str),
    response: &mut ResponseHead,
    (rd, buf): (&mut R, &mut BytesMut),
    is_head: bool,
    (limit, max_body_bytes): (Duration, usize),
) -> bool {
    let streams = session.protocol() == Some(Protocol::V2);
    if goes_whole(response, buf, streams) {
        let read = http1::read_body(rd, buf, response.length, max_body_bytes);
        let body = match tokio::time::timeout(limit, read).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                service_failed(session, to, service, e.into()).await;
                return false;
            }
            Err(_) => {
                let (head, body) = error_answer(
                    AnswerError::Timeout,
                    &format!("the service did not answer within {limit:?}"),
                );
                session.respond(to, head, body).await;
                return false;
            }
        };
        let (head, body) = tunnel_response(response, body, is_head);
        return session.respond(to, head, body).await;
    }
    let head = tunnel_stream_head(response);
    let length = match response.length {
        BodyLength::Length(n) => Some(n),
        _ => None,
    };
    let reader = BodyReader::new(response.length);
    let Some(writer) = session.respond_streaming(to, head, length).await else {
        return false;
    };
    match pump::into_tunnel(rd, buf, reader, writer, None).await {
        Ok(()) => true,
        // The writer was dropped: the caller sees a reset, never a short body.
        Err(PumpError::Local(e)) => {
            tracing::warn!(%service, error = %e, "service: the service's streamed response broke");
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "service: a streamed response stopped");
            false
        }
    }
}
