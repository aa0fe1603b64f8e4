//! The client library: [`Endpoint`], the endpoint role for Rust programs. Connect to a proxy
//! under a name, call other endpoints with `http::Request`s, and serve requests addressed to
//! this one with an async handler. The `httpws endpoint` agent is built on it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use super::config::{ProxyUrl, ProxyUrlError, SessionConfig};
use super::http1::{self, Http1Error, MAX_HEADERS};
use super::session::{Failure, Fatal, Incoming, Session, Status};
use super::tunnel_headers;
use crate::proto::address::{AddressError, VirtualAddress};
use crate::proto::handshake::Token;
use crate::proto::http1::write;

/// Why [`EndpointBuilder::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Url(#[from] ProxyUrlError),
    #[error("invalid endpoint name: {0}")]
    Name(#[from] AddressError),
    #[error("invalid token: it must be non-empty visible ASCII")]
    Token,
    /// The proxy refused us for good ([`Fatal::Refused`] carries its status and reason), or
    /// the URL's scheme does not match the server.
    #[error(transparent)]
    Fatal(#[from] Fatal),
    #[error("no registration with the proxy within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// Why [`Endpoint::request`] got no HTTP response. Errors the proxy or the target answer
/// with (404 `unknown-address`, 504 `timeout`, …) are responses, not these.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Tunnel(#[from] Failure),
    #[error("request has no target: give an absolute URI (http://name/path) or a Host header")]
    NoTarget,
    #[error("malformed response: {0}")]
    BadResponse(#[from] Http1Error),
}

/// Builds an [`Endpoint`]: the proxy URL, then optional name, token and timers.
#[derive(Debug)]
pub struct EndpointBuilder {
    config: Result<SessionConfig, ConnectError>,
}

impl EndpointBuilder {
    /// Register under `name` (otherwise the proxy assigns one).
    pub fn name(mut self, name: &str) -> Self {
        if let Ok(config) = &mut self.config {
            match VirtualAddress::parse(name.as_bytes()) {
                Ok(address) => config.name = Some(address),
                Err(e) => self.config = Err(e.into()),
            }
        }
        self
    }

    /// Present `token` as `Authorization: Bearer` (never logged). It must be non-empty
    /// visible ASCII, the proxy's rule.
    pub fn token(mut self, token: &str) -> Self {
        if let Ok(config) = &mut self.config {
            match Token::checked(token) {
                Ok(token) => config.token = Some(token),
                Err(_) => self.config = Err(ConnectError::Token),
            }
        }
        self
    }

    /// Take calls from the internet: register as public (`?public=1`), so the proxy's public
    /// HTTP ingress relays requests for this name. Endpoints are private by default.
    pub fn public(mut self, public: bool) -> Self {
        if let Ok(config) = &mut self.config {
            config.public = public;
        }
        self
    }

    /// With a `wss://` proxy, trust only the CA certificates in this PEM file instead of the
    /// system's roots.
    pub fn ca_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        if let Ok(config) = &mut self.config {
            match super::tls::client_config(Some(path.as_ref())) {
                Ok(tls) => config.tls = Some(tls),
                Err(e) => self.config = Err(e.into()),
            }
        }
        self
    }

    /// With a `wss://` proxy, use this rustls configuration (roots, client certificates).
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        if let Ok(config) = &mut self.config {
            config.tls = Some(tls);
        }
        self
    }

    /// Change any other setting.
    pub fn configure(mut self, f: impl FnOnce(&mut SessionConfig)) -> Self {
        if let Ok(config) = &mut self.config {
            f(config);
        }
        self
    }

    /// The settings as they stand.
    pub fn into_config(self) -> Result<SessionConfig, ConnectError> {
        self.config
    }

    /// Connect and wait for the registration, for at most `wait`. Afterwards the endpoint
    /// reconnects by itself whenever the tunnel drops. A refusal that retrying cannot fix
    /// (bad name, bad token, a name another credential holds) is returned at once as
    /// [`ConnectError::Fatal`] with the proxy's status and reason.
    pub async fn connect_within(self, wait: Duration) -> Result<Endpoint, ConnectError> {
        let endpoint = Endpoint::start(self.config?);
        let mut status = endpoint.session.status();
        let outcome = tokio::time::timeout(
            wait,
            status.wait_for(|s| matches!(s, Status::Up { .. } | Status::Failed(_))),
        )
        .await;
        let result = match outcome {
            Ok(Ok(s)) => match &*s {
                Status::Failed(fatal) => Err(ConnectError::Fatal(fatal.clone())),
                _ => Ok(()),
            },
            _ => Err(ConnectError::Timeout(wait)),
        };
        match result {
            Ok(()) => Ok(endpoint),
            Err(e) => {
                endpoint.close().await;
                Err(e)
            }
        }
    }

    /// [`EndpointBuilder::connect_within`] with the default wait of 10 seconds.
    pub async fn connect(self) -> Result<Endpoint, ConnectError> {
        self.connect_within(Duration::from_secs(10)).await
    }
}

