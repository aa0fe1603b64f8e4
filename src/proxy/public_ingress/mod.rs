//! Public HTTP ingress: plain HTTP/1.1 clients from the internet (no WebSocket), their
//! requests relayed to endpoints that registered as public and the answers written back.
//!
//! One task per client connection, one request at a time (keep-alive; pipelined requests
//! wait in the buffer). A request takes the same path as an endpoint's request
//! (`Shard::route_request`), with `Httpws-From: -internet-` and the answer framed as HTTP
//! instead of as a WebSocket frame. A small body (up to a stream window, by its
//! `Content-Length`) is read whole and goes with its head; a chunked or larger one streams
//! (protocol 2): the head goes at once, the body follows as stream data — decoded from its
//! chunks, split off the read buffer without copying — and is read from the caller only as
//! far as the target's credit goes. A streamed answer (a protocol-2 service's stream head) is
//! written on as it comes — each piece a chunk, or the bytes as they are under a declared
//! length — and the target is granted credit only for what was written to the caller's
//! socket, so a slow caller slows the service, not the proxy's memory. Reads land in the
//! shard's shared read blocks and a complete request is split off them without copying, as
//! on WebSocket connections.

mod upload;

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use monoio::io::poll_io::AsyncWrite;

use crate::proto::answer_error::AnswerError;
use crate::proto::frame::OpCode;
use crate::proto::head::HttpBodyFraming;
use crate::proto::http1::framing::Framing;
use crate::proto::http1::head_scanner::{HeadScanner, ScanError};
use crate::proto::http1::write::ChunkSizeLine;
use crate::proto::public_request::{
    self, Forwarded, INTERNET_CALLER, IngressHead, MAX_INGRESS_HEADERS, RelayHead,
};
use crate::proto::stream::{STREAM_WINDOW, Verb};
use crate::proxy::http_caller::HttpCaller;
use crate::proxy::ids::{CallerKind, ConnKey, ConnRef};
use crate::proxy::messages::{
    HttpHandoff, OutFrame, Progress, RelayRequest, ReplyAs, ShardMessage,
};
use crate::proxy::pages;
use crate::proxy::shard::Shard;
use crate::proxy::transport::Transport;
use crate::proxy::transport::{poll_read_buf, write_all};
use upload::{UPLOAD_READ_BYTES, Upload, UploadBody};

/// How long, and for how many bytes, a closing connection drains what the caller still sends.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;
/// Smallest room offered to a read that continues a partial request.
const MIN_PARTIAL_READ: usize = 4 * 1024;
/// Written when the caller sent `Expect: 100-continue` and its body has not arrived.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Ends a head on a connection that stays open / one that closes after this response.
const END_KEEP_ALIVE: &[u8] = b"\r\n";
const END_CLOSE: &[u8] = b"Connection: close\r\n\r\n";
/// Ends a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The credit an internet caller's streamed answer gets back as it is written: what was
/// written, and while the caller keeps up (nothing of the answer waits to be written once a
/// piece is), as much again, so that the window the target may fill grows from the initial
/// 256 KiB towards `--max-stream-window` (the bandwidth-delay product of a fast path needs more
/// than the initial window; TCP grows its own the same way). A caller that falls behind gets
/// back only what it took, so what waits for it stays within the window it had.
struct ReceiveWindow {
    window: u64,
    max: u64,
}

impl ReceiveWindow {
    fn new(max: u64) -> ReceiveWindow {
        ReceiveWindow {
            window: STREAM_WINDOW,
            max,
        }
    }

    /// The credit to grant for `written` bytes written to the caller.
    fn grant(&mut self, written: u64, caught_up: bool) -> u64 {
        let growth = if caught_up {
            written.min(self.max.saturating_sub(self.window))
        } else {
            0
        };
        self.window += growth;
        written + growth
    }
}

/// What woke an exchange up.
enum Event {
    /// A piece of the answer (or credit) arrived.
    Part((OutFrame, Progress)),
    /// This many more bytes of the request body were read (0: the caller closed).
    Read(usize),
}

/// Why an ingress connection ended early (logged once, at debug level).
#[derive(Debug, thiserror::Error)]
enum IngressEnd {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("timed out waiting for the caller")]
    Timeout,
}

