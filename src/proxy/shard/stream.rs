//! The request path for streams (protocol 2, docs/protocol.md §12): stream heads, data, end,
//! credit and reset messages, checked against each direction's credit on the shard that owns
//! the target, relayed with their CSeq renumbered and their direction flipped (the payload
//! as it came), and assembled into whole messages for protocol-1 peers.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::proto::answer_error::AnswerError;
use crate::proto::frame::OpCode;
use crate::proto::handshake::{self, Protocol};
use crate::proto::head::{self, HeadInfo};
use crate::proto::http1::framing::Framing;
use crate::proto::indication::IndicationError;
use crate::proto::public_request::INTERNET_CALLER;
use crate::proto::stream::{self, Direction, ResetReason, StreamMessage, Verb};
use crate::proxy::conn::Conn;
use crate::proxy::ids::{CallerKind, ConnRef};
use crate::proxy::messages::{
    CallerStream, OutFrame, Progress, RelayRequest, ReplyAs, ShardMessage,
};
use crate::proxy::shard::Shard;
use crate::proxy::streams::{Assembly, Flow, FlowFault, StreamEntry, Toward};

impl Shard {
    /// A stream message (`~…`) arrived on `conn`.
    pub(super) fn on_stream_message(&self, conn: &Conn, opcode: OpCode, message: Bytes) {
        if conn.protocol != Protocol::V2 {
            let reason = "stream messages need protocol 2 (Sec-WebSocket-Protocol: httpws.2)";
            return self.send_indication(conn, IndicationError::BadMessage, reason);
        }
        let tag = match stream::parse(&message) {
            Ok(tag) => tag,
            Err(e) => {
                return self.send_indication(conn, IndicationError::BadMessage, &e.to_string());
            }
        };
        match tag.dir {
            Direction::Outgoing => self.stream_from_caller_conn(conn, opcode, tag, message),
            Direction::Incoming => self.stream_from_target(conn, opcode, tag, message),
        }
    }

    /// The caller's side of a stream message: find the shard that holds the stream's state.
    fn stream_from_caller_conn(
        &self,
        conn: &Conn,
        opcode: OpCode,
        tag: StreamMessage,
        message: Bytes,
    ) {
        let owner = {
            let mut st = conn.state.borrow_mut();
            let owner = st.outgoing.get(&tag.cseq).copied();
            if owner.is_some() && matches!(tag.verb, Verb::Reset(_)) {
                // The caller gave its exchange up: it is over here at once, whatever the
                // target's shard still has in flight.
                st.outgoing.remove(&tag.cseq);
                st.inflight.remove(&tag.cseq);
            }
            owner
        };
        let Some(owner) = owner else {
            // Dropped quietly: the proxy cannot tell a stream that never was from one that has
            // just ended (a grant crossing the target's end, data crossing an early answer),
            // and the caller's own CSeqs are not remembered once their exchange is over.
            tracing::debug!(address = %conn.address, cseq = tag.cseq, "a stream message for no open stream of the caller's");
            return;
        };
        let hop = CallerStream {
            origin: ConnRef {
                shard: self.id as u16,
                kind: CallerKind::WebSocket,
                key: conn.key,
            },
            origin_cseq: tag.cseq,
            tag,
            message,
            opcode,
        };
        if usize::from(owner) == self.id {
            self.stream_from_caller(hop);
        } else {
            self.send_to(
                usize::from(owner),
                ShardMessage::CallerStream(Box::new(hop)),
            );
        }
    }

