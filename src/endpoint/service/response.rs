//! The service's response as a tunnel message: hop-by-hop headers and every line a hop of
//! ours writes removed, the body with `Content-Length`.

use bytes::{Bytes, BytesMut};

use crate::endpoint::http1::{self, MAX_HEADERS};
use crate::endpoint::tunnel_headers;
use crate::proto::http1::write;

/// The service's response as a tunnel message: hop-by-hop headers and the headers the proxy
/// and agent set (`CSeq`, `Httpws-From`, `Httpws-Error`, `Httpws-Target-Error`, in any
/// spelling) removed, so an `Httpws-Error` from this side is always the agent's own; the
/// body with Content-Length (the session adds CSeq).
pub(super) fn tunnel_response(
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
    let mut head = BytesMut::with_capacity(raw_head.len() + 32);
    let declared = put_tunnel_lines(&mut head, &resp);
    let status = resp.code.unwrap_or(0);
    http1::put_response_length(&mut head, status, is_head, declared, body.len());
    Ok((head, body))
}

/// The service's response head for a body that streams: the same lines as
/// [`tunnel_response`]'s, without framing (the session adds the stream line and the
/// declared length). A `101` keeps its `Upgrade` and says `Connection: Upgrade`.
pub(super) fn tunnel_stream_head(raw_head: &[u8]) -> Result<BytesMut, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(raw_head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed response head"),
    }
    let mut head = BytesMut::with_capacity(raw_head.len() + 32);
    put_tunnel_lines(&mut head, &resp);
    if resp.code == Some(101) {
        if let Some(protocol) = http1::upgrade(resp.headers) {
            write::put_header(&mut head, b"Connection", b"Upgrade");
            write::put_header(&mut head, b"Upgrade", protocol);
        }
    }
    Ok(head)
}

/// Status line and the headers that cross into the tunnel; returns the declared
/// `Content-Length`.
fn put_tunnel_lines<'m>(
    head: &mut BytesMut,
    resp: &httparse::Response<'_, 'm>,
) -> Option<&'m [u8]> {
    let status = resp.code.unwrap_or(0);
    let listed = http1::connection_listed(resp.headers);
    write::put_status_line(head, status, resp.reason.unwrap_or("").as_bytes());
    let mut declared = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            declared = Some(h.value);
        }
        if tunnel_headers::is_hop_written(h.name.as_bytes()) || http1::stops_here(h.name, &listed) {
            continue;
        }
        write::put_header(head, h.name.as_bytes(), h.value);
    }
    declared
}

#[cfg(test)]
mod tests {
    use super::*;

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
