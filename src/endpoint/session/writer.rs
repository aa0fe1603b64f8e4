//! The writer task, one per tunnel: frames queued by anyone (requests, responses, stream
//! messages, pongs, pings, the close), masked as client frames must be, and written in
//! batches. Two queues feed it: the bounded one, in order, for messages and stream data (a
//! sender waits when it is full), and an unbounded one for the small control frames that
//! must never wait nor be lost (credit grants, resets, pongs, the agent's own short answers),
//! which are written first. Their number follows what was received (one grant per batch of
//! body consumed, one reset per stream, one pong per ping, one answer per request refused),
//! so a proxy that keeps sending while it takes nothing could grow them without end: the
//! queue counts what waits in it, and the reader gives the link up past
//! [`MAX_CONTROL_BACKLOG`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::proto::frame::{self, MAX_HEADER_LEN, OpCode};
use crate::proto::http1::decimal;

/// Bytes of frames gathered into one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// A write buffer grown past this by one large message is given back afterwards.
const KEEP_WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// The write buffer's size to begin with, and after one that grew too large is given back.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Control frames waiting for the writer past which the link is given up: far more than the
/// grants and resets of every stream the agent may hold, and what a proxy that reads
/// nothing while it sends pings or requests would make them grow to.
pub(super) const MAX_CONTROL_BACKLOG: usize = 64 * 1024;

/// What the writer task sends.
pub(crate) enum Outgoing {
    /// An HTTP message, head (finished by [`finish_head`]) then body, or a stream message,
    /// tag line then payload: one binary frame.
    Message {
        /// The head through its blank line, or a stream message's tag line.
        head: Bytes,
        /// The body (framed by the head's `Content-Length`), or the stream message's payload.
        body: Bytes,
    },
    /// The answer to a ping, with its data.
    Pong(Bytes),
    /// A ping, when the proxy has been silent too long.
    Ping,
    /// A close frame with this code; the writer stops after it.
    Close(u16),
}

/// The writer's two queues, as every sender holds them.
#[derive(Clone)]
pub(crate) struct Queues {
    /// Messages and stream data, in order; bounded (senders wait).
    pub(crate) out: mpsc::Sender<Outgoing>,
    /// Control frames, written first; unbounded, since they may be queued where nothing can
    /// wait (a body dropped, credit granted from `poll_frame`).
    control: mpsc::UnboundedSender<Outgoing>,
    /// Control frames queued and not yet taken by the writer.
    backlog: Arc<AtomicUsize>,
}

/// The writer's ends of the [`Queues`].
pub(crate) struct QueueEnds {
    out: mpsc::Receiver<Outgoing>,
    control: mpsc::UnboundedReceiver<Outgoing>,
    backlog: Arc<AtomicUsize>,
}

#[cfg(test)]
impl QueueEnds {
    /// Whether nothing at all has been queued for the writer.
    pub(crate) fn out_is_empty(&self) -> bool {
        self.out.is_empty() && self.control.is_empty()
    }

    /// Everything queued for the writer so far, control frames first.
    pub(crate) fn drain(&mut self) -> Vec<Outgoing> {
        let mut all = Vec::new();
        while let Ok(next) = self.control.try_recv() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            all.push(next);
        }
        while let Ok(next) = self.out.try_recv() {
            all.push(next);
        }
        all
    }
}

impl Queues {
    /// The queues of a new link, `out` holding at most `out_frames`, and the writer's ends.
    pub(crate) fn new(out_frames: usize) -> (Queues, QueueEnds) {
        let (out, out_rx) = mpsc::channel(out_frames);
        let (control, control_rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let ends = QueueEnds {
            out: out_rx,
            control: control_rx,
            backlog: Arc::clone(&backlog),
        };
        (
            Queues {
                out,
                control,
                backlog,
            },
            ends,
        )
    }

    /// Queue a frame that must not wait and must not be lost. False if the writer is gone.
    pub(crate) fn control(&self, outgoing: Outgoing) -> bool {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let sent = self.control.send(outgoing).is_ok();
        if !sent {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
        }
        sent
    }

    /// How many control frames wait for the writer.
    pub(crate) fn control_backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }
}

/// Append `CSeq: <n>` and the blank line.
pub(super) fn finish_head(head: &mut BytesMut, cseq: u64) {
    head.extend_from_slice(b"CSeq: ");
    decimal::put_u64(head, cseq);
    head.extend_from_slice(b"\r\n\r\n");
}

/// The writer: frames queued by anyone, masked (client frames must be) and written in
/// batches.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, ends: QueueEnds) {
    let QueueEnds {
        out: mut rx,
        mut control,
        backlog,
    } = ends;
    let taken = || backlog.fetch_sub(1, Ordering::Relaxed);
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER_BYTES);
    loop {
        let first = tokio::select! {
            biased;
            Some(c) = control.recv() => {
                taken();
                c
            }
            next = rx.recv() => match next {
                Some(next) => next,
                None => return,
            },
        };
        let mut closing = encode(&mut buf, first);
        while !closing && buf.len() < WRITE_BATCH_BYTES {
            if let Ok(next) = control.try_recv() {
                taken();
                closing = encode(&mut buf, next);
                continue;
            }
            match rx.try_recv() {
                Ok(next) => closing = encode(&mut buf, next),
                Err(_) => break,
            }
        }
        // TLS accepts plaintext before the socket has taken all of its ciphertext: without
        // the flush, the tail of a batch could wait in rustls until the next write.
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        if buf.capacity() > KEEP_WRITE_BUFFER_BYTES {
            buf = BytesMut::with_capacity(WRITE_BUFFER_BYTES);
        } else {
            buf.clear();
        }
        if closing {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Append one masked frame; true if it was a close frame.
fn encode(buf: &mut BytesMut, outgoing: Outgoing) -> bool {
    let mask = fastrand::u32(..).to_ne_bytes();
    match outgoing {
        Outgoing::Message { head, body } => {
            let mut header = [0u8; MAX_HEADER_LEN];
            let len = head.len() + body.len();
            let n = frame::encode_header(&mut header, true, OpCode::Binary, Some(mask), len as u64);
            buf.reserve(n + len);
            buf.extend_from_slice(&header[..n]);
            let start = buf.len();
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&body);
            // Masking is the same XOR as unmasking, from offset 0 of the payload.
            frame::unmask(&mut buf[start..], mask);
            false
        }
        Outgoing::Pong(data) => {
            frame::encode_frame(buf, OpCode::Pong, Some(mask), &data);
            false
        }
        Outgoing::Ping => {
            frame::encode_frame(buf, OpCode::Ping, Some(mask), b"");
            false
        }
        Outgoing::Close(code) => {
            frame::encode_frame(
                buf,
                OpCode::Close,
                Some(mask),
                &frame::close_payload(code, ""),
            );
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{DecoderConfig, Event, MessageDecoder, Role};

    #[test]
    fn masked_message_frame_decodes_back() {
        let mut buf = BytesMut::new();
        encode(
            &mut buf,
            Outgoing::Message {
                head: Bytes::from_static(b"GET / HTTP/1.1\r\n"),
                body: Bytes::from_static(b"body"),
            },
        );
        let cfg = DecoderConfig {
            role: Role::Server,
            max_message_bytes: 1024,
        };
        let event = MessageDecoder::new().decode(&mut buf, &cfg).unwrap();
        assert_eq!(
            event,
            Some(Event::Message {
                opcode: OpCode::Binary,
                payload: Bytes::from_static(b"GET / HTTP/1.1\r\nbody"),
            })
        );
    }
}