    /// On the shard that owns the stream: a caller's data, end, credit or reset.
    pub fn stream_from_caller(&self, hop: CallerStream) {
        let route = self
            .stream_routes
            .borrow()
            .get(&(hop.origin, hop.origin_cseq))
            .copied();
        // Gone meanwhile (answered, reset, timed out): the caller has been told already.
        let Some((target_key, proxy_cseq)) = route else {
            return;
        };
        let Some(target) = self.conn(target_key) else {
            return;
        };
        let payload = hop.message.slice(hop.tag.payload_at..);
        let mut st = target.state.borrow_mut();
        let Some(entry) = st.streams.get_mut(&proxy_cseq) else {
            return;
        };
        entry.last_activity = Instant::now();
        match hop.tag.verb {
            Verb::Data => {
                if let Err(fault) = entry.request.send(payload.len() as u64) {
                    drop(st);
                    return self.abort_stream(&target, proxy_cseq, reset_for(fault));
                }
                if let Some(asm) = entry
                    .assembly
                    .as_mut()
                    .filter(|a| a.toward == Toward::Target)
                {
                    if asm.body.len() + payload.len() > self.config.max_message_bytes {
                        drop(st);
                        return self.abort_stream(&target, proxy_cseq, ResetReason::TooLarge);
                    }
                    asm.body.extend_from_slice(&payload);
                    // The proxy is the receiver here: what it took, it grants again.
                    let granted = entry
                        .request
                        .grant(payload.len() as u64, self.config.max_stream_window);
                    let (origin, origin_cseq, reply) =
                        (entry.origin, entry.origin_cseq, entry.reply);
                    drop(st);
                    self.grant_to_caller(reply, hop.opcode, origin, origin_cseq, granted);
                    return;
                }
                drop(st);
                self.stream_counters.to_target(payload.len());
                let frame = self.stream_frame(
                    hop.opcode,
                    Verb::Data,
                    Direction::Incoming,
                    proxy_cseq,
                    payload,
                );
                self.queue(&target, frame);
            }
            Verb::End => {
                if let Err(fault) = entry.request.end() {
                    drop(st);
                    return self.abort_stream(&target, proxy_cseq, reset_for(fault));
                }
                if !entry.answered {
                    entry.deadline = Some(Instant::now() + self.config.request_timeout);
                }
                let assembled = entry.assembly.take_if(|a| a.toward == Toward::Target);
                drop(st);
                match assembled {
                    Some(asm) => self.send_assembled_request(&target, proxy_cseq, *asm),
                    None => {
                        let frame = self.stream_frame(
                            hop.opcode,
                            Verb::End,
                            Direction::Incoming,
                            proxy_cseq,
                            Bytes::new(),
                        );
                        self.queue(&target, frame);
                        self.finish_if_done(&target, proxy_cseq);
                    }
                }
            }
            Verb::Credit(n) => {
                let granted = entry.response.grant(n, self.config.max_stream_window);
                let assembling = entry.assembly.is_some();
                drop(st);
                if granted > 0 && !assembling {
                    let frame = self.stream_frame(
                        hop.opcode,
                        Verb::Credit(granted),
                        Direction::Incoming,
                        proxy_cseq,
                        Bytes::new(),
                    );
                    self.queue(&target, frame);
                }
            }
            Verb::Reset(reason) => {
                drop(st);
                self.remove_stream(&target, proxy_cseq);
                let frame = self.stream_frame(
                    hop.opcode,
                    Verb::Reset(reason),
                    Direction::Incoming,
                    proxy_cseq,
                    Bytes::new(),
                );
                self.queue(&target, frame);
            }
        }
    }