/// Serve one ingress connection. `buf` holds what was read already (the first head).
/// `may_move`: the connection may still move to the shard that owns its first target.
pub async fn serve(shard: Rc<Shard>, io: Transport, peer: IpAddr, buf: BytesMut, may_move: bool) {
    let caller = Rc::new(HttpCaller::default());
    let key = shard.add_caller(caller.clone());
    let tls = matches!(io, Transport::Tls(_));
    let mut conn = IngressConn {
        shard: shard.clone(),
        caller,
        key,
        io,
        buf,
        forwarded: Forwarded { peer, tls },
        next_cseq: 0,
        may_move,
    };
    let outcome = conn.run().await;
    shard.remove_caller(key);
    match outcome {
        Ok(None) => {}
        Ok(Some(owner)) => {
            // Keep-alive callers mostly talk to one endpoint: on its owner shard, their
            // requests and answers need no cross-shard hop. The request just read moves along.
            let IngressConn { io, buf, .. } = conn;
            match io.detach() {
                Ok(transport) => {
                    let handoff = HttpHandoff {
                        transport,
                        peer,
                        buffered: buf.freeze(),
                    };
                    shard.send_to(owner, ShardMessage::AdoptHttp(Box::new(handoff)));
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "could not hand an ingress connection over")
                }
            }
        }
        Err(e) => tracing::debug!(%peer, error = %e, "ingress connection ended"),
    }
}

/// An ingress connection handed over by the shard that accepted it.
pub fn adopt(shard: &Rc<Shard>, handoff: HttpHandoff) {
    let HttpHandoff {
        transport,
        peer,
        buffered,
    } = handoff;
    match Transport::attach(transport) {
        Ok(io) => {
            let buf = BytesMut::from(&buffered[..]);
            monoio::spawn(serve(shard.clone(), io, peer, buf, false));
        }
        Err(e) => tracing::warn!(error = %e, "could not adopt an ingress connection"),
    }
}

/// What to do after a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
    /// Move the connection to this shard (its first request has not been handled).
    Move(usize),
}

struct IngressConn {
    shard: Rc<Shard>,
    caller: Rc<HttpCaller>,
    key: ConnKey,
    io: Transport,
    /// Bytes of the request being read (and of any pipelined after it).
    buf: BytesMut,
    forwarded: Forwarded,
    next_cseq: u64,
    may_move: bool,
}

impl IngressConn {
    /// Serve requests until the connection ends (`None`) or should move to another shard.
    async fn run(&mut self) -> Result<Option<usize>, IngressEnd> {
        loop {
            let Some(head_end) = self.read_head().await? else {
                return Ok(None); // the caller closed between requests
            };
            let next = self.handle(head_end).await?;
            if let Next::Move(owner) = next {
                return Ok(Some(owner));
            }
            if next == Next::Close || self.shard.is_draining() {
                let _ = std::future::poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
                self.linger().await;
                return Ok(None);
            }
        }
    }

