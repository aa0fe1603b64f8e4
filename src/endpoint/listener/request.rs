//! A local client's request, checked and rewritten for the tunnel: the target endpoint from
//! an absolute-form URL or `Host`, the path in origin form, and none of the headers that
//! stop at this hop or that a hop of ours writes.

use bytes::BytesMut;

use super::config::ListenerConfig;
use super::local_error::LocalError;
use super::web_pages::refuse_web_pages;
use crate::endpoint::http1::{self, BodyLength, MAX_HEADERS};
use crate::endpoint::scheme;
use crate::endpoint::tunnel_headers;
use crate::proto::http1::{hop, parse, write};

/// What the head said, kept past the point where the head's bytes are released.
pub(super) struct Parsed {
    /// Request line and headers for the tunnel, without Content-Length, CSeq, blank line.
    pub(super) head: BytesMut,
    /// How the body that follows the head is framed.
    pub(super) body: BodyLength,
    /// A `HEAD` request: its answer has no body, whatever its head says.
    pub(super) is_head: bool,
    /// The client asked to close after this request (or speaks HTTP/1.0 without keep-alive).
    pub(super) close: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub(super) expect_continue: bool,
    /// The client speaks HTTP/1.0: a body of unknown length goes to it close-delimited
    /// (it knows no chunked coding).
    pub(super) http10: bool,
    /// The `Upgrade` value when the client asks to switch protocols (`Connection: upgrade`):
    /// kept out of `head`, which is the request as it goes when it does not.
    pub(super) upgrade: Option<Vec<u8>>,
}

/// Check the request head and build the tunnel's version of it. `streams`: the tunnel
/// carries streams (protocol 2), so a body larger than `max_body_bytes` can stream rather
/// than be refused `413`.
pub(super) fn parse_request(
    head: &[u8],
    config: &ListenerConfig,
    streams: bool,
) -> Result<Parsed, LocalError> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut req = httparse::Request::new(&mut []);
    match parse::request(&mut req, head, &mut headers) {
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
    if !streams && matches!(body, BodyLength::Length(n) if n > config.max_body_bytes as u64) {
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
    http1::put_request_line(&mut out, method, path);
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
            || tunnel_headers::is_hop_written(h.name.as_bytes())
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
        http10: version == 0,
        upgrade: http1::upgrade(req.headers).map(<[u8]>::to_vec),
    })
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
    let Some(rest) = scheme::strip(target, "http://") else {
        return Err(LocalError::new(
            400,
            "request target must be /path or an http:// URL",
        ));
    };
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proto::answer_error::AnswerError;

    fn config() -> ListenerConfig {
        ListenerConfig {
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
        let parsed = parse_request(head, &config(), false).ok().unwrap();
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
        let parsed = parse_request(head, &config(), false).ok().unwrap();
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
            let answer = parse_request(head.as_bytes(), &config(), false).err();
            assert_eq!(
                answer.map(|a| (a.status, a.close)),
                Some((501, true)),
                "{coding}"
            );
        }
    }

    #[test]
    fn host_request_and_errors() {
        let parsed = parse_request(b"GET /a HTTP/1.0\r\nHost: bob\r\n\r\n", &config(), false)
            .ok()
            .unwrap();
        assert!(parsed.head.starts_with(b"GET /a HTTP/1.1\r\nHost: bob\r\n"));
        assert!(parsed.close, "HTTP/1.0 closes by default");
        let status = |h: &[u8]| parse_request(h, &config(), false).err().map(|e| e.status);
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
    fn web_pages_cannot_drive_the_listener() {
        let verdict = |h: &[u8], allowed: &[&str]| {
            let mut config = config();
            config.allowed_origins = allowed.iter().map(|s| s.to_string()).collect();
            parse_request(h, &config, false)
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
        // DNS rebinding: the page's own name, with the listener's port, in origin form.
        let rebound = b"GET /secret HTTP/1.1\r\nHost: rebind.evil.example:8081\r\n\r\n";
        assert_eq!(verdict(rebound, &[]), forbidden);
        // The same authority in a proxy-style request is a deliberate client's choice.
        let proxied = b"GET http://bob:8081/ HTTP/1.1\r\nHost: bob:8081\r\n\r\n";
        assert_eq!(verdict(proxied, &[]), None);
        let twice = b"GET /a HTTP/1.1\r\nHost: bob\r\nOrigin: a\r\nOrigin: b\r\n\r\n";
        assert_eq!(verdict(twice, &["*"]).map(|v| v.0), Some(400));
    }
}
