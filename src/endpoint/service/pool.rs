//! The service side's connections to the local service: a bounded keep-alive pool. At most
//! `max_conns` requests are at the service at once (more wait their turn); idle connections
//! are reused newest first and dropped after an idle timeout.
//!
//! One connection carries many callers' requests in turn, so a connection goes back to the
//! pool only if its exchange ended exactly where the response's framing says, and is taken
//! out again only if nothing has arrived on it since: a byte the service sent past its
//! answer (a body to a `HEAD`, a late second response) would otherwise be read as the next
//! caller's answer.

use std::io;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::endpoint::http1::{self, Http1Error, MAX_HEADERS};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::{framing, hop};

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

/// A response read from the service: its raw head (through the blank line) and its body,
/// de-framed.
#[derive(Debug)]
pub struct ServiceResponse {
    /// The status line and headers, through the blank line.
    pub head: Bytes,
    /// The body, de-framed.
    pub body: Bytes,
}

struct IdleConn {
    stream: TcpStream,
    since: Instant,
}

/// The pool for one service address.
pub struct ServicePool {
    /// `host:port` to connect to.
    addr: String,
    idle: Mutex<Vec<IdleConn>>,
    permits: Semaphore,
    max_idle: usize,
    max_head_bytes: usize,
    max_body_bytes: usize,
}

impl ServicePool {
    /// A pool for `addr` (`host:port`) of at most `max_conns` connections, reading heads of
    /// at most `max_head_bytes` and bodies of at most `max_body_bytes`.
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

    /// Send one request (head with its blank line, then body) and read the response. A
    /// reused connection that turns out to be closed before any response byte is retried
    /// once on a fresh connection (the service had closed it while idle).
    pub async fn send(
        &self,
        head: &[u8],
        body: &[u8],
        is_head: bool,
    ) -> Result<ServiceResponse, ServiceError> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(ServiceError::Unreachable("pool closed".into()));
        };
        let mut reused_failures = 0;
        loop {
            let (mut stream, reused) = match self.take_idle() {
                Some(stream) => (stream, true),
                None => (self.connect().await?, false),
            };
            match exchange(
                &mut stream,
                head,
                body,
                is_head,
                self.max_head_bytes,
                self.max_body_bytes,
            )
            .await
            {
                Ok((response, keep)) => {
                    if keep {
                        self.put_idle(stream);
                    }
                    return Ok(response);
                }
                Err(Exchange::NothingBack(_)) if reused && reused_failures == 0 => {
                    reused_failures += 1;
                }
                Err(Exchange::NothingBack(e) | Exchange::Failed(e)) => return Err(e.into()),
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
        if !is_quiet(&stream) {
            return;
        }
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

enum Exchange {
    /// The connection failed before any byte of a response arrived.
    NothingBack(Http1Error),
    Failed(Http1Error),
}

/// Write the request and read the response on one connection; returns whether the
/// connection may be reused.
async fn exchange(
    stream: &mut TcpStream,
    head: &[u8],
    body: &[u8],
    is_head: bool,
    max_head_bytes: usize,
    max_body_bytes: usize,
) -> Result<(ServiceResponse, bool), Exchange> {
    let write = async {
        stream.write_all(head).await?;
        stream.write_all(body).await
    };
    // A service may answer early and stop reading (a 413 or 501 before the whole body):
    // after a failed write, a response already sent is still worth reading.
    let write_error = write.await.err();
    let nothing_back = |e: Http1Error| match write_error {
        Some(ref w) => Exchange::NothingBack(std::io::Error::new(w.kind(), w.to_string()).into()),
        None => Exchange::NothingBack(e),
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut interim = 0;
    loop {
        let head_len = match http1::read_head(stream, &mut buf, max_head_bytes).await {
            Ok(Some(n)) => n,
            Ok(None) => return Err(nothing_back(Http1Error::Closed)),
            // A reset before any byte (e.g. the service closed an idle connection).
            Err(e @ Http1Error::Io(_)) if buf.is_empty() => return Err(nothing_back(e)),
            Err(e) => return Err(Exchange::Failed(e)),
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(&buf[..head_len])
            .map_err(|e| Exchange::Failed(e.into()))?;
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(Exchange::Failed(Http1Error::Malformed(
                    "the service switched protocols, which the tunnel cannot carry",
                )));
            }
            // An interim response (100 Continue, 103 Early Hints): the real one follows.
            interim += 1;
            if interim > MAX_INTERIM_RESPONSES {
                return Err(Exchange::Failed(Http1Error::Malformed(
                    "too many interim 1xx responses",
                )));
            }
            let _ = buf.split_to(head_len);
            continue;
        }
        let length =
            http1::response_body_length(status, is_head, resp.headers).map_err(Exchange::Failed)?;
        // A response that may carry no body but declares one (to HEAD, 204, 304): a service
        // that sends that body anyway may send it any time later, past any check; such a
        // connection is not reused.
        let bodiless = framing::response_is_bodiless(status, is_head);
        let keep = !hop::wants_close(resp.version.unwrap_or(1), resp.headers)
            && length != http1::BodyLength::UntilClose
            && !(bodiless && framing::declares_body(resp.headers));
        let head = buf.split_to(head_len).freeze();
        let body = http1::read_body(stream, &mut buf, length, max_body_bytes)
            .await
            .map_err(Exchange::Failed)?;
        // Bytes past the response mean the service is out of step: do not reuse.
        let keep = keep && buf.is_empty() && write_error.is_none();
        return Ok((ServiceResponse { head, body }, keep));
    }
}
