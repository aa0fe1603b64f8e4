//! Head inspector target: `head::inspect` under varied limits. When a message is accepted,
//! what it reports must lie inside the head, and the relay's rewrite must hold what
//! `write_head` and `rewritten_head_len` promise: `write_head` appends exactly
//! `rewritten_head_len` bytes, and the rewritten message inspects back to the new CSeq with
//! the same kind, status, Host and body, with exactly one `Httpws-From` in any spelling (none
//! without one to stamp) and, in a response, no `Httpws-Error` in any spelling. A rewritten
//! request must also be one the target agent's egress can de-frame (`endpoint::http1`): the
//! proxy and the agent must agree on where a relayed body ends.

use bytes::{Bytes, BytesMut};
use httpws::endpoint::http1::{self, BodyLength, Http1Error};
use httpws::proto::address::HostAddress;
use httpws::proto::head::{
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS, HeadInfo, HeadKind, HeadLimits, inspect,
    rewritten_head_len, write_head,
};
use httpws::proto::http1::header_name;

use super::input::Params;

/// Header lines of `head` whose name is `canonical` in any spelling ([`header_name::same_name`]).
fn lines_named(head: &[u8], canonical: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| line.iter().position(|&b| b == b':').map(|i| &line[..i]))
        .filter(|name| header_name::same_name(name, canonical))
        .count()
}

/// `max_head_bytes` values, from inside the request line to "no limit".
const MAX_HEAD_BYTES: [usize; 8] = [
    0,
    16,
    64,
    256,
    4096,
    DEFAULT_MAX_HEAD_BYTES,
    1 << 20,
    usize::MAX,
];
/// `max_headers` values, on both sides of the stack/heap switch at `DEFAULT_MAX_HEADERS`.
const MAX_HEADERS: [usize; 8] = [
    0,
    1,
    2,
    4,
    16,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADERS + 1,
    200,
];
/// `Httpws-From` values the relay may stamp (virtual addresses, never CR or LF).
const FROMS: [Option<&str>; 4] = [
    None,
    Some("alice"),
    Some("x"),
    Some("a-long-peer.example.internal"),
];

/// Input: a byte for `max_head_bytes`, one for `max_headers`, one for the rewrite's choices,
/// then the message (head and body).
pub fn head(data: &[u8]) {
    let mut params = Params::new(data);
    let limits = HeadLimits {
        max_head_bytes: params.pick(&MAX_HEAD_BYTES),
        max_headers: params.pick(&MAX_HEADERS),
    };
    let knobs = params.byte();
    let msg = params.rest();
    match inspect(msg, &limits) {
        Ok(info) => accepted(msg, &info, &limits, knobs),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = e.cseq();
        }
    }
}

fn accepted(msg: &[u8], info: &HeadInfo, limits: &HeadLimits, knobs: u8) {
    let head_len = info.head_len;
    assert!(head_len <= msg.len() && head_len <= limits.max_head_bytes);
    assert!(msg[..head_len].ends_with(b"\r\n\r\n"));
    match info.kind {
        HeadKind::Request => {
            assert_eq!(info.status, 0);
            let host = info.host(msg).expect("an accepted request has a Host");
            assert!(!host.is_empty());
            let range = info.host.clone().expect("host range");
            assert!(range.end as usize <= head_len);
            let name = info.host_name(msg).expect("host name");
            assert!(host.starts_with(name));
            let _ = HostAddress::from_host_header(host);
        }
        HeadKind::Response => {
            assert!(info.host.is_none() && info.host(msg).is_none());
            assert!(info.status <= 999);
        }
    }

    let from = FROMS[usize::from(knobs) % FROMS.len()];
    let odd = u64::from(knobs).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (knobs % 64);
    for (cseq, from) in [
        (info.cseq, None),
        (odd, from),
        (0, FROMS[3]),
        (u64::MAX, FROMS[1]),
    ] {
        rewrite(msg, info, limits, cseq, from);
    }
}

fn rewrite(msg: &[u8], info: &HeadInfo, limits: &HeadLimits, cseq: u64, from: Option<&str>) {
    // write_head appends: start from bytes already there.
    let mut dst = BytesMut::from(&b"prefix"[..]);
    write_head(&mut dst, msg, info, cseq, from);
    assert_eq!(&dst[..6], b"prefix");
    let written = &dst[6..];
    assert_eq!(
        written.len(),
        rewritten_head_len(msg, info, cseq, from),
        "write_head and rewritten_head_len disagree"
    );
    assert!(written.ends_with(b"\r\n\r\n"));
    // The caller's identity leaves exactly as stamped: no twin of Httpws-From in any spelling
    // survives, and a target's own Httpws-Error never passes for the proxy's.
    assert_eq!(
        lines_named(written, header_name::HTTPWS_FROM),
        usize::from(from.is_some()),
        "Httpws-From lines after the rewrite: {:?}",
        String::from_utf8_lossy(written)
    );
    if info.kind == HeadKind::Response {
        assert_eq!(lines_named(written, header_name::HTTPWS_ERROR), 0);
    }

    // What the next hop receives: the new head and the untouched body. It may have one header
    // more (Httpws-From) and be longer, so the limits are relaxed for it.
    let mut again = written.to_vec();
    again.extend_from_slice(&msg[info.head_len..]);
    let relaxed = HeadLimits {
        max_head_bytes: usize::MAX,
        max_headers: limits.max_headers + 1,
    };
    let back = inspect(&again, &relaxed).unwrap_or_else(|e| {
        panic!(
            "rewritten head is refused: {e:?}\n{:?}",
            String::from_utf8_lossy(written)
        )
    });
    assert_eq!(back.cseq, cseq);
    assert_eq!(back.kind, info.kind);
    assert_eq!(back.status, info.status);
    assert_eq!(back.head_len, written.len());
    assert_eq!(back.host(&again), info.host(msg));
    if back.kind == HeadKind::Request {
        egress_agrees(&again, back.head_len);
    }
}

/// What the target agent's egress does with a relayed request (`service_request`): parse the
/// head, take the body length from it, de-frame the body. None of it may fail for a request
/// the proxy accepted, short of the agent's own limits.
fn egress_agrees(msg: &[u8], head_len: usize) {
    let mut headers = [httparse::EMPTY_HEADER; http1::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&msg[..head_len]) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head_len),
        // More header lines than the agent takes: a limit, not a disagreement.
        Err(httparse::Error::TooManyHeaders) => return,
        other => panic!("the agent cannot parse a head the proxy relays: {other:?}"),
    }
    let length = http1::request_body_length(req.headers)
        .unwrap_or_else(|e| panic!("the agent refuses the framing the proxy accepted: {e}"));
    let message = Bytes::copy_from_slice(msg);
    match http1::message_body(&message, head_len, length, msg.len()) {
        Ok(body) => match length {
            BodyLength::Empty => assert!(message[head_len..].is_empty() && body.is_empty()),
            BodyLength::Length(_) | BodyLength::UntilClose => {
                assert_eq!(&body[..], &message[head_len..]);
            }
            BodyLength::Chunked => assert!(body.len() < message.len() - head_len),
        },
        // The agent's own bounds on chunk-size lines and trailers.
        Err(Http1Error::Malformed("chunk-size line too long" | "trailer too large")) => {}
        Err(e) => panic!("the agent cannot de-frame a body the proxy relays: {e}"),
    }
}