    /// The target's side of a stream message: response data, end, request credit or reset.
    fn stream_from_target(&self, conn: &Conn, opcode: OpCode, tag: StreamMessage, message: Bytes) {
        let payload = message.slice(tag.payload_at..);
        let mut st = conn.state.borrow_mut();
        let Some(entry) = st.streams.get_mut(&tag.cseq) else {
            let issued = tag.cseq != 0 && tag.cseq < st.pending.next_cseq();
            drop(st);
            if !issued {
                let reason = format!("no request with CSeq {} was sent here", tag.cseq);
                self.send_indication(conn, IndicationError::UnknownCseq, &reason);
            }
            // Issued: a stream that ended (or a whole exchange): late, dropped quietly.
            return;
        };
        entry.last_activity = Instant::now();
        let (origin, origin_cseq) = (entry.origin, entry.origin_cseq);
        match tag.verb {
            Verb::Data => {
                if let Err(fault) = entry.response.send(payload.len() as u64) {
                    drop(st);
                    return self.abort_stream(conn, tag.cseq, reset_for(fault));
                }
                if let Some(asm) = entry
                    .assembly
                    .as_mut()
                    .filter(|a| a.toward == Toward::Caller)
                {
                    if asm.body.len() + payload.len() > self.config.max_message_bytes {
                        drop(st);
                        return self.abort_stream(conn, tag.cseq, ResetReason::TooLarge);
                    }
                    asm.body.extend_from_slice(&payload);
                    let granted = entry
                        .response
                        .grant(payload.len() as u64, self.config.max_stream_window);
                    drop(st);
                    if granted > 0 {
                        let frame = self.stream_frame(
                            opcode,
                            Verb::Credit(granted),
                            Direction::Incoming,
                            tag.cseq,
                            Bytes::new(),
                        );
                        self.queue(conn, frame);
                    }
                    return;
                }
                self.stream_counters.to_caller(payload.len());
                if let ReplyAs::Http { .. } = entry.reply {
                    // The ingress frames it for its caller (a chunk, or the bytes as they are).
                    drop(st);
                    let frame = OutFrame {
                        head: Bytes::new(),
                        body: payload,
                    };
                    return self.deliver(origin, origin_cseq, frame, Progress::Continues);
                }
                drop(st);
                let frame = self.stream_frame(
                    opcode,
                    Verb::Data,
                    Direction::Outgoing,
                    origin_cseq,
                    payload,
                );
                self.deliver(origin, origin_cseq, frame, Progress::Continues);
            }
            Verb::End => {
                if let Err(fault) = entry.response.end() {
                    drop(st);
                    return self.abort_stream(conn, tag.cseq, reset_for(fault));
                }
                if let ReplyAs::Http { .. } = entry.reply {
                    drop(st);
                    return self.finish_stream(conn, tag.cseq, OutFrame::empty());
                }
                let assembled = entry.assembly.take_if(|a| a.toward == Toward::Caller);
                let reply = entry.reply;
                drop(st);
                match assembled {
                    Some(asm) => {
                        let answer = self.assembled_answer(conn, *asm, origin_cseq, reply);
                        self.finish_stream(conn, tag.cseq, answer);
                    }
                    None => {
                        let frame = self.stream_frame(
                            opcode,
                            Verb::End,
                            Direction::Outgoing,
                            origin_cseq,
                            Bytes::new(),
                        );
                        self.finish_stream(conn, tag.cseq, frame);
                    }
                }
            }
            Verb::Credit(n) => {
                let granted = entry.request.grant(n, self.config.max_stream_window);
                let (assembling, reply) = (entry.assembly.is_some(), entry.reply);
                drop(st);
                if !assembling {
                    self.grant_to_caller(reply, opcode, origin, origin_cseq, granted);
                }
            }
            Verb::Reset(reason) => {
                drop(st);
                let entry = self.remove_stream(conn, tag.cseq);
                if let Some(entry) = entry {
                    self.end_for_caller(&entry, reason, "the target reset the stream");
                }
            }
        }
    }

    /// A request with a stream head, on the shard that owns its target (checked and
    /// admitted by [`accept_request`](Shard::accept_request)).
    pub(super) fn accept_stream_request(&self, target: &Conn, request: RelayRequest) {
        let RelayRequest {
            origin,
            origin_cseq,
            from,
            opcode,
            message,
            info,
            reply,
            caller_streams,
            ..
        } = request;
        let declared = match info.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let proxy_cseq = {
            let mut st = target.state.borrow_mut();
            if st.streams.len() >= self.config.max_streams {
                drop(st);
                let reason = format!("{} has too many open streams", target.address);
                return self.fail_request(
                    origin,
                    origin_cseq,
                    reply,
                    AnswerError::TargetBusy,
                    &reason,
                );
            }
            st.pending.issue()
        };
        if target.protocol == Protocol::V1 && handshake::is_upgrade(&message[..info.head_len]) {
            // A protocol-1 target takes whole messages only: an upgraded connection's two
            // byte streams cannot reach it.
            let reason = format!(
                "{} speaks protocol 1, which cannot carry an upgraded connection",
                target.address
            );
            return self.fail_request(
                origin,
                origin_cseq,
                reply,
                AnswerError::BadResponse,
                &reason,
            );
        }
        let assembly = (target.protocol == Protocol::V1).then(|| {
            Box::new(Assembly {
                toward: Toward::Target,
                head: message.clone(),
                info: info.clone(),
                opcode,
                body: BytesMut::new(),
            })
        });
        let stamp = from_name(&from);
        let entry = StreamEntry {
            origin,
            origin_cseq,
            reply,
            caller_streams,
            request: Flow::open(declared),
            response: Flow::Whole,
            answered: false,
            last_activity: Instant::now(),
            deadline: None,
            assembly,
            switched: false,
            from,
        };
        self.add_stream(target, proxy_cseq, entry);
        if target.protocol == Protocol::V2 {
            let from = Some(stamp.as_str());
            let head_len = head::rewritten_head_len(&message, &info, proxy_cseq, from);
            let head = self.frame_with(opcode, head_len, |arena| {
                head::write_head(arena, &message, &info, proxy_cseq, from);
            });
            self.queue(
                target,
                OutFrame {
                    head,
                    body: Bytes::new(),
                },
            );
        }
    }

