//! The service's response as a tunnel message: hop-by-hop headers and every line a hop of
//! ours writes removed, the body with `Content-Length`.

use bytes::{Bytes, BytesMut};

use crate::endpoint::http1::{self, BodyLength};
use crate::endpoint::tunnel_headers;
use crate::proto::http1::write;

/// A response's head as read from the service (interim `1xx` ones skipped), parsed once:
/// what the tunnel gets of it is built as it is read ([`tunnel_lines`]).
#[derive(Debug)]
pub struct ResponseHead {
    /// The status line and the headers that cross into the tunnel (without framing or the
    /// blank line, which [`tunnel_response`] and [`tunnel_stream_head`] add); taken when the
    /// answer is sent.
    pub lines: BytesMut,
    /// The `Content-Length` the service declared, as it wrote it.
    pub declared: Option<Bytes>,
    /// A `101`'s `Upgrade` value.
    pub upgrade: Option<Bytes>,
    /// The status.
    pub status: u16,
    /// How its body is framed.
    pub length: BodyLength,
    /// Its framing allows the connection to carry another request after it.
    pub keep: bool,
}

/// What the tunnel gets of a service's response head, from its one parse: the status line
/// and the headers that cross (hop-by-hop headers and the headers the proxy and agent set,
/// `CSeq`, `Httpws-From`, `Httpws-Error`, `Httpws-Target-Error` in any spelling, removed, so
/// an `Httpws-Error` from this side is always the agent's own), and the two values the answer
/// needs later.
pub(super) struct TunnelLines<'m> {
    pub(super) lines: BytesMut,
    /// The declared `Content-Length`.
    pub(super) declared: Option<&'m [u8]>,
    /// A `101`'s `Upgrade`.
    pub(super) upgrade: Option<&'m [u8]>,
}

/// The lines of `resp` (a head of `head_len` bytes) that cross into the tunnel
/// ([`TunnelLines`]).
pub(super) fn tunnel_lines<'m>(
    resp: &'m httparse::Response<'_, 'm>,
    head_len: usize,
) -> TunnelLines<'m> {
    let status = resp.code.unwrap_or(0);
    let listed = http1::connection_listed(resp.headers);
    // Room for the framing line the answer adds, too.
    let mut lines = BytesMut::with_capacity(head_len + 32);
    write::put_status_line(&mut lines, status, resp.reason.unwrap_or("").as_bytes());
    let mut declared = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            declared = Some(h.value);
        }
        if tunnel_headers::is_hop_written(h.name.as_bytes()) || http1::stops_here(h.name, &listed) {
            continue;
        }
        write::put_header(&mut lines, h.name.as_bytes(), h.value);
    }
    let upgrade = if status == 101 {
        http1::upgrade(resp.headers)
    } else {
        None
    };
    TunnelLines {
        lines,
        declared,
        upgrade,
    }
}

/// The service's response as a tunnel message, its body whole (the session adds CSeq): the
/// head's lines with `Content-Length`.
pub(super) fn tunnel_response(
    response: &mut ResponseHead,
    body: Bytes,
    is_head: bool,
) -> (BytesMut, Bytes) {
    let mut head = std::mem::take(&mut response.lines);
    let declared = response.declared.as_deref();
    http1::put_response_length(&mut head, response.status, is_head, declared, body.len());
    (head, body)
}

/// The service's response head for a body that streams: the same lines as
/// [`tunnel_response`]'s, without framing (the session adds the stream line and the
/// declared length). A `101` keeps its `Upgrade` and says `Connection: Upgrade`.
pub(super) fn tunnel_stream_head(response: &mut ResponseHead) -> BytesMut {
    let mut head = std::mem::take(&mut response.lines);
    if response.status == 101 {
        if let Some(protocol) = &response.upgrade {
            write::put_header(&mut head, b"Connection", b"Upgrade");
            write::put_header(&mut head, b"Upgrade", protocol);
        }
    }
    head
}
