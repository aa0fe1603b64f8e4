//! The library's HTTP conversions: an `http::Request` into a tunnel message and the
//! response back, an incoming tunnel request into an `http::Request` and the handler's
//! response back, each with its body whole or streaming. Each drops what the agent's
//! listener and service side drop: hop-by-hop headers, and every line a hop of ours writes,
//! in any spelling.

use bytes::{Bytes, BytesMut};

use super::errors::RequestError;
use crate::endpoint::body::Body;
use crate::endpoint::http1::{self, Http1Error, MAX_HEADERS};
use crate::endpoint::session::{Incoming, TunnelResponse};
use crate::endpoint::tunnel_headers;
use crate::proto::http1::{framing, parse, write};

/// Request line and headers for the tunnel (the session adds CSeq and the blank line),
/// with the `Content-Length` of a whole body of `body_len` bytes.
pub(super) fn request_head(
    parts: &http::request::Parts,
    body_len: usize,
) -> Result<BytesMut, RequestError> {
    let mut head = request_lines(parts)?;
    if body_len > 0 || !matches!(parts.method, http::Method::GET | http::Method::HEAD) {
        write::put_content_length(&mut head, body_len as u64);
    }
    Ok(head)
}

/// Request line and headers for a request whose body streams (the session adds the stream
/// line, the declared length, CSeq and the blank line).
pub(super) fn request_lines(parts: &http::request::Parts) -> Result<BytesMut, RequestError> {
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
    let target = if path.is_empty() { "/" } else { path };
    http1::put_request_line(&mut head, parts.method.as_str(), target);
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
    Ok(head)
}

/// A response from the tunnel as an `http::Response` whose body is whole or streams.
pub(super) fn tunnel_response(
    response: TunnelResponse,
    request_was_head: bool,
    max_body_bytes: usize,
) -> Result<http::Response<Body>, Http1Error> {
    let TunnelResponse { message, body, .. } = response;
    let Some(inbound) = body else {
        return Ok(parse_response(&message, request_was_head, max_body_bytes)?.map(Body::from));
    };
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    match parse::response(&mut resp, &message, &mut headers)? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => return Err(Http1Error::Malformed("incomplete head")),
    }
    let status = resp.code.unwrap_or(0);
    http1::refuse_interim(status)?;
    let mut builder = http::Response::builder().status(status);
    let mut declared = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            declared = Some(h.value);
        }
        if http1::is_hop_by_hop(h.name) || tunnel_headers::is_tunnel_line(h.name.as_bytes()) {
            continue;
        }
        builder = builder.header(h.name, h.value);
    }
    let body = if framing::response_is_bodiless(status, request_was_head) {
        // No body may follow: the stream is not wanted (reset `cancel`).
        drop(inbound);
        Body::empty()
    } else {
        Body::tunnel(inbound)
    };
    if let Some(length) = declared {
        builder = builder.header(http::header::CONTENT_LENGTH, length);
    }
    builder
        .body(body)
        .map_err(|_| Http1Error::Malformed("response head not representable"))
}

/// A response message from the tunnel as an `http::Response` (framing headers dropped, the
/// body de-framed; `Content-Length` restored for the body's real length).
pub(super) fn parse_response(
    message: &Bytes,
    request_was_head: bool,
    max_body_bytes: usize,
) -> Result<http::Response<Bytes>, Http1Error> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match parse::response(&mut resp, message, &mut headers)? {
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
    // An interim status was refused above.
    if !request_was_head && status != 204 {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    builder
        .body(body)
        .map_err(|_| Http1Error::Malformed("response head not representable"))
}

/// An incoming tunnel request as an `http::Request`: the proxy's `Httpws-From` stamp kept
/// (once, last), every other line a hop of ours writes dropped in any spelling, as the agent
/// does for its service.
pub(super) fn parse_incoming(
    incoming: &Incoming,
    max_body_bytes: usize,
) -> Result<http::Request<Bytes>, Http1Error> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut req = httparse::Request::new(&mut []);
    parse::request(&mut req, incoming_head(incoming), &mut headers)?;
    let length = http1::request_body_length(req.headers)?;
    let body = http1::message_body(&incoming.message, incoming.head_len, length, max_body_bytes)?;
    let mut builder = request_builder(&req);
    if let Some(from) = tunnel_headers::proxy_stamp(req.headers) {
        builder = builder.header("httpws-from", from);
    }
    builder
        .body(body)
        .map_err(|_| Http1Error::Malformed("request head not representable"))
}

