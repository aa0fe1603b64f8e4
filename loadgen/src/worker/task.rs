//! The connection task: flush, read into the thread's shared buffer, handle every complete
//! frame, and again, a few reads per turn so that busy connections share the thread.

use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::BytesMut;

use super::Worker;
use super::conn::{Conn, ConnError};
use super::socket::poll_read_buf;

/// Room made before each read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads one connection handles before letting the other tasks run.
const READS_PER_TURN: usize = 8;

impl Worker {
    /// Run connection `conn` until it is closed or broken.
    pub(super) async fn drive(&self, conn: &Rc<Conn>) {
        // Bytes that came right behind the handshake.
        if !conn.partial.borrow().is_empty() {
            let mut buf = conn.partial.take();
            if self.process(conn, &mut buf).is_err() {
                self.fail_conn(conn);
            }
            *conn.partial.borrow_mut() = buf;
        }
        if poll_fn(|cx| self.poll_conn(conn, cx)).await.is_err() {
            self.fail_conn(conn);
        }
    }

    /// One turn of the task: Ready(Ok) once the connection is closed, Ready(Err) when it
    /// broke, Pending when it waits for the socket or has had its turn.
    fn poll_conn(&self, conn: &Rc<Conn>, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        for _ in 0..READS_PER_TURN {
            if conn.closed.get() {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = conn.poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
            // The shared read buffer, unless a partial frame waits in the connection's own.
            let own = !conn.partial.borrow().is_empty();
            let mut buf = if own {
                conn.partial.take()
            } else {
                self.read_buf.take()
            };
            buf.reserve(READ_CHUNK);
            let read = {
                let mut stream = conn.stream.borrow_mut();
                poll_read_buf(&mut stream, cx, &mut buf)
            };
            let result = match read {
                Poll::Pending => {
                    self.put_back(conn, buf);
                    let mut waker = conn.waker.borrow_mut();
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => Err(ConnError::Eof),
                Poll::Ready(Ok(_)) => self.process(conn, &mut buf),
                Poll::Ready(Err(e)) => Err(ConnError::Read(e)),
            };
            self.put_back(conn, buf);
            if let Err(e) = result {
                return Poll::Ready(Err(e));
            }
        }
        // Busy connection: let the others run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Keep a partial frame with its connection; hand an empty buffer back to the thread.
    fn put_back(&self, conn: &Conn, buf: BytesMut) {
        if buf.is_empty() {
            let mut shared = self.read_buf.borrow_mut();
            if shared.capacity() < buf.capacity() {
                *shared = buf;
            }
        } else {
            *conn.partial.borrow_mut() = buf;
        }
    }

    /// Give up on a broken connection: counted as dropped unless loadgen is closing anyway.
    fn fail_conn(&self, conn: &Conn) {
        if !conn.closed.replace(true) && !self.closing.get() {
            self.stats.borrow_mut().conns_dropped += 1;
        }
        conn.out.borrow_mut().clear();
    }
}
