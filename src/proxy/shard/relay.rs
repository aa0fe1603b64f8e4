//! The request/response path: from a message read on one connection to a frame queued on
//! another, with CSeq remapping, `Httpws-From` stamping, and exactly one answer per request.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::proto::address::HostAddress;
use crate::proto::answer_error::AnswerError;
use crate::proto::frame::OpCode;
use crate::proto::handshake::Protocol;
use crate::proto::head::{self, HeadInfo, HeadKind};
use crate::proto::http1::write;
use crate::proto::indication::{self, IndicationError};
use crate::proto::public_request::INTERNET_CALLER;
use crate::proto::stream::{self, Direction, ResetReason, Verb};
use crate::proxy::conn::Conn;
use crate::proxy::ids::{CallerKind, ConnKey, ConnRef};
use crate::proxy::messages::{Delivery, OutFrame, Progress, RelayRequest, ReplyAs, ShardMessage};
use crate::proxy::pending::{Pending, Unmatched};
use crate::proxy::shard::Shard;
use crate::proxy::streams::{Flow, StreamEntry};

impl Shard {
    /// A complete data message arrived on `conn`.
    pub fn on_message(&self, conn: &Conn, opcode: OpCode, message: Bytes) {
        if stream::is_stream(&message) {
            return self.on_stream_message(conn, opcode, message);
        }
        if indication::is_indication(&message) {
            // Indications flow from the proxy to endpoints; one sent to us carries no request.
            tracing::debug!(address = %conn.address, "ignoring an indication from an endpoint");
            return;
        }
        match head::inspect(&message, &self.head_limits) {
            Ok(info) => match info.kind {
                HeadKind::Request => self.on_request(conn, opcode, message, info),
                HeadKind::Response => self.on_response(conn, opcode, message, &info),
            },
            Err(e) => {
                let is_response = message.starts_with(b"HTTP/");
                match e.cseq() {
                    Some(cseq) if !is_response => self.answer_unsent(
                        conn,
                        opcode,
                        cseq,
                        AnswerError::BadRequest,
                        &e.to_string(),
                    ),
                    _ => self.send_indication(conn, IndicationError::BadMessage, &e.to_string()),
                }
            }
        }
    }

    fn on_request(&self, conn: &Conn, opcode: OpCode, message: Bytes, info: HeadInfo) {
        let cseq = info.cseq;
        if info.stream && conn.protocol != Protocol::V2 {
            let reason = "a stream head (Httpws-Stream) needs protocol 2";
            return self.answer_unsent(conn, opcode, cseq, AnswerError::BadRequest, reason);
        }
        let target = match info.host(&message).map(HostAddress::from_host_header) {
            Some(Ok(address)) => address,
            Some(Err(e)) => {
                let reason = format!("Host is not a virtual address: {e}");
                return self.answer_unsent(conn, opcode, cseq, AnswerError::BadRequest, &reason);
            }
            None => {
                let reason = "a request needs a Host header naming its target";
                return self.answer_unsent(conn, opcode, cseq, AnswerError::BadRequest, reason);
            }
        };
        // Routing and authorization read the same parsed, canonical name.
        if !self.may_call(conn.address.as_str(), target.as_str()) {
            let reason = format!("{} may not call {}", conn.address, target.as_str());
            return self.answer_unsent(conn, opcode, cseq, AnswerError::Forbidden, &reason);
        }
        {
            let mut st = conn.state.borrow_mut();
            if st.inflight.contains(&cseq) {
                drop(st);
                let reason = format!("CSeq {cseq} is already in flight from this connection");
                return self.send_indication(conn, IndicationError::DuplicateCseq, &reason);
            }
            if st.inflight.len() >= self.config.max_inflight {
                drop(st);
                let reason = "too many requests in flight from this connection";
                return self.answer_unsent(conn, opcode, cseq, AnswerError::TargetBusy, reason);
            }
            if self.draining.get() {
                drop(st);
                let reason = "the proxy is shutting down";
                return self.answer_unsent(conn, opcode, cseq, AnswerError::TargetBusy, reason);
            }
            if info.stream && st.outgoing.len() >= self.config.max_streams {
                drop(st);
                let reason = "too many open streams from this connection";
                return self.answer_unsent(conn, opcode, cseq, AnswerError::TargetBusy, reason);
            }
            st.inflight.insert(cseq);
        }
        let owner = target.shard_index(self.router.shards());
        if info.stream {
            conn.state.borrow_mut().outgoing.insert(cseq, owner as u16);
        }
        let origin = ConnRef {
            shard: self.id as u16,
            kind: CallerKind::WebSocket,
            key: conn.key,
        };
        let body = message.slice(info.head_len..);
        let request = RelayRequest {
            origin,
            origin_cseq: cseq,
            from: Some(conn.address.clone()),
            opcode,
            message,
            info,
            body,
            reply: ReplyAs::Frame(opcode),
            caller_streams: conn.protocol == Protocol::V2,
        };
        self.route_request(owner, request);
    }

