//! The agent's ingress (`--listen`): a local HTTP/1.1 server. Each request, proxy-style
//! (`GET http://bob/path`) or by `Host: bob`, goes over the tunnel to the endpoint it names;
//! the response comes back on the same client connection. Keep-alive, `Content-Length` and
//! chunked request bodies, `Expect: 100-continue`; hop-by-hop headers stop here.
//!
//! Every wait on a client is bounded, so that no client holds one of the `--max-clients`
//! slots for ever: the idle time before a request starts, the time to send it whole once it
//! has, and the time to take each answer.

use std::future::Future;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::http1::{self, BodyLength, Http1Error, MAX_HEADERS};
use super::session::{Failure, Session};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::{hop, write};
use crate::proto::origin;

/// Client connections served at once; more wait in the listen backlog.
pub const DEFAULT_MAX_CLIENTS: usize = 4096;
/// Time a client connection may sit idle between requests (before a request's first byte).
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a client has to send a whole request (head and body) once its first byte has come,
/// and to take each answer; past it the request gets `408` and the connection closes.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for a response over the tunnel. The proxy answers 504 after its own
/// deadline (30 s by default); this is the backstop so nothing can hang.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Ingress settings.
#[derive(Clone, Debug)]
pub struct IngressConfig {
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub max_clients: usize,
    pub idle_timeout: Duration,
    /// See [`DEFAULT_CLIENT_TIMEOUT`].
    pub client_timeout: Duration,
    pub request_timeout: Duration,
    /// Web pages (by `Origin`) that may send requests through the ingress; by default none.
    pub allowed_origins: Vec<String>,
}

/// Serve local clients on `listener` until the task is dropped. Each connection's failure
/// is its own; the listener keeps running.
pub async fn serve(listener: TcpListener, session: Session, config: IngressConfig) {
    let config = Arc::new(config);
    let clients = Arc::new(Semaphore::new(config.max_clients.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&clients).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "ingress: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let session = session.clone();
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            if let Err(e) = serve_client(stream, &session, &config).await {
                tracing::debug!(%peer, error = %e, "ingress: client connection ended");
            }
            drop(permit);
        });
    }
}

/// An answer the agent makes itself, and whether the connection closes after it.
struct LocalError {
    status: u16,
    token: Option<AnswerError>,
    reason: String,
    close: bool,
}

impl LocalError {
    /// An answer with `Httpws-Error` (so the status is the token's).
    fn answer(error: AnswerError, reason: impl Into<String>, close: bool) -> Self {
        LocalError {
            status: error.status(),
            token: Some(error),
            reason: reason.into(),
            close,
        }
    }

    /// A refusal of the local client's own request, without a token.
    fn new(status: u16, reason: impl Into<String>) -> Self {
        LocalError {
            status,
            token: None,
            reason: reason.into(),
            close: true,
        }
    }

    fn from_http1(e: &Http1Error, max_head_bytes: usize) -> Option<Self> {
        match e {
            Http1Error::HeadTooLarge { .. } => Some(LocalError::new(
                431,
                format!("request head exceeds {max_head_bytes} bytes or {MAX_HEADERS} headers"),
            )),
            Http1Error::BodyTooLarge { limit } => Some(LocalError::new(
                413,
                format!("request body exceeds {limit} bytes"),
            )),
            Http1Error::Malformed(why) => Some(LocalError::new(400, *why)),
            Http1Error::UnsupportedCoding => Some(LocalError::new(
                501,
                "only Transfer-Encoding: chunked is supported (the body is re-framed, and another \
                 coding would lose its label); send a Content-Length or chunked body",
            )),
            Http1Error::Closed | Http1Error::Io(_) => None,
        }
    }

    fn too_slow(limit: Duration) -> Self {
        LocalError::new(
            408,
            format!("the request did not arrive whole within {limit:?} (--client-timeout)"),
        )
    }

    fn tunnel(failure: Failure) -> Self {
        let error = match failure {
            Failure::TunnelDown | Failure::Closed => AnswerError::TunnelDown,
            Failure::TargetGone => AnswerError::TargetGone,
            Failure::TooLarge => AnswerError::MessageTooLarge,
        };
        LocalError::answer(error, failure.to_string(), false)
    }
}

