//! The sending half of a stream: our body as data messages, each sent only within the
//! credit the far side has granted, then `end`. Dropping it before [`BodyWriter::end`]
//! resets the exchange, so the far side sees a broken body, never a short one.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::DATA_CHUNK_BYTES;
use super::error::BodyError;
use super::exchange::Exchange;
use crate::proto::stream::ResetReason;

/// Our streamed body (a request's or a response's). Every method fails once the exchange
/// is over for it: the far side reset it or answered whole ([`BodyError::Answered`]), or the
/// tunnel dropped.
pub struct BodyWriter {
    exchange: Arc<Exchange>,
}

impl std::fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyWriter")
            .field("cseq", &self.exchange.cseq())
            .finish_non_exhaustive()
    }
}

impl BodyWriter {
    pub(crate) fn new(exchange: Arc<Exchange>) -> BodyWriter {
        BodyWriter { exchange }
    }

    /// Credit for at least one byte, or why the body must stop (without the time limit of
    /// [`credit`](Self::credit)).
    pub fn poll_credit(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, BodyError>> {
        self.exchange
            .poll_credit(cx)
            .map_ok(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Wait for credit; how many bytes may be sent now (at least one, at most one data
    /// message's worth). None granted within the session's
    /// [`credit_timeout`](crate::endpoint::config::SessionConfig::credit_timeout) resets the
    /// exchange (`timeout`): the far side has forgotten the stream or stopped reading it.
    pub async fn credit(&mut self) -> Result<usize, BodyError> {
        let limit = self.exchange.credit_timeout();
        match tokio::time::timeout(limit, poll_fn(|cx| self.poll_credit(cx))).await {
            Ok(n) => Ok(n?.min(DATA_CHUNK_BYTES)),
            Err(_) => Err(self.exchange.credit_timed_out()),
        }
    }

    /// Resolves once the body must stop (the far side reset the exchange or answered it
    /// whole, or the tunnel dropped), with why.
    pub async fn closed(&mut self) -> BodyError {
        poll_fn(|cx| self.exchange.poll_closed(cx)).await
    }

    /// Send `data`, waiting for credit as it goes (in data messages of at most 64 KiB).
    pub async fn send(&mut self, mut data: Bytes) -> Result<(), BodyError> {
        while !data.is_empty() {
            let n = self.credit().await?.min(data.len());
            self.exchange.send_data(data.split_to(n)).await?;
        }
        Ok(())
    }

    /// The body is complete: `end` goes after all its data.
    pub async fn end(self) -> Result<(), BodyError> {
        self.exchange.end_send().await
    }

    /// Abort the exchange with `reason` (both directions): the far side gets the reset.
    pub fn reset(self, reason: ResetReason) {
        self.exchange.reset(reason);
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        self.exchange.drop_send();
    }
}
