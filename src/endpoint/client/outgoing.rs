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
/// carried. Once the exchange is over for it (reset, answered whole, the tunnel gone) the
/// body is dropped at once, even while it waits for its next frame (an event stream idle
/// for hours, say): it must not hold on to what it reads from until then.
pub(super) async fn send(mut body: Body, mut writer: BodyWriter) {
    loop {
        let frame = tokio::select! {
            why = writer.closed() => {
                tracing::debug!(error = %why, "endpoint: a streamed body is not wanted any more");
                return;
            }
            frame = body.frame() => frame,
        };
        match frame {
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use http_body::Frame;

    use super::*;
    use crate::endpoint::stream::Start;
    use crate::endpoint::stream::test_support::exchange;

    /// A body that never yields its next frame, and says when it is dropped.
    struct Idle(Arc<AtomicBool>);

    impl http_body::Body for Idle {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    impl Drop for Idle {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_waiting_body_is_dropped_when_its_stream_is_reset() {
        let (exchange, _link) = exchange(Start::Streaming(None), Start::Waiting);
        let dropped = Arc::new(AtomicBool::new(false));
        let body = Body::new(Idle(Arc::clone(&dropped)));
        let sending = tokio::spawn(send(body, BodyWriter::new(Arc::clone(&exchange))));
        exchange.on_reset(ResetReason::Cancel);
        tokio::time::timeout(Duration::from_secs(5), sending)
            .await
            .expect("the sender stops once its stream is reset")
            .expect("the sender does not panic");
        assert!(dropped.load(Ordering::SeqCst), "the body is still held");
    }
}
