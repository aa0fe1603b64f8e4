//! The agent's egress (`--serve URL`): requests arriving over the tunnel are sent to one
//! local service and its responses sent back with the request's CSeq. The service address
//! is fixed at start: a request's target or `Host` can never point the agent anywhere else
//! (no SSRF), and its path stays under the URL's base path ([`service_path`]). `Host`
//! becomes the service's authority unless `--preserve-host`; the proxy's `Httpws-From` stamp
//! is passed on so the service knows the caller, and nothing the caller wrote can shadow or
//! remove it (see [`service_request`]).
//!
//! Services and callers are told apart in what goes wrong: the caller gets a token and a
//! neutral reason, the agent's log gets the service's address and the OS error.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use super::http1::{self, Http1Error, MAX_HEADERS};
use super::pool::ServicePool;
use super::service_path;
use super::session::{Incoming, Session};
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::header_name;
use crate::proto::http1::write;

/// Time the service has to answer; kept under the proxy's 30 s deadline so that the caller
/// learns the service was slow (504 from us) rather than only that the endpoint was.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(25);

/// Where requests go: `http://host:port[/base]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUrl {
    /// `host:port` to connect to.
    pub addr: String,
    /// The authority as written, for the `Host` header.
    pub authority: String,
    /// A path prefix ("" for none), prepended to every request path.
    pub base_path: String,
}

/// Why a service URL is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceUrlError {
    #[error("service URL must start with http:// (https to local services is not supported)")]
    Scheme,
    #[error("service URL has no host")]
    NoHost,
    #[error("service URL must not carry user info, a query or a fragment")]
    Extra,
    #[error("invalid port in service URL")]
    Port,
}

impl ServiceUrl {
    pub fn parse(url: &str) -> Result<ServiceUrl, ServiceUrlError> {
        let rest = url
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
            .ok_or(ServiceUrlError::Scheme)?;
        if rest.contains(['?', '#', '@']) {
            return Err(ServiceUrlError::Extra);
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(ServiceUrlError::NoHost);
        }
        let has_port = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                authority[i + 1..]
                    .parse::<u16>()
                    .map_err(|_| ServiceUrlError::Port)?;
                true
            }
            _ => false,
        };
        let addr = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(ServiceUrl {
            addr: addr.replace(['[', ']'], ""),
            authority: authority.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// Egress settings.
#[derive(Clone, Debug)]
pub struct EgressConfig {
    pub service: ServiceUrl,
    pub preserve_host: bool,
    pub service_timeout: Duration,
    pub max_service_conns: usize,
    pub max_head_bytes: usize,
    /// Largest request or response body (responses beyond it → 502 `service-error`).
    pub max_body_bytes: usize,
    pub max_incoming: usize,
}

/// Take the session's incoming requests and answer each from the service, until the
/// session ends.
pub async fn serve(session: Session, config: EgressConfig) {
    let Some(mut incoming) = session.take_incoming() else {
        tracing::error!("egress: the session's requests are already being served");
        return;
    };
    let pool = Arc::new(ServicePool::new(
        config.service.addr.clone(),
        config.max_service_conns,
        config.max_head_bytes,
        config.max_body_bytes.min(session.max_body_bytes()),
    ));
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_incoming.max(1)));
    while let Some(request) = incoming.recv().await {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let session = session.clone();
        let pool = Arc::clone(&pool);
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            let max_body_bytes = config.max_body_bytes.min(session.max_body_bytes());
            let (head, body) = forward(&request, &pool, &config, max_body_bytes).await;
            session.respond(&request, head, body).await;
            drop(permit);
        });
    }
}

/// One request to the service and back; every failure becomes an HTTP answer.
async fn forward(
    request: &Incoming,
    pool: &ServicePool,
    config: &EgressConfig,
    max_body_bytes: usize,
) -> (BytesMut, Bytes) {
    let (head, body, is_head) = match service_request(request, config, max_body_bytes) {
        Ok(parts) => parts,
        Err(why) => return error_answer(AnswerError::BadRequest, &why),
    };
    let service = &config.service.addr;
    let sent = tokio::time::timeout(config.service_timeout, pool.send(&head, &body, is_head)).await;
    match sent {
        Ok(Ok(response)) => match tunnel_response(&response.head, response.body, is_head) {
            Ok(answer) => answer,
            Err(why) => {
                tracing::warn!(%service, error = why, "egress: unusable response from the service");
                error_answer(
                    AnswerError::ServiceError,
                    "the service sent no usable response",
                )
            }
        },
        Ok(Err(e)) => {
            // The detail (the service's address, the OS error) is for the operator only.
            tracing::warn!(%service, error = %e, "egress: the service failed");
            let (error, reason) = e.answer();
            error_answer(error, reason)
        }
        Err(_) => error_answer(
            AnswerError::Timeout,
            &format!(
                "the service did not answer within {:?}",
                config.service_timeout
            ),
        ),
    }
}