/// An incoming tunnel request as an `http::Request` whose body is whole (in the message)
/// or streams (taken out of `incoming`), with the headers [`parse_incoming`] keeps.
pub(super) fn incoming_request(
    incoming: &mut Incoming,
    max_body_bytes: usize,
) -> Result<http::Request<Body>, Http1Error> {
    let Some(inbound) = incoming.body.take() else {
        return Ok(parse_incoming(incoming, max_body_bytes)?.map(Body::from));
    };
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut req = httparse::Request::new(&mut []);
    parse::request(&mut req, incoming_head(incoming), &mut headers)?;
    let mut builder = request_builder(&req);
    if let Some(length) = inbound.declared_len() {
        builder = builder.header(http::header::CONTENT_LENGTH, length);
    }
    if let Some(from) = tunnel_headers::proxy_stamp(req.headers) {
        builder = builder.header("httpws-from", from);
    }
    builder
        .body(Body::tunnel(inbound))
        .map_err(|_| Http1Error::Malformed("request head not representable"))
}

/// The head of an incoming tunnel request.
fn incoming_head(incoming: &Incoming) -> &[u8] {
    &incoming.message[..incoming.head_len]
}

/// An `http::Request` builder with a parsed tunnel request's method, target and the headers
/// that cross: hop-by-hop ones and every line a hop of ours writes are dropped (the proxy's
/// stamp is added back by the caller, last).
fn request_builder(req: &httparse::Request<'_, '_>) -> http::request::Builder {
    let mut builder = http::Request::builder()
        .method(req.method.unwrap_or("GET"))
        .uri(req.path.unwrap_or("/"));
    for h in req.headers.iter() {
        if http1::is_hop_by_hop(h.name) || tunnel_headers::is_hop_written(h.name.as_bytes()) {
            continue;
        }
        builder = builder.header(h.name, h.value);
    }
    builder
}

/// Status line and headers of a handler's response (the session adds CSeq).
pub(super) fn response_head(response: http::Response<Bytes>) -> (BytesMut, Bytes) {
    let (parts, body) = response.into_parts();
    let mut head = response_lines(&parts);
    if !framing::response_is_bodiless(parts.status.as_u16(), false) {
        write::put_content_length(&mut head, body.len() as u64);
    }
    (head, body)
}

/// Status line and headers of a handler's response, without any framing line (for a body
/// that streams, or after which the caller writes its own `Content-Length`).
pub(super) fn response_lines(parts: &http::response::Parts) -> BytesMut {
    let mut head = BytesMut::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("Unknown");
    write::put_status_line(&mut head, parts.status.as_u16(), reason.as_bytes());
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if http1::is_hop_by_hop(name) || tunnel_headers::is_hop_written(name.as_bytes()) {
            continue;
        }
        write::put_header(&mut head, name.as_bytes(), value.as_bytes());
    }
    head
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
    fn twins_stay_out_of_what_the_library_sends() {
        // A caller's request and a handler's response carry no line a hop of ours sets, in
        // any spelling (`_` for `-`), as the agent's listener and service side do.
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
    }

    #[test]
    fn twins_are_dropped_from_what_the_library_receives() {
        // A response keeps only the two error markers of the family; a request to a handler
        // keeps only the proxy's stamp, the last `Httpws-From` line.
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
            body: None,
            _unanswered: None,
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