    /// The assembled whole request goes to the protocol-1 target; the exchange waits for
    /// its (whole) answer like any other, in the stream table, with its deadline.
    fn send_assembled_request(&self, target: &Conn, proxy_cseq: u64, asm: Assembly) {
        let from = target
            .state
            .borrow()
            .streams
            .get(&proxy_cseq)
            .map_or_else(|| INTERNET_CALLER.to_owned(), |e| from_name(&e.from));
        let body_len = asm.body.len() as u64;
        let mut scratch = BytesMut::with_capacity(asm.info.head_len + 64);
        head::write_whole_head(
            &mut scratch,
            &asm.head,
            &asm.info,
            proxy_cseq,
            Some(&from),
            body_len,
        );
        let head = self.frame_with(asm.opcode, scratch.len() + asm.body.len(), |arena| {
            arena.extend_from_slice(&scratch);
        });
        self.queue(
            target,
            OutFrame {
                head,
                body: asm.body.freeze(),
            },
        );
    }

    /// A response with a stream head for `proxy_cseq`, which waited as a whole request
    /// (`pending` was taken) or as a stream.
    pub(super) fn stream_response_head(
        &self,
        target: &Conn,
        proxy_cseq: u64,
        opcode: OpCode,
        message: Bytes,
        info: &HeadInfo,
    ) {
        let declared = match info.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let mut st = target.state.borrow_mut();
        let Some(entry) = st.streams.get_mut(&proxy_cseq) else {
            return;
        };
        entry.last_activity = Instant::now();
        entry.response = Flow::open(declared);
        entry.answered = true;
        entry.switched = info.status == 101;
        entry.deadline = None;
        let (origin, origin_cseq) = (entry.origin, entry.origin_cseq);
        if !entry.caller_streams {
            entry.assembly = Some(Box::new(Assembly {
                toward: Toward::Caller,
                head: message,
                info: info.clone(),
                opcode,
                body: BytesMut::new(),
            }));
            return;
        }
        let mut http_framing = None;
        let head = match entry.reply {
            ReplyAs::Frame(_) => {
                drop(st);
                let head_len = head::rewritten_head_len(&message, info, origin_cseq, None);
                self.frame_with(opcode, head_len, |arena| {
                    head::write_head(arena, &message, info, origin_cseq, None);
                })
            }
            ReplyAs::Http {
                head_request,
                chunked_ok,
            } => {
                let (head, written) = self.arena_bytes(|arena| {
                    head::write_http_stream_head(arena, &message, info, head_request, chunked_ok)
                });
                match written {
                    Ok(framing) => {
                        drop(st);
                        http_framing = Some(framing);
                        head
                    }
                    Err(e) => {
                        entry.answered = false;
                        drop(st);
                        tracing::debug!(address = %target.address, error = %e, "a stream head cannot go to an internet caller");
                        return self.abort_stream(target, proxy_cseq, ResetReason::Protocol);
                    }
                }
            }
        };
        let frame = OutFrame {
            head,
            body: Bytes::new(),
        };
        let owner = self.id as u16;
        let opens = Progress::Opens {
            owner,
            http: http_framing,
        };
        self.deliver(origin, origin_cseq, frame, opens);
    }

