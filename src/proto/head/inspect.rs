//! [`inspect`]: finding, in one relayed message, the head's end, the CSeq, the Host (requests)
//! or status (responses), the body's framing, and the lines the proxy must rewrite.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::BytesMut;
use httparse::Header;

use crate::proto::http1::chunked;
use crate::proto::http1::decimal::parse_u64;
use crate::proto::http1::framing::{self, Framing};
use crate::proto::http1::header_name::{self, HTTPWS_TARGET_ERROR};
use crate::proto::http1::{hop, parse};
use crate::proto::stream::{STREAM_HEADER, STREAM_HEADER_VALUE};

/// Default limit on the head's size, up to and including its blank line.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Default limit on the number of header lines in one head.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// More header lines than this to rewrite (the CSeq line, `Httpws-From` lines, a response's
/// `Httpws-Error` lines) make the head a bad request. At most 8: `HeadInfo::renames` is a
/// bit per line.
pub const MAX_REMOVED_LINES: usize = 8;
/// Hop-by-hop lines (Connection, Keep-Alive, ...) remembered in a response, for relaying it to
/// a plain HTTP client; a response with more cannot be relayed there (see
/// [`write_http_head`](crate::proto::head::write_http_head)).
pub const MAX_HOP_LINES: usize = 4;

/// Limits applied by [`inspect`].
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Largest accepted head, up to and including the "\r\n\r\n" that ends it.
    pub max_head_bytes: usize,
    /// Most header lines accepted in one head.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// Whether a message is a request or a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// Starts with a request line (anything not starting with "HTTP/").
    Request,
    /// Starts with an "HTTP/1.x" status line.
    Response,
}

/// A line to drop from the head, as byte offsets into the message (`end` is past its LF).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

impl Span {
    pub(super) fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// Where things are inside one message (byte offsets into it).
#[derive(Clone, Debug)]
pub struct HeadInfo {
    /// Request or response, from the first line.
    pub kind: HeadKind,
    /// Offset of the body: just after the blank line ending the head.
    pub head_len: usize,
    /// The CSeq value (decimal u64).
    pub cseq: u64,
    /// Request only: the Host header's value, trimmed (None for responses).
    pub host: Option<Range<u32>>,
    /// Response only: the status code (0 for requests).
    pub status: u16,
    /// Lines to rewrite, in message order: the CSeq line, every Httpws-From line (in any
    /// spelling, see [`header_name`]), and a response's Httpws-Error lines.
    drops: [Span; MAX_REMOVED_LINES],
    n_drops: u8,
    /// Which entry of `drops` is the CSeq line (rewritten in place rather than dropped).
    pub(super) cseq_drop: u8,
    /// A bit per entry of `drops` that is renamed rather than dropped: a target's own
    /// `Httpws-Error` becomes `Httpws-Target-Error`, so that it cannot pass its answer off
    /// as one the proxy made.
    renames: u8,
    /// Content-Length / Transfer-Encoding as checked by [`inspect`].
    pub framing: Framing,
    /// Response only: hop-by-hop lines, kept between endpoints but dropped towards a plain
    /// HTTP client (whose connection the proxy manages itself).
    hops: [Span; MAX_HOP_LINES],
    n_hops: u8,
    /// More hop-by-hop lines than `hops` holds.
    pub(super) hops_overflow: bool,
    /// A stream head (`Httpws-Stream: body`, protocol 2): the body follows as data messages.
    pub stream: bool,
    /// The `Httpws-Stream` line, dropped when the body is assembled into a whole message for
    /// a protocol-1 peer.
    pub(super) stream_line: Span,
}

impl HeadInfo {
    /// The Host header's value (requests only), trimmed, port included if the sender gave one.
    pub fn host<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        let r = self.host.as_ref()?;
        msg.get(r.start as usize..r.end as usize)
    }

