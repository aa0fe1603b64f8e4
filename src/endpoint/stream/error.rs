//! Why a streamed body did not end with its `end`: what the consumer of an incoming body,
//! or the producer of an outgoing one, is told instead of a body that only looks complete.

use std::sync::Arc;

use crate::proto::stream::ResetReason;

/// Why a body stream stopped before its end (docs/protocol.md §12: every stream ends exactly
/// once, with `end` or with one of these).
#[derive(Clone, Debug, thiserror::Error)]
pub enum BodyError {
    /// The far side or the proxy reset the exchange (`~reset <token>`), or this side did
    /// with `timeout` when our body was granted no credit within the session's
    /// `credit_timeout`.
    #[error("the stream was reset ({})", .0.token())]
    Reset(ResetReason),
    /// This side gave the exchange up: its other half was dropped or reset, or the local
    /// client or service went away.
    #[error("the stream was cancelled on this side")]
    Cancelled,
    /// The tunnel to the proxy dropped mid-stream.
    #[error("the tunnel dropped mid-stream")]
    TunnelLost,
    /// The far side answered with a whole response while this body was still being sent (or
    /// this side answered while the request body was still arriving): the exchange is over
    /// and the rest of the body is not wanted.
    #[error("the exchange was answered before the body ended")]
    Answered,
    /// The far side broke the stream's rules (data beyond the credit granted, beyond or short
    /// of its declared length); the stream was reset with this token.
    #[error("the far side broke the stream's flow rules ({})", .0.token())]
    Violation(ResetReason),
    /// The body is longer than the limit of whoever wanted it whole.
    #[error("the body exceeds {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body this side was sending failed (an application body's own error).
    #[error("the body failed: {0}")]
    Source(Arc<dyn std::error::Error + Send + Sync>),
}