    /// Send an accepted request on to the shard that owns its target.
    pub fn route_request(&self, owner: usize, request: RelayRequest) {
        if owner == self.id {
            self.accept_request(request);
        } else if self.overflowing(owner) {
            let reason = "the target's shard is backed up";
            let (origin, cseq, reply) = (request.origin, request.origin_cseq, request.reply);
            self.fail_request(origin, cseq, reply, AnswerError::TargetBusy, reason);
        } else {
            self.send_to(owner, ShardMessage::Request(request));
        }
    }

    /// A request for an address this shard owns: remap its CSeq and queue it on the target.
    pub fn accept_request(&self, request: RelayRequest) {
        let conn = match self.target_of(&request) {
            Ok(conn) => conn,
            Err((error, reason)) => {
                let (origin, cseq, reply) = (request.origin, request.origin_cseq, request.reply);
                return self.fail_request(origin, cseq, reply, error, &reason);
            }
        };
        if request.info.stream {
            return self.accept_stream_request(&conn, request);
        }
        let RelayRequest {
            origin,
            origin_cseq,
            from,
            opcode,
            message,
            info,
            body,
            reply,
            caller_streams,
        } = request;
        let proxy_cseq = {
            let mut st = conn.state.borrow_mut();
            let deadline = Instant::now() + self.config.request_timeout;
            let cseq = st.pending.insert(Pending {
                origin,
                origin_cseq,
                reply,
                deadline,
                caller_streams,
            });
            if !st.in_timed_set {
                st.in_timed_set = true;
                self.timed.borrow_mut().push(conn.key);
            }
            cseq
        };
        self.pending_total.set(self.pending_total.get() + 1);
        self.relayed_total
            .set(self.relayed_total.get().wrapping_add(1));
        let from = Some(from.as_ref().map_or(INTERNET_CALLER, |f| f.as_str()));
        let head_len = head::rewritten_head_len(&message, &info, proxy_cseq, from);
        let head = self.frame_with(opcode, head_len + body.len(), |arena| {
            head::write_head(arena, &message, &info, proxy_cseq, from);
        });
        self.queue(&conn, OutFrame { head, body });
    }

    /// The connection a request goes to, if it may: its Host names a live endpoint here, the
    /// proxy is not stopping, a public endpoint for an internet caller, and room at the
    /// target. Otherwise the error and reason its caller gets.
    fn target_of(&self, request: &RelayRequest) -> Result<Rc<Conn>, (AnswerError, String)> {
        // The origin shard checked this Host; parsing it again here (on the stack) is cheaper
        // than carrying an owned copy of the name across shards.
        let Some(target) = request
            .info
            .host(&request.message)
            .and_then(|h| HostAddress::from_host_header(h).ok())
        else {
            let reason = "Host is not a virtual address".to_owned();
            return Err((AnswerError::BadRequest, reason));
        };
        let target = target.as_str();
        let holder = self
            .table
            .borrow()
            .lookup(target)
            .and_then(|key| self.conn(key));
        let Some(conn) = holder else {
            return Err((
                AnswerError::UnknownAddress,
                format!("no endpoint holds {target}"),
            ));
        };
        if self.draining.get() {
            let reason = "the proxy is shutting down".to_owned();
            return Err((AnswerError::TargetBusy, reason));
        }
        // Endpoints are private unless they registered as public (`?public=1`).
        if request.from.is_none() && !conn.public {
            return Err((
                AnswerError::Forbidden,
                format!("{target} does not take calls from the internet"),
            ));
        }
        let busy = {
            let st = conn.state.borrow();
            st.pending.len() + st.streams.len() >= self.config.max_inflight
        };
        if busy {
            return Err((
                AnswerError::TargetBusy,
                format!("{target} has too many requests in flight"),
            ));
        }
        if conn.queued_bytes() >= self.config.max_queued_bytes {
            return Err((
                AnswerError::TargetBusy,
                format!("{target} is not keeping up"),
            ));
        }
        Ok(conn)
    }

