//! The tunnel's whole response, written back to the local client: de-framed and re-sent
//! with `Content-Length`; an interim or unusable one answered `502 bad-response` instead. The
//! head lines a client gets from any tunnel response, whole or streamed, are chosen here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::local_error::{LocalError, write_local_error};
use crate::endpoint::http1::{self, Http1Error, MAX_HEADERS};
use crate::endpoint::timed_write::{within, write_two};
use crate::endpoint::tunnel_headers;
use crate::proto::answer_error::AnswerError;
use crate::proto::http1::{parse, write};

/// Most room made up front for the head written to the client (it grows if need be).
const HEAD_CAPACITY_BYTES: usize = 4096;

/// How to write a tunnel response to the client.
pub(super) struct Reply {
    /// It answers a `HEAD`: no body follows, whatever the head says.
    pub(super) is_head: bool,
    /// The client asked to close after it (or the connection cannot go on after it).
    pub(super) close: bool,
    /// The client speaks HTTP/1.0 (no chunked coding).
    pub(super) http10: bool,
    /// Largest body passed on (the tunnel's).
    pub(super) max_body_bytes: usize,
    /// Time the client has to take it.
    pub(super) limit: Duration,
}

/// Write the tunnel's response to the client. Returns whether to close afterwards.
///
/// `Httpws-Error` (an answer the proxy or an agent made) and `Httpws-Target-Error` (the
/// proxy's name for a target's own `Httpws-Error`) are passed on, whatever the response's
/// `Connection` lists; every other `Httpws-*` line and `CSeq`, in any spelling, is not.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &Bytes,
    reply: &Reply,
) -> std::io::Result<bool> {
    let mut headers = parse::header_slots::<MAX_HEADERS>();
    let mut resp = httparse::Response::new(&mut []);
    let parsed = match parse::response(&mut resp, message, &mut headers) {
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
    let mut head = BytesMut::with_capacity(message.len().min(HEAD_CAPACITY_BYTES));
    let declared_length = put_client_head(&mut head, &resp);
    http1::put_response_length(
        &mut head,
        status,
        reply.is_head,
        declared_length,
        body.len(),
    );
    if reply.close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    within(reply.limit, write_two(stream, &head, &body)).await?;
    Ok(reply.close)
}

/// The status line and header lines a client gets for a tunnel response head, without the
/// framing lines (`Content-Length`, `Transfer-Encoding`) and without the blank line; returns
/// the `Content-Length` the head declared. A `101` keeps its `Upgrade` and says
/// `Connection: Upgrade`: the connection becomes the upgraded protocol's.
pub(super) fn put_client_head<'m>(
    head: &mut BytesMut,
    resp: &httparse::Response<'_, 'm>,
) -> Option<&'m [u8]> {
    let status = resp.code.unwrap_or(0);
    let listed = http1::connection_listed(resp.headers);
    write::put_status_line(head, status, resp.reason.unwrap_or("").as_bytes());
    let mut declared_length = None;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if h.name.eq_ignore_ascii_case("content-length") {
            declared_length = Some(h.value);
        }
        if tunnel_headers::is_error_marker(name) {
            write::put_header(head, name, h.value);
            continue;
        }
        if tunnel_headers::is_tunnel_line(name) || http1::stops_here(h.name, &listed) {
            continue;
        }
        write::put_header(head, name, h.value);
    }
    if status == 101 {
        if let Some(protocol) = http1::upgrade(resp.headers) {
            write::put_header(head, b"Connection", b"Upgrade");
            write::put_header(head, b"Upgrade", protocol);
        }
    }
    declared_length
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// What the client reads when the agent writes `message` from the tunnel to it.
    async fn written(message: &[u8], is_head: bool) -> String {
        let (mut client, mut agent) = tokio::io::duplex(64 * 1024);
        let reply = Reply {
            is_head,
            close: false,
            http10: false,
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
}
