//! The socket calls tokio does not offer as loadgen needs them: `IP_BIND_ADDRESS_NO_PORT`, and
//! reads straight into a `BytesMut`'s spare room.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Room made before each read of the opening handshake and registration.
const SETUP_READ_BYTES: usize = 4096;

/// `IP_BIND_ADDRESS_NO_PORT`: bind the address now, pick the port at connect time.
pub(super) fn set_bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Read once into `buf`'s spare room (made if needed).
pub(super) async fn read_some(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(SETUP_READ_BYTES);
    poll_fn(|cx| poll_read_buf(stream, cx, buf)).await
}

/// `poll_read` into the spare capacity of `buf`, growing its length by what was read.
/// tokio clears the socket's readiness on a short read, so a drained socket costs no extra
/// `EAGAIN` read.
pub(super) fn poll_read_buf(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    let mut read_buf = ReadBuf::uninit(spare);
    match Pin::new(stream).poll_read(cx, &mut read_buf) {
        Poll::Ready(Ok(())) => {
            let n = read_buf.filled().len();
            // SAFETY: `ReadBuf` counts as filled only bytes the read initialized, and they
            // are the first `n` bytes of `buf`'s spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}
