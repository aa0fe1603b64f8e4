//! The service side's connections to the local service: a bounded keep-alive pool. At most
//! `max_conns` requests are at the service at once (more wait their turn); idle connections
//! are reused newest first and dropped after an idle timeout. A request is sent, and its
//! response's head read, here; its body is read by the caller, whole or as it streams.
//!
//! One connection carries many callers' requests in turn, so a connection goes back to the
//! pool only if its exchange ended exactly where the response's framing says, and is taken
//! out again only if nothing has arrived on it since: a byte the service sent past its
//! answer (a body to a `HEAD`, a late second response) would otherwise be read as the next
//! caller's answer. That is asked of the socket once, when the connection is taken out: a
//! byte that arrived while it was idle is caught there as surely as one that arrived before
//! it went back, and the request pays one `MSG_PEEK` rather than two.

use std::io;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::response::{self, ResponseHead};
use crate::endpoint::http1::{self, BodyLength, Http1Error, MAX_HEADERS};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::{framing, hop, parse};

/// Requests at the service at once (and so connections open to it).
pub const DEFAULT_MAX_SERVICE_CONNS: usize = 64;
/// An idle pooled connection older than this is closed rather than reused.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for the TCP connect to the service.
pub const SERVICE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most interim (`1xx`) responses skipped before the final one; a service that sends more is
/// answered `service-error` rather than read without end.
pub const MAX_INTERIM_RESPONSES: usize = 16;

/// Why the service gave no usable response. The text is for the agent's log only: it names
/// the service's socket and OS errors, which callers (possibly on the internet) never see.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Could not connect (refused, unreachable, timed out connecting).
    #[error("cannot connect: {0}")]
    Unreachable(String),
    /// The connection failed or the response was malformed or too large.
    #[error("bad response: {0}")]
    BadResponse(#[from] Http1Error),
}

impl ServiceError {
    /// The `Httpws-Error` token and the neutral reason a caller gets.
    pub fn answer(&self) -> (AnswerError, &'static str) {
        match self {
            ServiceError::Unreachable(_) => (
                AnswerError::ServiceUnavailable,
                "the service is unavailable",
            ),
            ServiceError::BadResponse(Http1Error::BodyTooLarge { .. }) => (
                AnswerError::ServiceError,
                "the service's response is larger than the tunnel carries",
            ),
            ServiceError::BadResponse(Http1Error::UnsupportedCoding) => (
                AnswerError::ServiceError,
                "the service's response has a Transfer-Encoding other than chunked",
            ),
            ServiceError::BadResponse(_) => (
                AnswerError::ServiceError,
                "the service sent no usable response",
            ),
        }
    }
}

/// A connection waiting in the pool, since when.
struct IdleConn {
    stream: TcpStream,
    since: Instant,
}

/// A connection to the service, leased for one exchange: it counts against
/// `max_conns` until it is given back (or dropped, which closes it).
pub struct Lease<'p> {
    pool: &'p ServicePool,
    /// The connection.
    pub stream: TcpStream,
    /// It came from the pool (it may have been closed by the service while idle).
    pub reused: bool,
    _permit: SemaphorePermit<'p>,
}

impl Lease<'_> {
    /// The exchange ended exactly where its framing said: the connection may carry another
    /// caller's request, if nothing has arrived on it by the time it is taken out again.
    pub fn give_back(self) {
        self.pool.put_idle(self.stream);
    }
}

/// The pool for one service address.
pub struct ServicePool {
    /// `host:port` to connect to.
    addr: String,
    idle: Mutex<Vec<IdleConn>>,
    permits: Semaphore,
    max_idle: usize,
    /// Largest response head read from the service.
    pub max_head_bytes: usize,
    /// Largest response body read whole from the service.
    pub max_body_bytes: usize,
}