    /// The whole answer made of an assembled streamed response, for its caller.
    fn assembled_answer(
        &self,
        target: &Conn,
        asm: Assembly,
        origin_cseq: u64,
        reply: ReplyAs,
    ) -> OutFrame {
        let mut whole = BytesMut::with_capacity(asm.info.head_len + 64 + asm.body.len());
        head::write_whole_head(
            &mut whole,
            &asm.head,
            &asm.info,
            origin_cseq,
            None,
            asm.body.len() as u64,
        );
        whole.extend_from_slice(&asm.body);
        let whole = whole.freeze();
        match head::inspect(
            &whole,
            &head::HeadLimits {
                max_head_bytes: usize::MAX,
                max_headers: usize::from(u16::MAX),
            },
        ) {
            Ok(info) => self.answer_frame(target, asm.opcode, whole, &info, origin_cseq, reply),
            Err(e) => {
                let reason = format!("{} answered with {e}", target.address);
                self.answer_error_frame(reply, origin_cseq, AnswerError::BadResponse, &reason)
            }
        }
    }

    /// Add `entry` under `proxy_cseq` on `target`, with its route for the caller's messages.
    pub(super) fn add_stream(&self, target: &Conn, proxy_cseq: u64, entry: StreamEntry) {
        self.stream_routes
            .borrow_mut()
            .insert((entry.origin, entry.origin_cseq), (target.key, proxy_cseq));
        self.stream_counters.opened();
        let mut st = target.state.borrow_mut();
        st.streams.insert(proxy_cseq, entry);
        if !st.in_stream_set {
            st.in_stream_set = true;
            self.stream_timed.borrow_mut().push(target.key);
        }
    }

    /// Take a stream out of the tables (it ended, or was reset).
    pub(super) fn remove_stream(&self, target: &Conn, proxy_cseq: u64) -> Option<StreamEntry> {
        let entry = target.state.borrow_mut().streams.remove(&proxy_cseq)?;
        self.stream_counters.closed(1);
        self.stream_routes
            .borrow_mut()
            .remove(&(entry.origin, entry.origin_cseq));
        Some(entry)
    }

    /// The last message of a stream to its caller: the exchange ends there for it. A plain
    /// HTTP caller's exchange ends with its response: the rest of a request body still
    /// streaming is not wanted, and the target is told so with a reset.
    fn finish_stream(&self, target: &Conn, proxy_cseq: u64, frame: OutFrame) {
        let found = target.state.borrow().streams.get(&proxy_cseq).map(|e| {
            let http = matches!(e.reply, ReplyAs::Http { .. });
            let http_upload = http && !e.request.is_done();
            (
                e.is_finished(),
                http_upload,
                e.switched,
                e.origin,
                e.origin_cseq,
            )
        });
        let (done, http_upload) = match found {
            // A switched connection's side ended: the caller's may go on.
            Some((_, true, true, origin, origin_cseq)) => {
                return self.deliver(origin, origin_cseq, frame, Progress::AnswerEnds);
            }
            Some((done, http_upload, ..)) => (done, http_upload),
            None => (false, false),
        };
        if http_upload {
            if let Some(entry) = self.remove_stream(target, proxy_cseq) {
                let reset = self.stream_frame(
                    OpCode::Binary,
                    Verb::Reset(ResetReason::Cancel),
                    Direction::Incoming,
                    proxy_cseq,
                    Bytes::new(),
                );
                self.queue(target, reset);
                self.deliver(entry.origin, entry.origin_cseq, frame, Progress::Ends);
            }
            return;
        }
        let Some(entry) = (if done {
            self.remove_stream(target, proxy_cseq)
        } else {
            None
        }) else {
            // The request body still streams: the caller keeps its exchange open.
            let route = target
                .state
                .borrow()
                .streams
                .get(&proxy_cseq)
                .map(|e| (e.origin, e.origin_cseq));
            if let Some((origin, origin_cseq)) = route {
                self.deliver(origin, origin_cseq, frame, Progress::Continues);
            }
            return;
        };
        self.deliver(entry.origin, entry.origin_cseq, frame, Progress::Ends);
    }