/// The request as the service gets it: the target under the base path
/// ([`service_path::service_target`]), the caller's headers less the hop-by-hop ones and
/// every line a hop of ours sets in any spelling, then the lines the agent writes itself:
/// `Host`, the proxy's `Httpws-From` stamp and `Content-Length`. Those come after the
/// `Connection` header has been applied, so a caller listing `Httpws-From` or `Host` there
/// removes only its own copies, never ours.
fn service_request(
    request: &Incoming,
    config: &EgressConfig,
    max_body_bytes: usize,
) -> Result<(Bytes, Bytes, bool), String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&request.message[..request.head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed request head".into()),
    }
    let method = req.method.unwrap_or("GET");
    let target =
        service_path::service_target(method, req.path.unwrap_or(""), &config.service.base_path)
            .map_err(|e| e.to_string())?;
    let length = http1::request_body_length(req.headers).map_err(|e| match e {
        Http1Error::UnsupportedCoding => "a Transfer-Encoding other than chunked alone",
        _ => "ambiguous body length",
    })?;
    let body = http1::message_body(&request.message, request.head_len, length, max_body_bytes)
        .map_err(|_| "body does not match its framing")?;

    let listed = http1::connection_listed(req.headers);
    let mut head = BytesMut::with_capacity(request.head_len + 64);
    head.extend_from_slice(method.as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = config.service.authority.as_bytes();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if h.name.eq_ignore_ascii_case("host") {
            if config.preserve_host {
                host = h.value;
            }
            continue;
        }
        // `_` twins of what the public ingress stamps (X-Forwarded-*) or a hop of ours sets:
        // the same variable as ours to a CGI-style service. The stamp itself is written last.
        if http1::is_hop_written(name)
            || header_name::is_forwarding_twin(name)
            || http1::stops_here(h.name, &listed)
        {
            continue;
        }
        write::put_header(&mut head, name, h.value);
    }
    write::put_header(&mut head, b"Host", host);
    if let Some(from) = http1::proxy_stamp(req.headers) {
        write::put_header(&mut head, b"Httpws-From", from);
    }
    if !body.is_empty() || length != http1::BodyLength::Empty {
        write::put_content_length(&mut head, body.len() as u64);
    }
    head.extend_from_slice(b"\r\n");
    Ok((head.freeze(), body, method == "HEAD"))
}

/// The service's response as a tunnel message: hop-by-hop headers and the headers the proxy
/// and agent set (`CSeq`, `Httpws-From`, `Httpws-Error`, `Httpws-Target-Error`, in any
/// spelling) removed, so an `Httpws-Error` from this side is always the agent's own; the
/// body with Content-Length (the session adds CSeq).
fn tunnel_response(
    raw_head: &[u8],
    body: Bytes,
    is_head: bool,
) -> Result<(BytesMut, Bytes), &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(raw_head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed response head"),
    }
    let status = resp.code.unwrap_or(0);
    let listed = http1::connection_listed(resp.headers);
    let mut head = BytesMut::with_capacity(raw_head.len() + 32);
    write::put_status_line(&mut head, status, resp.reason.unwrap_or("").as_bytes());
    let mut declared = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            declared = Some(h.value);
        }
        if http1::is_hop_written(h.name.as_bytes()) || http1::stops_here(h.name, &listed) {
            continue;
        }
        write::put_header(&mut head, h.name.as_bytes(), h.value);
    }
    if is_head || status == 304 {
        if let Some(value) = declared {
            write::put_header(&mut head, b"Content-Length", value);
        }
    } else if status != 204 {
        write::put_content_length(&mut head, body.len() as u64);
    }
    Ok((head, body))
}

