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
//!   proxy to where it belongs; `writer`: the frames going out.

mod backoff;
mod connect;
mod dispatch;
mod failure;
mod incoming;
mod reader;
mod shared;
mod status;
mod supervisor;
mod waiters;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::SessionConfig;
use crate::proto::address::VirtualAddress;
use shared::{Shared, lock};
use writer::{Outgoing, finish_head};

pub use failure::{Failure, Fatal};
pub use incoming::Incoming;
pub use status::Status;

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

    /// Send a request and wait for its response (the whole message, CSeq and all).
    ///
    /// `head` is the request line and header lines, each ending in CRLF, without the blank
    /// line and without CSeq: the session appends `CSeq: <n>` and the blank line. Proxy
    /// errors (404, 503, …) are responses like any other.
    pub async fn request(&self, mut head: BytesMut, body: Bytes) -> Result<Bytes, Failure> {
        if head.len() + body.len() + CSEQ_LINE_BYTES > self.shared.config.max_message_bytes {
            return Err(Failure::TooLarge);
        }
        let (tx, rx) = oneshot::channel();
        let (out, cseq) = {
            let mut state = lock(&self.shared.state);
            let Some(link) = &state.link else {
                return Err(Failure::TunnelDown);
            };
            let out = link.out.clone();
            (out, state.waiters.add(tx))
        };
        // From here on, a caller that gives up (drops this future) must not leave its entry.
        let guard = WaitGuard {
            shared: &self.shared,
            cseq,
        };
        finish_head(&mut head, cseq);
        let message = Outgoing::Message {
            head: head.freeze(),
            body,
        };
        if out.send(message).await.is_err() {
            return Err(Failure::TunnelDown);
        }
        let result = rx.await.unwrap_or(Err(Failure::TargetGone));
        drop(guard);
        result
    }

    /// Answer an [`Incoming`] request. `head` is the status line and header lines without
    /// CSeq and without the blank line. Returns false if the request's tunnel is gone (the
    /// proxy has already answered the caller `target-gone`).
    pub async fn respond(&self, to: &Incoming, mut head: BytesMut, body: Bytes) -> bool {
        let out = {
            let state = lock(&self.shared.state);
            match &state.link {
                Some(link) if link.generation == to.generation => link.out.clone(),
                _ => return false,
            }
        };
        finish_head(&mut head, to.cseq);
        out.send(Outgoing::Message {
            head: head.freeze(),
            body,
        })
        .await
        .is_ok()
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

/// Removes a request's waiting entry when its caller stops waiting, however that happens.
struct WaitGuard<'a> {
    shared: &'a Shared,
    cseq: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.state).waiters.take(self.cseq);
    }
}
