//! The request/response path: from a message read on one connection to a frame queued on
//! another, with CSeq remapping, `Httpws-From` stamping, and exactly one answer per request.

use std::time::Instant;

use bytes::Bytes;

use crate::proto::address::HostAddress;
use crate::proto::answer_error::AnswerError;
use crate::proto::frame::OpCode;
use crate::proto::head::{self, HeadInfo, HeadKind};
use crate::proto::http1::write;
use crate::proto::indication::{self, IndicationError};
use crate::proto::public_request::INTERNET_CALLER;
use crate::proxy::conn::Conn;
use crate::proxy::ids::{CallerKind, ConnKey, ConnRef};
use crate::proxy::messages::{Delivery, OutFrame, RelayRequest, ReplyAs, ShardMessage};
use crate::proxy::pending::{Pending, Unmatched};
use crate::proxy::shard::Shard;

impl Shard {
    /// A complete data message arrived on `conn`.
    pub fn on_message(&self, conn: &Conn, opcode: OpCode, message: Bytes) {
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
            st.inflight.insert(cseq);
        }
        let owner = target.shard_index(self.router.shards());
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
        let RelayRequest {
            origin,
            origin_cseq,
            from,
            opcode,
            message,
            info,
            body,
            reply,
        } = request;
        // The origin shard checked this Host; parsing it again here (on the stack) is cheaper
        // than carrying an owned copy of the name across shards.
        let fail =
            |error, reason: &str| self.fail_request(origin, origin_cseq, reply, error, reason);
        let Some(target) = info
            .host(&message)
            .and_then(|h| HostAddress::from_host_header(h).ok())
        else {
            return fail(AnswerError::BadRequest, "Host is not a virtual address");
        };
        let target = target.as_str();
        let holder = self
            .table
            .borrow()
            .lookup(target)
            .and_then(|key| self.conn(key));
        let Some(conn) = holder else {
            return fail(
                AnswerError::UnknownAddress,
                &format!("no endpoint holds {target}"),
            );
        };
        if self.draining.get() {
            return fail(AnswerError::TargetBusy, "the proxy is shutting down");
        }
        // Endpoints are private unless they registered as public (`?public=1`).
        if from.is_none() && !conn.public {
            return fail(
                AnswerError::Forbidden,
                &format!("{target} does not take calls from the internet"),
            );
        }
        let queued = conn.queued_bytes();
        let proxy_cseq = {
            let mut st = conn.state.borrow_mut();
            if st.pending.len() >= self.config.max_inflight {
                drop(st);
                return fail(
                    AnswerError::TargetBusy,
                    &format!("{target} has too many requests in flight"),
                );
            }
            if queued >= self.config.max_queued_bytes {
                drop(st);
                return fail(
                    AnswerError::TargetBusy,
                    &format!("{target} is not keeping up"),
                );
            }
            let deadline = Instant::now() + self.config.request_timeout;
            let cseq = st.pending.insert(Pending {
                origin,
                origin_cseq,
                reply,
                deadline,
            });
            if !st.in_timed_set {
                st.in_timed_set = true;
                self.timed.borrow_mut().push(conn.key);
            }
            cseq
        };
        self.pending_total.set(self.pending_total.get() + 1);
        let from = Some(from.as_ref().map_or(INTERNET_CALLER, |f| f.as_str()));
        let head_len = head::rewritten_head_len(&message, &info, proxy_cseq, from);
        let head = self.frame_with(opcode, head_len + body.len(), |arena| {
            head::write_head(arena, &message, &info, proxy_cseq, from);
        });
        self.queue(&conn, OutFrame { head, body });
    }

    fn on_response(&self, conn: &Conn, opcode: OpCode, message: Bytes, info: &HeadInfo) {
        let taken = conn.state.borrow_mut().pending.take(info.cseq);
        match taken {
            Ok(p) => {
                self.pending_total.set(self.pending_total.get() - 1);
                let body = message.slice(info.head_len..);
                let frame = match p.reply {
                    ReplyAs::Frame(_) => {
                        let head_len =
                            head::rewritten_head_len(&message, info, p.origin_cseq, None);
                        let head = self.frame_with(opcode, head_len + body.len(), |arena| {
                            head::write_head(arena, &message, info, p.origin_cseq, None);
                        });
                        OutFrame { head, body }
                    }
                    ReplyAs::Http { head_request } => {
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
                                let reason = format!("{} answered with {e}", conn.address);
                                self.http_error(AnswerError::BadResponse, &reason)
                            }
                        }
                    }
                };
                self.deliver(p.origin, p.origin_cseq, frame);
            }
            Err(Unmatched::Late) => {
                tracing::debug!(address = %conn.address, cseq = info.cseq, "dropping a late response");
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

    /// Hand the answer to request `origin_cseq` to its caller, wherever it lives.
    pub fn deliver(&self, origin: ConnRef, origin_cseq: u64, frame: OutFrame) {
        if usize::from(origin.shard) == self.id {
            self.deliver_local(origin.kind, origin.key, origin_cseq, frame);
        } else {
            let delivery = Delivery {
                to: origin.key,
                kind: origin.kind,
                origin_cseq,
                frame,
            };
            self.send_to(usize::from(origin.shard), ShardMessage::Respond(delivery));
        }
    }

    /// The answer reached the caller's shard. A caller that has gone is simply not there; a
    /// caller that stopped reading while its answers pile up is cut off.
    pub fn deliver_local(&self, kind: CallerKind, key: ConnKey, origin_cseq: u64, frame: OutFrame) {
        if kind == CallerKind::Http {
            let caller = self.callers.borrow().get(key).cloned();
            if let Some(caller) = caller {
                caller.deliver(origin_cseq, frame);
            }
            return;
        }
        let Some(conn) = self.conn(key) else { return };
        conn.state.borrow_mut().inflight.remove(&origin_cseq);
        self.queue(&conn, frame);
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
        let frame = match reply {
            ReplyAs::Frame(opcode) => self.error_frame(opcode, origin_cseq, error, reason),
            ReplyAs::Http { .. } => self.http_error(error, reason),
        };
        self.deliver(origin, origin_cseq, frame);
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