    /// After the last response, read and drop what the caller is still sending (a body the
    /// proxy refused unread) for a moment: closing a socket with unread bytes sends a reset,
    /// which can destroy the response before the caller has read it.
    async fn linger(&mut self) {
        let until = Instant::now() + LINGER_TIME;
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            self.buf.clear();
            match self.read_until(until).await {
                Ok(n) if n > 0 => dropped += n,
                _ => break,
            }
        }
        self.release_buffer();
    }

    /// Wait for a complete head; `None` when the caller closes cleanly before sending one.
    /// A caller gets `idle_timeout` to start a request and `handshake_timeout` to finish
    /// its head, so a slow one cannot hold a connection open forever.
    async fn read_head(&mut self) -> Result<Option<usize>, IngressEnd> {
        let config = &self.shard.config;
        let (max_head, head_timeout) = (config.max_handshake_bytes, config.handshake_timeout);
        // A caller's head is held to the same limit as a registration's: both come from
        // outside, and the first one on a connection is read before anyone knows which it is.
        let mut scanner = HeadScanner::new(max_head, MAX_INGRESS_HEADERS);
        let mut deadline = (!self.buf.is_empty()).then(|| Instant::now() + head_timeout);
        let idle_deadline = Instant::now() + config.idle_timeout;
        loop {
            match scanner.scan(&self.buf) {
                Ok(Some(end)) => return Ok(Some(end)),
                Ok(None) => {}
                Err(ScanError::TooLarge) => {
                    let reason = format!(
                        "request head larger than {} bytes or over {MAX_INGRESS_HEADERS} lines",
                        max_head
                    );
                    self.write_error(AnswerError::HeadTooLarge, &reason, Next::Close)
                        .await?;
                    return Ok(None);
                }
                Err(e @ ScanError::BareLf) => {
                    self.write_error(AnswerError::BadRequest, &e.to_string(), Next::Close)
                        .await?;
                    return Ok(None);
                }
            }
            let until = deadline.unwrap_or(idle_deadline);
            let was_empty = self.buf.is_empty();
            let n = self.read_until(until).await?;
            if n == 0 {
                if was_empty {
                    return Ok(None);
                }
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            deadline.get_or_insert_with(|| Instant::now() + head_timeout);
        }
    }

    /// Read more bytes, by `until`. Between requests the bytes land in the shard's shared
    /// read block and are split off it; a partial request grows its own buffer.
    async fn read_until(&mut self, until: Instant) -> Result<usize, IngressEnd> {
        let left = until.saturating_duration_since(Instant::now());
        let shard = self.shard.clone();
        let read = async {
            if self.buf.is_empty() {
                let n = std::future::poll_fn(|cx| {
                    shard.read_block_with_room(|block| poll_read_buf(&mut self.io, cx, block))
                })
                .await?;
                self.buf = shard.read_block(|block| block.split());
                Ok::<usize, io::Error>(n)
            } else {
                let max = shard.config.max_message_bytes + shard.config.max_handshake_bytes;
                if self.buf.capacity() == self.buf.len() {
                    // Grow with what the caller has sent, never with what it claims.
                    let room = self
                        .buf
                        .len()
                        .max(MIN_PARTIAL_READ)
                        .min(max.saturating_sub(self.buf.len()).max(1));
                    self.buf.reserve(room);
                }
                std::future::poll_fn(|cx| poll_read_buf(&mut self.io, cx, &mut self.buf)).await
            }
        };
        match monoio::time::timeout(left, read).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(IngressEnd::Timeout),
        }
    }

    /// Handle the request whose head is `buf[..head_end]`.
    async fn handle(&mut self, head_end: usize) -> Result<Next, IngressEnd> {
        let shard = self.shard.clone();
        let (head_bytes, parsed) = shard.arena_bytes(|arena| {
            public_request::parse_request(
                &self.buf[..head_end],
                shard.config.names(),
                self.forwarded,
                arena,
            )
        });
        match parsed {
            Err(e) => {
                self.write_error(e.answer(), &e.to_string(), Next::Close)
                    .await?;
                Ok(Next::Close)
            }
            Ok(IngressHead::Upgrade) => {
                let reason = "a WebSocket registration must be the first request on a \
                              connection to the proxy's WebSocket listener";
                self.write_error(AnswerError::BadRequest, reason, Next::Close)
                    .await?;
                Ok(Next::Close)
            }
            Ok(IngressHead::Proxy(request)) => {
                // A body on a request to the proxy itself is not read: close after answering.
                let next = if request.keep_alive && request.framing == Framing::None {
                    Next::KeepAlive
                } else {
                    Next::Close
                };
                let _ = self.buf.split_to(head_end);
                self.release_buffer();
                let page = pages::answer(&shard.config, &request.method, &request.path);
                let head_request = request.method == "HEAD";
                self.write_response(&page.head, page.body.as_ref(), head_request, next)
                    .await?;
                Ok(next)
            }
            Ok(IngressHead::Relay(relay)) => {
                let owner = relay.target.shard_index(shard.router.shards());
                let first = std::mem::replace(&mut self.may_move, false) && self.next_cseq == 0;
                if first && owner != shard.id && !shard.is_draining() {
                    return Ok(Next::Move(owner));
                }
                self.relay(head_end, head_bytes, relay, owner).await
            }
        }
    }

    async fn relay(
        &mut self,
        head_end: usize,
        head_bytes: Bytes,
        relay: RelayHead,
        owner: usize,
    ) -> Result<Next, IngressEnd> {
        if relay.streamed {
            return self
                .relay_streamed(head_end, head_bytes, relay, owner)
                .await;
        }
        let shard = self.shard.clone();
        let next = if relay.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        };
        // The relayed message (head + body) must fit one WebSocket message.
        let max_body = shard
            .config
            .max_message_bytes
            .saturating_sub(relay.info.head_len);
        let body_len = match relay.framing {
            Framing::Length(n) if n > max_body as u64 => {
                let reason = format!(
                    "request body over the limit of {max_body} bytes (--max-message-bytes)"
                );
                self.write_error(AnswerError::MessageTooLarge, &reason, Next::Close)
                    .await?;
                return Ok(Next::Close);
            }
            Framing::Length(n) => n as usize,
            // (A chunked body always streams.)
            Framing::None | Framing::Chunked => 0,
        };
        self.read_body(head_end + body_len, relay.expect_continue)
            .await?;
        let message = self.buf.split_to(head_end + body_len).freeze();
        self.release_buffer();
        let body = message.slice(head_end..);
        if let Err((error, reason, after)) = self.may_relay(&relay) {
            let next = if after == Next::Close { after } else { next };
            self.write_error(error, &reason, next).await?;
            return Ok(next);
        }
        let (origin, cseq) = self.send_request(owner, head_bytes, body, &relay);
        let mut upload = Upload::whole();
        let owner = owner as u16;
        let outcome = self
            .exchange(&mut upload, owner, origin, cseq, relay.head_request, next)
            .await;
        if outcome.is_err() {
            self.shard.caller_gone_from(owner, origin, cseq);
        }
        outcome
    }

    /// Relay a request whose body streams (chunked, or longer than a whole message takes):
    /// the head goes at once, the body follows as stream data within the credit the target
    /// grants, decoded from its chunks, read from the caller only as far as that credit goes.
    /// A connection whose body was not read to its end (the answer came first, the caller
    /// broke its chunks) closes after the answer.
    async fn relay_streamed(
        &mut self,
        head_end: usize,
        head_bytes: Bytes,
        relay: RelayHead,
        owner: usize,
    ) -> Result<Next, IngressEnd> {
        let next = if relay.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let _ = self.buf.split_to(head_end);
        if let Err((error, reason, _)) = self.may_relay(&relay) {
            // The body is not read: the connection closes after the answer.
            self.write_error(error, &reason, Next::Close).await?;
            return Ok(Next::Close);
        }
        let (origin, cseq) = self.send_request(owner, head_bytes, Bytes::new(), &relay);
        let mut upload = Upload::streamed(relay.framing, relay.upgrade);
        if relay.expect_continue && self.buf.is_empty() {
            write_all(&mut self.io, &[CONTINUE]).await?;
        }
        let owner = owner as u16;
        let outcome = self
            .exchange(&mut upload, owner, origin, cseq, relay.head_request, next)
            .await;
        match outcome {
            Ok(next) if upload.done => Ok(next),
            Ok(_) => Ok(Next::Close),
            Err(e) => {
                self.shard.caller_gone_from(owner, origin, cseq);
                Err(e)
            }
        }
    }

    /// Whether the request may go to its target now: `Err` with the answer if not (the
    /// tokens file forbids it, or the proxy is shutting down), and what comes after it.
    fn may_relay(&self, relay: &RelayHead) -> Result<(), (AnswerError, String, Next)> {
        if !self.shard.may_call(INTERNET_CALLER, relay.target.as_str()) {
            let reason = format!(
                "the tokens file does not let internet callers reach {}",
                relay.target.as_str()
            );
            return Err((AnswerError::Forbidden, reason, Next::KeepAlive));
        }
        if self.shard.is_draining() {
            let reason = "the proxy is shutting down".to_owned();
            return Err((AnswerError::TargetBusy, reason, Next::Close));
        }
        Ok(())
    }

    /// Send the request (its head and whole body, or a stream head) on the path of an
    /// endpoint's request, under this connection's next CSeq.
    fn send_request(
        &mut self,
        owner: usize,
        head: Bytes,
        body: Bytes,
        relay: &RelayHead,
    ) -> (ConnRef, u64) {
        self.next_cseq += 1;
        let cseq = self.next_cseq;
        self.caller.expect(cseq);
        let origin = ConnRef {
            shard: self.shard.id as u16,
            kind: CallerKind::Http,
            key: self.key,
        };
        let reply = ReplyAs::Http {
            head_request: relay.head_request,
            chunked_ok: relay.http11,
        };
        self.shard.route_request(
            owner,
            RelayRequest {
                origin,
                origin_cseq: cseq,
                from: None,
                // Binary: the body may be any bytes, and text frames must be UTF-8.
                opcode: OpCode::Binary,
                message: head,
                info: relay.info.clone(),
                body,
                reply,
                // A streamed answer is written on as it comes (chunked, or under its length).
                caller_streams: true,
            },
        );
        (origin, cseq)
    }

    /// One exchange after its request went: the request body's data sent as the target's
    /// credit allows (a streamed upload), and the answer written as it comes — whole, or a
    /// streamed head and then each piece (a chunk, or the bytes as they are), granting the
    /// target credit for what was written, until the stream's end. A stream that breaks
    /// closes the connection without the body's end, so the caller cannot take a truncated
    /// body for complete. While nothing is to be read, the caller's connection is watched: a
    /// caller that goes away resets the stream (the `Err`). No timer of its own: every
    /// relayed request is answered (by its target, or by the proxy with `timeout`).
    async fn exchange(
        &mut self,
        upload: &mut Upload,
        owner: u16,
        origin: ConnRef,
        cseq: u64,
        head_request: bool,
        mut next: Next,
    ) -> Result<Next, IngressEnd> {
        let caller = self.caller.clone();
        let mut answer: Option<HttpBodyFraming> = None;
        let mut window = ReceiveWindow::new(self.shard.config.max_stream_window);
        loop {
            if let Err(e) = self.send_upload(upload, owner, origin, cseq) {
                return self.broken_upload(e, owner, origin, cseq, answer).await;
            }
            let event = std::future::poll_fn(|cx| {
                if let Poll::Ready(part) = caller.poll_part(cx) {
                    return Poll::Ready(Ok(Event::Part(part)));
                }
                if !upload.done {
                    if self.buf.len() >= UPLOAD_READ_BYTES {
                        // What was read could not all be sent (no credit, or no switch yet):
                        // nothing more is read until it can, and the caller waits on TCP.
                        // (Up to a read's worth is taken in meanwhile: the chunked framing
                        // that ends a body needs no credit.)
                        return Poll::Pending;
                    }
                    return self.poll_read_upload(cx).map(|r| r.map(Event::Read));
                }
                if upload.eof {
                    return Poll::Pending;
                }
                self.poll_caller_closed(cx).map(Err)
            })
            .await;
            let (frame, progress) = match event.map_err(IngressEnd::Io)? {
                Event::Read(0) if matches!(upload.body, UploadBody::Upgrade { switched: true }) => {
                    // The caller closed its side of a switched connection: the target's side
                    // may still have bytes to come.
                    self.shard.stream_from_http_caller(
                        owner,
                        origin,
                        cseq,
                        Verb::End,
                        Bytes::new(),
                    );
                    (upload.done, upload.eof) = (true, true);
                    continue;
                }
                Event::Read(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the caller closed its connection before its request body ended",
                    )
                    .into());
                }
                Event::Read(_) => continue,
                Event::Part(part) => part,
            };
            match (progress, answer) {
                (Progress::Credit(n), _) => upload.credit = upload.credit.saturating_add(n),
                (Progress::Ends, None) => {
                    let next = if upload.done { next } else { Next::Close };
                    self.write_response(&frame.head, Some(&frame.body), head_request, next)
                        .await?;
                    return Ok(next);
                }
                (Progress::Ends, Some(framing)) => {
                    self.write_piece(framing, &frame.body).await?;
                    if framing == HttpBodyFraming::Chunked {
                        write_all(&mut self.io, &[LAST_CHUNK]).await?;
                    }
                    return Ok(next);
                }
                (
                    Progress::Opens {
                        http: Some(HttpBodyFraming::Switched),
                        ..
                    },
                    None,
                ) => {
                    let UploadBody::Upgrade { switched } = &mut upload.body else {
                        let e = io::Error::other("a 101 to a request that asked for no upgrade");
                        return Err(e.into());
                    };
                    // Two byte streams from here on, until both sides have ended.
                    *switched = true;
                    next = Next::Close;
                    write_all(&mut self.io, &[&frame.head, END_KEEP_ALIVE]).await?;
                    answer = Some(HttpBodyFraming::Switched);
                }
                (
                    Progress::Opens {
                        http: Some(framing),
                        ..
                    },
                    None,
                ) => {
                    if upload.is_unswitched_upgrade() {
                        // Not switched: the upgrade request had no body, and ends here.
                        self.shard.stream_from_http_caller(
                            owner,
                            origin,
                            cseq,
                            Verb::End,
                            Bytes::new(),
                        );
                        upload.done = true;
                        next = Next::Close;
                    }
                    // A body that runs until the connection closes ends the connection with
                    // it; so does one whose request may not be read to its end.
                    if framing == HttpBodyFraming::UntilClose || !upload.done {
                        next = Next::Close;
                    }
                    self.write_response(&frame.head, None, true, next).await?;
                    answer = Some(framing);
                }
                (Progress::Continues, Some(framing)) => {
                    self.write_piece(framing, &frame.body).await?;
                    if !frame.body.is_empty() {
                        let n = window.grant(frame.body.len() as u64, caller.caught_up());
                        self.shard.stream_from_http_caller(
                            owner,
                            origin,
                            cseq,
                            Verb::Credit(n),
                            Bytes::new(),
                        );
                    }
                }
                (Progress::AnswerEnds, Some(HttpBodyFraming::Switched)) => {
                    // The target's side ended: so does the caller's reading side, and the
                    // caller's bytes go on until it closes its own.
                    let _ =
                        std::future::poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
                }
                // A break, or what cannot come in this order (nothing but a head opens an
                // answer, and only once): the connection ends without the body's end.
                (Progress::Broken, _)
                | (Progress::Opens { .. }, _)
                | (Progress::Continues, None)
                | (Progress::AnswerEnds, _) => return Ok(Next::Close),
            }
        }
    }

    /// Write a piece of a streamed answer, as its framing has it.
    async fn write_piece(&mut self, framing: HttpBodyFraming, data: &[u8]) -> io::Result<()> {
        match framing {
            // An empty chunk would end the body.
            HttpBodyFraming::Chunked if !data.is_empty() => {
                let size = ChunkSizeLine::new(data.len());
                write_all(&mut self.io, &[size.as_bytes(), data, b"\r\n"]).await
            }
            HttpBodyFraming::Length | HttpBodyFraming::UntilClose | HttpBodyFraming::Switched
                if !data.is_empty() =>
            {
                write_all(&mut self.io, &[data]).await
            }
            // (A bodiless answer's data goes nowhere; its credit is granted all the same.)
            _ => Ok(()),
        }
    }

    /// While an answer streams: `Ready` with the reason once the caller's connection ends.
    /// What the caller sends meanwhile (a pipelined request) is kept for later, up to a head's
    /// worth; beyond that the connection is not read until the answer is written.
    fn poll_caller_closed(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let room = self.shard.config.max_handshake_bytes;
        if self.buf.len() >= room {
            return Poll::Pending;
        }
        if self.buf.capacity() == self.buf.len() {
            self.buf
                .reserve(MIN_PARTIAL_READ.min(room - self.buf.len()));
        }
        match poll_read_buf(&mut self.io, cx, &mut self.buf) {
            Poll::Ready(Ok(0)) => Poll::Ready(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the caller closed its connection while its answer streamed",
            )),
            Poll::Ready(Ok(_)) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(e),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Read until `buf` holds `total` bytes (head and Content-Length body).
    async fn read_body(&mut self, total: usize, expect_continue: bool) -> Result<(), IngressEnd> {
        if self.buf.len() >= total {
            return Ok(());
        }
        if expect_continue {
            write_all(&mut self.io, &[CONTINUE]).await?;
        }
        let until = Instant::now() + self.shard.config.request_timeout;
        if self.buf.capacity() < total {
            // Room for what was declared, bounded by the limit checked before.
            self.buf
                .reserve((total - self.buf.len()).min(self.buf.len().max(MIN_PARTIAL_READ) * 4));
        }
        while self.buf.len() < total {
            if self.read_until(until).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
        Ok(())
    }

    /// An empty buffer must not pin the shard's shared read block while the connection idles.
    fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    async fn write_response(
        &mut self,
        head: &[u8],
        body: Option<&Bytes>,
        head_request: bool,
        next: Next,
    ) -> io::Result<()> {
        // A draining shard closes every ingress connection after its answer (`run`): say so.
        let end = match next {
            // (A connection that moves is handed over before anything is written.)
            Next::KeepAlive | Next::Move(_) if !self.shard.is_draining() => END_KEEP_ALIVE,
            Next::KeepAlive | Next::Move(_) | Next::Close => END_CLOSE,
        };
        let body: &[u8] = match body {
            Some(b) if !head_request => b,
            _ => &[],
        };
        write_all(&mut self.io, &[head, end, body]).await
    }

    async fn write_error(
        &mut self,
        error: AnswerError,
        reason: &str,
        next: Next,
    ) -> io::Result<()> {
        let frame = self.shard.http_error(error, reason);
        self.write_response(&frame.head, Some(&frame.body), false, next)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_grows_while_the_caller_keeps_up_and_never_past_the_maximum() {
        let max = STREAM_WINDOW + 100;
        let mut window = ReceiveWindow::new(max);
        assert_eq!(window.grant(10, false), 10, "behind: only what it took");
        assert_eq!(window.grant(60, true), 120, "keeping up: as much again");
        assert_eq!(window.grant(60, true), 100, "up to the maximum");
        assert_eq!(window.grant(60, true), 60, "and no further");
    }
}