/// One endpoint: a tunnel session plus HTTP conversions. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    session: Session,
}

impl Endpoint {
    /// Start building an endpoint for the proxy at `proxy_url` (`ws://host:port`, or
    /// `wss://host:port` for TLS, checked against the system's roots unless
    /// [`ca_file`](EndpointBuilder::ca_file) says otherwise).
    pub fn builder(proxy_url: &str) -> EndpointBuilder {
        EndpointBuilder {
            config: ProxyUrl::parse(proxy_url)
                .map(SessionConfig::new)
                .map_err(ConnectError::from),
        }
    }

    /// Start the session in the background without waiting (it retries until it registers).
    pub fn start(config: SessionConfig) -> Endpoint {
        Endpoint {
            session: Session::start(config),
        }
    }

    /// The underlying session, for callers that work with raw messages (the agent does).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The address this endpoint is registered under, while the tunnel is up.
    pub fn address(&self) -> Option<VirtualAddress> {
        self.session.address()
    }

    /// Send `req` to the endpoint its URI authority (`http://bob/path`) or `Host` header
    /// names, and wait for the response. The caller's address reaches the target as
    /// `Httpws-From`. Proxy-made errors come back as responses with an `Httpws-Error` header.
    pub async fn request(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, RequestError> {
        let is_head = req.method() == http::Method::HEAD;
        let (parts, body) = req.into_parts();
        let head = request_head(&parts, body.len())?;
        let message = self.session.request(head, body).await?;
        Ok(parse_response(
            &message,
            is_head,
            self.session.max_body_bytes(),
        )?)
    }

    /// Answer requests addressed to this endpoint with `handler`, until the endpoint closes.
    /// Up to the session's `max_incoming` requests are handled at once. A handler's response
    /// body is sent with `Content-Length`. Only one `serve` may run per endpoint.
    pub async fn serve<H, F>(&self, handler: H) -> Result<(), ServeError>
    where
        H: Fn(http::Request<Bytes>) -> F + Send + Sync + 'static,
        F: Future<Output = http::Response<Bytes>> + Send + 'static,
    {
        let mut incoming = self
            .session
            .take_incoming()
            .ok_or(ServeError::AlreadyServing)?;
        let handler = Arc::new(handler);
        let limit = Arc::new(Semaphore::new(super::config::DEFAULT_MAX_INCOMING));
        while let Some(request) = incoming.recv().await {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                break;
            };
            let session = self.session.clone();
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let response = match parse_incoming(&request, session.max_body_bytes()) {
                    Ok(req) => handler(req).await,
                    Err(e) => plain_response(400, &format!("malformed request: {e}\n")),
                };
                let (head, body) = response_head(response);
                session.respond(&request, head, body).await;
                drop(permit);
            });
        }
        Ok(())
    }

    /// Close the tunnel and stop reconnecting.
    pub async fn close(&self) {
        self.session.close().await;
    }
}

/// Why [`Endpoint::serve`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("this endpoint is already serving")]
    AlreadyServing,
}

/// The header value of `Httpws-Error` on a response, if the proxy or an agent made it.
pub fn httpws_error<B>(response: &http::Response<B>) -> Option<&str> {
    response.headers().get("httpws-error")?.to_str().ok()
}

/// The header value of `Httpws-Target-Error` on a response: an error the target's own side
/// made (its agent could not reach its service, say), which the proxy renames from the
/// target's `Httpws-Error` so that it cannot pass for one of the proxy's own.
pub fn httpws_target_error<B>(response: &http::Response<B>) -> Option<&str> {
    let name = std::str::from_utf8(crate::proto::http1::header_name::HTTPWS_TARGET_ERROR).ok()?;
    response.headers().get(name)?.to_str().ok()
}

