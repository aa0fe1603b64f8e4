//! The tunnel session: one WebSocket to the proxy, kept alive for as long as the endpoint
//! runs. It registers the name, numbers outgoing requests with CSeq and matches responses to
//! them, hands incoming requests to whoever serves them, answers pings, notices a dead proxy,
//! and reconnects with exponential backoff and jitter under the same name (a name the proxy
//! assigned is given up only when the proxy refuses it for good: see
//! [`refusal::judge`](super::refusal::judge)).
//!
//! Nothing is ever left hanging: when a tunnel drops, every request waiting on it fails with
//! [`Failure::TargetGone`]; while it is down, new requests fail at once with
//! [`Failure::TunnelDown`].
//!
//! - [`Session`] here: the handle; [`Status`], [`Failure`] and [`Fatal`]: what it reports.
//! - `shared`: the state the handle and the tasks share, and the link's publication;
//!   `waiters`: CSeq numbering and the requests waiting for their responses.
//! - `supervisor`: the life cycle; `connect`: one attempt; `backoff`: the delays between.
//! - `reader`: one connected tunnel, pings included; `dispatch`: each message from the
//!   proxy to where it belongs; `writer`: the frames going out; `subprotocol`: the offer of
//!   protocol 2 and the proxy's answer.
//!
//! A tunnel whose proxy took up protocol 2 carries streams as well as whole messages
//! ([`Session::request_streaming`], [`Session::respond_streaming`], and responses or
//! requests whose bodies arrive as an [`InboundBody`]); on a protocol-1 tunnel every
//! message is whole.

mod backoff;
mod connect;
mod dispatch;
mod failure;
mod incoming;
mod reader;
mod shared;
mod status;
mod subprotocol;
mod supervisor;
mod waiters;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::SessionConfig;
use super::stream::{BodyWriter, Exchange, InboundBody, Start};
use crate::proto::address::VirtualAddress;
use crate::proto::handshake::Protocol;
use crate::proto::http1::write;
use crate::proto::stream::{Direction, ResetReason, STREAM_HEADER, STREAM_HEADER_VALUE};
use shared::{Link, Shared, lock};
use writer::finish_head;

pub use failure::{Failure, Fatal};
pub use incoming::Incoming;
pub use status::Status;
#[cfg(test)]
pub(crate) use writer::QueueEnds;
pub(crate) use writer::{Outgoing, Queues};

/// A response from the tunnel: its head, and its body either whole (in `message`, from
/// `head_len` on) or streaming (`body`, when the head was a stream head).
#[derive(Debug)]
pub struct TunnelResponse {
    /// The whole message as it arrived: head, then the body unless it streams.
    pub message: Bytes,
    /// Where the head ends in `message`.
    pub head_len: usize,
    /// The streamed body, for a stream head (protocol 2).
    pub body: Option<InboundBody>,
}

/// The response to a [`Session::request_streaming`], still to come.
pub struct PendingResponse {
    rx: oneshot::Receiver<Result<TunnelResponse, Failure>>,
    _guard: WaitGuard,
}

impl PendingResponse {
    /// Wait for the response head (its body may still be streaming, and so may the request's).
    pub async fn wait(self) -> Result<TunnelResponse, Failure> {
        let PendingResponse { rx, _guard } = self;
        rx.await.unwrap_or(Err(Failure::TargetGone))
    }
}

/// Room kept in a message for the `CSeq: <n>` line and the blank line the session appends
/// (the longest `u64` fits).
const CSEQ_LINE_BYTES: usize = 32;

