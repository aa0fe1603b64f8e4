//! How the proxy names connections: a key in a shard's slab, and a reference that says which
//! shard and which slab (WebSocket endpoints or public-ingress callers).

/// A connection's key inside its shard's slab: index plus generation, so a stale key (the
/// connection closed and the slot was reused) never reaches the wrong connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// The slot in the slab.
    pub index: u32,
    /// How often the slot had been reused before this connection took it (wrapping): an
    /// older key misses.
    pub generation: u32,
}

/// Which of a shard's connection slabs a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallerKind {
    /// A registered endpoint's WebSocket.
    WebSocket,
    /// A plain HTTP client of the public ingress.
    Http,
}

/// A connection anywhere in the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The shard the connection lives on.
    pub shard: u16,
    /// Which of that shard's slabs holds it.
    pub kind: CallerKind,
    /// Its key in that slab.
    pub key: ConnKey,
}