/// Request line and headers for the tunnel (the session adds CSeq and the blank line).
fn request_head(parts: &http::request::Parts, body_len: usize) -> Result<BytesMut, RequestError> {
    let host = match parts.uri.authority() {
        Some(authority) => authority.as_str().as_bytes(),
        None => parts
            .headers
            .get(http::header::HOST)
            .ok_or(RequestError::NoTarget)?
            .as_bytes(),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(if path.is_empty() {
        b"/"
    } else {
        path.as_bytes()
    });
    head.extend_from_slice(b" HTTP/1.1\r\n");
    write::put_header(&mut head, b"Host", host);
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if http1::is_hop_by_hop(name)
            || tunnel_headers::is_hop_written(name.as_bytes())
            || name == "host"
        {
            continue;
        }
        write::put_header(&mut head, name.as_bytes(), value.as_bytes());
    }
    if body_len > 0 || !matches!(parts.method, http::Method::GET | http::Method::HEAD) {
        write::put_content_length(&mut head, body_len as u64);
    }
    Ok(head)
}

/// A response message from the tunnel as an `http::Response` (framing headers dropped, the
/// body de-framed; `Content-Length` restored for the body's real length).
fn parse_response(
    message: &Bytes,
    request_was_head: bool,
    max_body_bytes: usize,
) -> Result<http::Response<Bytes>, Http1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(message)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err(Http1Error::Malformed("incomplete head")),
    };
    let status = resp.code.unwrap_or(0);
    http1::refuse_interim(status)?;
    let length = http1::response_body_length(status, request_was_head, resp.headers)?;
    let body = http1::message_body(message, head_len, length, max_body_bytes)?;
    let mut builder = http::Response::builder().status(status);
    for h in resp.headers.iter() {
        if http1::is_hop_by_hop(h.name) || tunnel_headers::is_tunnel_line(h.name.as_bytes()) {
            continue;
        }
        builder = builder.header(h.name, h.value);
    }
    if !request_was_head && status != 204 && !(100..200).contains(&status) {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    builder
        .body(body)
        .map_err(|_| Http1Error::Malformed("response head not representable"))
}

/// An incoming tunnel request as an `http::Request`: the proxy's `Httpws-From` stamp kept
/// (once, last), every other line a hop of ours writes dropped in any spelling, as the agent
/// does for its service.
fn parse_incoming(
    incoming: &Incoming,
    max_body_bytes: usize,
) -> Result<http::Request<Bytes>, Http1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&incoming.message[..incoming.head_len])?;
    let length = http1::request_body_length(req.headers)?;
    let body = http1::message_body(&incoming.message, incoming.head_len, length, max_body_bytes)?;
    let mut builder = http::Request::builder()
        .method(req.method.unwrap_or("GET"))
        .uri(req.path.unwrap_or("/"));
    for h in req.headers.iter() {
        if http1::is_hop_by_hop(h.name) || tunnel_headers::is_hop_written(h.name.as_bytes()) {
            continue;
        }
        builder = builder.header(h.name, h.value);
    }
    if let Some(from) = tunnel_headers::proxy_stamp(req.headers) {
        builder = builder.header("httpws-from", from);
    }
    builder
        .body(body)
        .map_err(|_| Http1Error::Malformed("request head not representable"))
}

/// Status line and headers of a handler's response (the session adds CSeq).
fn response_head(response: http::Response<Bytes>) -> (BytesMut, Bytes) {
    let (parts, body) = response.into_parts();
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if http1::is_hop_by_hop(name) || tunnel_headers::is_hop_written(name.as_bytes()) {
            continue;
        }
        write::put_header(&mut head, name.as_bytes(), value.as_bytes());
    }
    let status = parts.status.as_u16();
    if status != 204 && status != 304 && !(100..200).contains(&status) {
        write::put_content_length(&mut head, body.len() as u64);
    }
    (head, body)
}

