//! What the handle, the supervisor and the reader of a session share: the settings, the
//! live link and the waiting requests under one lock, the status, the incoming requests;
//! and how a link is published when `:host` arrives and withdrawn when it ends.
//!
//! The link is published only once registered and withdrawn before anything waiting on it
//! is failed, so a request either reaches a registered tunnel or fails at once with
//! [`Failure::TunnelDown`]; none can slip between.

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::failure::Failure;
use super::incoming::Incoming;
use super::status::Status;
use super::waiters::Waiters;
use super::writer::Queues;
use crate::endpoint::config::SessionConfig;
use crate::endpoint::stream::StreamTable;
use crate::proto::address::VirtualAddress;
use crate::proto::handshake::Protocol;

/// The live tunnel, while registered.
#[derive(Clone)]
pub(super) struct Link {
    /// Which registration it is.
    pub(super) generation: u64,
    /// Its writer's queues.
    pub(super) queues: Queues,
    /// What the proxy agreed to: protocol 2 carries streams.
    pub(super) protocol: Protocol,
    /// Its open stream exchanges.
    pub(super) streams: Arc<StreamTable>,
}

/// What changes together, under one lock: a request takes its CSeq and the link's queue at
/// once.
pub(super) struct State {
    /// The registered link, if any.
    pub(super) link: Option<Link>,
    /// The requests waiting for their responses.
    pub(super) waiters: Waiters,
    /// The name to register under next time: the configured one, else the one assigned.
    pub(super) address: Option<VirtualAddress>,
    /// An assigned name the proxy refused for good, until a new one is registered.
    pub(super) refused_name: Option<VirtualAddress>,
}

/// One session's shared state; the handle and the background tasks hold it in an `Arc`.
pub(super) struct Shared {
    /// The settings it was started with.
    pub(super) config: SessionConfig,
    /// The link and the waiting requests.
    pub(super) state: Mutex<State>,
    /// Where the session stands, for whoever watches.
    pub(super) status: watch::Sender<Status>,
    /// Set once someone takes the incoming requests; until then they are answered 501.
    pub(super) serving: AtomicBool,
    /// Where the reader puts incoming requests.
    pub(super) incoming_tx: mpsc::Sender<Incoming>,
    /// The other end, until someone takes it.
    pub(super) incoming_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    /// Set to stop the session for good.
    pub(super) stop: watch::Sender<bool>,
}

impl Shared {
    /// A session not yet connected, that will register under `config.name` if given.
    pub(super) fn new(config: SessionConfig) -> Shared {
        let (incoming_tx, incoming_rx) = mpsc::channel(config.max_incoming.max(1));
        Shared {
            state: Mutex::new(State {
                link: None,
                waiters: Waiters::new(),
                address: config.name.clone(),
                refused_name: None,
            }),
            config,
            status: watch::Sender::new(Status::Down),
            serving: AtomicBool::new(false),
            incoming_tx,
            incoming_rx: Mutex::new(Some(incoming_rx)),
            stop: watch::Sender::new(false),
        }
    }

    /// `:host` arrived: publish the link so requests can use it.
    pub(super) fn register(&self, address: VirtualAddress, link: Link) {
        let generation = link.generation;
        let protocol = link.protocol;
        let refused = {
            let mut state = lock(&self.state);
            state.address = Some(address.clone());
            state.link = Some(link);
            state.refused_name.take()
        };
        match refused {
            // Callers that knew the old name cannot reach us by it any more: say so loudly.
            Some(old) => {
                tracing::warn!(%address, was = %old, proxy = %self.config.proxy, "tunnel registered under a NEW name")
            }
            None => {
                tracing::info!(%address, proxy = %self.config.proxy, ?protocol, "tunnel registered")
            }
        }
        self.status.send_replace(Status::Up {
            address,
            generation,
        });
    }

    /// The link of `generation` is ending: no new request may queue behind its writer.
    pub(super) fn unpublish(&self, generation: u64) {
        let mut state = lock(&self.state);
        if state
            .link
            .as_ref()
            .is_some_and(|l| l.generation == generation)
        {
            state.link = None;
        }
    }

    /// The tunnel is gone: everything waiting on it fails now.
    pub(super) fn teardown(&self, generation: u64) {
        let waiting = {
            let mut state = lock(&self.state);
            if state
                .link
                .as_ref()
                .is_some_and(|l| l.generation <= generation)
            {
                state.link = None;
            }
            state.waiters.take_all()
        };
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(Failure::TargetGone));
        }
        if matches!(*self.status.borrow(), Status::Up { .. }) {
            self.status.send_replace(Status::Down);
        }
    }
}

/// Lock `m`, poisoned or not.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-updated in a way that
    // matters more than stopping would, so keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