/// A handle on the tunnel session; clones share it. The session runs until
/// [`Session::close`] or a [`Fatal`] error.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Start the session in the background on the current tokio runtime. It connects, and
    /// keeps reconnecting, until closed; watch [`Session::status`] to see it come up.
    pub fn start(config: SessionConfig) -> Session {
        let shared = Arc::new(Shared::new(config));
        tokio::spawn(supervisor::supervise(Arc::clone(&shared)));
        Session { shared }
    }

    /// Follow the session's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// The address the tunnel is registered under right now, if it is up.
    pub fn address(&self) -> Option<VirtualAddress> {
        match &*self.shared.status.borrow() {
            Status::Up { address, .. } => Some(address.clone()),
            _ => None,
        }
    }

    /// Whether the tunnel is registered right now.
    pub fn is_up(&self) -> bool {
        lock(&self.shared.state).link.is_some()
    }

    /// Wait until the tunnel is registered (`Ok(address)`) or the session gives up.
    pub async fn ready(&self) -> Result<VirtualAddress, Failure> {
        let mut rx = self.status();
        loop {
            match &*rx.borrow_and_update() {
                Status::Up { address, .. } => return Ok(address.clone()),
                Status::Failed(_) | Status::Closed => return Err(Failure::Closed),
                Status::Down => {}
            }
            if rx.changed().await.is_err() {
                return Err(Failure::Closed);
            }
        }
    }

    /// The largest body that fits in one message with a head.
    pub fn max_body_bytes(&self) -> usize {
        self.shared.config.max_body_bytes()
    }

    /// The protocol the tunnel speaks right now (`None` while it is down): only
    /// [`Protocol::V2`] carries streams.
    pub fn protocol(&self) -> Option<Protocol> {
        lock(&self.shared.state).link.as_ref().map(|l| l.protocol)
    }

    /// Send a request with its whole body and wait for its response (CSeq and all; its body
    /// may stream).
    ///
    /// `head` is the request line and header lines, each ending in CRLF, without the blank
    /// line and without CSeq: the session appends `CSeq: <n>` and the blank line. Proxy
    /// errors (404, 503, …) are responses like any other.
    pub async fn request(
        &self,
        mut head: BytesMut,
        body: Bytes,
    ) -> Result<TunnelResponse, Failure> {
        if head.len() + body.len() + CSEQ_LINE_BYTES > self.shared.config.max_message_bytes {
            return Err(Failure::TooLarge);
        }
        let (tx, rx) = oneshot::channel();
        let (link, cseq) = {
            let mut state = lock(&self.shared.state);
            let Some(link) = state.link.clone() else {
                return Err(Failure::TunnelDown);
            };
            (link, state.waiters.add(tx))
        };
        // From here on, a caller that gives up (drops this future) must not leave its entry.
        let pending = PendingResponse {
            rx,
            _guard: WaitGuard {
                shared: Arc::clone(&self.shared),
                cseq,
                exchange: None,
            },
        };
        finish_head(&mut head, cseq);
        let message = Outgoing::Message {
            head: head.freeze(),
            body,
        };
        if link.queues.out.send(message).await.is_err() {
            return Err(Failure::TunnelDown);
        }
        pending.wait().await
    }

    /// Send a request whose body streams (a stream head, with `Content-Length: length` when
    /// it is known): returns the body's writer, and the response to wait for. The response
    /// may come before the body ends (a whole answer ends the exchange: the writer then
    /// fails with [`BodyError::Answered`](super::stream::BodyError::Answered)).
    /// [`Failure::NoStreams`] on a protocol-1 tunnel.
    pub async fn request_streaming(
        &self,
        mut head: BytesMut,
        length: Option<u64>,
    ) -> Result<(BodyWriter, PendingResponse), Failure> {
        let (tx, rx) = oneshot::channel();
        let (link, cseq, exchange) = {
            let mut state = lock(&self.shared.state);
            let Some(link) = state.link.clone() else {
                return Err(Failure::TunnelDown);
            };
            if link.protocol != Protocol::V2 {
                return Err(Failure::NoStreams);
            }
            let cseq = state.waiters.add(tx);
            let exchange = Exchange::new(
                (Direction::Outgoing, cseq),
                link.queues.clone(),
                Arc::clone(&link.streams),
                self.shared.config.credit_timeout,
                Start::Streaming(length),
                Start::Waiting,
            );
            (link, cseq, exchange)
        };
        let pending = PendingResponse {
            rx,
            _guard: WaitGuard {
                shared: Arc::clone(&self.shared),
                cseq,
                exchange: Some(Arc::clone(&exchange)),
            },
        };
        if !link.streams.insert(&exchange) {
            return Err(Failure::TunnelDown);
        }
        let writer = BodyWriter::new(exchange);
        finish_stream_head(&mut head, length, cseq);
        let message = Outgoing::Message {
            head: head.freeze(),
            body: Bytes::new(),
        };
        if link.queues.out.send(message).await.is_err() {
            return Err(Failure::TunnelDown);
        }
        Ok((writer, pending))
    }

    /// The link an answer to `to` goes on, if it is still the one `to` arrived on.
    fn link_for(&self, to: &Incoming) -> Option<Link> {
        let state = lock(&self.shared.state);
        state
            .link
            .as_ref()
            .filter(|l| l.generation == to.generation)
            .cloned()
    }

    /// Answer an [`Incoming`] request with a whole response. `head` is the status line and
    /// header lines without CSeq and without the blank line. Returns false if the request's
    /// tunnel is gone (the proxy has already answered the caller `target-gone`). A whole
    /// answer to a request whose body still streams ends the exchange: the rest of that body
    /// is not wanted (its [`InboundBody`] fails with `Answered`).
    pub async fn respond(&self, to: &Incoming, mut head: BytesMut, body: Bytes) -> bool {
        let Some(link) = self.link_for(to) else {
            return false;
        };
        finish_head(&mut head, to.cseq);
        let sent = link
            .queues
            .out
            .send(Outgoing::Message {
                head: head.freeze(),
                body,
            })
            .await
            .is_ok();
        if let Some(exchange) = link.streams.get(Direction::Incoming, to.cseq) {
            exchange.responded(false);
        }
        sent
    }

    /// Answer an [`Incoming`] request with a response whose body streams (a stream head,
    /// with `Content-Length: length` when it is known); returns the body's writer, or `None`
    /// if the request's tunnel is gone or speaks protocol 1 (answer whole there).
    pub async fn respond_streaming(
        &self,
        to: &Incoming,
        mut head: BytesMut,
        length: Option<u64>,
    ) -> Option<BodyWriter> {
        let link = self.link_for(to)?;
        if link.protocol != Protocol::V2 {
            return None;
        }
        let exchange = match link.streams.get(Direction::Incoming, to.cseq) {
            Some(exchange) => exchange,
            None => {
                let exchange = Exchange::new(
                    (Direction::Incoming, to.cseq),
                    link.queues.clone(),
                    Arc::clone(&link.streams),
                    self.shared.config.credit_timeout,
                    Start::Waiting,
                    Start::Done,
                );
                if !link.streams.insert(&exchange) {
                    return None;
                }
                exchange
            }
        };
        finish_stream_head(&mut head, length, to.cseq);
        let message = Outgoing::Message {
            head: head.freeze(),
            body: Bytes::new(),
        };
        if link.queues.out.send(message).await.is_err() {
            return None;
        }
        exchange.responded(true);
        Some(BodyWriter::new(exchange))
    }

    /// Take the stream of incoming requests (once; later calls get `None`). Until it is
    /// taken, incoming requests are answered `501` with `Httpws-Error: no-service`.
    pub fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        let rx = lock(&self.shared.incoming_rx).take();
        if rx.is_some() {
            self.shared.serving.store(true, Ordering::Release);
        }
        rx
    }

    /// Close the tunnel (close frame 1000) and stop reconnecting. Waiting requests fail.
    pub async fn close(&self) {
        self.shared.stop.send_replace(true);
        let mut rx = self.status();
        let _ = rx
            .wait_for(|s| matches!(s, Status::Closed | Status::Failed(_)))
            .await;
    }
}

/// Append the stream head's lines (`Httpws-Stream: body`, the declared length if any), then
/// `CSeq` and the blank line.
fn finish_stream_head(head: &mut BytesMut, length: Option<u64>, cseq: u64) {
    write::put_header(head, STREAM_HEADER, STREAM_HEADER_VALUE);
    if let Some(n) = length {
        write::put_content_length(head, n);
    }
    finish_head(head, cseq);
}

/// Removes a request's waiting entry when its caller stops waiting, however that happens.
/// A caller that gives a streamed request up before its answer came (its client left, its
/// own deadline passed) resets the exchange (`cancel`): the far side stops working on it,
/// and the exchange leaves the link's table at once rather than whenever an answer comes,
/// if one ever does.
struct WaitGuard {
    shared: Arc<Shared>,
    cseq: u64,
    /// The exchange of a streamed request.
    exchange: Option<Arc<Exchange>>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        // Still waiting: no answer (nor reset, nor the tunnel's end) has taken the entry.
        let abandoned = lock(&self.shared.state).waiters.take(self.cseq).is_some();
        if let (true, Some(exchange)) = (abandoned, &self.exchange) {
            exchange.reset(ResetReason::Cancel);
        }
    }
}
