//! The task that drives one registered connection: flush its queued frames with vectored
//! writes, read frames, and hand each event to the shard's request path.
//!
//! Reads are readiness-based (monoio `poll-io`): the bytes land in the shard's shared read
//! buffer, and only the tail of a partial frame is kept per connection, so an idle
//! connection holds no read buffer at all.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use monoio::io::poll_io::AsyncWrite;

use crate::proto::frame::{self, Event, FrameError, MAX_HEADER_LEN};
use crate::proxy::conn::{Conn, Phase};
use crate::proxy::messages::OutFrame;
use crate::proxy::shard::Shard;
use crate::proxy::transport::{Transport, poll_read_buf};

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// Reads one connection may do in a row before it lets the other tasks of its shard run.
const READS_PER_TURN: usize = 16;
/// Smallest room offered to a read that continues a partial frame.
const MIN_PARTIAL_READ: usize = 4 * 1024;

/// How much room to add to a partial frame's buffer: enough for the rest of the frame, but
/// never more than the bytes already received (plus a minimum), so memory grows with what the
/// peer actually sent rather than with the length its header claims.
fn partial_growth(partial: &BytesMut, max_frame: usize) -> usize {
    let remaining = frame::frame_len_hint(partial)
        .and_then(|n| usize::try_from(n).ok())
        .map_or(MIN_PARTIAL_READ, |n| {
            n.min(max_frame).saturating_sub(partial.len())
        });
    remaining.min(partial.len().max(MIN_PARTIAL_READ)).max(1)
}

/// The task that drives `conn` until it ends, then lets the shard clean up after it. The
/// returned future is spawned as is (no async wrapper), so the task holds nothing but it.
pub fn drive(shard: Rc<Shard>, conn: Rc<Conn>, io: Transport) -> ConnDriver {
    ConnDriver {
        shard,
        conn,
        io,
        fresh: true,
    }
}

/// The future [`drive`] returns: one connection's task, polled by the shard's runtime.
pub struct ConnDriver {
    shard: Rc<Shard>,
    conn: Rc<Conn>,
    io: Transport,
    /// Not polled yet: bytes buffered during the handshake still need decoding.
    fresh: bool,
}

enum Input {
    /// Bytes arrived (or were already buffered) and were decoded.
    Progress,
    /// The peer closed its side.
    Eof,
    Pending,
}