impl ServicePool {
    /// A pool for `addr` (`host:port`) of at most `max_conns` connections, reading heads of
    /// at most `max_head_bytes` and whole bodies of at most `max_body_bytes`.
    pub fn new(
        addr: String,
        max_conns: usize,
        max_head_bytes: usize,
        max_body_bytes: usize,
    ) -> Self {
        let max_conns = max_conns.max(1);
        ServicePool {
            addr,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_conns),
            max_idle: max_conns,
            max_head_bytes,
            max_body_bytes,
        }
    }

    /// The service's `host:port`, for the operator's log.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A connection for one exchange, once fewer than `max_conns` are leased: a pooled one
    /// unless `fresh`, else a new one.
    pub async fn lease(&self, fresh: bool) -> Result<Lease<'_>, ServiceError> {
        let Ok(permit) = self.permits.acquire().await else {
            return Err(ServiceError::Unreachable("pool closed".into()));
        };
        let idle = if fresh { None } else { self.take_idle() };
        let (stream, reused) = match idle {
            Some(stream) => (stream, true),
            None => (self.connect().await?, false),
        };
        Ok(Lease {
            pool: self,
            stream,
            reused,
            _permit: permit,
        })
    }

    /// Send a request whose body is whole (head with its blank line, then body) and read the
    /// response's head. A reused connection that turns out to be closed before any response
    /// byte is retried once on a fresh one (the service had closed it while idle).
    pub async fn open(
        &self,
        head: &[u8],
        body: &[u8],
        is_head: bool,
    ) -> Result<Opened<'_>, ServiceError> {
        let mut lease = self.lease(false).await?;
        loop {
            let mut buf = http1::head_buffer();
            let sent = send_whole(&mut lease.stream, head, body).await;
            match read_response_head(
                &mut lease.stream,
                &mut buf,
                is_head,
                false,
                self.max_head_bytes,
            )
            .await
            {
                Ok(response) => {
                    return Ok(Opened {
                        keep: response.keep && sent.is_ok(),
                        response,
                        lease,
                        buf,
                    });
                }
                Err(HeadError::NothingBack(_)) if lease.reused => {
                    let permit = lease._permit;
                    lease = Lease {
                        pool: self,
                        stream: self.connect().await?,
                        reused: false,
                        _permit: permit,
                    };
                }
                Err(HeadError::NothingBack(e)) => {
                    return Err(match sent {
                        Err(w) => Http1Error::Io(w).into(),
                        Ok(()) => e.into(),
                    });
                }
                Err(HeadError::Failed(e)) => return Err(e.into()),
            }
        }
    }

    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(conn) = idle.pop() {
            if conn.since.elapsed() < POOL_IDLE_TIMEOUT && is_quiet(&conn.stream) {
                return Some(conn.stream);
            }
        }
        None
    }

    fn put_idle(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Oldest first out when full: the newest connections are the likeliest still open.
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push(IdleConn {
            stream,
            since: Instant::now(),
        });
    }

    async fn connect(&self) -> Result<TcpStream, ServiceError> {
        let unreachable = ServiceError::Unreachable;
        let stream = tokio::time::timeout(SERVICE_CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(stream)
    }
}

/// Whether a connection has nothing to read and is still open, asked of the socket itself
/// (a non-blocking `MSG_PEEK`), not of the runtime's readiness cache, which may not have
/// heard yet of bytes that just arrived. Data or end of stream: the connection is not as
/// its last exchange left it, and must not carry another caller's request.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    // tokio's sockets are non-blocking, so an empty receive queue is `WouldBlock`.
    matches!(
        socket2::SockRef::from(stream).peek(&mut probe),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

/// A request sent and its response's head read: the body is still to be read from `buf`
/// and the connection.
pub struct Opened<'p> {
    /// The response's head.
    pub response: ResponseHead,
    /// The connection it came on.
    pub lease: Lease<'p>,
    /// Bytes read past the head.
    pub buf: BytesMut,
    /// The connection may be reused once the body has been read exactly (the request was
    /// written whole, and the response's framing allows it).
    pub keep: bool,
}

impl Opened<'_> {
    /// The body has been read to where its framing ends: give the connection back if
    /// `clean` (nothing went wrong), it may be reused, and nothing was read past the body.
    pub fn finish(self, clean: bool) {
        if clean && self.keep && self.buf.is_empty() {
            self.lease.give_back();
        }
    }
}

/// Why a response head could not be read.
pub enum HeadError {
    /// The connection failed before any byte of a response arrived.
    NothingBack(Http1Error),
    /// The response is malformed, or the connection failed in its middle.
    Failed(Http1Error),
}

/// Write a request whose body is whole. A service may answer early and stop reading (a 413
/// or 501 before the whole body): after a failed write, a response already sent is still
/// worth reading, so the error is returned, not acted on.
async fn send_whole(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    stream.write_all(head).await?;
    stream.write_all(body).await
}

/// Read the response's head from `stream` (bytes past it stay in `buf`), skipping interim
/// responses. A `101` is the answer when `upgrading`, and refused otherwise (a request that
/// did not ask to switch cannot be switched).
pub async fn read_response_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    is_head: bool,
    upgrading: bool,
    max_head_bytes: usize,
) -> Result<ResponseHead, HeadError> {
    let mut interim = 0;
    loop {
        let head_len = match http1::read_head(stream, buf, max_head_bytes).await {
            Ok(Some(n)) => n,
            Ok(None) => return Err(HeadError::NothingBack(Http1Error::Closed)),
            // A reset before any byte (e.g. the service closed an idle connection).
            Err(e @ Http1Error::Io(_)) if buf.is_empty() => return Err(HeadError::NothingBack(e)),
            Err(e) => return Err(HeadError::Failed(e)),
        };
        match parse_response_head(buf, head_len, is_head, upgrading) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(e) => return Err(HeadError::Failed(e)),
        }
        // An interim response (100 Continue, 103 Early Hints): the real one follows.
        interim += 1;
        if interim > MAX_INTERIM_RESPONSES {
            return Err(HeadError::Failed(Http1Error::Malformed(
                "too many interim 1xx responses",
            )));
        }
    }
}

