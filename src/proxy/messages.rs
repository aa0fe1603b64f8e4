//! What travels inside the proxy: frames on their way out of a connection, requests on their
//! way to the shard that owns their target, answers on their way back, and connections
//! moving to the shard that owns their address. Everything here is `Send` (it crosses
//! threads); nothing here does anything.

use bytes::Bytes;

use crate::proto::address::VirtualAddress;
use crate::proto::frame::OpCode;
use crate::proto::handshake::UpgradeRequest;
use crate::proto::head::{HeadInfo, HttpBodyFraming};
use crate::proto::stream::StreamMessage;
use crate::proxy::ids::{CallerKind, ConnKey, ConnRef};
use crate::proxy::transport::DetachedTransport;

/// How the answer to a request reaches its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyAs {
    /// A WebSocket frame; a synthesized answer uses the opcode the request came with.
    Frame(OpCode),
    /// A plain HTTP/1.1 response (public ingress); a response to HEAD never has a body.
    Http {
        /// The request was `HEAD`: the answer's body is left out.
        head_request: bool,
        /// The caller spoke HTTP/1.1, so a streamed answer of unknown length can go chunked.
        chunked_ok: bool,
    },
}

/// One outbound WebSocket frame as it will be written: the frame header with the (rewritten)
/// HTTP head in one piece, and the body handed on untouched (zero-copy, maybe empty).
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// Written first: a frame header and the rewritten HTTP head (or a whole small frame, or
    /// an ingress caller's HTTP head).
    pub head: Bytes,
    /// Written after `head`: the message's body as it arrived, possibly empty.
    pub body: Bytes,
}

impl OutFrame {
    /// A frame with nothing in it: queuing it writes nothing (a delivery that only tells
    /// the caller's shard an exchange is over).
    pub fn empty() -> OutFrame {
        OutFrame {
            head: Bytes::new(),
            body: Bytes::new(),
        }
    }

    /// Bytes on the wire: `head` and `body` together.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request on its way to the shard that owns its target address.
#[derive(Debug)]
pub struct RelayRequest {
    /// The caller's connection, where the answer goes back to.
    pub origin: ConnRef,
    /// The CSeq the caller chose, restored in the answer.
    pub origin_cseq: u64,
    /// The caller's address, stamped as `Httpws-From`; `None` for an internet caller. (The
    /// target is re-read from the head's Host on the owner shard.)
    pub from: Option<VirtualAddress>,
    /// The frame opcode towards the target.
    pub opcode: OpCode,
    /// The request head (`info` describes it); anything after `info.head_len` is ignored.
    pub message: Bytes,
    /// Where the CSeq, Host and the lines to rewrite are in `message`.
    pub info: HeadInfo,
    /// The body, handed on untouched.
    pub body: Bytes,
    /// How the caller wants its answer.
    pub reply: ReplyAs,
    /// The caller speaks protocol 2: it may get stream heads and stream messages back.
    pub caller_streams: bool,
}

/// What a delivery does to the caller's exchange, on the caller's shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The exchange is over for the caller (a whole answer, a stream's last message): its
    /// CSeq is free again.
    Ends,
    /// A response stream starts; the stream's state is on shard `owner`, where the caller's
    /// credit and reset messages for it go.
    Opens {
        /// The shard that owns the stream.
        owner: u16,
        /// For a plain HTTP caller, how the body is delimited on its connection (the head
        /// says so already; the ingress frames each piece accordingly).
        http: Option<HttpBodyFraming>,
    },
    /// A stream message; the exchange goes on.
    Continues,
    /// The exchange ended without its end (a reset, a target gone mid-stream): for a plain
    /// HTTP caller, whose streamed body cannot say so, its connection is closed without the
    /// body's end.
    Broken,
}

/// A caller's stream message, on its way to the shard that owns the stream.
#[derive(Debug)]
pub struct CallerStream {
    /// The caller.
    pub origin: ConnRef,
    /// The caller's CSeq of the exchange.
    pub origin_cseq: u64,
    /// The parsed tag line.
    pub tag: StreamMessage,
    /// The whole message (the payload starts at `tag.payload_at`).
    pub message: Bytes,
    /// The opcode it came with.
    pub opcode: OpCode,
}

/// The answer to one request, on its way back to the caller's connection.
#[derive(Debug)]
pub struct Delivery {
    /// The caller's key on the receiving shard.
    pub to: ConnKey,
    /// Which slab of that shard `to` belongs to.
    pub kind: CallerKind,
    /// The caller's own CSeq: it leaves the caller's in-flight set (or the ingress caller's
    /// mailbox takes only the answer it awaits).
    pub origin_cseq: u64,
    /// The answer, ready to write (a frame, or an HTTP response for an ingress caller).
    pub frame: OutFrame,
    /// What it does to the caller's exchange.
    pub progress: Progress,
}

/// A freshly upgraded connection travelling to the shard that owns its address.
#[derive(Debug)]
pub struct Handoff {
    /// The socket, with its TLS session if it has one.
    pub transport: DetachedTransport,
    /// The checked handshake, answered on the owner shard.
    pub request: UpgradeRequest,
    /// The address to register: the one asked for, or the one assigned for path `/`.
    pub address: VirtualAddress,
    /// Bytes the client sent after its handshake head.
    pub leftover: Bytes,
}

/// A public-ingress connection travelling to the shard that owns its first request's target.
#[derive(Debug)]
pub struct HttpHandoff {
    /// The socket, with its TLS session if it has one.
    pub transport: DetachedTransport,
    /// The caller's IP address, for `X-Forwarded-For`.
    pub peer: std::net::IpAddr,
    /// What was read and not yet handled: the first request (or part of it) and anything after.
    pub buffered: Bytes,
}

/// Everything one shard can ask of another.
#[derive(Debug)]
pub enum ShardMessage {
    /// Register this connection here: this shard owns its address.
    Adopt(Box<Handoff>),
    /// Serve this public-ingress connection here: this shard owns its first target.
    AdoptHttp(Box<HttpHandoff>),
    /// Relay this request to a target registered here.
    Request(RelayRequest),
    /// Hand this answer (or stream message) to a caller connected here.
    Respond(Delivery),
    /// A caller's stream message, for a stream whose state this shard holds.
    CallerStream(Box<CallerStream>),
    /// A caller connected elsewhere went away with this stream open: reset it towards its
    /// target, which is registered here.
    CallerGone {
        /// The caller.
        origin: ConnRef,
        /// The caller's CSeq of the stream.
        origin_cseq: u64,
    },
}
