//! Agent HTTP target: the endpoint agent's HTTP/1.1 reading (`endpoint::http1`) over
//! arbitrary bytes. A connection is read as the agent's listener (requests) or pool
//! (responses) does it: `read_head` from a reader that hands the bytes out in reads of
//! arbitrary sizes (sometimes after a `Pending`), the body length from the headers, then
//! `read_body`, message after message. The same bytes are also taken as a whole tunnel
//! message (`message_body`) and as a bare chunked body, decoded whole and read by read
//! (`ChunkedDecoder`), which must agree. Every head is checked against the transfer-coding
//! rule (only `chunked` alone is ever de-framed), and the bytes are also taken as a request
//! target for the service side's base-path rule (`endpoint::service::path`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use httpws::endpoint::http1::{self, BodyLength, Http1Error, MAX_HEADERS};
use httpws::endpoint::service::path;
use httpws::proto::http1::chunked::ChunkedDecoder;
use httpws::proto::http1::hop;
use tokio::io::{AsyncRead, ReadBuf};

use super::input::{Params, Splitter, block_on};

/// `max_head_bytes` values.
const MAX_HEAD: [usize; 8] = [0, 1, 4, 16, 64, 256, 1024, 16 * 1024];
/// `max_body_bytes` values.
const MAX_BODY: [usize; 8] = [0, 1, 2, 16, 100, 1024, 64 * 1024, 1 << 20];
/// Most messages read from one connection (a bound on the work per input).
const MAX_MESSAGES: usize = 64;
/// `--serve` base paths the input is taken as a target under.
const BASES: [&str; 4] = ["", "/api", "/a/b", "/x;y"];

/// Input: a mode byte (bit 0: responses rather than requests; bit 1: the request was HEAD;
/// bits 2–3: the base path for the target check; bit 4: the method there is OPTIONS), bytes
/// for `max_head_bytes` and `max_body_bytes`, a read-size seed, then the bytes.
pub fn agent_http(data: &[u8]) {
    let mut params = Params::new(data);
    let mode = params.byte();
    let max_head = params.pick(&MAX_HEAD);
    let max_body = params.pick(&MAX_BODY);
    let seed = params.byte();
    let input = params.rest();
    let responses = mode & 1 == 1;
    let was_head = mode & 2 == 2;

    connection(input, responses, was_head, max_head, max_body, seed);
    tunnel_message(input, max_body);
    chunked(input, max_body, seed);
    let method = if mode & 16 == 16 { "OPTIONS" } else { "GET" };
    service_target(input, method, BASES[usize::from(mode >> 2) & 3]);
}

/// An `AsyncRead` over a slice, in reads of a [`Splitter`]'s sizes, now and then `Pending`
/// first (having woken the task, as a socket that becomes readable would).
struct Reader<'a> {
    data: &'a [u8],
    split: Splitter,
    pended: bool,
}

impl AsyncRead for Reader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pended && this.split.flip() {
            this.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.pended = false;
        let n = this.split.next_len(this.data.len().min(out.remaining()));
        let (now, later) = this.data.split_at(n);
        out.put_slice(now);
        this.data = later;
        Poll::Ready(Ok(()))
    }
}

/// The body length the agent derives from a head, and the hop-by-hop helpers it runs on the
/// headers. `None` when the agent would refuse the head.
fn body_length(head: &[u8], responses: bool, was_head: bool) -> Option<BodyLength> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if responses {
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(head).ok()?;
        let status = resp.code?;
        hop_by_hop(resp.version, resp.headers);
        let length = http1::response_body_length(status, was_head, resp.headers);
        let bodiless = was_head || (100..200).contains(&status) || status == 204 || status == 304;
        if !bodiless {
            coding_rule(resp.headers, &length);
        }
        length.ok()
    } else {
        let mut req = httparse::Request::new(&mut headers);
        complete(req.parse(head))?;
        hop_by_hop(req.version, req.headers);
        let _ = http1::single_header(req.headers, "host");
        let length = http1::request_body_length(req.headers);
        coding_rule(req.headers, &length);
        length.ok()
    }
}

/// Only a single `Transfer-Encoding: chunked` is de-framed; any other lone coding is
/// refused as unsupported, never read some other way (its label would be lost).
fn coding_rule(headers: &[httparse::Header<'_>], length: &Result<BodyLength, Http1Error>) {
    let codings: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|h| h.value.trim_ascii())
        .collect();
    let has_length = headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("content-length"));
    if matches!(length, Ok(BodyLength::Chunked)) {
        assert!(
            codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked") && !has_length,
            "de-framed as chunked: {codings:?}"
        );
    }
    if let [coding] = codings[..] {
        if !has_length && !coding.eq_ignore_ascii_case(b"chunked") {
            assert!(
                matches!(length, Err(Http1Error::UnsupportedCoding)),
                "coding {coding:?} read as {length:?}"
            );
        }
    }
}

fn complete(parsed: httparse::Result<usize>) -> Option<usize> {
    match parsed {
        Ok(httparse::Status::Complete(n)) => Some(n),
        _ => None,
    }
}