/// Parse the complete response head at the start of `buf` (`head_len` bytes) and take it
/// out of `buf`: `None` for an interim `1xx` (skipped), else the head as the tunnel gets it,
/// with its framing and whether the connection may carry another request.
pub(super) fn parse_response_head(
    buf: &mut BytesMut,
    head_len: usize,
    is_head: bool,
    upgrading: bool,
) -> Result<Option<ResponseHead>, Http1Error> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    parse::response(&mut resp, &buf[..head_len], &mut headers)?;
    let status = resp.code.unwrap_or(0);
    let (length, keep) = if status == 101 && upgrading {
        (BodyLength::Empty, false)
    } else if (100..200).contains(&status) {
        if status == 101 {
            return Err(Http1Error::Malformed(
                "the service switched protocols for a request that did not ask to",
            ));
        }
        let _ = buf.split_to(head_len);
        return Ok(None);
    } else {
        let length = http1::response_body_length(status, is_head, resp.headers)?;
        // A response that may carry no body but declares one (to HEAD, 204, 304): a service
        // that sends that body anyway may send it any time later, past any check; such a
        // connection is not reused.
        let bodiless = framing::response_is_bodiless(status, is_head);
        let keep = !hop::wants_close(resp.version.unwrap_or(1), resp.headers)
            && length != BodyLength::UntilClose
            && !(bodiless && framing::declares_body(resp.headers));
        (length, keep)
    };
    let tunnel = response::tunnel_lines(&resp, head_len);
    // Where the two values the answer needs lie in the head, to keep them without copying
    // once the head is split off the buffer.
    let base = buf.as_ptr() as usize;
    let place = |value: &[u8]| {
        let at = value.as_ptr() as usize - base;
        at..at + value.len()
    };
    let declared = tunnel.declared.map(place);
    let upgrade = tunnel.upgrade.map(place);
    let lines = tunnel.lines;
    let head = buf.split_to(head_len).freeze();
    Ok(Some(ResponseHead {
        lines,
        declared: declared.map(|r| head.slice(r)),
        upgrade: upgrade.map(|r| head.slice(r)),
        status,
        length,
        keep,
    }))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A head as the pool reads it (parsed once), then the tunnel message it becomes.
    fn tunnel_response(raw: &[u8], body: Bytes, is_head: bool) -> Option<(BytesMut, Bytes)> {
        let mut buf = BytesMut::from(raw);
        let mut head = parse_response_head(&mut buf, raw.len(), is_head, false).ok()??;
        assert!(buf.is_empty(), "the head is taken out of the buffer");
        Some(response::tunnel_response(&mut head, body, is_head))
    }

    #[test]
    fn a_101_keeps_its_upgrade_and_interim_heads_are_skipped() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nCSeq: 4\r\nX-A: 1\r\n\r\n";
        let mut buf = BytesMut::from(&raw[..]);
        let mut head = parse_response_head(&mut buf, raw.len(), false, true)
            .expect("parsed")
            .expect("a 101 is the answer when upgrading");
        assert_eq!((head.status, head.keep), (101, false));
        assert_eq!(
            &response::tunnel_stream_head(&mut head)[..],
            b"HTTP/1.1 101 Switching Protocols\r\nX-A: 1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        );
        // Not asked to switch: refused.
        let mut buf = BytesMut::from(&raw[..]);
        assert!(parse_response_head(&mut buf, raw.len(), false, false).is_err());
        // An interim head is consumed and yields nothing; the real one follows in the buffer.
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..]);
        assert!(matches!(
            parse_response_head(&mut buf, interim.len(), false, false),
            Ok(None)
        ));
        assert_eq!(&buf[..], b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn response_back_to_tunnel() {
        let (head, body) = tunnel_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCSeq: 3\r\nX-A: 1\r\n\r\n",
            Bytes::from_static(b"abc"),
            false,
        )
        .unwrap();
        assert_eq!(
            &head[..],
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 3\r\n"
        );
        assert_eq!(body, "abc");
        let (head, _) = tunnel_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            Bytes::new(),
            true,
        )
        .unwrap();
        assert_eq!(&head[..], b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n");
        // The service cannot speak as the agent or the proxy, nor list their lines away.
        let (head, _) = tunnel_response(
            b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nHttpws-Error: timeout\r\n\
              httpws_error: t\r\nHttpws-Target-Error: x\r\nHttpws-From: y\r\nCSeq: 9\r\n\
              Content_Length: 7\r\nX-B: 2\r\n\r\n",
            Bytes::from_static(b"ok"),
            false,
        )
        .unwrap();
        assert_eq!(
            &head[..],
            b"HTTP/1.1 200 OK\r\nX-B: 2\r\nContent-Length: 2\r\n"
        );
    }
}