    /// After the caller's `end`: if the response had ended too, the exchange is over.
    fn finish_if_done(&self, target: &Conn, proxy_cseq: u64) {
        let done = target
            .state
            .borrow()
            .streams
            .get(&proxy_cseq)
            .is_some_and(StreamEntry::is_finished);
        if done {
            if let Some(entry) = self.remove_stream(target, proxy_cseq) {
                // Tell the caller's shard the exchange is over (an empty frame queues nothing).
                self.deliver(
                    entry.origin,
                    entry.origin_cseq,
                    OutFrame::empty(),
                    Progress::Ends,
                );
            }
        }
    }

    /// The proxy ends a stream for both sides: the target gets a reset, the caller an error
    /// answer (no response head yet) or a reset.
    pub(super) fn abort_stream(&self, target: &Conn, proxy_cseq: u64, reason: ResetReason) {
        let Some(entry) = self.remove_stream(target, proxy_cseq) else {
            return;
        };
        let opcode = match entry.reply {
            ReplyAs::Frame(opcode) => opcode,
            ReplyAs::Http { .. } => OpCode::Binary,
        };
        let frame = self.stream_frame(
            opcode,
            Verb::Reset(reason),
            Direction::Incoming,
            proxy_cseq,
            Bytes::new(),
        );
        self.queue(target, frame);
        self.end_for_caller(&entry, reason, "the proxy reset the stream");
    }

    /// Tell a stream's caller that it ended without an end: an error answer if no response
    /// head reached it yet, a reset otherwise.
    pub(super) fn end_for_caller(&self, entry: &StreamEntry, reason: ResetReason, why: &str) {
        let (origin, origin_cseq) = (entry.origin, entry.origin_cseq);
        if !entry.answered || !entry.caller_streams {
            let error = match reason {
                ResetReason::Timeout => AnswerError::Timeout,
                ResetReason::TooLarge if !entry.answered => AnswerError::MessageTooLarge,
                ResetReason::TooLarge | ResetReason::FlowControl | ResetReason::Protocol => {
                    AnswerError::BadResponse
                }
                ResetReason::Shutdown | ResetReason::TargetGone | ResetReason::Cancel => {
                    AnswerError::TargetGone
                }
            };
            let reason = format!("{why} ({})", reason.token());
            return self.fail_request(origin, origin_cseq, entry.reply, error, &reason);
        }
        let ReplyAs::Frame(opcode) = entry.reply else {
            // Half a body has gone to a plain HTTP caller: its connection closes without the
            // body's end, so it cannot take the body for complete.
            return self.deliver(origin, origin_cseq, OutFrame::empty(), Progress::Broken);
        };
        let frame = self.stream_frame(
            opcode,
            Verb::Reset(reason),
            Direction::Outgoing,
            origin_cseq,
            Bytes::new(),
        );
        self.deliver(origin, origin_cseq, frame, Progress::Ends);
    }

    /// Tell a caller it may send `granted` more bytes of its request body: a `~credit`
    /// message, or for a plain HTTP caller the amount itself.
    fn grant_to_caller(
        &self,
        reply: ReplyAs,
        opcode: OpCode,
        origin: ConnRef,
        origin_cseq: u64,
        granted: u64,
    ) {
        if granted == 0 {
            return;
        }
        let (frame, progress) = match reply {
            ReplyAs::Frame(_) => (
                self.stream_frame(
                    opcode,
                    Verb::Credit(granted),
                    Direction::Outgoing,
                    origin_cseq,
                    Bytes::new(),
                ),
                Progress::Continues,
            ),
            ReplyAs::Http { .. } => (OutFrame::empty(), Progress::Credit(granted)),
        };
        self.deliver(origin, origin_cseq, frame, progress);
    }