/// What the head said, kept past the point where the head's bytes are released.
struct Parsed {
    /// Request line and headers for the tunnel, without Content-Length, CSeq, blank line.
    head: BytesMut,
    body: BodyLength,
    is_head: bool,
    close: bool,
    expect_continue: bool,
}

async fn serve_client(
    mut stream: TcpStream,
    session: &Session,
    config: &IngressConfig,
) -> Result<(), Http1Error> {
    stream.set_nodelay(true)?;
    let limit = config.client_timeout;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // Between requests the client may be idle; a pipelined request has already begun.
        if buf.is_empty() {
            match tokio::time::timeout(config.idle_timeout, stream.read_buf(&mut buf)).await {
                Err(_) | Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        // From its first byte, the request has one deadline for its head and its body.
        let deadline = Instant::now() + limit;
        let head_len = match tokio::time::timeout_at(
            deadline,
            http1::read_head(&mut stream, &mut buf, config.max_head_bytes),
        )
        .await
        {
            Err(_) => {
                write_local_error(&mut stream, &LocalError::too_slow(limit), limit).await?;
                return Ok(());
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(n))) => n,
            Ok(Err(e)) => {
                if let Some(answer) = LocalError::from_http1(&e, config.max_head_bytes) {
                    write_local_error(&mut stream, &answer, limit).await?;
                }
                return Err(e);
            }
        };
        let parsed = match parse_request(&buf[..head_len], config) {
            Ok(parsed) => parsed,
            Err(answer) => {
                write_local_error(&mut stream, &answer, limit).await?;
                if answer.close {
                    return Ok(());
                }
                buf.advance(head_len);
                continue;
            }
        };
        buf.advance(head_len);
        let has_body = parsed.body != BodyLength::Empty;
        if !session.is_up() {
            // Fail fast, before the client sends a body we would only throw away; with a
            // body still unread on the wire the connection cannot be reused.
            let mut answer = LocalError::tunnel(Failure::TunnelDown);
            answer.close = has_body || parsed.close;
            write_local_error(&mut stream, &answer, limit).await?;
            if answer.close {
                return Ok(());
            }
            continue;
        }
        if parsed.expect_continue && has_body {
            within(limit, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await?;
        }
        let read = http1::read_body(&mut stream, &mut buf, parsed.body, config.max_body_bytes);
        let body = match tokio::time::timeout_at(deadline, read).await {
            Err(_) => {
                write_local_error(&mut stream, &LocalError::too_slow(limit), limit).await?;
                return Ok(());
            }
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                if let Some(answer) = LocalError::from_http1(&e, config.max_head_bytes) {
                    write_local_error(&mut stream, &answer, limit).await?;
                }
                return Err(e);
            }
        };
        let mut head = parsed.head;
        if has_body || !body.is_empty() {
            write::put_content_length(&mut head, body.len() as u64);
        }
        let outcome =
            tokio::time::timeout(config.request_timeout, session.request(head, body)).await;
        let close = match outcome {
            Ok(Ok(message)) => {
                let reply = Reply {
                    is_head: parsed.is_head,
                    close: parsed.close,
                    max_body_bytes: session.max_body_bytes(),
                    limit,
                };
                write_response(&mut stream, &message, &reply).await?
            }
            Ok(Err(failure)) => {
                let mut answer = LocalError::tunnel(failure);
                answer.close = parsed.close;
                write_local_error(&mut stream, &answer, limit).await?;
                parsed.close
            }
            Err(_) => {
                let answer = LocalError::answer(
                    AnswerError::Timeout,
                    format!("no response within {:?}", config.request_timeout),
                    parsed.close,
                );
                write_local_error(&mut stream, &answer, limit).await?;
                parsed.close
            }
        };
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// `io` within `limit`; past it a `TimedOut` error, which ends the connection.
async fn within<T>(
    limit: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(limit, io)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Check the request head and build the tunnel's version of it.
fn parse_request(head: &[u8], config: &IngressConfig) -> Result<Parsed, LocalError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(LocalError::new(400, "incomplete head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(LocalError::new(
                431,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        Err(e) => return Err(LocalError::new(400, format!("malformed request: {e}"))),
    }
    let method = req.method.unwrap_or("");
    let version = req.version.unwrap_or(1);
    let target = req.path.unwrap_or("");
    if method.eq_ignore_ascii_case("CONNECT") {
        let mut answer = LocalError::new(
            405,
            "CONNECT is not supported: the tunnel carries HTTP requests (use http:// URLs)",
        );
        answer.close = true;
        return Err(answer);
    }
    let body = http1::request_body_length(req.headers).map_err(|e| {
        LocalError::from_http1(&e, config.max_head_bytes)
            .unwrap_or_else(|| LocalError::new(400, "bad body framing"))
    })?;
    if matches!(body, BodyLength::Length(n) if n > config.max_body_bytes as u64) {
        return Err(LocalError::new(
            413,
            format!("request body exceeds {} bytes", config.max_body_bytes),
        ));
    }
    let host_header = http1::single_header(req.headers, "host")
        .map_err(|_| LocalError::new(400, "Host header repeated"))?;
    let (host, path) = request_target(target, host_header)?;
    refuse_web_pages(
        req.headers,
        target.starts_with('/'),
        host,
        &config.allowed_origins,
    )?;

    let listed = http1::connection_listed(req.headers);
    let mut out = BytesMut::with_capacity(head.len() + 32);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write::put_header(&mut out, b"Host", host);
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("expect") {
            // Answered here; the far end gets the body in the same message anyway.
            expect_continue = version == 1 && hop::has_token(h.value, b"100-continue");
            continue;
        }
        // CSeq and the Httpws-* lines the proxy sets, in any spelling: the proxy would drop
        // them, and they must not reach the target even where one does not.
        if h.name.eq_ignore_ascii_case("host")
            || http1::is_hop_written(h.name.as_bytes())
            || http1::stops_here(h.name, &listed)
        {
            continue;
        }
        write::put_header(&mut out, h.name.as_bytes(), h.value);
    }
    Ok(Parsed {
        head: out,
        body,
        is_head: method == "HEAD",
        close: hop::wants_close(version, req.headers),
        expect_continue,
    })
}

/// Refuse requests that a web page made, so that a page open in a browser on this machine
/// cannot drive the tunnel (and call endpoints as this agent):
/// - `Origin` (sent by browsers on cross-origin and non-GET requests) not in
///   `--allowed-origins`;
/// - `Sec-Fetch-Site` other than `none` (typed by the user) or `same-origin` (sent by
///   browsers on every request, including the `<img>` and `<form>` kinds that carry no
///   Origin);
/// - DNS rebinding: a page whose own host name was made to resolve to this address sends
///   origin-form requests with `Host: <its name>:<this port>`. Deliberate clients name the
///   endpoint alone (`Host: bob`) or use the ingress as a proxy (`curl -x`), so an
///   origin-form `Host` with a port is refused.
fn refuse_web_pages(
    headers: &[httparse::Header<'_>],
    origin_form: bool,
    host: &[u8],
    allowed_origins: &[String],
) -> Result<(), LocalError> {
    let forbidden = |reason: String| LocalError::answer(AnswerError::Forbidden, reason, true);
    let repeated = |_| LocalError::new(400, "Origin or Sec-Fetch-Site header repeated");
    if let Some(value) = http1::single_header(headers, "origin").map_err(repeated)? {
        let text = String::from_utf8_lossy(value);
        if !origin::allowed(allowed_origins, &text) {
            return Err(forbidden(format!(
                "requests from web pages are refused (Origin: {text}); list trusted pages with --allowed-origins"
            )));
        }
        return Ok(());
    }
    if let Some(site) = http1::single_header(headers, "sec-fetch-site").map_err(repeated)? {
        if !(site.eq_ignore_ascii_case(b"none") || site.eq_ignore_ascii_case(b"same-origin")) {
            return Err(forbidden(format!(
                "a page of another site made this request (Sec-Fetch-Site: {})",
                String::from_utf8_lossy(site)
            )));
        }
    }
    let has_port = host
        .iter()
        .rposition(|&b| b == b':')
        .is_some_and(|i| !host[i + 1..].is_empty() && host[i + 1..].iter().all(u8::is_ascii_digit));
    if origin_form && has_port {
        return Err(forbidden(format!(
            "Host {:?} carries a port, as a browser page sends when its name was pointed at this \
             ingress (DNS rebinding); name the endpoint alone (Host: bob) or use the ingress as a \
             proxy (curl -x)",
            String::from_utf8_lossy(host)
        )));
    }
    Ok(())
}

/// The target endpoint (`Host` value) and the origin-form path for a request target:
/// absolute-form `http://bob/path` (proxy-style) or origin-form `/path` with `Host: bob`.
fn request_target<'a>(
    target: &'a str,
    host_header: Option<&'a [u8]>,
) -> Result<(&'a [u8], &'a str), LocalError> {
    if target.starts_with('/') {
        let host = host_header
            .filter(|h| !h.is_empty())
            .ok_or_else(|| LocalError::new(400, "missing Host header: name the target endpoint"))?;
        return Ok((host, target));
    }
    let scheme_len = "http://".len();
    let is_http = target
        .get(..scheme_len)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if !is_http {
        return Err(LocalError::new(
            400,
            "request target must be /path or an http:// URL",
        ));
    }
    let rest = &target[scheme_len..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(LocalError::new(400, "invalid authority in the request URL"));
    }
    let path = if path.is_empty() { "/" } else { path };
    // `?q` without a path is `/?q` in origin form; the proxy and target expect a leading '/'.
    if path.starts_with('?') {
        return Err(LocalError::new(400, "request URL has a query but no path"));
    }
    Ok((authority.as_bytes(), path))
}

/// How to write a tunnel response to the client.
struct Reply {
    /// It answers a `HEAD`: no body follows, whatever the head says.
    is_head: bool,
    /// The client asked to close after it.
    close: bool,
    max_body_bytes: usize,
    /// Time the client has to take it.
    limit: Duration,
}

/// Write the tunnel's response to the client. Returns whether to close afterwards.
///
/// `Httpws-Error` (an answer the proxy or an agent made) and `Httpws-Target-Error` (the
/// proxy's name for a target's own `Httpws-Error`) are passed on, whatever the response's
/// `Connection` lists; every other `Httpws-*` line and `CSeq`, in any spelling, is not.
async fn write_response<W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &Bytes,
    reply: &Reply,
) -> std::io::Result<bool> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = match resp.parse(message) {
        Ok(httparse::Status::Complete(n)) => Ok(n),
        Ok(httparse::Status::Partial) => Err(Http1Error::Malformed("incomplete head")),
        Err(e) => Err(e.into()),
    };
    let status = resp.code.unwrap_or(0);
    let framed = parsed.and_then(|head_len| {
        http1::refuse_interim(status)?;
        let length = http1::response_body_length(status, reply.is_head, resp.headers)?;
        http1::message_body(message, head_len, length, reply.max_body_bytes)
    });
    let body = match framed {
        Ok(body) => body,
        Err(e) => {
            let answer = LocalError::answer(
                AnswerError::BadResponse,
                format!("unusable response from the target: {e}"),
                reply.close,
            );
            write_local_error(stream, &answer, reply.limit).await?;
            return Ok(reply.close);
        }
    };
    let listed = http1::connection_listed(resp.headers);
    let mut head = BytesMut::with_capacity(message.len().min(4096));
    write::put_status_line(&mut head, status, resp.reason.unwrap_or("").as_bytes());
    let mut declared_length = None;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if h.name.eq_ignore_ascii_case("content-length") {
            declared_length = Some(h.value);
        }
        if http1::is_error_marker(name) {
            write::put_header(&mut head, name, h.value);
            continue;
        }
        if http1::is_tunnel_line(name) || http1::stops_here(h.name, &listed) {
            continue;
        }
        write::put_header(&mut head, name, h.value);
    }
    if reply.is_head || status == 304 {
        // No body follows, but the length the target declared is still the resource's.
        if let Some(value) = declared_length {
            write::put_header(&mut head, b"Content-Length", value);
        }
    } else if status != 204 {
        write::put_content_length(&mut head, body.len() as u64);
    }
    if reply.close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    within(reply.limit, write_two(stream, &head, &body)).await?;
    Ok(reply.close)
}