fn hop_by_hop(version: Option<u8>, headers: &[httparse::Header<'_>]) {
    let listed = http1::connection_listed(headers);
    assert!(listed.len() <= MAX_HEADERS);
    for h in headers {
        let _ = http1::stops_here(h.name, &listed);
    }
    let _ = hop::wants_close(version.unwrap_or(1), headers);
}

/// Messages read off one connection until it ends or fails.
fn connection(
    input: &[u8],
    responses: bool,
    was_head: bool,
    max_head: usize,
    max_body: usize,
    seed: u8,
) {
    let mut io = Reader {
        data: input,
        split: Splitter::new(seed),
        pended: false,
    };
    let mut buf = BytesMut::new();
    for _ in 0..MAX_MESSAGES {
        let head_len = match block_on(http1::read_head(&mut io, &mut buf, max_head)) {
            Ok(Some(n)) => n,
            Ok(None) => {
                assert!(
                    buf.is_empty() && io.data.is_empty(),
                    "Ok(None) before the end"
                );
                return;
            }
            Err(_) => return,
        };
        assert!(head_len <= buf.len() && head_len <= max_head);
        assert!(buf[..head_len].ends_with(b"\r\n\r\n"));
        assert!(
            !buf[..head_len - 1].windows(4).any(|w| w == b"\r\n\r\n"),
            "the head ends at the first blank line"
        );
        let Some(length) = body_length(&buf[..head_len], responses, was_head) else {
            return;
        };
        let _ = buf.split_to(head_len);
        let body = match block_on(http1::read_body(&mut io, &mut buf, length, max_body)) {
            Ok(body) => body,
            Err(_) => return,
        };
        check_body(&body, length, max_body);
        if length == BodyLength::UntilClose {
            assert!(buf.is_empty() && io.data.is_empty(), "read until close");
            return;
        }
    }
}

fn check_body(body: &[u8], length: BodyLength, max_body: usize) {
    assert!(
        body.len() <= max_body,
        "body of {} > {max_body}",
        body.len()
    );
    match length {
        BodyLength::Empty => assert!(body.is_empty()),
        BodyLength::Length(n) => assert_eq!(body.len() as u64, n),
        BodyLength::Chunked | BodyLength::UntilClose => {}
    }
}

/// The input as one whole tunnel message (the service side): its body de-framed.
fn tunnel_message(input: &[u8], max_body: usize) {
    let msg = Bytes::copy_from_slice(input);
    let responses = msg.starts_with(b"HTTP/");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (head_len, length) = if responses {
        let mut resp = httparse::Response::new(&mut headers);
        let Some(n) = complete(resp.parse(&msg)) else {
            return;
        };
        let status = resp.code.unwrap_or(0);
        let Ok(length) = http1::response_body_length(status, false, resp.headers) else {
            return;
        };
        (n, length)
    } else {
        let mut req = httparse::Request::new(&mut headers);
        let Some(n) = complete(req.parse(&msg)) else {
            return;
        };
        let Ok(length) = http1::request_body_length(req.headers) else {
            return;
        };
        (n, length)
    };
    let Ok(body) = http1::message_body(&msg, head_len, length, max_body) else {
        return;
    };
    match length {
        BodyLength::Empty => assert!(body.is_empty()),
        BodyLength::Length(n) => {
            assert_eq!(body.len() as u64, n);
            assert_eq!(&body[..], &msg[head_len..]);
        }
        BodyLength::UntilClose => assert_eq!(&body[..], &msg[head_len..]),
        BodyLength::Chunked => assert!(body.len() <= max_body),
    }
}

/// What decoding a chunked body came to: finished or not, the body, and the bytes left after
/// it (or still undecoded); `None` for an error.
type Decoded = Option<(bool, Vec<u8>, Vec<u8>)>;

/// The input as a bare chunked body, whole and read by read: same verdict, same body.
fn chunked(input: &[u8], max_body: usize, seed: u8) {
    let whole = decode_chunked(input, max_body, Splitter::whole());
    let split = decode_chunked(input, max_body, Splitter::new(seed));
    assert_eq!(
        whole, split,
        "chunked decoding depends on how the bytes were split"
    );
}

fn decode_chunked(input: &[u8], max_body: usize, mut split: Splitter) -> Decoded {
    let mut decoder = ChunkedDecoder::default();
    let mut src = BytesMut::new();
    let mut body = BytesMut::new();
    let mut rest = input;
    loop {
        let n = split.next_len(rest.len());
        src.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        match decoder.decode(&mut src, &mut body, max_body) {
            Ok(done) => {
                assert!(body.len() <= max_body);
                if done || rest.is_empty() {
                    let mut left = src.to_vec();
                    left.extend_from_slice(rest);
                    return Some((done, body.to_vec(), left));
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return None;
            }
        }
    }
}

/// The input as a request target under `base`: what the service gets stays under the base,
/// holds no dot segment however a service splits or decodes it, keeps the query, and is
/// left as it is when normalised again.
fn service_target(input: &[u8], method: &str, base: &str) {
    let Ok(target) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(out) = path::service_target(method, target, base) else {
        return;
    };
    if out == "*" {
        assert!(target == "*" && method == "OPTIONS" && base.is_empty());
        return;
    }
    let rest = out
        .strip_prefix(base)
        .unwrap_or_else(|| panic!("{out:?} is not under {base:?}"));
    assert!(rest.starts_with('/'), "{out:?} leaves {base:?}");
    let (path, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    let original_query = target.find('?').map_or("", |i| &target[i..]);
    assert_eq!(query, original_query, "the query changed");
    // An oracle written apart from the rule: every separator a service might split at.
    let lowered = path.to_ascii_lowercase();
    for part in lowered
        .split(['/', '\\'])
        .flat_map(|p| p.split("%2f"))
        .flat_map(|p| p.split("%5c"))
    {
        let part = part.split(';').next().unwrap_or(part).replace("%2e", ".");
        assert!(part != "." && part != "..", "{out:?} holds a dot segment");
    }
    assert_eq!(
        path::service_target(method, rest, base).as_deref(),
        Ok(out.as_str()),
        "normalising again changes {out:?}"
    );
}
