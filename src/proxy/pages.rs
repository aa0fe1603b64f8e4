//! The proxy's own pages, for requests whose `Host` is the proxy itself: the JavaScript
//! client at `/httpws.js` (`--serve-client`) and the WebRTC signaling demo at `/webrtc/`
//! (`--serve-demo`). Compiled into the binary, so the proxy stays one file.

use bytes::Bytes;

use crate::proto::head;
use crate::proxy::config::ProxyConfig;

const CLIENT_JS: &str = include_str!("../../clients/js/httpws.js");
const DEMO_HTML: &str = include_str!("../../examples/webrtc/index.html");
const DEMO_JS: &str = include_str!("../../examples/webrtc/demo.js");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// A response for the ingress to write: head without its blank line, and the body.
#[derive(Debug)]
pub struct Page {
    pub head: Vec<u8>,
    pub body: Option<Bytes>,
}

/// Answer `method path` addressed to the proxy itself.
pub fn answer(config: &ProxyConfig, method: &str, path: &str) -> Page {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let client = config.serve_client || config.serve_demo;
    let found = match path {
        "/httpws.js" if client => Some((JAVASCRIPT, CLIENT_JS)),
        "/webrtc/" | "/webrtc/index.html" if config.serve_demo => Some((HTML, DEMO_HTML)),
        "/webrtc/demo.js" if config.serve_demo => Some((JAVASCRIPT, DEMO_JS)),
        "/webrtc" if config.serve_demo => return redirect("/webrtc/"),
        _ => None,
    };
    let Some((content_type, text)) = found else {
        return error(
            404,
            "unknown-address",
            "this Host is the httpws proxy itself: name an endpoint in Host (<address> or \
             <address>.<domain>) to reach it",
        );
    };
    if method != "GET" && method != "HEAD" {
        return error(405, "refused", "only GET and HEAD are served here");
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
         Access-Control-Allow-Origin: *\r\n",
        text.len()
    );
    Page {
        head: head.into_bytes(),
        body: Some(Bytes::from_static(text.as_bytes())),
    }
}

fn redirect(to: &str) -> Page {
    Page {
        head: format!("HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\n")
            .into_bytes(),
        body: None,
    }
}

fn error(status: u16, token: &str, reason: &str) -> Page {
    let mut head = bytes::BytesMut::new();
    head::write_http_error_head(&mut head, status, token, reason);
    Page {
        head: head.to_vec(),
        body: Some(Bytes::from(format!("{reason}\n"))),
    }
}
