//! One shard's state: its connections, its slice of the address table, its shared read and
//! arena blocks, its queues to the other shards, and the operations on them. The request path
//! over this state is [`relay`]; the shard's thread and its tasks are [`crate::proxy::runtime`].

mod liveness;
pub mod relay;
mod stream;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::proto::address::VirtualAddress;
use crate::proto::answer_error::AnswerError;
use crate::proto::frame::{self, DecoderConfig, MAX_HEADER_LEN, OpCode, Role};
use crate::proto::head::HeadLimits;
use crate::proto::indication::{self, IndicationError};
use crate::proto::stream::ResetReason;
use crate::proxy::access::AccessPolicy;
use crate::proxy::config::ProxyConfig;
use crate::proxy::conn::{Conn, Queued};
use crate::proxy::control::Control;
use crate::proxy::http_caller::HttpCaller;
use crate::proxy::ids::{CallerKind, ConnKey, ConnRef};
use crate::proxy::messages::{OutFrame, ShardMessage};
use crate::proxy::router::ShardRouter;
use crate::proxy::slab::ConnectionSlab;
use crate::proxy::stats::StreamCounters;
use crate::proxy::table::{AddressTable, Claim, CredentialHash, Registration};

/// Size of the blocks the shard reads into; payloads are split off them zero-copy.
const READ_BLOCK_BYTES: usize = 64 * 1024;
/// Below this much free room, the read buffer moves on to a fresh block.
const MIN_READ_ROOM_BYTES: usize = 8 * 1024;
/// Size of the blocks outgoing frame headers and rewritten heads are written into.
const ARENA_BLOCK_BYTES: usize = 64 * 1024;
/// Requests held for a full queue before new ones get `target-busy` instead.
pub const OVERFLOW_REQUEST_LIMIT: usize = 4096;
/// Everything one shard owns. Lives in an `Rc` on its own thread.
pub struct Shard {
    /// This shard's index, 0-based: the owner of every address whose hash modulo the shard
    /// count is this.
    pub id: usize,
    /// The proxy's settings, shared by every shard.
    pub config: Arc<ProxyConfig>,
    /// The queues to and from the other shards.
    pub router: Arc<ShardRouter>,
    /// Shutdown, access policy and TLS, shared by every shard.
    pub control: Arc<Control>,
    /// Frame limits for every registered connection (server role, `--max-message-bytes`).
    pub decoder_config: DecoderConfig,
    /// Head limits for every relayed message (`--max-head-bytes`).
    pub head_limits: HeadLimits,
    conns: RefCell<ConnectionSlab<Rc<Conn>>>,
    /// Plain HTTP clients of the public ingress (each waits for at most one answer).
    callers: RefCell<ConnectionSlab<Rc<HttpCaller>>>,
    table: RefCell<AddressTable>,
    /// The block every read lands in; payloads are split off it zero-copy.
    read_buf: RefCell<BytesMut>,
    arena: RefCell<BytesMut>,
    scratch: RefCell<BytesMut>,
    overflow: RefCell<Vec<VecDeque<ShardMessage>>>,
    /// Connections with requests pending on them, for the deadline sweep.
    timed: RefCell<Vec<ConnKey>>,
    /// Connections with streams on them (as targets), for the streams' idle sweep.
    stream_timed: RefCell<Vec<ConnKey>>,
    /// Streams whose target is registered here, by (caller, caller's CSeq): where a caller's
    /// stream messages find their stream.
    stream_routes: RefCell<HashMap<(ConnRef, u64), (ConnKey, u64)>>,
    pending_total: Cell<usize>,
    /// Requests relayed to targets here since the shard started (wraps).
    relayed_total: Cell<u64>,
    /// Streams opened and open here, and their bytes (also in [`Control::stream_totals`]).
    pub stream_counters: Arc<StreamCounters>,
    /// Shutdown has begun: new registrations and requests are refused.
    draining: Cell<bool>,
    /// This shard's copy of the access policy and the generation it was taken at.
    policy: RefCell<(u64, Arc<AccessPolicy>)>,
}

