//! The agent's egress (`--serve URL`): requests arriving over the tunnel are sent to one
//! local service and its responses sent back with the request's CSeq. The service address
//! is fixed at start: a request's target or `Host` can never point the agent anywhere else
//! (no SSRF). `Host` becomes the service's authority unless `--preserve-host`;
//! `Httpws-From` is passed on so the service knows the caller.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use super::client::is_tunnel_header;
use super::http1::{self, MAX_HEADERS};
use super::pool::{ServiceError, ServicePool};
use super::session::{Incoming, Session};

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
        Err(why) => return error_answer(400, "bad-request", why),
    };
    let sent = tokio::time::timeout(config.service_timeout, pool.send(&head, &body, is_head)).await;
    match sent {
        Ok(Ok(response)) => match tunnel_response(&response.head, response.body, is_head) {
            Ok(answer) => answer,
            Err(why) => error_answer(502, "service-error", why),
        },
        Ok(Err(e @ ServiceError::Unreachable { .. })) => {
            tracing::warn!(error = %e, "egress: service unreachable");
            error_answer(502, "service-unavailable", &e.to_string())
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "egress: service failed");
            error_answer(502, "service-error", &e.to_string())
        }
        Err(_) => error_answer(
            504,
            "timeout",
            &format!(
                "the service did not answer within {:?}",
                config.service_timeout
            ),
        ),
    }
}

/// The request as the service gets it: origin-form target under the base path, `Host` set,
/// hop-by-hop and tunnel headers (but not `Httpws-From`) removed, body with Content-Length.
fn service_request(
    request: &Incoming,
    config: &EgressConfig,
    max_body_bytes: usize,
) -> Result<(Bytes, Bytes, bool), &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&request.message[..request.head_len]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed request head"),
    }
    let method = req.method.unwrap_or("GET");
    let target = req.path.unwrap_or("/");
    let path = origin_form(target).ok_or("request target must be a path")?;
    let length = http1::request_body_length(req.headers).map_err(|_| "ambiguous body length")?;
    let body = http1::message_body(&request.message, request.head_len, length, max_body_bytes)
        .map_err(|_| "body does not match its framing")?;

    let listed = http1::connection_listed(req.headers);
    let mut head = BytesMut::with_capacity(request.head_len + 64);
    head.extend_from_slice(method.as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(config.service.base_path.as_bytes());
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = config.service.authority.as_bytes();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if config.preserve_host {
                host = h.value;
            }
            continue;
        }
        // Httpws-From stays: the service learns who is calling, as stamped by the proxy.
        if h.name.eq_ignore_ascii_case("cseq") || http1::stops_here(h.name, &listed) {
            continue;
        }
        http1::put_header(&mut head, h.name.as_bytes(), h.value);
    }
    http1::put_header(&mut head, b"Host", host);
    if !body.is_empty() || length != http1::BodyLength::Empty {
        http1::put_content_length(&mut head, body.len());
    }
    head.extend_from_slice(b"\r\n");
    Ok((head.freeze(), body, method == "HEAD"))
}

/// The path and query of a request target; absolute-form loses its authority (it is never
/// followed), asterisk-form stays `*`.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let scheme_end = target.find("://")?;
    let rest = &target[scheme_end + 3..];
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

/// The service's response as a tunnel message: hop-by-hop and tunnel headers removed, the
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
    http1::put_status_line(&mut head, status, resp.reason.unwrap_or("").as_bytes());
    let mut declared = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            declared = Some(h.value);
        }
        if is_tunnel_header(h.name) || http1::stops_here(h.name, &listed) {
            continue;
        }
        http1::put_header(&mut head, h.name.as_bytes(), h.value);
    }
    if is_head || status == 304 {
        if let Some(value) = declared {
            http1::put_header(&mut head, b"Content-Length", value);
        }
    } else if status != 204 {
        http1::put_content_length(&mut head, body.len());
    }
    Ok((head, body))
}

/// An answer the egress makes itself.
fn error_answer(status: u16, token: &str, reason: &str) -> (BytesMut, Bytes) {
    let body = Bytes::from(format!("{reason}\n"));
    let mut head = BytesMut::with_capacity(160);
    http1::put_error_head(&mut head, status, Some(token), body.len());
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
            "POST /api/latest?x HTTP/1.1\r\nHttpws-From: alice\r\nHost: 127.0.0.1:9000\r\n\
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
    }
}
