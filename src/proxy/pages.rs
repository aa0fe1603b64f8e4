//! The proxy's own pages, for requests whose `Host` is the proxy itself: the JavaScript
//! client at `/httpws.js` (`--serve-client`) and the WebRTC signaling demo at `/webrtc/`
//! (`--serve-demo`). Compiled into the binary, so the proxy stays one file.
//!
//! Every answer here, the 404s and redirects included, carries [`PAGE_SECURITY_HEADERS`]: a
//! page served from the proxy's own origin may open WebSockets to it without
//! `--allowed-origins`, so it must run only its own scripts, talk only to this origin, and
//! never be framed by another site (a framed demo has the proxy's origin too, and a user
//! clicking in it would act under their own name).

use bytes::Bytes;

use crate::proto::answer_error::AnswerError;
use crate::proto::http1::write;
use crate::proxy::config::ProxyConfig;

const CLIENT_JS: &str = include_str!("../../clients/js/httpws.js");
const DEMO_HTML: &str = include_str!("../../examples/webrtc/index.html");
const DEMO_JS: &str = include_str!("../../examples/webrtc/demo.js");
const DEMO_CSS: &str = include_str!("../../examples/webrtc/demo.css");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The headers on everything the proxy serves for its own host (docs/protocol.md §10):
/// scripts, styles and connections from this origin only (CSP3's `'self'` covers `ws:`/`wss:`
/// to the same host), no inline script, no plugins, no `<base>`, no form posts anywhere, no
/// framing by any page (`frame-ancestors` and, for older browsers, `X-Frame-Options`), no
/// `Referer` that would carry a page's query to another site, no MIME sniffing. `data:`
/// images only for the demo's empty favicon.
pub const PAGE_SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'self'; \
     connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'\r\n\
     X-Frame-Options: DENY\r\n\
     Referrer-Policy: no-referrer\r\n\
     X-Content-Type-Options: nosniff\r\n";

/// `/httpws.js` is also there for other sites' pages to import (`--serve-client`): a module
/// script from another origin needs CORS. The demo's files are for the demo alone.
const CORS_ANY: &str = "Access-Control-Allow-Origin: *\r\n";

/// A response for the ingress to write: head without its blank line, and the body.
#[derive(Debug)]
pub struct Page {
    /// Status line and headers, each line ending in CRLF, `Content-Length` included.
    pub head: Vec<u8>,
    /// The file or the reason; `None` for a redirect, which has no body.
    pub body: Option<Bytes>,
}

/// One file the proxy serves.
struct File {
    content_type: &'static str,
    text: &'static str,
    /// Extra header lines (each ending in CRLF).
    extra: &'static str,
}

/// Answer `method path` addressed to the proxy itself.
pub fn answer(config: &ProxyConfig, method: &str, path: &str) -> Page {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let client = config.serve_client || config.serve_demo;
    let demo = |content_type, text| File {
        content_type,
        text,
        extra: "",
    };
    let found = match path {
        "/httpws.js" if client => File {
            content_type: JAVASCRIPT,
            text: CLIENT_JS,
            extra: CORS_ANY,
        },
        "/webrtc/" | "/webrtc/index.html" if config.serve_demo => demo(HTML, DEMO_HTML),
        "/webrtc/demo.js" if config.serve_demo => demo(JAVASCRIPT, DEMO_JS),
        "/webrtc/demo.css" if config.serve_demo => demo(CSS, DEMO_CSS),
        "/webrtc" if config.serve_demo => return redirect("/webrtc/"),
        _ => {
            return error(
                AnswerError::UnknownAddress,
                "this Host is the httpws proxy itself: name an endpoint in Host (<address> or \
                 <address>.<domain>) to reach it",
            );
        }
    };
    if method != "GET" && method != "HEAD" {
        return error(
            AnswerError::MethodNotAllowed,
            "only GET and HEAD are served here",
        );
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\n{PAGE_SECURITY_HEADERS}{}",
        found.content_type,
        found.text.len(),
        found.extra,
    );
    Page {
        head: head.into_bytes(),
        body: Some(Bytes::from_static(found.text.as_bytes())),
    }
}

fn redirect(to: &str) -> Page {
    Page {
        head: format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\n\
             {PAGE_SECURITY_HEADERS}"
        )
        .into_bytes(),
        body: None,
    }
}