    /// The Host header's value without a trailing `:port` (docs/protocol.md §2: a port is
    /// allowed and ignored).
    pub fn host_name<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        let host = self.host(msg)?;
        match host.iter().rposition(|&b| b == b':') {
            Some(i) if host[i + 1..].iter().all(u8::is_ascii_digit) => Some(&host[..i]),
            _ => Some(host),
        }
    }

    pub(super) fn drops(&self) -> &[Span] {
        &self.drops[..self.n_drops as usize]
    }

    pub(super) fn is_renamed(&self, drop: usize) -> bool {
        self.renames & (1 << drop) != 0
    }

    /// Write entry `drop` of `drops` again if it is renamed (as `Httpws-Target-Error`, its
    /// value kept byte for byte); a dropped line writes nothing.
    pub(super) fn write_renamed(&self, dst: &mut BytesMut, msg: &[u8], drop: usize, span: Span) {
        if self.is_renamed(drop) {
            let value_start = span.start as usize + header_name::HTTPWS_ERROR.len();
            dst.extend_from_slice(HTTPWS_TARGET_ERROR);
            dst.extend_from_slice(&msg[value_start..span.end as usize]);
        }
    }

    pub(super) fn hops(&self) -> &[Span] {
        &self.hops[..self.n_hops as usize]
    }

    /// The description of a request head written by the proxy itself (public ingress), whose
    /// Host value, CSeq line and `Httpws-Stream` line (a stream head) are where the writer
    /// put them: saves parsing it again.
    pub fn for_built_request(
        head_len: usize,
        host: Range<u32>,
        cseq_line: Range<u32>,
        framing: Framing,
        stream_line: Option<Range<u32>>,
    ) -> HeadInfo {
        let mut drops = [Span::default(); MAX_REMOVED_LINES];
        drops[0] = Span {
            start: cseq_line.start,
            end: cseq_line.end,
        };
        HeadInfo {
            kind: HeadKind::Request,
            head_len,
            cseq: 0,
            host: Some(host),
            status: 0,
            drops,
            n_drops: 1,
            cseq_drop: 0,
            renames: 0,
            framing,
            hops: [Span::default(); MAX_HOP_LINES],
            n_hops: 0,
            hops_overflow: false,
            stream: stream_line.is_some(),
            stream_line: stream_line.map_or_else(Span::default, |line| Span {
                start: line.start,
                end: line.end,
            }),
        }
    }
}

/// Why a head cannot be relayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// No "\r\n\r\n" within the message: a message must carry its whole head.
    #[error("message has no complete HTTP head (no blank line)")]
    NoHead,
    /// The head is longer than `max_head_bytes` or has more than `max_headers` headers.
    #[error("HTTP head exceeds the size or header-count limit")]
    TooLarge {
        /// The CSeq, when one could be read within the limits.
        cseq: Option<u64>,
    },
    /// The head breaks HTTP/1.1 syntax or the httpws rules (Host, Httpws-From lines).
    #[error("malformed HTTP head: {reason}")]
    Malformed {
        /// The CSeq, when one could be read despite the fault.
        cseq: Option<u64>,
        /// What is wrong, for the `400 bad-request` or `:error bad-message` reason.
        reason: &'static str,
    },
    /// No CSeq header.
    #[error("missing CSeq header")]
    MissingCseq,
    /// CSeq repeated, or its value is not a plain decimal u64.
    #[error("CSeq must appear once, as a decimal u64")]
    BadCseq,
}

impl HeadError {
    /// The CSeq recovered from a head that is otherwise unusable, so the proxy can answer
    /// 400 bad-request instead of the connection-level `:error bad-message`.
    pub fn cseq(&self) -> Option<u64> {
        match *self {
            HeadError::TooLarge { cseq } | HeadError::Malformed { cseq, .. } => cseq,
            HeadError::NoHead | HeadError::MissingCseq | HeadError::BadCseq => None,
        }
    }
}

/// Inspect the head at the front of `msg` (the whole message is present).
///
/// Request: method SP target SP HTTP/1.x; exactly one Host (missing, empty or duplicate →
/// `Malformed` carrying the CSeq); exactly one CSeq whose value is a decimal u64 (missing →
/// `MissingCseq`; unparsable or duplicate → `BadCseq`). Response: HTTP/1.x status line and
/// exactly one valid CSeq. Header names match case-insensitively. Lines must end in CRLF.
/// A head longer than `max_head_bytes` or with more than `max_headers` headers → `TooLarge`;
/// no complete head within the message → `NoHead`.
pub fn inspect(msg: &[u8], limits: &HeadLimits) -> Result<HeadInfo, HeadError> {
    // Offsets are stored as u32, so the head can never be allowed past u32::MAX.
    let cap = limits.max_head_bytes.min(u32::MAX as usize);
    let truncated = msg.len() > cap;
    let window = &msg[..msg.len().min(cap)];
    let max = limits.max_headers;
    // Uninitialized ([`parse`]): saves clearing 2 KiB of header slots on every message.
    let mut stack = parse::header_slots::<DEFAULT_MAX_HEADERS>();
    let mut heap = Vec::new();
    let slots = if max <= DEFAULT_MAX_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize_with(max, MaybeUninit::uninit);
        &mut heap[..]
    };
    if is_response(window) {
        inspect_response(window, msg, truncated, slots)
    } else {
        inspect_request(window, msg, truncated, slots)
    }
}