/// A `text/plain` response with `body`.
pub fn plain_response(status: u16, body: &str) -> http::Response<Bytes> {
    let mut response = http::Response::new(Bytes::copy_from_slice(body.as_bytes()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_headers_tell_the_proxy_from_the_target() {
        let proxy = http::Response::builder()
            .header("Httpws-Error", "unknown-address")
            .body(())
            .unwrap();
        assert_eq!(httpws_error(&proxy), Some("unknown-address"));
        assert_eq!(httpws_target_error(&proxy), None);
        let target = http::Response::builder()
            .header("httpws-target-error", "service-unavailable")
            .body(())
            .unwrap();
        assert_eq!(httpws_target_error(&target), Some("service-unavailable"));
        assert_eq!(httpws_error(&target), None);
    }

    #[test]
    fn request_head_from_absolute_uri() {
        let req = http::Request::post("http://bob:80/offer?x=1")
            .header("Connection", "keep-alive")
            .header("CSeq", "99")
            .header("X-App", "1")
            .body(Bytes::from_static(b"sdp"))
            .unwrap();
        let (parts, body) = req.into_parts();
        let head = request_head(&parts, body.len()).unwrap();
        assert_eq!(
            &head[..],
            b"POST /offer?x=1 HTTP/1.1\r\nHost: bob:80\r\nx-app: 1\r\nContent-Length: 3\r\n"
        );
    }

    #[test]
    fn request_without_target_is_refused() {
        let (parts, _) = http::Request::get("/x").body(()).unwrap().into_parts();
        assert!(matches!(
            request_head(&parts, 0),
            Err(RequestError::NoTarget)
        ));
    }

    #[test]
    fn response_parsing_dechunks() {
        let msg = Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nCSeq: 4\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        let resp = parse_response(&msg, false, 1024).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body(), "abc");
        assert_eq!(resp.headers()["content-length"], "3");
        assert!(resp.headers().get("cseq").is_none());
        assert!(resp.headers().get("transfer-encoding").is_none());
    }

    #[test]
    fn twins_of_tunnel_headers_stay_on_this_side() {
        // Out: a caller's request and a handler's response carry no line a hop of ours sets,
        // in any spelling (`_` for `-`), as the agent's listener and service side do.
        let req = http::Request::get("http://bob/x")
            .header("Httpws_From", "admin")
            .header("httpws-from", "root")
            .header("C_Seq", "2")
            .header("Httpws_Error", "forbidden")
            .header("httpws-target_error", "x")
            .header("Content_Length", "5")
            .header("X-Keep", "1")
            .body(Bytes::new())
            .unwrap();
        let (parts, body) = req.into_parts();
        let head = request_head(&parts, body.len()).unwrap();
        assert_eq!(
            std::str::from_utf8(&head).unwrap(),
            "GET /x HTTP/1.1\r\nHost: bob\r\nc_seq: 2\r\nx-keep: 1\r\n"
        );
        let response = http::Response::builder()
            .header("Httpws-Error", "timeout")
            .header("httpws_error", "t")
            .header("Httpws_From", "y")
            .header("CSEQ", "9")
            .header("content_length", "7")
            .header("X-B", "2")
            .body(Bytes::from_static(b"ok"))
            .unwrap();
        let (head, _) = response_head(response);
        assert_eq!(
            &head[..],
            b"HTTP/1.1 200 OK\r\nx-b: 2\r\nContent-Length: 2\r\n"
        );
        // In: a response keeps only the two error markers of the family; a request to a
        // handler keeps only the proxy's stamp, the last `Httpws-From` line.
        let msg = Bytes::from_static(
            b"HTTP/1.1 502 Bad Gateway\r\nHttpws-Error: target-gone\r\n\
              Httpws-Target-Error: service-error\r\nHttpws_Error: forged\r\n\
              Httpws-From: bob\r\nCSeq: 3\r\ncseq: 4\r\nContent_Length: 9\r\n\
              Content-Length: 2\r\nX-Keep: 1\r\n\r\nno",
        );
        let resp = parse_response(&msg, false, 1024).unwrap();
        let names: Vec<_> = resp.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "httpws-error",
                "httpws-target-error",
                "x-keep",
                "content-length"
            ]
        );
        let msg: &'static [u8] = b"GET /x HTTP/1.1\r\nHost: bob\r\nHttpws_From: admin\r\n\
            httpws-from: root\r\nCSEQ: 1\r\nHttpws_Error: x\r\nContent_Length: 5\r\n\
            Httpws-From: alice\r\n\r\n";
        let incoming = Incoming {
            generation: 1,
            cseq: 7,
            message: Bytes::from_static(msg),
            head_len: msg.len(),
        };
        let req = parse_incoming(&incoming, 1024).unwrap();
        let from: Vec<_> = req.headers().get_all("httpws-from").iter().collect();
        assert_eq!(from, ["alice"]);
        let names: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "httpws-from"]);
    }

    #[test]
    fn interim_responses_are_not_answers() {
        for interim in [
            &b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"[..],
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 199 Whatever\r\nContent-Length: 0\r\n\r\n",
        ] {
            let msg = Bytes::copy_from_slice(interim);
            assert!(
                matches!(
                    parse_response(&msg, false, 1024),
                    Err(Http1Error::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(interim)
            );
        }
    }

    #[test]
    fn handler_response_gets_content_length() {
        let (head, body) = response_head(plain_response(200, "hi\n"));
        assert_eq!(
            &head[..],
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        );
        assert_eq!(body, "hi\n");
    }
}