impl Shard {
    /// Shard `id`, empty: no connections, no blocks allocated yet.
    pub fn new(
        id: usize,
        config: Arc<ProxyConfig>,
        router: Arc<ShardRouter>,
        control: Arc<Control>,
    ) -> Self {
        let shards = router.shards();
        let policy = (control.policy.generation(), control.policy.current());
        let stream_counters = control.new_stream_counters();
        Self {
            id,
            policy: RefCell::new(policy),
            decoder_config: DecoderConfig {
                role: Role::Server,
                max_message_bytes: config.max_message_bytes,
            },
            head_limits: HeadLimits {
                max_head_bytes: config.max_head_bytes,
                ..HeadLimits::default()
            },
            config,
            router,
            control,
            conns: RefCell::default(),
            callers: RefCell::default(),
            table: RefCell::default(),
            read_buf: RefCell::new(BytesMut::new()),
            arena: RefCell::new(BytesMut::new()),
            scratch: RefCell::new(BytesMut::new()),
            overflow: RefCell::new((0..shards).map(|_| VecDeque::new()).collect()),
            timed: RefCell::default(),
            stream_timed: RefCell::default(),
            stream_routes: RefCell::default(),
            pending_total: Cell::new(0),
            relayed_total: Cell::new(0),
            stream_counters,
            draining: Cell::new(false),
        }
    }