/// Write the agent's own answer (`Httpws-Error` when it has a token).
async fn write_local_error<W: AsyncWrite + Unpin>(
    stream: &mut W,
    answer: &LocalError,
    limit: Duration,
) -> std::io::Result<()> {
    let body = format!("{}\n", answer.reason);
    let mut head = BytesMut::with_capacity(256);
    match answer.token {
        Some(error) => write::put_answer_head(&mut head, error, None, body.len()),
        None => write::put_plain_error_head(&mut head, answer.status, body.len()),
    }
    if answer.close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    within(limit, write_two(stream, &head, body.as_bytes())).await?;
    if answer.close {
        let _ = stream.shutdown().await;
    }
    Ok(())
}

/// Write head and body with vectored writes (one syscall for a small response).
async fn write_two<W: AsyncWrite + Unpin>(
    stream: &mut W,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n >= head.len() {
            body = &body[n - head.len()..];
            head = &[];
        } else {
            head = &head[n..];
        }
    }
    stream.write_all(body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IngressConfig {
        IngressConfig {
            max_head_bytes: 16 * 1024,
            max_body_bytes: 1024,
            max_clients: 4,
            idle_timeout: Duration::from_secs(1),
            client_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            allowed_origins: Vec::new(),
        }
    }

    #[test]
    fn proxy_style_request_is_rewritten() {
        let head = b"POST http://Bob:81/x?y=1 HTTP/1.1\r\nHost: elsewhere\r\nProxy-Connection: keep-alive\r\n\
            Connection: X-Hop\r\nX-Hop: 1\r\nCSeq: 5\r\nHttpws-From: mallory\r\nTE: trailers\r\n\
            Expect: 100-continue\r\nContent-Length: 3\r\nAccept: */*\r\n\r\n";
        let parsed = parse_request(head, &config()).ok().unwrap();
        assert_eq!(
            std::str::from_utf8(&parsed.head).unwrap(),
            "POST /x?y=1 HTTP/1.1\r\nHost: Bob:81\r\nAccept: */*\r\n"
        );
        assert_eq!(parsed.body, BodyLength::Length(3));
        assert!(parsed.expect_continue);
        assert!(!parsed.close);
    }

    #[test]
    fn twins_of_tunnel_headers_stay_here() {
        let head = b"GET /x HTTP/1.1\r\nHost: bob\r\nConnection: Host, Content-Length\r\n\
            Httpws_From: admin\r\nhttpws-from: root\r\nCSEQ: 1\r\nC_Seq: 2\r\n\
            Httpws_Error: x\r\nContent_Length: 5\r\nX-Keep: 1\r\n\r\n";
        let parsed = parse_request(head, &config()).ok().unwrap();
        assert_eq!(
            std::str::from_utf8(&parsed.head).unwrap(),
            "GET /x HTTP/1.1\r\nHost: bob\r\nC_Seq: 2\r\nX-Keep: 1\r\n"
        );
    }

    #[test]
    fn transfer_codings_but_chunked_get_501() {
        for coding in ["gzip", "gzip, chunked", "chunked, gzip", "identity"] {
            let head =
                format!("POST /a HTTP/1.1\r\nHost: bob\r\nTransfer-Encoding: {coding}\r\n\r\n");
            let answer = parse_request(head.as_bytes(), &config()).err();
            assert_eq!(
                answer.map(|a| (a.status, a.close)),
                Some((501, true)),
                "{coding}"
            );
        }
    }

    /// What the client reads when the agent writes `message` from the tunnel to it.
    async fn written(message: &[u8], is_head: bool) -> String {
        let (mut client, mut agent) = tokio::io::duplex(64 * 1024);
        let reply = Reply {
            is_head,
            close: false,
            max_body_bytes: 1024,
            limit: Duration::from_secs(1),
        };
        let message = Bytes::copy_from_slice(message);
        write_response(&mut agent, &message, &reply).await.unwrap();
        drop(agent);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn responses_keep_only_the_error_markers_of_the_httpws_family() {
        let out = written(
            b"HTTP/1.1 502 Bad Gateway\r\nConnection: Httpws-Error, Httpws-Target-Error, X-Hop\r\n\
              X-Hop: 1\r\nHttpws-Error: target-gone\r\nHttpws-Target-Error: service-error\r\n\
              Httpws_Error: forged\r\nhttpws-target_error: forged\r\nHttpws-From: bob\r\n\
              Httpws-Other: 1\r\nCSeq: 3\r\ncseq: 4\r\nContent_Length: 9\r\n\
              Content-Length: 2\r\nX-Keep: 1\r\n\r\nno",
            false,
        )
        .await;
        assert_eq!(
            out,
            "HTTP/1.1 502 Bad Gateway\r\nHttpws-Error: target-gone\r\n\
             Httpws-Target-Error: service-error\r\nX-Keep: 1\r\nContent-Length: 2\r\n\r\nno"
        );
    }

    #[tokio::test]
    async fn interim_responses_are_not_answers() {
        for interim in [
            &b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"[..],
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 199 Whatever\r\nContent-Length: 0\r\n\r\n",
        ] {
            let out = written(interim, false).await;
            assert!(
                out.starts_with("HTTP/1.1 502 Bad Gateway\r\nHttpws-Error: bad-response\r\n"),
                "{out}"
            );
        }
        let out = written(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).await;
        assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    }

    #[test]
    fn host_request_and_errors() {
        let parsed = parse_request(b"GET /a HTTP/1.0\r\nHost: bob\r\n\r\n", &config())
            .ok()
            .unwrap();
        assert!(parsed.head.starts_with(b"GET /a HTTP/1.1\r\nHost: bob\r\n"));
        assert!(parsed.close, "HTTP/1.0 closes by default");
        let status = |h: &[u8]| parse_request(h, &config()).err().map(|e| e.status);
        assert_eq!(status(b"GET /a HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"CONNECT bob:443 HTTP/1.1\r\nHost: bob\r\n\r\n"),
            Some(405)
        );
        assert_eq!(
            status(b"POST /a HTTP/1.1\r\nHost: b\r\nContent-Length: 5000\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST /a HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"GET https://bob/ HTTP/1.1\r\nHost: b\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Some(400)
        );
    }

    #[test]
    fn web_pages_cannot_drive_the_ingress() {
        let verdict = |h: &[u8], allowed: &[&str]| {
            let mut config = config();
            config.allowed_origins = allowed.iter().map(|s| s.to_string()).collect();
            parse_request(h, &config)
                .err()
                .map(|e| (e.status, e.token.map(AnswerError::token)))
        };
        let forbidden = Some((403, Some("forbidden")));
        let cross = b"GET http://bob/ HTTP/1.1\r\nHost: bob\r\nOrigin: http://evil.example\r\n\r\n";
        assert_eq!(verdict(cross, &[]), forbidden);
        assert_eq!(verdict(cross, &["http://evil.example"]), None);
        assert_eq!(verdict(cross, &["*"]), None);
        let no_cors = b"GET /img HTTP/1.1\r\nHost: bob\r\nSec-Fetch-Site: cross-site\r\n\r\n";
        assert_eq!(verdict(no_cors, &[]), forbidden);
        let typed = b"GET /img HTTP/1.1\r\nHost: bob\r\nSec-Fetch-Site: none\r\n\r\n";
        assert_eq!(verdict(typed, &[]), None);
        // DNS rebinding: the page's own name, with the ingress's port, in origin form.
        let rebound = b"GET /secret HTTP/1.1\r\nHost: rebind.evil.example:8081\r\n\r\n";
        assert_eq!(verdict(rebound, &[]), forbidden);
        // The same authority in a proxy-style request is a deliberate client's choice.
        let proxied = b"GET http://bob:8081/ HTTP/1.1\r\nHost: bob:8081\r\n\r\n";
        assert_eq!(verdict(proxied, &[]), None);
        let twice = b"GET /a HTTP/1.1\r\nHost: bob\r\nOrigin: a\r\nOrigin: b\r\n\r\n";
        assert_eq!(verdict(twice, &["*"]).map(|v| v.0), Some(400));
    }
}
