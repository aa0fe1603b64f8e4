//! The answers the agent makes itself on the listener: a client's own request refused
//! (`400`, `405`, `408`, `413`, `431`, `501`, without a token), and the tunnel's failures
//! (with `Httpws-Error`).

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::endpoint::http1::{Http1Error, MAX_HEADERS};
use crate::endpoint::session::Failure;
use crate::endpoint::timed_write::{within, write_two};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::write;

/// An answer the agent makes itself, and whether the connection closes after it.
pub(super) struct LocalError {
    /// The status line's code.
    pub(super) status: u16,
    /// The `Httpws-Error` token, for a failure of the tunnel rather than of the request.
    pub(super) token: Option<AnswerError>,
    /// The `text/plain` body, one line.
    pub(super) reason: String,
    /// Whether the connection closes after the answer.
    pub(super) close: bool,
}

impl LocalError {
    /// An answer with `Httpws-Error` (so the status is the token's).
    pub(super) fn answer(error: AnswerError, reason: impl Into<String>, close: bool) -> Self {
        LocalError {
            status: error.status(),
            token: Some(error),
            reason: reason.into(),
            close,
        }
    }

    /// A refusal of the local client's own request, without a token.
    pub(super) fn new(status: u16, reason: impl Into<String>) -> Self {
        LocalError {
            status,
            token: None,
            reason: reason.into(),
            close: true,
        }
    }

    pub(super) fn from_http1(e: &Http1Error, max_head_bytes: usize) -> Option<Self> {
        match e {
            Http1Error::HeadTooLarge { .. } => Some(LocalError::new(
                431,
                format!("request head exceeds {max_head_bytes} bytes or {MAX_HEADERS} headers"),
            )),
            Http1Error::BodyTooLarge { limit } => Some(LocalError::new(
                413,
                format!("request body exceeds {limit} bytes"),
            )),
            Http1Error::Malformed(why) => Some(LocalError::new(400, *why)),
            Http1Error::UnsupportedCoding => Some(LocalError::new(
                501,
                "only Transfer-Encoding: chunked is supported (the body is re-framed, and another \
                 coding would lose its label); send a Content-Length or chunked body",
            )),
            Http1Error::Closed | Http1Error::Io(_) => None,
        }
    }

    pub(super) fn too_slow(limit: Duration) -> Self {
        LocalError::new(
            408,
            format!("the request did not arrive whole within {limit:?} (--client-timeout)"),
        )
    }

    pub(super) fn tunnel(failure: Failure) -> Self {
        let error = match failure {
            Failure::TunnelDown | Failure::Closed => AnswerError::TunnelDown,
            Failure::TargetGone => AnswerError::TargetGone,
            Failure::TooLarge | Failure::NoStreams => AnswerError::MessageTooLarge,
        };
        LocalError::answer(error, failure.to_string(), false)
    }
}

/// Write the agent's own answer (`Httpws-Error` when it has a token).
pub(super) async fn write_local_error<W: AsyncWrite + Unpin>(
    stream: &mut W,
    answer: &LocalError,
    limit: Duration,
) -> std::io::Result<()> {
    let body = format!("{}\n", answer.reason);
    let mut head = BytesMut::with_capacity(256);
    match answer.token {
        Some(error) => write::put_answer_head(&mut head, error, None, body.len()),
        None => write::put_plain_error_head(&mut head, answer.status, body.len()),
    }
    if answer.close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    within(limit, write_two(stream, &head, body.as_bytes())).await?;
    if answer.close {
        let _ = stream.shutdown().await;
    }
    Ok(())
}