    /// The access policy in force: one atomic load per call, a lock only after a reload.
    fn fresh_policy(&self) -> std::cell::Ref<'_, (u64, Arc<AccessPolicy>)> {
        let generation = self.control.policy.generation();
        if self.policy.borrow().0 != generation {
            *self.policy.borrow_mut() = (generation, self.control.policy.current());
        }
        self.policy.borrow()
    }

    /// The access policy in force, for checks that outlive one call (registration).
    pub fn policy(&self) -> Arc<AccessPolicy> {
        Arc::clone(&self.fresh_policy().1)
    }

    /// Whether an access rule lets `from` call `to` (canonical names).
    pub fn may_call(&self, from: &str, to: &str) -> bool {
        self.fresh_policy().1.may_call(from, to)
    }

    /// The registered connection under `key`, if it is still here.
    pub fn conn(&self, key: ConnKey) -> Option<Rc<Conn>> {
        self.conns.borrow().get(key).cloned()
    }

    /// Every connection of this shard, at this moment.
    pub fn conns(&self) -> Vec<Rc<Conn>> {
        self.conns.borrow().iter().cloned().collect()
    }

    /// Whether any registered connection is left (shutdown waits for none).
    pub fn has_conns(&self) -> bool {
        !self.conns.borrow().is_empty()
    }

    /// Who may have `address` (this shard owns it): free, a takeover, or a conflict.
    pub fn claim(&self, address: &VirtualAddress, credential: Option<&CredentialHash>) -> Claim {
        self.table.borrow().claim(address, credential)
    }

    /// Register a connection under `address` (its claim was checked): a slot for it, made
    /// by `make` with its key, and the table entry.
    pub fn register(
        &self,
        address: VirtualAddress,
        credential: Option<CredentialHash>,
        make: impl FnOnce(ConnKey) -> Conn,
    ) -> Option<Rc<Conn>> {
        let conn = {
            let mut conns = self.conns.borrow_mut();
            let key = conns.insert_with(|key| Rc::new(make(key)));
            conns.get(key).cloned()
        }?;
        self.table.borrow_mut().insert(
            address,
            Registration {
                key: conn.key,
                credential: credential.map(Box::new),
            },
        );
        Some(conn)
    }

    /// A public-ingress caller's mailbox, under a key answers can find it by.
    pub fn add_caller(&self, caller: Rc<HttpCaller>) -> ConnKey {
        self.callers.borrow_mut().insert_with(|_| caller)
    }

    /// The ingress caller under `key` is gone: answers for it are dropped from now on.
    pub fn remove_caller(&self, key: ConnKey) {
        self.callers.borrow_mut().remove(key);
    }

    /// Shutdown has begun: registrations and new requests are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Begin the shutdown on this shard (see [`is_draining`](Self::is_draining)).
    pub fn start_draining(&self) {
        self.draining.set(true);
    }

    /// Requests this shard's connections are waiting on, all together.
    pub fn pending_count(&self) -> usize {
        self.pending_total.get()
    }

    /// Requests relayed to targets on this shard so far (wrapping): two readings that are
    /// equal mean none came in between.
    pub fn relayed_count(&self) -> u64 {
        self.relayed_total.get()
    }

    /// Run `f` on the shard's read block (split payloads off it, decode from it, clear it).
    pub fn read_block<R>(&self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        f(&mut self.read_buf.borrow_mut())
    }

    /// [`read_block`](Self::read_block) with room for a read made first: a nearly used-up
    /// block is left to the payloads still being relayed from it, and reads move on to a
    /// fresh one.
    pub fn read_block_with_room<R>(&self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        let mut buf = self.read_buf.borrow_mut();
        if buf.capacity() - buf.len() < MIN_READ_ROOM_BYTES {
            buf.reserve(READ_BLOCK_BYTES);
        }
        f(&mut buf)
    }

    /// Build a server frame (unmasked, fin set) whose payload is `payload_len` bytes, of which
    /// `write` appends the leading part into the arena; the rest (a body) is sent separately.
    pub fn frame_with(
        &self,
        opcode: OpCode,
        payload_len: usize,
        write: impl FnOnce(&mut BytesMut),
    ) -> Bytes {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = frame::encode_header(&mut header, true, opcode, None, payload_len as u64);
        let room = n + payload_len.min(ARENA_BLOCK_BYTES / 4);
        self.arena_write(room, |arena| {
            arena.extend_from_slice(&header[..n]);
            write(arena)
        })
        .0
    }

    /// Bytes written by `write` into the arena (heads for plain HTTP clients), and what
    /// `write` returned.
    pub fn arena_bytes<R>(&self, write: impl FnOnce(&mut BytesMut) -> R) -> (Bytes, R) {
        self.arena_write(ARENA_BLOCK_BYTES / 8, write)
    }

    /// Split off what `write` appends to the arena, moving on to a fresh block first when
    /// fewer than `room` bytes are left (a bigger write still works: the block grows).
    fn arena_write<R>(&self, room: usize, write: impl FnOnce(&mut BytesMut) -> R) -> (Bytes, R) {
        let mut arena = self.arena.borrow_mut();
        if arena.capacity() < room {
            arena.reserve(ARENA_BLOCK_BYTES);
        }
        let result = write(&mut arena);
        (arena.split().freeze(), result)
    }

    /// A whole small frame (control frames, indications).
    pub fn control_frame(&self, opcode: OpCode, payload: &[u8]) -> Bytes {
        self.frame_with(opcode, payload.len(), |a| a.extend_from_slice(payload))
    }

    /// Queue a frame on `conn`. Every frame counts against the connection's queue limit,
    /// pongs, indications and the proxy's own answers included: a peer that sends while it
    /// never reads is dropped once its queue passes the limit.
    pub fn queue(&self, conn: &Conn, frame: OutFrame) {
        if conn.enqueue(frame, self.config.hard_queued_bytes()) == Queued::OverLimit {
            tracing::warn!(address = %conn.address, "dropping a connection that stopped reading");
            self.drop_connection(conn);
        }
    }

    /// Queue an `:error <token> "<reason>"` indication.
    pub fn send_indication(&self, conn: &Conn, token: IndicationError, reason: &str) {
        let text = indication::encode_error(token, reason);
        let head = self.control_frame(OpCode::Text, text.as_bytes());
        self.queue(
            conn,
            OutFrame {
                head,
                body: Bytes::new(),
            },
        );
    }

    /// A close frame with `code` and `reason`.
    pub fn close_frame(&self, code: u16, reason: &str) -> Bytes {
        self.control_frame(OpCode::Close, &frame::close_payload(code, reason))
    }

    /// Queue `close_frame` and take the connection out of service at once: its address is
    /// freed and everything waiting on it is answered `target-gone`.
    pub fn close_connection(&self, conn: &Conn, close_frame: Bytes) {
        conn.begin_close(close_frame);
        self.retire(conn);
    }

    /// Free the address and fail the requests waiting on `conn`. Safe to call twice.
    pub fn retire(&self, conn: &Conn) {
        self.table
            .borrow_mut()
            .remove_if_held_by(&conn.address, conn.key);
        let gone: Vec<_> = conn.state.borrow_mut().pending.drain().collect();
        if !gone.is_empty() {
            let reason = format!("{} disconnected before answering", conn.address);
            self.fail_pending(gone, AnswerError::TargetGone, &reason);
        }
        self.end_streams(conn, ResetReason::TargetGone);
        // Its own streams (as a caller) end too: each target gets a reset.
        let outgoing = std::mem::take(&mut conn.state.borrow_mut().outgoing);
        let origin = ConnRef {
            shard: self.id as u16,
            kind: CallerKind::WebSocket,
            key: conn.key,
        };
        for (origin_cseq, owner) in outgoing {
            self.caller_gone_from(owner, origin, origin_cseq);
        }
    }

    /// End every stream `conn` is the target of: its callers get an error answer (no
    /// response head yet) or a reset with `reason`.
    pub fn end_streams(&self, conn: &Conn, reason: ResetReason) {
        let streams = std::mem::take(&mut conn.state.borrow_mut().streams);
        self.stream_counters.closed(streams.len() as u64);
        for entry in streams.into_values() {
            self.stream_routes
                .borrow_mut()
                .remove(&(entry.origin, entry.origin_cseq));
            let why = format!("{} is gone", conn.address);
            self.end_for_caller(&entry, reason, &why);
        }
    }

    /// End `conn` at once without flushing (dead or not reading) and take it out of service.
    pub fn drop_connection(&self, conn: &Conn) {
        conn.kill();
        self.retire(conn);
    }

    /// The driver task of `conn` has finished.
    pub fn connection_ended(&self, conn: &Conn) {
        self.retire(conn);
        self.conns.borrow_mut().remove(conn.key);
    }

    /// Send to another shard; a full queue parks the message here, in order, until the
    /// inbox task can push it.
    pub fn send_to(&self, to: usize, msg: ShardMessage) {
        let mut overflow = self.overflow.borrow_mut();
        let msg = if overflow[to].is_empty() {
            match self.router.send(self.id, to, msg) {
                Ok(()) => return,
                Err(msg) => msg,
            }
        } else {
            msg
        };
        overflow[to].push_back(msg);
        // Our own inbox task retries the overflow; make sure it is awake.
        self.router.notify(self.id);
    }

    /// Whether requests for shard `to` are backed up past the point of refusing new ones.
    pub fn overflowing(&self, to: usize) -> bool {
        self.overflow.borrow()[to].len() >= OVERFLOW_REQUEST_LIMIT
    }

    /// Push what waits in the overflow lists onto the queues; whether all of it went.
    pub fn flush_overflow(&self) -> bool {
        let mut overflow = self.overflow.borrow_mut();
        let mut all_sent = true;
        for (to, queue) in overflow.iter_mut().enumerate() {
            while let Some(msg) = queue.pop_front() {
                if let Err(msg) = self.router.send(self.id, to, msg) {
                    queue.push_front(msg);
                    all_sent = false;
                    break;
                }
            }
        }
        all_sent
    }
}
