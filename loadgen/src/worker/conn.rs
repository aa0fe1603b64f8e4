//! One connection (endpoint): its socket, its outgoing and partial-frame buffers, its
//! outstanding CSeqs, and the writes made on it, with or without a task context.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use httpws::proto::frame::{FrameError, MessageDecoder};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::track::Tracker;

/// Why a connection's task gave it up (it is then counted as dropped unless loadgen itself
/// was closing).
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("the server closed the TCP connection")]
    Eof,
    #[error("reading: {0}")]
    Read(#[source] io::Error),
    #[error("writing: {0}")]
    Write(#[source] io::Error),
    #[error("the socket took no bytes")]
    WriteZero,
    #[error("WebSocket protocol error: {0}")]
    Protocol(#[source] FrameError),
}

pub(super) struct Conn {
    /// Global index: the endpoint is `<prefix>-<index>`.
    pub(super) index: usize,
    pub(super) stream: RefCell<TcpStream>,
    /// Frames waiting to be written.
    pub(super) out: RefCell<BytesMut>,
    /// A partial frame left over from the last read (empty almost always).
    pub(super) partial: RefCell<BytesMut>,
    pub(super) decoder: RefCell<MessageDecoder>,
    pub(super) track: RefCell<Tracker>,
    /// The connection task's waker, for the pacer when the socket is full, and for closing.
    pub(super) waker: RefCell<Option<Waker>>,
    pub(super) closed: Cell<bool>,
    /// Listed in the current batch of connections to flush.
    pub(super) touched: Cell<bool>,
}

impl Conn {
    /// Connection `index` on `stream`, with `leftover` read past its registration.
    pub(super) fn new(index: usize, stream: TcpStream, leftover: BytesMut) -> Conn {
        Conn {
            index,
            stream: RefCell::new(stream),
            out: RefCell::new(BytesMut::new()),
            partial: RefCell::new(leftover),
            decoder: RefCell::new(MessageDecoder::new()),
            track: RefCell::new(Tracker::default()),
            waker: RefCell::new(None),
            closed: Cell::new(false),
            touched: Cell::new(false),
        }
    }

    pub(super) fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    /// Write what is queued; Ok when written or waiting for room, Err when the socket broke.
    pub(super) fn poll_flush(&self, cx: &mut Context<'_>) -> Result<(), ConnError> {
        let mut out = self.out.borrow_mut();
        let mut stream = self.stream.borrow_mut();
        while !out.is_empty() {
            match Pin::new(&mut *stream).poll_write(cx, &out) {
                Poll::Ready(Ok(0)) => return Err(ConnError::WriteZero),
                Poll::Ready(Err(e)) => return Err(ConnError::Write(e)),
                Poll::Ready(Ok(n)) => out.advance(n),
                Poll::Pending => break,
            }
        }
        Ok(())
    }

    /// Write what is queued without a task context (the pacer); the connection's task is
    /// woken to wait for room if the socket is full.
    pub(super) fn flush_now(&self) {
        if self.closed.get() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let stream = self.stream.borrow();
        while !out.is_empty() {
            match stream.try_write(&out) {
                Ok(0) => break,
                Ok(n) => out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wake();
                    return;
                }
                Err(_) => {
                    // The connection task sees the same error on its next write.
                    self.wake();
                    return;
                }
            }
        }
    }

    /// Write what is queued now, as far as the socket takes it, before giving up on the
    /// connection (the answer to the server's close).
    pub(super) fn flush_for_close(&self) -> io::Result<()> {
        let mut out = self.out.borrow_mut();
        let stream = self.stream.borrow();
        while !out.is_empty() {
            let n = stream.try_write(&out)?;
            out.advance(n);
        }
        Ok(())
    }
}
