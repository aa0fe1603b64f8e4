//! The relay: thread-per-core shards, each owning a slice of the virtual-address table and
//! the connections registered under it.
//!
//! A connection is accepted by whichever shard's `SO_REUSEPORT` listener the kernel picks,
//! completes its handshake there ([`upgrade`]), and then moves to the shard that owns its
//! address, so that table lookups and the socket stay on one thread. Requests to addresses
//! owned elsewhere cross over [`router`] queues; the target's shard remaps the CSeq
//! ([`pending`]) and queues the frame; the response travels back the same way ([`relay`]).

pub mod access;
pub mod config;
pub mod connection;
pub mod ingress;
pub mod pages;
pub mod pending;
pub mod relay;
pub mod router;
pub mod server;
pub mod shard;
pub mod slab;
pub mod table;
pub mod tls;
pub mod transport;
pub mod upgrade;

pub use config::{DriverChoice, ProxyConfig, TlsFiles};
pub use server::{RunningProxy, start};