    fn on_response(&self, conn: &Conn, opcode: OpCode, message: Bytes, info: &HeadInfo) {
        if info.stream && conn.protocol != Protocol::V2 {
            let reason = "a stream head (Httpws-Stream) needs protocol 2";
            return self.send_indication(conn, IndicationError::BadMessage, reason);
        }
        let taken = conn.state.borrow_mut().pending.take(info.cseq);
        match taken {
            Ok(p) if info.stream => {
                // A whole request answered by a stream: from now on a stream exchange.
                self.pending_total.set(self.pending_total.get() - 1);
                let entry = StreamEntry {
                    origin: p.origin,
                    origin_cseq: p.origin_cseq,
                    reply: p.reply,
                    caller_streams: p.caller_streams,
                    request: Flow::Ended,
                    response: Flow::Whole,
                    answered: false,
                    last_activity: Instant::now(),
                    deadline: None,
                    assembly: None,
                    switched: false,
                    from: None,
                };
                self.add_stream(conn, info.cseq, entry);
                self.stream_response_head(conn, info.cseq, opcode, message, info);
            }
            Ok(p) => {
                self.pending_total.set(self.pending_total.get() - 1);
                let frame = self.answer_frame(conn, opcode, message, info, p.origin_cseq, p.reply);
                self.deliver(p.origin, p.origin_cseq, frame, Progress::Ends);
            }
            Err(unmatched) if conn.state.borrow().streams.contains_key(&info.cseq) => {
                let _ = unmatched;
                if info.stream {
                    return self.stream_response_head(conn, info.cseq, opcode, message, info);
                }
                // A whole answer to a streamed request: the exchange is over, the request
                // body's remaining data is not wanted (it is dropped when it comes).
                let Some(entry) = self.remove_stream(conn, info.cseq) else {
                    return;
                };
                let frame =
                    self.answer_frame(conn, opcode, message, info, entry.origin_cseq, entry.reply);
                self.deliver(entry.origin, entry.origin_cseq, frame, Progress::Ends);
            }
            Err(Unmatched::Late) => {
                tracing::debug!(address = %conn.address, cseq = info.cseq, "dropping a late response");
                if info.stream {
                    // A stream head after its caller was answered `timeout`: the target would
                    // wait for credit that never comes. Its stream ends here, told once.
                    let reset = self.stream_frame(
                        opcode,
                        Verb::Reset(ResetReason::Timeout),
                        Direction::Incoming,
                        info.cseq,
                        Bytes::new(),
                    );
                    self.queue(conn, reset);
                }
            }
            Err(Unmatched::Unissued) => {
                let reason = format!(
                    "no request with CSeq {} is waiting for a response",
                    info.cseq
                );
                self.send_indication(conn, IndicationError::UnknownCseq, &reason);
            }
        }
    }

    /// The target's whole answer as its caller takes it: a frame with the caller's CSeq, or
    /// an HTTP response for an internet caller (a `bad-response` error if it cannot frame
    /// itself on the caller's connection).
    pub(super) fn answer_frame(
        &self,
        target: &Conn,
        opcode: OpCode,
        message: Bytes,
        info: &HeadInfo,
        origin_cseq: u64,
        reply: ReplyAs,
    ) -> OutFrame {
        let body = message.slice(info.head_len..);
        match reply {
            ReplyAs::Frame(_) => {
                let head_len = head::rewritten_head_len(&message, info, origin_cseq, None);
                let head = self.frame_with(opcode, head_len + body.len(), |arena| {
                    head::write_head(arena, &message, info, origin_cseq, None);
                });
                OutFrame { head, body }
            }
            ReplyAs::Http { head_request, .. } => {
                let (head, written) = self.arena_bytes(|arena| {
                    head::write_http_head(arena, &message, info, &body, head_request)
                });
                match written {
                    Ok(()) if head_request => OutFrame {
                        head,
                        body: Bytes::new(),
                    },
                    Ok(()) => OutFrame { head, body },
                    Err(e) => {
                        let reason = format!("{} answered with {e}", target.address);
                        self.http_error(AnswerError::BadResponse, &reason)
                    }
                }
            }
        }
    }

    /// Hand the answer to request `origin_cseq` (or a stream message of its exchange) to its
    /// caller, wherever it lives.
    pub fn deliver(&self, origin: ConnRef, origin_cseq: u64, frame: OutFrame, progress: Progress) {
        if usize::from(origin.shard) == self.id {
            self.deliver_local(origin.kind, origin.key, origin_cseq, frame, progress);
        } else {
            let delivery = Delivery {
                to: origin.key,
                kind: origin.kind,
                origin_cseq,
                frame,
                progress,
            };
            self.send_to(usize::from(origin.shard), ShardMessage::Respond(delivery));
        }
    }