/// Responses start with "HTTP/" (httparse skips leading empty lines, so do we).
fn is_response(window: &[u8]) -> bool {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    window[start..].starts_with(b"HTTP/")
}

fn inspect_request<'b>(
    window: &'b [u8],
    msg: &[u8],
    truncated: bool,
    buf: &mut [MaybeUninit<Header<'b>>],
) -> Result<HeadInfo, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let parsed = parse::request(&mut req, window, buf);
    let head_len = parse_status(window, truncated, parsed)?;
    let target = req.path.map(str::as_bytes);
    let mut info = scan_headers(window, head_len, HeadKind::Request, 0, req.headers)?;
    info.framing = check_framing(
        &info,
        &msg[head_len..],
        HeadKind::Request,
        target,
        info.host(window),
        req.headers,
    )?;
    Ok(info)
}

fn inspect_response<'b>(
    window: &'b [u8],
    msg: &[u8],
    truncated: bool,
    buf: &mut [MaybeUninit<Header<'b>>],
) -> Result<HeadInfo, HeadError> {
    let mut resp = httparse::Response::new(&mut []);
    let parsed = parse::response(&mut resp, window, buf);
    let head_len = parse_status(window, truncated, parsed)?;
    let status = resp.code.unwrap_or(0);
    let mut info = scan_headers(window, head_len, HeadKind::Response, status, resp.headers)?;
    info.framing = check_framing(
        &info,
        &msg[head_len..],
        HeadKind::Response,
        None,
        None,
        resp.headers,
    )?;
    Ok(info)
}

/// Strict message framing (RFC 9112 §6.3, [`framing::declared`]): refuse, never repair,
/// anything two parsers could read differently. Requests: the body matches its
/// Content-Length exactly; a chunked body is complete with nothing after it; no body without
/// either header; an absolute-form target must name the Host. Responses: never more body than
/// the Content-Length (less is a HEAD response's right).
fn check_framing(
    info: &HeadInfo,
    body: &[u8],
    kind: HeadKind,
    target: Option<&[u8]>,
    host: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Result<Framing, HeadError> {
    let malformed = |reason| HeadError::Malformed {
        cseq: Some(info.cseq),
        reason,
    };
    let declared = framing::declared(headers).map_err(|e| malformed(e.reason()))?;
    if info.stream {
        // The body follows as data messages: the head travels alone, and says at most how
        // long the body will be (data messages carry its bytes, never chunk framing).
        return match declared {
            Framing::Chunked => Err(malformed(
                "a stream head has no Transfer-Encoding (data messages carry the body)",
            )),
            _ if !body.is_empty() => Err(malformed("a stream head carries no body")),
            _ => Ok(declared),
        };
    }
    match kind {
        HeadKind::Request => {
            let authority = target.and_then(absolute_authority);
            if authority.is_some_and(|a| !host.is_some_and(|h| h.eq_ignore_ascii_case(a))) {
                return Err(malformed(
                    "absolute-form target names another host than Host",
                ));
            }
            match declared {
                Framing::Length(n) if n != body.len() as u64 => {
                    Err(malformed("body length differs from Content-Length"))
                }
                Framing::Chunked if !chunked::is_complete(body) => Err(malformed(
                    "chunked body is malformed or has bytes after its end",
                )),
                Framing::None if !body.is_empty() => Err(malformed(
                    "body without Content-Length or Transfer-Encoding",
                )),
                _ => Ok(declared),
            }
        }
        HeadKind::Response => match declared {
            Framing::Length(n) if (body.len() as u64) > n => {
                Err(malformed("body longer than Content-Length"))
            }
            _ => Ok(declared),
        },
    }
}

/// The authority of an absolute-form request target (`http://bob:80/x` → `bob:80`).
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    let scheme_end = target.windows(3).position(|w| w == b"://")?;
    if !target[..scheme_end].iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Turns httparse's verdict into the head length or the error the proxy answers with.
fn parse_status(
    window: &[u8],
    truncated: bool,
    parsed: httparse::Result<usize>,
) -> Result<usize, HeadError> {
    let malformed = |reason| HeadError::Malformed {
        cseq: scan_cseq(window),
        reason,
    };
    match parsed {
        Ok(httparse::Status::Complete(n)) => {
            let head = &window[..n];
            // httparse also accepts bare LF line ends. Targets may parse differently, and a
            // line the proxy did not see as a header could smuggle a forged Httpws-From, so
            // only CRLF is relayed. httparse rejects any CR not followed by LF, so a bare LF
            // exists exactly when there are more LFs than CRs.
            if lf_minus_cr(head) != 0 || !head.ends_with(b"\r\n\r\n") {
                return Err(malformed("bare LF line ending"));
            }
            Ok(n)
        }
        // Ran out of bytes: either the cap cut the head off, or the message has no end of head.
        Ok(httparse::Status::Partial) if truncated => Err(HeadError::TooLarge {
            cseq: scan_cseq(window),
        }),
        Ok(httparse::Status::Partial) => Err(HeadError::NoHead),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge {
            cseq: scan_cseq(window),
        }),
        Err(e) => Err(malformed(match e {
            httparse::Error::HeaderName => "invalid header name",
            httparse::Error::HeaderValue => "invalid header value",
            httparse::Error::NewLine => "invalid line ending",
            httparse::Error::Status => "invalid status line",
            httparse::Error::Token => "invalid request line",
            httparse::Error::Version => "not HTTP/1.x",
            httparse::Error::TooManyHeaders => "too many headers",
        })),
    }
}

