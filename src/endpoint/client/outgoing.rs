//! An application's body on its way out, a request's or a response's: whole in the head's
//! message when it is known to be small (or the tunnel carries only whole messages), else
//! streamed, each frame sent as the far side's credit allows.

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::endpoint::body::Body;
use crate::endpoint::stream::{BodyError, BodyWriter, WHOLE_BODY_MAX_BYTES};
use crate::proto::stream::ResetReason;

/// How a body goes.
pub(super) enum Outgoing {
    /// Whole, in one message.
    Whole(Bytes),
    /// Streaming, with this length when it is known.
    Stream(Body, Option<u64>),
}

/// Decide how `body` goes: whole when its length is known to be at most
/// [`WHOLE_BODY_MAX_BYTES`], or when `streams` is false (a protocol-1 tunnel), then read
/// whole within `max_body_bytes`; streaming otherwise.
pub(super) async fn prepare(
    body: Body,
    streams: bool,
    max_body_bytes: usize,
) -> Result<Outgoing, BodyError> {
    let hint = body.size_hint();
    let small = body.is_end_stream()
        || hint
            .exact()
            .is_some_and(|n| n <= WHOLE_BODY_MAX_BYTES as u64);
    if small || !streams {
        return Ok(Outgoing::Whole(body.bytes_within(max_body_bytes).await?));
    }
    Ok(Outgoing::Stream(body, hint.exact()))
}

/// Send `body` through `writer`, frame by frame, then `end`; a body that fails resets the
/// exchange (`cancel`), so the far side sees a broken body, not a short one. Trailers are not
/// carried.
pub(super) async fn send(mut body: Body, mut writer: BodyWriter) {
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if let Err(e) = writer.send(data).await {
                        tracing::debug!(error = %e, "endpoint: a streamed body stopped");
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "endpoint: the body being sent failed; resetting");
                writer.reset(ResetReason::Cancel);
                return;
            }
            None => {
                let _ = writer.end().await;
                return;
            }
        }
    }
}