    /// The answer reached the caller's shard. A caller that has gone is simply not there; a
    /// caller that stopped reading while its answers pile up is cut off.
    pub fn deliver_local(
        &self,
        kind: CallerKind,
        key: ConnKey,
        origin_cseq: u64,
        frame: OutFrame,
        progress: Progress,
    ) {
        if kind == CallerKind::Http {
            let caller = self.callers.borrow().get(key).cloned();
            if let Some(caller) = caller {
                caller.deliver(origin_cseq, frame, progress);
            }
            return;
        }
        let Some(conn) = self.conn(key) else { return };
        {
            let mut st = conn.state.borrow_mut();
            match progress {
                Progress::Ends | Progress::Broken => {
                    st.inflight.remove(&origin_cseq);
                    st.outgoing.remove(&origin_cseq);
                }
                Progress::Opens { owner, .. } => {
                    // Still in flight (a reset from the caller may have ended it meanwhile).
                    if st.inflight.contains(&origin_cseq) {
                        st.outgoing.insert(origin_cseq, owner);
                    }
                }
                Progress::Continues | Progress::Credit(_) | Progress::AnswerEnds => {}
            }
        }
        if !frame.is_empty() {
            self.queue(&conn, frame);
        }
    }

    /// Answer a request the proxy had accepted (it is in the caller's in-flight set).
    pub fn fail_request(
        &self,
        origin: ConnRef,
        origin_cseq: u64,
        reply: ReplyAs,
        error: AnswerError,
        reason: &str,
    ) {
        let frame = self.answer_error_frame(reply, origin_cseq, error, reason);
        self.deliver(origin, origin_cseq, frame, Progress::Ends);
    }

    /// An error answer the proxy makes, as the caller takes it.
    pub(super) fn answer_error_frame(
        &self,
        reply: ReplyAs,
        origin_cseq: u64,
        error: AnswerError,
        reason: &str,
    ) -> OutFrame {
        match reply {
            ReplyAs::Frame(opcode) => self.error_frame(opcode, origin_cseq, error, reason),
            ReplyAs::Http { .. } => self.http_error(error, reason),
        }
    }

    /// An error answer for a plain HTTP client: the head (without its blank line, see
    /// [`head::write_http_head`]) and the reason as the body.
    pub fn http_error(&self, error: AnswerError, reason: &str) -> OutFrame {
        let (head, ()) = self.arena_bytes(|arena| {
            write::put_answer_head(arena, error, None, reason.len() + 1);
        });
        let (body, ()) = self.arena_bytes(|arena| {
            arena.extend_from_slice(reason.as_bytes());
            arena.extend_from_slice(b"\n");
        });
        OutFrame { head, body }
    }

    /// Answer a request that was refused before it was accepted (not in the in-flight set,
    /// whose entry for this CSeq, if any, belongs to another request).
    fn answer_unsent(
        &self,
        conn: &Conn,
        opcode: OpCode,
        cseq: u64,
        error: AnswerError,
        reason: &str,
    ) {
        self.queue(conn, self.error_frame(opcode, cseq, error, reason));
    }

    fn error_frame(&self, opcode: OpCode, cseq: u64, error: AnswerError, reason: &str) -> OutFrame {
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        write::put_answer(&mut scratch, error, Some(cseq), reason);
        let head = self.frame_with(opcode, scratch.len(), |arena| {
            arena.extend_from_slice(&scratch)
        });
        OutFrame {
            head,
            body: Bytes::new(),
        }
    }

    /// Answer every request whose deadline has passed with `timeout`.
    pub fn expire_requests(&self, now: Instant) {
        let mut timed = std::mem::take(&mut *self.timed.borrow_mut());
        let mut expired = Vec::new();
        timed.retain(|key| {
            let Some(conn) = self.conn(*key) else {
                return false;
            };
            let mut st = conn.state.borrow_mut();
            st.pending.expire(now, |p| expired.push(p));
            let keep = !st.pending.is_empty();
            st.in_timed_set = keep;
            keep
        });
        self.timed.borrow_mut().append(&mut timed);
        if expired.is_empty() {
            return;
        }
        let reason = format!(
            "no response within {}",
            humantime::format_duration(self.config.request_timeout)
        );
        self.fail_pending(expired, AnswerError::Timeout, &reason);
    }

    /// Answer requests taken out of a pending table with `error`.
    pub fn fail_pending(&self, pending: Vec<Pending>, error: AnswerError, reason: &str) {
        self.pending_total
            .set(self.pending_total.get() - pending.len());
        for p in pending {
            self.fail_request(p.origin, p.origin_cseq, p.reply, error, reason);
        }
    }
}
