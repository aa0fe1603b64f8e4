//! The receiving half of a stream: the far side's body, piece by piece as its data messages
//! arrive, with credit granted back as the consumer is done with each piece, so a consumer
//! that stops taking stops the sender (backpressure) and never holds more than the window.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::error::BodyError;
use super::exchange::Exchange;

/// The far side's streamed body. Ends with `None` after its `end`, or with a [`BodyError`]
/// (a reset, the tunnel dropped): never a cut-off body that looks whole. Dropping a
/// response's body before its end resets the exchange (`cancel`); dropping a served
/// request's leaves its answer to go, the rest of the body discarded as it arrives
/// ([`cancel`](Self::cancel) gives the exchange up instead).
pub struct InboundBody {
    exchange: Arc<Exchange>,
}

impl std::fmt::Debug for InboundBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundBody")
            .field("cseq", &self.exchange.cseq())
            .finish_non_exhaustive()
    }
}

impl InboundBody {
    pub(crate) fn new(exchange: Arc<Exchange>) -> InboundBody {
        InboundBody { exchange }
    }

    /// The next piece, without granting its credit back: call [`release`](Self::release)
    /// once it has been passed on (written to a client, say), so that what waits to be
    /// passed on counts against the window too.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.exchange.poll_chunk(cx)
    }

    /// [`poll_chunk`](Self::poll_chunk) as a future.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The consumer is done with `n` bytes it took: the sender may send as much again.
    pub fn release(&mut self, n: usize) {
        self.exchange.release(n);
    }

    /// The length the sender declared (`Content-Length` on its stream head), if it did.
    pub fn declared_len(&self) -> Option<u64> {
        self.exchange.declared()
    }

    /// Bytes still to come when the sender declared a length (`Content-Length`).
    pub fn remaining(&self) -> Option<u64> {
        self.exchange.remaining()
    }

    /// Whether the body is over and nothing of it is left to take.
    pub fn is_over(&self) -> bool {
        self.exchange.recv_over()
    }

    /// Give the exchange up: the far side gets `reset cancel` (unless the body ended).
    pub fn cancel(self) {
        self.exchange.cancel_recv();
    }
}

impl Drop for InboundBody {
    fn drop(&mut self) {
        self.exchange.drop_recv();
    }
}