/// Number of LF bytes minus number of CR bytes. Counted per 64-byte chunk into an i8 (which
/// cannot overflow there) because that form vectorizes: ~20× faster than two `filter().count()`
/// passes, and this runs over every relayed head.
pub(super) fn lf_minus_cr(bytes: &[u8]) -> isize {
    let mut total = 0isize;
    for chunk in bytes.chunks(64) {
        let mut d = 0i8;
        for &b in chunk {
            d += i8::from(b == b'\n') - i8::from(b == b'\r');
        }
        total += isize::from(d);
    }
    total
}

/// Picks CSeq, Host and Httpws-From out of a parsed head; `msg` is what httparse parsed.
fn scan_headers(
    msg: &[u8],
    head_len: usize,
    kind: HeadKind,
    status: u16,
    headers: &[Header<'_>],
) -> Result<HeadInfo, HeadError> {
    let base = msg.as_ptr() as usize;
    let mut cseq = None;
    let mut cseq_count = 0u32;
    let mut cseq_drop = 0u8;
    let mut host: Option<Range<u32>> = None;
    let mut host_count = 0u32;
    let mut drops = [Span::default(); MAX_REMOVED_LINES];
    let mut n_drops = 0usize;
    let mut renames = 0u8;
    let mut too_many_drops = false;
    let mut hops = [Span::default(); MAX_HOP_LINES];
    let mut n_hops = 0usize;
    let mut hops_overflow = false;
    let mut stream_line: Option<Span> = None;
    let mut stream_count = 0u32;
    let mut stream_value_ok = true;

    for h in headers {
        let name = h.name.as_bytes();
        // Dispatching on the length first keeps the common case (any other header) to one
        // compare; names are ASCII tokens, so an ASCII case fold is the right comparison.
        // `Httpws-From` and `Httpws-Error` are matched in every spelling a CGI-style
        // service would take for them (`Httpws_From`).
        let which = match name.len() {
            4 if name.eq_ignore_ascii_case(b"cseq") => Wanted::Cseq,
            4 if name.eq_ignore_ascii_case(b"host") => Wanted::Host,
            11 if header_name::same_name(name, header_name::HTTPWS_FROM) => Wanted::From,
            12 if kind == HeadKind::Response
                && header_name::same_name(name, header_name::HTTPWS_ERROR) =>
            {
                Wanted::Error
            }
            13 if header_name::same_name(name, STREAM_HEADER) => Wanted::Stream,
            _ if kind == HeadKind::Response && hop::is_hop_by_hop(name) => Wanted::Hop,
            _ => continue,
        };
        match which {
            Wanted::Host => {
                host_count += 1;
                // httparse trims OWS around values; an empty value may not point into `msg`.
                if !h.value.is_empty() {
                    let start = (h.value.as_ptr() as usize)
                        .checked_sub(base)
                        .ok_or_else(internal)?;
                    let end = start + h.value.len();
                    if end > head_len {
                        return Err(internal());
                    }
                    host = Some(start as u32..end as u32);
                }
            }
            Wanted::Cseq | Wanted::From | Wanted::Error | Wanted::Hop | Wanted::Stream => {
                // The name slice always points into `msg`; the line runs to the next LF.
                let start = (name.as_ptr() as usize)
                    .checked_sub(base)
                    .ok_or_else(internal)?;
                let name_end = start + name.len();
                let lf = msg
                    .get(name_end..head_len)
                    .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                    .ok_or_else(internal)?;
                let span = Span {
                    start: start as u32,
                    end: (name_end + lf + 1) as u32,
                };
                if which == Wanted::Stream {
                    stream_count += 1;
                    stream_value_ok &= h.value.eq_ignore_ascii_case(STREAM_HEADER_VALUE);
                    stream_line = Some(span);
                    continue;
                }
                if which == Wanted::Hop {
                    if n_hops < MAX_HOP_LINES {
                        hops[n_hops] = span;
                        n_hops += 1;
                    } else {
                        hops_overflow = true;
                    }
                    continue;
                }
                if which == Wanted::Cseq {
                    cseq_count += 1;
                    cseq = parse_u64(h.value);
                    cseq_drop = n_drops as u8;
                }
                if n_drops < MAX_REMOVED_LINES {
                    if which == Wanted::Error {
                        renames |= 1 << n_drops;
                    }
                    drops[n_drops] = span;
                    n_drops += 1;
                } else {
                    too_many_drops = true;
                }
            }
        }
    }

    let cseq = match (cseq_count, cseq) {
        (0, _) => return Err(HeadError::MissingCseq),
        (1, Some(v)) => v,
        _ => return Err(HeadError::BadCseq),
    };
    let malformed = |reason| {
        Err(HeadError::Malformed {
            cseq: Some(cseq),
            reason,
        })
    };
    if too_many_drops {
        return malformed("too many CSeq, Httpws-From or Httpws-Error lines");
    }
    if stream_count > 1 || !stream_value_ok {
        return malformed("Httpws-Stream must appear once, as `Httpws-Stream: body`");
    }
    if kind == HeadKind::Request {
        match (host_count, &host) {
            (0, _) => return malformed("missing Host"),
            (1, None) => return malformed("empty Host"),
            (1, Some(_)) => {}
            _ => return malformed("duplicate Host"),
        }
    } else {
        host = None;
    }
    Ok(HeadInfo {
        kind,
        head_len,
        cseq,
        host,
        status,
        drops,
        n_drops: n_drops as u8,
        cseq_drop,
        renames,
        framing: Framing::None,
        hops,
        n_hops: n_hops as u8,
        hops_overflow,
        stream: stream_line.is_some(),
        stream_line: stream_line.unwrap_or_default(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Cseq,
    Host,
    From,
    /// A response's own `Httpws-Error` (renamed on the way).
    Error,
    Hop,
    /// `Httpws-Stream` (in any spelling: a twin must not pass for a plain header).
    Stream,
}

/// httparse's slices always lie within the buffer and end before a LF, so this is unreachable;
/// it exists so a broken invariant becomes a refused message rather than a panic.
fn internal() -> HeadError {
    HeadError::Malformed {
        cseq: None,
        reason: "internal: header outside head",
    }
}

/// Tolerant CSeq recovery for heads httparse refused: complete lines only (a value cut off by
/// the size cap must not yield a wrong number), start line skipped, stops at the end of the
/// head, and gives up if more than one line is named CSeq.
fn scan_cseq(window: &[u8]) -> Option<u64> {
    let mut found = None;
    let mut seen_start_line = false;
    let mut rest = window;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let raw = &rest[..nl];
        rest = &rest[nl + 1..];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !seen_start_line {
            // Leading empty lines are skipped like httparse does; the next one is the start line.
            seen_start_line = !line.is_empty();
            continue;
        }
        if line.is_empty() {
            break;
        }
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"cseq:") {
            if found.is_some() {
                return None;
            }
            found = Some(parse_u64(trim_ows(&line[5..])));
        }
    }
    found.flatten()
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}