impl ConnDriver {
    /// Write queued frames until the queue is empty (Ready) or the socket is full (Pending).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut st = self.conn.state.borrow_mut();
            if st.queue_is_empty() {
                st.release_queue();
                drop(st);
                // A plain socket has nothing to flush; TLS may still hold ciphertext.
                return Pin::new(&mut self.io).poll_flush(cx);
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let count = st.io_slices(&mut slices);
            let written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    st.stall();
                    return Poll::Pending;
                }
            };
            st.written(written);
        }
    }

    /// Read once and decode whatever complete frames that produced.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> io::Result<Input> {
        let shard = &self.shard;
        let max_frame = shard.config.max_message_bytes + MAX_HEADER_LEN;
        let has_partial = !self.conn.state.borrow().partial.is_empty();
        let read = if has_partial {
            let mut st = self.conn.state.borrow_mut();
            let partial = &mut st.partial;
            if partial.capacity() == partial.len() {
                partial.reserve(partial_growth(partial, max_frame));
            }
            poll_read_buf(&mut self.io, cx, partial)
        } else {
            shard.read_block_with_room(|buf| poll_read_buf(&mut self.io, cx, buf))
        };
        match read {
            Poll::Pending => return Ok(Input::Pending),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(0)) => return Ok(Input::Eof),
            Poll::Ready(Ok(_)) => {}
        }
        {
            // Anything at all from the peer answers a ping (docs/protocol.md §3): a peer busy
            // sending is alive even if its pong is still behind its data.
            let mut st = self.conn.state.borrow_mut();
            st.last_seen = Instant::now();
            st.ping_sent = None;
        }
        self.decode_buffered(has_partial);
        Ok(Input::Progress)
    }

    /// Decode every complete frame buffered for this connection and hand each to the relay.
    /// No borrow is held while the relay runs: it may queue frames on this very connection.
    fn decode_buffered(&mut self, from_partial: bool) {
        let shard = self.shard.clone();
        let config = shard.decoder_config;
        loop {
            if !self.conn.is_open() {
                break;
            }
            let decoded = {
                let mut st = self.conn.state.borrow_mut();
                let st = &mut *st;
                if from_partial {
                    st.decoder.decode(&mut st.partial, &config)
                } else {
                    shard.read_block(|buf| st.decoder.decode(buf, &config))
                }
            };
            match decoded {
                Ok(Some(event)) => self.on_event(event),
                Ok(None) => break,
                Err(e) => {
                    self.on_protocol_error(&e);
                    break;
                }
            }
        }
        let mut st = self.conn.state.borrow_mut();
        if from_partial {
            if st.partial.is_empty() {
                // Drop the block the partial frame lived in.
                st.partial = BytesMut::new();
            }
        } else {
            // Keep a copy of only the incomplete frame's bytes: a view would pin the shard's
            // whole read block for as long as the peer takes to send the rest.
            let open = st.phase == Phase::Open;
            let max_frame = shard.config.max_message_bytes + MAX_HEADER_LEN;
            shard.read_block(|buf| {
                if !buf.is_empty() && open {
                    let mut partial = BytesMut::with_capacity(buf.len());
                    partial.extend_from_slice(buf);
                    let growth = partial_growth(&partial, max_frame);
                    partial.reserve(growth);
                    st.partial = partial;
                }
                buf.clear();
            });
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message { opcode, payload } => {
                self.shard.on_message(&self.conn, opcode, payload)
            }
            Event::Ping(payload) => {
                let pong = self.shard.control_frame(frame::OpCode::Pong, &payload);
                self.shard.queue(
                    &self.conn,
                    OutFrame {
                        head: pong,
                        body: Bytes::new(),
                    },
                );
            }
            Event::Pong(_) => self.conn.state.borrow_mut().ping_sent = None,
            Event::Close { code, .. } => {
                // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty one.
                let payload = code.map_or(Bytes::new(), |c| frame::close_payload(c, ""));
                let close = self.shard.control_frame(frame::OpCode::Close, &payload);
                self.shard.close_connection(&self.conn, close);
            }
        }
    }

    fn on_protocol_error(&mut self, error: &FrameError) {
        tracing::debug!(address = %self.conn.address, %error, "protocol violation");
        if let FrameError::MessageTooLarge { .. } = error {
            self.shard.send_indication(
                &self.conn,
                crate::proto::indication::IndicationError::MessageTooLarge,
                &error.to_string(),
            );
        }
        let payload = frame::close_payload(error.close_code(), &error.to_string());
        let close = self.shard.control_frame(frame::OpCode::Close, &payload);
        self.shard.close_connection(&self.conn, close);
    }
}

impl Future for ConnDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let outcome = match this.poll_connection(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        match outcome {
            Ok(()) => tracing::debug!(address = %this.conn.address, "connection closed"),
            Err(e) => {
                tracing::debug!(address = %this.conn.address, error = %e, "connection failed")
            }
        }
        this.shard.connection_ended(&this.conn);
        Poll::Ready(())
    }
}

impl ConnDriver {
    fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self;
        {
            let mut st = this.conn.state.borrow_mut();
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
        }
        // Bytes that arrived right behind the handshake are decoded before the first read.
        if this.fresh {
            this.fresh = false;
            if !this.conn.state.borrow().partial.is_empty() {
                this.decode_buffered(true);
            }
        }
        for _ in 0..READS_PER_TURN {
            let phase = this.conn.state.borrow().phase;
            if phase == Phase::Kill {
                return Poll::Ready(Ok(()));
            }
            let flushed = this.poll_flush(cx)?.is_ready();
            if let Phase::Closing { .. } = phase {
                if flushed {
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    return Poll::Ready(Ok(()));
                }
                // Still flushing the last frames; reading more would only add work.
                return Poll::Pending;
            }
            match this.poll_input(cx)? {
                Input::Progress => continue,
                Input::Eof => return Poll::Ready(Ok(())),
                Input::Pending => return Poll::Pending,
            }
        }
        // Used up this turn's reads: yield so the shard's other connections get theirs.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