    /// A stream message from a plain HTTP caller (public ingress), as a WebSocket caller
    /// would send it: a piece of its streamed request body (`Data`, `payload`), its end, or
    /// credit for its streamed answer (granted for what was written to the caller's socket).
    /// `owner`: the shard that holds the stream.
    pub fn stream_from_http_caller(
        &self,
        owner: u16,
        origin: ConnRef,
        origin_cseq: u64,
        verb: Verb,
        payload: Bytes,
    ) {
        let hop = CallerStream {
            origin,
            origin_cseq,
            tag: StreamMessage {
                verb,
                dir: Direction::Outgoing,
                cseq: origin_cseq,
                payload_at: 0,
            },
            message: payload,
            opcode: OpCode::Binary,
        };
        if usize::from(owner) == self.id {
            self.stream_from_caller(hop);
        } else {
            self.send_to(
                usize::from(owner),
                ShardMessage::CallerStream(Box::new(hop)),
            );
        }
    }

    /// A caller whose stream is held on shard `owner` went away: the target gets a reset.
    pub fn caller_gone_from(&self, owner: u16, origin: ConnRef, origin_cseq: u64) {
        if usize::from(owner) == self.id {
            self.caller_gone(origin, origin_cseq);
        } else {
            let gone = ShardMessage::CallerGone {
                origin,
                origin_cseq,
            };
            self.send_to(usize::from(owner), gone);
        }
    }

    /// A caller that had streams on this shard went away: reset them towards their targets.
    pub fn caller_gone(&self, origin: ConnRef, origin_cseq: u64) {
        let route = self
            .stream_routes
            .borrow()
            .get(&(origin, origin_cseq))
            .copied();
        let Some((target_key, proxy_cseq)) = route else {
            return;
        };
        let Some(target) = self.conn(target_key) else {
            return;
        };
        if self.remove_stream(&target, proxy_cseq).is_some() {
            let frame = self.stream_frame(
                OpCode::Binary,
                Verb::Reset(ResetReason::Cancel),
                Direction::Incoming,
                proxy_cseq,
                Bytes::new(),
            );
            self.queue(&target, frame);
        }
    }

    /// One stream message as a frame: the tag line in the arena, the payload as it came.
    pub(super) fn stream_frame(
        &self,
        opcode: OpCode,
        verb: Verb,
        dir: Direction,
        cseq: u64,
        payload: Bytes,
    ) -> OutFrame {
        let tag_len = stream::tag_len(verb, cseq);
        let head = self.frame_with(opcode, tag_len + payload.len(), |arena| {
            stream::write_tag(arena, verb, dir, cseq);
        });
        OutFrame {
            head,
            body: payload,
        }
    }

    /// Reset every stream whose last activity is older than `--stream-idle-timeout`, and
    /// answer `timeout` to every caller whose request ended and whose answer is late.
    pub fn expire_streams(&self, now: Instant) {
        let mut timed = std::mem::take(&mut *self.stream_timed.borrow_mut());
        let mut expired = Vec::new();
        timed.retain(|key| {
            let Some(conn) = self.conn(*key) else {
                return false;
            };
            let mut st = conn.state.borrow_mut();
            for (cseq, entry) in st.streams.iter() {
                let idle =
                    now.duration_since(entry.last_activity) >= self.config.stream_idle_timeout;
                let late = entry.deadline.is_some_and(|d| d <= now);
                if idle || late {
                    expired.push((conn.clone(), *cseq));
                }
            }
            let keep = !st.streams.is_empty();
            st.in_stream_set = keep;
            keep
        });
        self.stream_timed.borrow_mut().append(&mut timed);
        for (conn, cseq) in expired {
            self.abort_stream(&conn, cseq, ResetReason::Timeout);
        }
    }
}

/// The reset a flow fault earns.
fn reset_for(fault: FlowFault) -> ResetReason {
    match fault {
        FlowFault::NotOpen => ResetReason::Protocol,
        FlowFault::OverCredit => ResetReason::FlowControl,
        FlowFault::OverLength => ResetReason::TooLarge,
    }
}

/// The `Httpws-From` value for a request: the caller's address, or `-internet-`.
fn from_name(from: &Option<crate::proto::address::VirtualAddress>) -> String {
    from.as_ref()
        .map_or(INTERNET_CALLER, |f| f.as_str())
        .to_owned()
}
