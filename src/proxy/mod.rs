//! The relay: thread-per-core shards, each owning a slice of the virtual-address table and
//! the connections registered under it.
//!
//! Read it as a pipeline; each module uses only the ones above it:
//!
//! - [`config`], [`ids`]: settings; how connections are named.
//! - [`tls`], [`transport`]: the byte stream under a connection (plain or TLS) and the reads
//!   and writes on it.
//! - [`messages`]: what travels between connections and shards (a moving connection's
//!   transport included).
//! - [`slab`], [`table`], [`pending`], [`router`], [`access`]: a shard's connection slots,
//!   its slice of the address table, the CSeq remapping, the lock-free queues between shards,
//!   and the tokens file.
//! - [`streams`], [`stats`]: where each stream's two bodies stand (credit, ends); the
//!   counters a shard keeps for operators (open streams, bytes each way).
//! - [`conn`], [`http_caller`]: one registered WebSocket's state (its outbound queue counted
//!   against its limit), and a public-ingress caller's answer mailbox.
//! - [`control`], [`shard`]: state shared by all shards, and one shard's state with the
//!   request path over it ([`shard::relay`]: message → route → target → answer → caller).
//! - [`conn_driver`]: the task that reads and writes one registered connection.
//! - [`pages`], [`registration`], [`public_ingress`]: the proxy's own pages; a connection
//!   registered on the shard that owns its address; plain HTTP callers from the internet.
//! - [`admission`]: an accepted connection up to the moment it is known what it is (TLS,
//!   the first head), handed on to registration or to the public ingress.
//! - [`runtime`]: a shard's thread, its accept loops, inbox, sweeper and shutdown.
//! - [`server`]: starting every shard, and stopping them.
//!
//! A connection is accepted by whichever shard's `SO_REUSEPORT` listener the kernel picks,
//! admitted there, and then moves to the shard that owns its address, so that table lookups
//! and the socket stay on one thread. Requests to addresses owned elsewhere cross over
//! [`router`] queues; the target's shard remaps the CSeq ([`pending`]) and queues the frame;
//! the response travels back the same way.

pub mod access;
pub mod admission;
pub mod config;
pub mod conn;
pub mod conn_driver;
pub mod control;
pub mod http_caller;
pub mod ids;
pub mod messages;
pub mod pages;
pub mod pending;
pub mod public_ingress;
pub mod registration;
pub mod router;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod slab;
pub mod stats;
pub mod streams;
pub mod table;
pub mod tls;
pub mod transport;

pub use config::{DriverChoice, ProxyConfig, TlsFiles};
pub use server::{RunningProxy, start};
