//! A request from the tunnel as the service gets it: under the base path, with the
//! service's `Host`, and with the proxy's stamp as the only `Httpws-From`.

use bytes::{Bytes, BytesMut};

use super::config::ServiceConfig;
use super::path;
use crate::endpoint::http1::{self, BodyLength, Http1Error, MAX_HEADERS};
use crate::endpoint::session::Incoming;
use crate::endpoint::tunnel_headers;
use crate::proto::http1::{header_name, parse, write};

/// A relayed request's head as the service gets it, before its framing lines.
pub(super) struct ServiceHead {
    /// The request line and headers, through `Host` and the proxy's stamp, without
    /// `Content-Length` or `Transfer-Encoding` and without the blank line.
    pub(super) lines: BytesMut,
    /// How the relayed message frames its body (for a body that came whole).
    pub(super) length: BodyLength,
    /// A `HEAD` request: its answer has no body.
    pub(super) is_head: bool,
    /// The `Upgrade` value when the caller asks to switch protocols (`Connection: upgrade`).
    pub(super) upgrade: Option<Vec<u8>>,
}

/// The request's head as the service gets it: the target under the base path
/// ([`path::service_target`]), the caller's headers less the hop-by-hop ones and
/// every line a hop of ours sets in any spelling, then the lines the agent writes itself:
/// `Host` and the proxy's `Httpws-From` stamp (the framing follows, by the caller). Those
/// come after the `Connection` header has been applied, so a caller listing `Httpws-From` or
/// `Host` there removes only its own copies, never ours.
pub(super) fn service_head(
    request: &Incoming,
    config: &ServiceConfig,
) -> Result<ServiceHead, String> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut req = httparse::Request::new(&mut []);
    match parse::request(&mut req, &request.message[..request.head_len], &mut headers) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed request head".into()),
    }
    let method = req.method.unwrap_or("GET");
    let target = path::service_target(method, req.path.unwrap_or(""), &config.service.base_path)
        .map_err(|e| e.to_string())?;
    let length = http1::request_body_length(req.headers).map_err(|e| match e {
        Http1Error::UnsupportedCoding => "a Transfer-Encoding other than chunked alone",
        _ => "ambiguous body length",
    })?;
    let listed = http1::connection_listed(req.headers);
    let mut head = BytesMut::with_capacity(request.head_len + 64);
    http1::put_request_line(&mut head, method, &target);
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
        if tunnel_headers::is_hop_written(name)
            || header_name::is_forwarding_twin(name)
            || http1::stops_here(h.name, &listed)
        {
            continue;
        }
        write::put_header(&mut head, name, h.value);
    }
    write::put_header(&mut head, b"Host", host);
    if let Some(from) = tunnel_headers::proxy_stamp(req.headers) {
        write::put_header(&mut head, b"Httpws-From", from);
    }
    Ok(ServiceHead {
        lines: head,
        length,
        is_head: method == "HEAD",
        upgrade: http1::upgrade(req.headers).map(<[u8]>::to_vec),
    })
}

/// The request as the service gets it, for a body that came whole in the message:
/// [`service_head`], then `Content-Length` (once, the agent's) and the body de-framed.
pub(super) fn service_request(
    request: &Incoming,
    config: &ServiceConfig,
    max_body_bytes: usize,
) -> Result<(Bytes, Bytes, bool), String> {
    let ServiceHead {
        lines: mut head,
        length,
        is_head,
        ..
    } = service_head(request, config)?;
    let body = http1::message_body(&request.message, request.head_len, length, max_body_bytes)
        .map_err(|_| "body does not match its framing")?;
    if !body.is_empty() || length != http1::BodyLength::Empty {
        write::put_content_length(&mut head, body.len() as u64);
    }
    head.extend_from_slice(b"\r\n");
    Ok((head.freeze(), body, is_head))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::endpoint::service::url::ServiceUrl;

    fn incoming(msg: &'static [u8]) -> Incoming {
        let head_len = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        Incoming {
            generation: 1,
            cseq: 7,
            message: Bytes::from_static(msg),
            head_len,
            body: None,
            _unanswered: None,
        }
    }

    fn config(preserve_host: bool) -> ServiceConfig {
        ServiceConfig {
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
}