/// An answer the egress makes itself.
fn error_answer(error: AnswerError, reason: &str) -> (BytesMut, Bytes) {
    let body = Bytes::from(format!("{reason}\n"));
    let mut head = BytesMut::with_capacity(160);
    write::put_answer_head(&mut head, error, None, body.len());
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(msg: &'static [u8]) -> Incoming {
        let head_len = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        Incoming {
            generation: 1,
            cseq: 7,
            message: Bytes::from_static(msg),
            head_len,
        }
    }

    fn config(preserve_host: bool) -> EgressConfig {
        EgressConfig {
            service: ServiceUrl::parse("http://127.0.0.1:9000/api/").unwrap(),
            preserve_host,
            service_timeout: Duration::from_secs(1),
            max_service_conns: 1,
            max_head_bytes: 1024,
            max_body_bytes: 1024,
            max_incoming: 1,
        }
    }

    #[test]
    fn service_urls() {
        let u = ServiceUrl::parse("http://127.0.0.1:9000/api/").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9000");
        assert_eq!(u.base_path, "/api");
        let u = ServiceUrl::parse("http://localhost").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.authority.as_str()),
            ("localhost:80", "localhost")
        );
        let u = ServiceUrl::parse("http://[::1]:81").unwrap();
        assert_eq!(u.addr, "::1:81");
        assert_eq!(ServiceUrl::parse("https://x"), Err(ServiceUrlError::Scheme));
        assert_eq!(ServiceUrl::parse("http://u@x"), Err(ServiceUrlError::Extra));
        assert_eq!(
            ServiceUrl::parse("http://x:http"),
            Err(ServiceUrlError::Port)
        );
    }

    #[test]
    fn request_to_service_is_rewritten_and_never_redirected() {
        let msg = incoming(
            b"POST http://169.254.169.254/latest?x HTTP/1.1\r\nHost: bob\r\nCSeq: 7\r\n\
              Httpws-From: alice\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
              2\r\nhi\r\n0\r\n\r\n",
        );
        let (head, body, is_head) = service_request(&msg, &config(false), 1024).unwrap();
        assert_eq!(
            std::str::from_utf8(&head).unwrap(),
            "POST /api/latest?x HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nHttpws-From: alice\r\n\
             Content-Length: 2\r\n\r\n"
        );
        assert_eq!(body, "hi");
        assert!(!is_head);
        let (head, _, _) = service_request(&msg, &config(true), 1024).unwrap();
        assert!(
            std::str::from_utf8(&head)
                .unwrap()
                .contains("Host: bob\r\n")
        );
    }

    #[test]
    fn the_stamp_survives_connection_and_twins() {
        // The caller names the stamp, Host, CSeq and the framing in Connection, and sends
        // twins of everything a hop of ours sets; the proxy's stamp comes last.
        let msg = incoming(
            b"POST /x HTTP/1.1\r\nHost: bob\r\nCSeq: 7\r\n\
              Connection: Httpws-From, Host, CSeq, Content-Length, X-Forwarded-For\r\n\
              Httpws_From: admin\r\nHTTPWS_FROM: root\r\nCSEQ: 1\r\nCseq_: 2\r\n\
              Httpws-Error: forbidden\r\nhttpws_target_error: x\r\nContent_Length: 99\r\n\
              X_Forwarded_For: 10.0.0.1\r\nx-forwarded_host: evil\r\n\
              X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\
              Content-Length: 2\r\nHttpws-From: alice\r\n\r\nhi",
        );
        let (head, body, _) = service_request(&msg, &config(true), 1024).unwrap();
        assert_eq!(
            std::str::from_utf8(&head).unwrap(),
            "POST /api/x HTTP/1.1\r\nCseq_: 2\r\nX-Forwarded-Proto: https\r\nHost: bob\r\n\
             Httpws-From: alice\r\nContent-Length: 2\r\n\r\n",
            "the stamp, Host and Content-Length are the agent's, once each; the caller's \
             X-Forwarded-For went with its Connection listing"
        );
        assert_eq!(body, "hi");
        // Without a Connection listing, the exact X-Forwarded-* spellings (the public
        // ingress's) pass and their twins do not.
        let msg = incoming(
            b"GET / HTTP/1.1\r\nHost: bob\r\nX_Forwarded_For: 10.0.0.1\r\n\
              X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: wiki\r\nForwarded_: a\r\n\
              CSeq: 1\r\nHttpws-From: -internet-\r\n\r\n",
        );
        let (head, _, _) = service_request(&msg, &config(false), 1024).unwrap();
        assert_eq!(
            std::str::from_utf8(&head).unwrap(),
            "GET /api/ HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: wiki\r\n\
             Forwarded_: a\r\nHost: 127.0.0.1:9000\r\nHttpws-From: -internet-\r\n\r\n"
        );
    }

    #[test]
    fn targets_that_would_leave_the_base_path() {
        let answer = |msg: &'static [u8]| service_request(&incoming(msg), &config(false), 1024);
        let (head, _, _) = answer(b"GET /a/../../admin HTTP/1.1\r\nHost: bob\r\n\r\n").unwrap();
        assert!(head.starts_with(b"GET /api/admin HTTP/1.1\r\n"));
        let (head, _, _) =
            answer(b"GET http://bob/%2e%2e/x?y HTTP/1.1\r\nHost: bob\r\n\r\n").unwrap();
        assert!(head.starts_with(b"GET /api/x?y HTTP/1.1\r\n"));
        for refused in [
            &b"GET /..%2fadmin HTTP/1.1\r\nHost: bob\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nHost: bob\r\n\r\n",
            b"GET bob:80 HTTP/1.1\r\nHost: bob\r\n\r\n",
        ] {
            assert!(
                answer(refused).is_err(),
                "{:?}",
                String::from_utf8_lossy(refused)
            );
        }
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