fn error(error: AnswerError, reason: &str) -> Page {
    let mut head = bytes::BytesMut::new();
    write::put_answer_head(&mut head, error, None, reason.len() + 1);
    head.extend_from_slice(PAGE_SECURITY_HEADERS.as_bytes());
    Page {
        head: head.to_vec(),
        body: Some(Bytes::from(format!("{reason}\n"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(serve_client: bool, serve_demo: bool) -> ProxyConfig {
        ProxyConfig {
            serve_client,
            serve_demo,
            ..ProxyConfig::default()
        }
    }

    fn head_of(page: &Page) -> String {
        String::from_utf8(page.head.clone()).expect("an ASCII head")
    }

    /// The header lines of `page` named `name` (case-insensitively), values trimmed.
    fn values(page: &Page, name: &str) -> Vec<String> {
        head_of(page)
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    #[test]
    fn every_answer_carries_the_security_headers_once() {
        let demo = config(false, true);
        let plain = config(false, false);
        for (cfg, method, path, status) in [
            (&demo, "GET", "/webrtc/", "200"),
            (&demo, "GET", "/webrtc/index.html?name=bob", "200"),
            (&demo, "GET", "/webrtc/demo.js", "200"),
            (&demo, "HEAD", "/webrtc/demo.css", "200"),
            (&demo, "GET", "/httpws.js", "200"),
            (&demo, "GET", "/webrtc", "301"),
            (&demo, "GET", "/favicon.ico", "404"),
            (&demo, "POST", "/webrtc/", "405"),
            (&plain, "GET", "/webrtc/", "404"),
            (&plain, "GET", "/httpws.js", "404"),
        ] {
            let page = answer(cfg, method, path);
            let head = head_of(&page);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status} ")),
                "{path}: {head}"
            );
            let csp = values(&page, "content-security-policy");
            assert_eq!(csp.len(), 1, "{path}: {head}");
            for directive in [
                "default-src 'self'",
                "connect-src 'self'",
                "frame-ancestors 'none'",
            ] {
                assert!(csp[0].contains(directive), "{path}: {}", csp[0]);
            }
            assert!(!csp[0].contains("unsafe-inline"), "{path}: {}", csp[0]);
            assert_eq!(values(&page, "x-frame-options"), ["DENY"], "{path}");
            assert_eq!(values(&page, "referrer-policy"), ["no-referrer"], "{path}");
            assert_eq!(
                values(&page, "x-content-type-options"),
                ["nosniff"],
                "{path}"
            );
            assert!(
                head.ends_with("\r\n") && !head.ends_with("\r\n\r\n"),
                "{path}"
            );
        }
    }

    #[test]
    fn only_the_client_is_for_other_origins() {
        let demo = config(true, true);
        let cors = |path| values(&answer(&demo, "GET", path), "access-control-allow-origin");
        assert_eq!(cors("/httpws.js"), ["*"]);
        assert!(cors("/webrtc/").is_empty());
        assert!(cors("/webrtc/demo.js").is_empty());
        assert!(cors("/nothing").is_empty());
        // --serve-client alone serves the client, not the demo.
        let client = config(true, false);
        assert!(head_of(&answer(&client, "GET", "/httpws.js")).starts_with("HTTP/1.1 200 "));
        assert!(head_of(&answer(&client, "GET", "/webrtc/")).starts_with("HTTP/1.1 404 "));
    }

    #[test]
    fn the_demo_page_has_no_inline_script_or_style() {
        // The CSP forbids them: an inline one would not run (and would tempt 'unsafe-inline').
        let lower = DEMO_HTML.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline <style> in index.html");
        assert!(
            !lower.contains(" style="),
            "a style attribute in index.html"
        );
        let handler = lower.match_indices(" on").any(|(at, _)| {
            let name: String = lower[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            !name.is_empty() && lower[at + 3 + name.len()..].starts_with('=')
        });
        assert!(!handler, "an inline event handler (on…=) in index.html");
        for script in lower.split("<script").skip(1) {
            let tag_end = script.find('>').expect("a closed <script> tag");
            assert!(script[..tag_end].contains("src="), "an inline <script>");
        }
    }
}
