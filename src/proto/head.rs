//! HTTP/1.1 head inspection and rewriting for relayed messages (DESIGN §2 "Messages").
//!
//! Every WebSocket message carries one HTTP/1.1 message. The proxy looks only at the head:
//! [`inspect`] finds the head's end, the CSeq, the Host (requests) or status (responses) and the
//! lines the proxy must drop, and [`write_head`] copies the head with the CSeq renumbered and
//! `Httpws-From` stamped. The body is never looked at or copied here: callers forward
//! `&msg[info.head_len..]` as is. Everything is pure and allocation-free on the hot path.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::BytesMut;
use httparse::Header;

use crate::proto::header_name::{self, HTTPWS_TARGET_ERROR};

/// Default limit on the head's size, up to and including its blank line.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Default limit on the number of header lines in one head.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// More header lines than this to rewrite (the CSeq line, `Httpws-From` lines, a response's
/// `Httpws-Error` lines) make the head a bad request. At most 8: `HeadInfo::renames` is a
/// bit per line.
pub const MAX_REMOVED_LINES: usize = 8;
/// Hop-by-hop lines (Connection, Keep-Alive, ...) remembered in a response, for relaying it to
/// a plain HTTP client; a response with more cannot be relayed there (see [`write_http_head`]).
pub const MAX_HOP_LINES: usize = 4;

const CSEQ_PREFIX: &[u8] = b"CSeq: ";
const FROM_PREFIX: &[u8] = b"Httpws-From: ";
const CRLF: &[u8] = b"\r\n";

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
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// How a message's body is delimited, from its head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither header: a request has no body; a response's body is the rest of the message.
    #[default]
    None,
    Length(u64),
    Chunked,
}

/// Where things are inside one message (byte offsets into it).
#[derive(Clone, Debug)]
pub struct HeadInfo {
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
    cseq_drop: u8,
    /// A bit per entry of `drops` that is renamed rather than dropped: a target's own
    /// `Httpws-Error` becomes `Httpws-Target-Error`, so that it cannot pass its answer off
    /// as one the proxy made.
    renames: u8,
    /// Content-Length / Transfer-Encoding as checked by [`inspect`].
    pub framing: BodyFraming,
    /// Response only: hop-by-hop lines, kept between endpoints but dropped towards a plain
    /// HTTP client (whose connection the proxy manages itself).
    hops: [Span; MAX_HOP_LINES],
    n_hops: u8,
    /// More hop-by-hop lines than `hops` holds.
    hops_overflow: bool,
}

impl HeadInfo {
    /// The Host header's value (requests only), trimmed, port included if the sender gave one.
    pub fn host<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        let r = self.host.as_ref()?;
        msg.get(r.start as usize..r.end as usize)
    }

    /// The Host header's value without a trailing `:port` (DESIGN: the port is ignored).
    pub fn host_name<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        let host = self.host(msg)?;
        match host.iter().rposition(|&b| b == b':') {
            Some(i) if host[i + 1..].iter().all(u8::is_ascii_digit) => Some(&host[..i]),
            _ => Some(host),
        }
    }

    fn drops(&self) -> &[Span] {
        &self.drops[..self.n_drops as usize]
    }

    fn is_renamed(&self, drop: usize) -> bool {
        self.renames & (1 << drop) != 0
    }

    /// Write entry `drop` of `drops` again if it is renamed (as `Httpws-Target-Error`, its
    /// value kept byte for byte); a dropped line writes nothing.
    fn write_renamed(&self, dst: &mut BytesMut, msg: &[u8], drop: usize, span: Span) {
        if self.is_renamed(drop) {
            let value_start = span.start as usize + header_name::HTTPWS_ERROR.len();
            dst.extend_from_slice(HTTPWS_TARGET_ERROR);
            dst.extend_from_slice(&msg[value_start..span.end as usize]);
        }
    }

    fn hops(&self) -> &[Span] {
        &self.hops[..self.n_hops as usize]
    }

    /// The description of a request head written by the proxy itself (public ingress), whose
    /// Host value and CSeq line are where the writer put them: saves parsing it again.
    pub fn for_built_request(
        head_len: usize,
        host: Range<u32>,
        cseq_line: Range<u32>,
        framing: BodyFraming,
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
    TooLarge { cseq: Option<u64> },
    /// The head breaks HTTP/1.1 syntax or the httpws rules (Host, Httpws-From lines).
    #[error("malformed HTTP head: {reason}")]
    Malformed {
        cseq: Option<u64>,
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
    if is_response(window) {
        // httparse has no uninit-headers entry point for responses, so these are initialized.
        if max <= DEFAULT_MAX_HEADERS {
            let mut buf = [httparse::EMPTY_HEADER; DEFAULT_MAX_HEADERS];
            inspect_response(window, msg, truncated, &mut buf[..max])
        } else {
            inspect_response(
                window,
                msg,
                truncated,
                &mut vec![httparse::EMPTY_HEADER; max],
            )
        }
    } else if max <= DEFAULT_MAX_HEADERS {
        // Uninitialized: saves clearing 2 KiB of header slots on every request.
        let mut buf = [const { MaybeUninit::<Header<'_>>::uninit() }; DEFAULT_MAX_HEADERS];
        inspect_request(window, msg, truncated, &mut buf[..max])
    } else {
        let mut buf = Vec::with_capacity(max);
        buf.resize_with(max, MaybeUninit::uninit);
        inspect_request(window, msg, truncated, &mut buf)
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
    let parsed = req.parse_with_uninit_headers(window, buf);
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
    buf: &mut [Header<'b>],
) -> Result<HeadInfo, HeadError> {
    let mut resp = httparse::Response::new(buf);
    let parsed = resp.parse(window);
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

/// Strict message framing (RFC 9112 §6.3): refuse, never repair, anything two parsers could
/// read differently. Requests: Content-Length and Transfer-Encoding never together; one plain
/// decimal Content-Length that the body matches exactly; Transfer-Encoding only `chunked`,
/// with a complete chunked body and nothing after it; no body without either header; an
/// absolute-form target must name the Host. Responses: the same header rules, and never more
/// body than the Content-Length (less is a HEAD response's right).
fn check_framing(
    info: &HeadInfo,
    body: &[u8],
    kind: HeadKind,
    target: Option<&[u8]>,
    host: Option<&[u8]>,
    headers: &[Header<'_>],
) -> Result<BodyFraming, HeadError> {
    let malformed = |reason| HeadError::Malformed {
        cseq: Some(info.cseq),
        reason,
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in headers {
        let name = h.name.as_bytes();
        if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return Err(malformed("duplicate Content-Length"));
            }
            length = Some(parse_u64(h.value).ok_or_else(|| malformed("invalid Content-Length"))?);
        } else if name.len() == 17 && name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked {
                return Err(malformed("duplicate Transfer-Encoding"));
            }
            if !h.value.eq_ignore_ascii_case(b"chunked") {
                return Err(malformed("Transfer-Encoding other than chunked"));
            }
            chunked = true;
        }
    }
    if chunked && length.is_some() {
        return Err(malformed("both Transfer-Encoding and Content-Length"));
    }
    let framing = match (length, chunked) {
        (Some(n), _) => BodyFraming::Length(n),
        (None, true) => BodyFraming::Chunked,
        (None, false) => BodyFraming::None,
    };
    match kind {
        HeadKind::Request => {
            let authority = target.and_then(absolute_authority);
            if authority.is_some_and(|a| !host.is_some_and(|h| h.eq_ignore_ascii_case(a))) {
                return Err(malformed(
                    "absolute-form target names another host than Host",
                ));
            }
            match (length, chunked) {
                (Some(n), _) if n != body.len() as u64 => {
                    Err(malformed("body length differs from Content-Length"))
                }
                (None, true) if !chunked_body_complete(body) => Err(malformed(
                    "chunked body is malformed or has bytes after its end",
                )),
                (None, false) if !body.is_empty() => Err(malformed(
                    "body without Content-Length or Transfer-Encoding",
                )),
                _ => Ok(framing),
            }
        }
        HeadKind::Response => match length {
            Some(n) if (body.len() as u64) > n => Err(malformed("body longer than Content-Length")),
            _ => Ok(framing),
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

/// Whether `body` is exactly one complete chunked body (sizes, data, CRLFs, last chunk,
/// trailers, final CRLF) with nothing after it. Only sizes are parsed; data is skipped.
fn chunked_body_complete(mut body: &[u8]) -> bool {
    loop {
        let Ok(httparse::Status::Complete((used, size))) = httparse::parse_chunk_size(body) else {
            return false;
        };
        body = &body[used..];
        if size == 0 {
            break;
        }
        let Some(rest) = usize::try_from(size).ok().and_then(|n| body.get(n..)) else {
            return false;
        };
        let Some(rest) = rest.strip_prefix(b"\r\n") else {
            return false;
        };
        body = rest;
    }
    // Trailer lines, each CRLF-terminated, then the empty line ending the body.
    loop {
        let Some(lf) = body.iter().position(|&b| b == b'\n') else {
            return false;
        };
        if lf == 0 || body[lf - 1] != b'\r' {
            return false;
        }
        let empty = lf == 1;
        body = &body[lf + 1..];
        if empty {
            return body.is_empty();
        }
    }
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
fn lf_minus_cr(bytes: &[u8]) -> isize {
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
            _ if kind == HeadKind::Response && is_hop_by_hop(name) => Wanted::Hop,
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
            Wanted::Cseq | Wanted::From | Wanted::Error | Wanted::Hop => {
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
        framing: BodyFraming::None,
        hops,
        n_hops: n_hops as u8,
        hops_overflow,
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
}

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), which a
/// relay must not pass on to the next connection.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"trailer"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        _ => false,
    }
}

/// httparse's slices always lie within the buffer and end before a LF, so this is unreachable;
/// it exists so a broken invariant becomes a refused message rather than a panic.
fn internal() -> HeadError {
    HeadError::Malformed {
        cseq: None,
        reason: "internal: header outside head",
    }
}

/// A decimal u64: digits only (no sign, no spaces), at least one, no overflow.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
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

/// Append the rewritten head to `dst`: the original head with the CSeq line's value replaced
/// by `cseq` (the line stays in place, written as `"CSeq: <n>\r\n"`), every Httpws-From line
/// removed, and, if `from` is Some, `"Httpws-From: <from>\r\n"` added just before the blank
/// line. Ends with the blank line `"\r\n"`. Does not copy the body.
///
/// # Panics
/// If `msg` is not the message `info` was made from (a slice index is then out of bounds).
pub fn write_head(dst: &mut BytesMut, msg: &[u8], info: &HeadInfo, cseq: u64, from: Option<&str>) {
    debug_assert!(from.is_none_or(|f| !f.bytes().any(|b| b == b'\r' || b == b'\n')));
    dst.reserve(rewritten_head_len(msg, info, cseq, from));
    let mut pos = 0;
    for (i, span) in info.drops().iter().enumerate() {
        dst.extend_from_slice(&msg[pos..span.start as usize]);
        if i == info.cseq_drop as usize {
            dst.extend_from_slice(CSEQ_PREFIX);
            put_u64(dst, cseq);
            dst.extend_from_slice(CRLF);
        } else {
            info.write_renamed(dst, msg, i, *span);
        }
        pos = span.end as usize;
    }
    // Everything up to the blank line, which is the last two bytes of the head.
    dst.extend_from_slice(&msg[pos..info.head_len - 2]);
    if let Some(from) = from {
        dst.extend_from_slice(FROM_PREFIX);
        dst.extend_from_slice(from.as_bytes());
        dst.extend_from_slice(CRLF);
    }
    dst.extend_from_slice(CRLF);
}

/// Length [`write_head`] will produce (so callers can size a frame header before writing).
pub fn rewritten_head_len(_msg: &[u8], info: &HeadInfo, cseq: u64, from: Option<&str>) -> usize {
    let dropped: usize = info.drops().iter().map(|s| s.len()).sum();
    let renamed: usize = info
        .drops()
        .iter()
        .enumerate()
        .filter(|&(i, _)| info.is_renamed(i))
        .map(|(_, span)| span.len() + HTTPWS_TARGET_ERROR.len() - header_name::HTTPWS_ERROR.len())
        .sum();
    let cseq_line = CSEQ_PREFIX.len() + dec_len(cseq) + CRLF.len();
    let from_line = from.map_or(0, |f| FROM_PREFIX.len() + f.len() + CRLF.len());
    info.head_len - dropped + renamed + cseq_line + from_line
}

/// Why a response cannot go to a plain HTTP client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpHeadError {
    #[error("the response has more than {MAX_HOP_LINES} hop-by-hop header lines")]
    TooManyHopLines,
    #[error("an interim (1xx) response as the answer")]
    Interim,
    #[error("a body that differs from its Content-Length")]
    LengthMismatch,
    #[error("an incomplete chunked body")]
    IncompleteChunked,
    #[error("a body on a status that has none")]
    UnexpectedBody,
}

/// Append the head of a response for a plain HTTP client (public ingress): the target's head
/// without its CSeq, Httpws-From and hop-by-hop lines, with `Content-Length` added when the
/// message gives no length (its body, `body`, is then the rest of the message) and the status
/// may have a body. Stops before the blank line, so that the caller can add its own
/// connection header.
///
/// The client's connection is kept alive, so the answer must frame itself exactly: unless it
/// answers a HEAD, a body that is shorter than its Content-Length, an incomplete chunked
/// body, a body on 204/304, or an interim 1xx status is refused (the caller gets 502).
pub fn write_http_head(
    dst: &mut BytesMut,
    msg: &[u8],
    info: &HeadInfo,
    body: &[u8],
    head_request: bool,
) -> Result<(), HttpHeadError> {
    if info.hops_overflow {
        return Err(HttpHeadError::TooManyHopLines);
    }
    if info.status < 200 {
        return Err(HttpHeadError::Interim);
    }
    let bodiless = head_request || info.status == 204 || info.status == 304;
    if !head_request {
        if bodiless && !body.is_empty() {
            return Err(HttpHeadError::UnexpectedBody);
        }
        match info.framing {
            BodyFraming::Length(n) if n != body.len() as u64 => {
                return Err(HttpHeadError::LengthMismatch);
            }
            BodyFraming::Chunked if !bodiless && !chunked_body_complete(body) => {
                return Err(HttpHeadError::IncompleteChunked);
            }
            _ => {}
        }
    }
    dst.reserve(info.head_len + 32);
    let (mut drops, mut hops) = (
        info.drops().iter().copied().enumerate().peekable(),
        info.hops().iter().copied().peekable(),
    );
    let mut pos = 0;
    // Both lists are in message order; merge them. Hop lines are dropped; of the others,
    // renamed lines are written again under their new name.
    loop {
        let (span, renamed) = match (drops.peek(), hops.peek()) {
            (Some((_, d)), Some(h)) if d.start < h.start => {
                let Some((i, d)) = drops.next() else { break };
                (d, Some(i))
            }
            (Some(_), Some(_)) | (None, Some(_)) => {
                let Some(h) = hops.next() else { break };
                (h, None)
            }
            (Some(_), None) => {
                let Some((i, d)) = drops.next() else { break };
                (d, Some(i))
            }
            (None, None) => break,
        };
        dst.extend_from_slice(&msg[pos..span.start as usize]);
        if let Some(i) = renamed {
            info.write_renamed(dst, msg, i, span);
        }
        pos = span.end as usize;
    }
    dst.extend_from_slice(&msg[pos..info.head_len - 2]);
    if info.framing == BodyFraming::None && !bodiless {
        dst.extend_from_slice(b"Content-Length: ");
        put_u64(dst, body.len() as u64);
        dst.extend_from_slice(CRLF);
    }
    Ok(())
}

/// Append a synthesized error response for a plain HTTP client, without its blank line (as
/// [`write_http_head`]): status line, `Httpws-Error`, `Content-Type`, `Content-Length` of a
/// body `reason` + `"\n"` that the caller writes after the blank line.
pub fn write_http_error_head(dst: &mut BytesMut, status: u16, token: &str, reason: &str) {
    write_error_head(dst, status, token, None, reason);
}

/// Append a complete synthesized HTTP/1.1 error response: status line with the standard
/// reason phrase, `CSeq: <cseq>`, `Httpws-Error: <token>`,
/// `Content-Type: text/plain; charset=utf-8`, `Content-Length: <n>`, blank line, and the body
/// `reason` + `"\n"`.
pub fn write_error_response(dst: &mut BytesMut, status: u16, token: &str, cseq: u64, reason: &str) {
    write_error_head(dst, status, token, Some(cseq), reason);
    dst.extend_from_slice(CRLF);
    dst.extend_from_slice(reason.as_bytes());
    dst.extend_from_slice(b"\n");
}

/// The head of an error response up to (not including) its blank line; room is reserved for
/// the blank line and the body too.
fn write_error_head(dst: &mut BytesMut, status: u16, token: &str, cseq: Option<u64>, reason: &str) {
    debug_assert!(!token.bytes().any(|b| b == b'\r' || b == b'\n'));
    let phrase = reason_phrase(status);
    dst.reserve(160 + phrase.len() + token.len() + reason.len());
    dst.extend_from_slice(b"HTTP/1.1 ");
    put_u64(dst, u64::from(status));
    dst.extend_from_slice(b" ");
    dst.extend_from_slice(phrase.as_bytes());
    if let Some(cseq) = cseq {
        dst.extend_from_slice(b"\r\nCSeq: ");
        put_u64(dst, cseq);
    }
    dst.extend_from_slice(b"\r\nHttpws-Error: ");
    dst.extend_from_slice(token.as_bytes());
    dst.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    put_u64(dst, reason.len() as u64 + 1);
    dst.extend_from_slice(CRLF);
}

/// The standard reason phrase for the statuses httpws produces; "Unknown" for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Number of decimal digits in `n`.
fn dec_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Appends `n` in decimal without allocating (digits built back to front on the stack).
pub fn put_u64(dst: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> HeadLimits {
        HeadLimits::default()
    }

    /// Rewrites `msg` and checks the length promise and that the body was left alone.
    fn rewrite(msg: &[u8], info: &HeadInfo, cseq: u64, from: Option<&str>) -> Vec<u8> {
        let mut dst = BytesMut::new();
        dst.extend_from_slice(b"prefix");
        write_head(&mut dst, msg, info, cseq, from);
        assert_eq!(dst.len() - 6, rewritten_head_len(msg, info, cseq, from));
        assert!(dst.ends_with(b"\r\n\r\n"));
        dst[6..].to_vec()
    }

    fn headers_of(head: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut hs = [httparse::EMPTY_HEADER; 80];
        let n;
        let headers: &[Header<'_>] = if head.starts_with(b"HTTP/") {
            let mut r = httparse::Response::new(&mut hs);
            n = r.parse(head).expect("reparse").unwrap();
            r.headers
        } else {
            let mut r = httparse::Request::new(&mut hs);
            n = r.parse(head).expect("reparse").unwrap();
            r.headers
        };
        assert_eq!(n, head.len());
        headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect()
    }

    fn http_head(msg: &[u8], head_request: bool) -> Result<String, HttpHeadError> {
        let info = inspect(msg, &lim()).expect("valid response");
        let mut dst = BytesMut::new();
        write_http_head(&mut dst, msg, &info, &msg[info.head_len..], head_request)?;
        Ok(String::from_utf8(dst.to_vec()).expect("ascii"))
    }

    #[test]
    fn responses_for_http_clients_lose_cseq_and_hop_lines_and_gain_a_length() {
        let msg = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nCSeq: 9\r\nX-A: 1\r\n\
            Keep-Alive: timeout=5\r\nHttpws-From: x\r\nUpgrade: h2c\r\n\r\nbody";
        assert_eq!(
            http_head(msg, false).unwrap(),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 4\r\n"
        );
        let chunked =
            b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        assert_eq!(
            http_head(chunked, false).unwrap(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        );
        let no_content = b"HTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\n";
        assert_eq!(
            http_head(no_content, false).unwrap(),
            "HTTP/1.1 204 No Content\r\n"
        );
        // HEAD: a declared length without the body is its right.
        let head = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 10\r\n\r\n";
        assert!(http_head(head, true).is_ok());
        assert_eq!(http_head(head, false), Err(HttpHeadError::LengthMismatch));
        let cut = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert_eq!(http_head(cut, false), Err(HttpHeadError::IncompleteChunked));
        let interim = b"HTTP/1.1 100 Continue\r\nCSeq: 1\r\n\r\n";
        assert_eq!(http_head(interim, false), Err(HttpHeadError::Interim));
        let body_on_204 = b"HTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\nx";
        assert_eq!(
            http_head(body_on_204, false),
            Err(HttpHeadError::UnexpectedBody)
        );
        let hops =
            b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nTE: a\r\nTE: b\r\nTE: c\r\nTE: d\r\nTE: e\r\n\r\n";
        assert_eq!(http_head(hops, false), Err(HttpHeadError::TooManyHopLines));
    }

    #[test]
    fn request_with_host_and_cseq() {
        let msg =
            b"POST /offer HTTP/1.1\r\nHost: bob\r\nCSeq: 42\r\nContent-Length: 5\r\n\r\nhello";
        let info = inspect(msg, &lim()).unwrap();
        assert_eq!(info.kind, HeadKind::Request);
        assert_eq!(info.cseq, 42);
        assert_eq!(info.host(msg), Some(&b"bob"[..]));
        assert_eq!(info.status, 0);
        assert_eq!(info.head_len, msg.len() - 5);
        assert_eq!(&msg[info.head_len..], b"hello");
        let out = rewrite(msg, &info, 7, Some("alice"));
        assert_eq!(
            out,
            b"POST /offer HTTP/1.1\r\nHost: bob\r\nCSeq: 7\r\nContent-Length: 5\r\n\
              Httpws-From: alice\r\n\r\n"
        );
    }

    #[test]
    fn host_with_port_and_ows() {
        let msg = b"GET / HTTP/1.1\r\nHost: \t bob.example:8080 \t\r\nCSeq: 1\r\n\r\n";
        let info = inspect(msg, &lim()).unwrap();
        assert_eq!(info.host(msg), Some(&b"bob.example:8080"[..]));
        assert_eq!(info.host_name(msg), Some(&b"bob.example"[..]));
        let msg = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n\r\n";
        assert_eq!(
            inspect(msg, &lim()).unwrap().host_name(msg),
            Some(&b"bob"[..])
        );
    }

    #[test]
    fn cseq_name_is_case_insensitive() {
        for name in ["cseq", "CSEQ", "CSeq", "cSeQ"] {
            let msg = format!("GET / HTTP/1.1\r\nHost: bob\r\n{name}:9\r\n\r\n");
            let info = inspect(msg.as_bytes(), &lim()).unwrap();
            assert_eq!(info.cseq, 9);
            let out = rewrite(msg.as_bytes(), &info, 10, None);
            assert_eq!(out, b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 10\r\n\r\n");
        }
    }

    #[test]
    fn from_twins_in_any_spelling_are_dropped_from_requests_and_responses() {
        let req = b"GET / HTTP/1.1\r\nHttpws_From: admin\r\nHost: bob\r\nhttpws_FROM: x\r\n\
            CSeq: 3\r\nX-Httpws-From: kept\r\n\r\n";
        let info = inspect(req, &lim()).unwrap();
        assert_eq!(
            rewrite(req, &info, 7, Some("alice")),
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 7\r\nX-Httpws-From: kept\r\nHttpws-From: alice\r\n\r\n"
        );
        let resp = b"HTTP/1.1 200 OK\r\nCSeq: 1\r\nHttpws_From: admin\r\n\r\n";
        let info = inspect(resp, &lim()).unwrap();
        assert_eq!(
            rewrite(resp, &info, 9, None),
            b"HTTP/1.1 200 OK\r\nCSeq: 9\r\n\r\n"
        );
    }

    #[test]
    fn a_targets_own_httpws_error_is_renamed_in_every_spelling() {
        let resp = b"HTTP/1.1 404 Not Found\r\nHttpws-Error: unknown-address\r\nCSeq: 1\r\n\
            httpws_error:forged\r\nContent-Length: 2\r\n\r\nno";
        let info = inspect(resp, &lim()).unwrap();
        assert_eq!(&resp[info.head_len..], b"no");
        assert_eq!(
            rewrite(resp, &info, 42, None),
            b"HTTP/1.1 404 Not Found\r\nHttpws-Target-Error: unknown-address\r\nCSeq: 42\r\n\
            Httpws-Target-Error:forged\r\nContent-Length: 2\r\n\r\n"
        );
        assert_eq!(
            http_head(resp, false).unwrap(),
            "HTTP/1.1 404 Not Found\r\nHttpws-Target-Error: unknown-address\r\n\
            Httpws-Target-Error:forged\r\nContent-Length: 2\r\n"
        );
        // A request's Httpws-Error is the caller's business (the target's agent drops it).
        let req = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\nHttpws-Error: x\r\n\r\n";
        let info = inspect(req, &lim()).unwrap();
        assert_eq!(
            rewrite(req, &info, 1, Some("a")),
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\nHttpws-Error: x\r\nHttpws-From: a\r\n\r\n"
        );
        // More lines to rewrite than the proxy keeps track of: refused, never half-done.
        let many = format!(
            "HTTP/1.1 200 OK\r\nCSeq: 1\r\n{}\r\n",
            "Httpws-Error: x\r\n".repeat(MAX_REMOVED_LINES)
        );
        assert!(matches!(
            inspect(many.as_bytes(), &lim()),
            Err(HeadError::Malformed { cseq: Some(1), .. })
        ));
    }

    #[test]
    fn forged_from_lines_are_replaced() {
        let one = b"GET / HTTP/1.1\r\nHttpws-From: mallory\r\nHost: bob\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nbody";
        let two = b"GET / HTTP/1.1\r\nhttpws-from: x\r\nHost: bob\r\nHTTPWS-FROM:y\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nbody";
        for msg in [&one[..], &two[..]] {
            let info = inspect(msg, &lim()).unwrap();
            assert_eq!(&msg[info.head_len..], b"body");
            let out = rewrite(msg, &info, 1_000_000, Some("alice"));
            assert_eq!(
                out,
                b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1000000\r\nContent-Length: 4\r\nHttpws-From: alice\r\n\r\n"
            );
            // Without `from` the forged lines still go.
            let out = rewrite(msg, &info, 3, None);
            assert_eq!(
                out,
                b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\n"
            );
        }
    }

    #[test]
    fn too_many_lines_to_drop() {
        let froms = "Httpws-From: a\r\n".repeat(MAX_REMOVED_LINES - 1);
        let ok = format!("GET / HTTP/1.1\r\nHost: b\r\n{froms}CSeq: 8\r\n\r\n");
        let info = inspect(ok.as_bytes(), &lim()).unwrap();
        assert_eq!(
            rewrite(ok.as_bytes(), &info, 8, None),
            b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 8\r\n\r\n"
        );
        let bad = format!("GET / HTTP/1.1\r\nHost: b\r\n{froms}Httpws-From: a\r\nCSeq: 8\r\n\r\n");
        let err = inspect(bad.as_bytes(), &lim()).unwrap_err();
        assert!(matches!(err, HeadError::Malformed { .. }), "{err:?}");
        assert_eq!(err.cseq(), Some(8));
    }

    #[test]
    fn response_rewrite() {
        let msg = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCSeq: 77\r\nX: y\r\n\r\nhi";
        let info = inspect(msg, &lim()).unwrap();
        assert_eq!(info.kind, HeadKind::Response);
        assert_eq!(info.status, 200);
        assert_eq!(info.cseq, 77);
        assert_eq!(info.host, None);
        assert_eq!(&msg[info.head_len..], b"hi");
        let out = rewrite(msg, &info, 5, None);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCSeq: 5\r\nX: y\r\n\r\n"
        );
        // Responses need no Host; a Host there is ignored.
        let msg = b"HTTP/1.0 404\r\nHost: a\r\nHost: b\r\ncseq: 1\r\n\r\n";
        let info = inspect(msg, &lim()).unwrap();
        assert_eq!((info.status, info.host.clone()), (404, None));
        assert_eq!(
            rewrite(msg, &info, 2, None),
            b"HTTP/1.0 404\r\nHost: a\r\nHost: b\r\nCSeq: 2\r\n\r\n"
        );
    }

    #[test]
    fn body_untouched_even_if_it_looks_like_a_head() {
        let body: &[u8] = b"\r\n\r\nCSeq: 9\r\nHttpws-From: z\r\n\r\n\n\n\xff\x00";
        let mut msg = format!(
            "PUT /x HTTP/1.1\r\nCSeq: 1\r\nHost: bob\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        let head_len = msg.len();
        msg.extend_from_slice(body);
        let info = inspect(&msg, &lim()).unwrap();
        assert_eq!(info.head_len, head_len);
        assert_eq!(&msg[info.head_len..], body);
        let out = rewrite(&msg, &info, 2, Some("a"));
        let want = format!(
            "PUT /x HTTP/1.1\r\nCSeq: 2\r\nHost: bob\r\nContent-Length: {}\r\nHttpws-From: a\r\n\r\n",
            body.len()
        );
        assert_eq!(out, want.as_bytes());
    }

    #[test]
    fn cseq_errors() {
        let req = |cseq: &str| format!("GET / HTTP/1.1\r\nHost: bob\r\n{cseq}\r\n\r\n");
        let cases = [
            ("X-Other: 1", HeadError::MissingCseq),
            ("CSeq: +5", HeadError::BadCseq),
            ("CSeq: -5", HeadError::BadCseq),
            ("CSeq: 5 5", HeadError::BadCseq),
            ("CSeq: 0x5", HeadError::BadCseq),
            ("CSeq:", HeadError::BadCseq),
            ("CSeq: 18446744073709551616", HeadError::BadCseq),
            ("CSeq: 1\r\nCSeq: 1", HeadError::BadCseq),
            ("CSeq: 1\r\ncseq: 2", HeadError::BadCseq),
        ];
        for (line, want) in cases {
            let msg = req(line);
            let err = inspect(msg.as_bytes(), &lim()).unwrap_err();
            assert_eq!(err, want, "{line}");
            assert_eq!(err.cseq(), None);
        }
        let max = req("CSeq: 18446744073709551615");
        assert_eq!(inspect(max.as_bytes(), &lim()).unwrap().cseq, u64::MAX);
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(inspect(resp, &lim()).unwrap_err(), HeadError::MissingCseq);
    }

    #[test]
    fn host_errors_carry_cseq() {
        let missing = b"GET / HTTP/1.1\r\nCSeq: 12\r\n\r\n";
        let dup = b"GET / HTTP/1.1\r\nHost: a\r\nCSeq: 12\r\nhost: b\r\n\r\n";
        let empty = b"GET / HTTP/1.1\r\nHost:  \r\nCSeq: 12\r\n\r\n";
        for msg in [&missing[..], &dup[..], &empty[..]] {
            let err = inspect(msg, &lim()).unwrap_err();
            assert!(
                matches!(err, HeadError::Malformed { cseq: Some(12), .. }),
                "{err:?}"
            );
            assert_eq!(err.cseq(), Some(12));
        }
        // A CSeq problem wins: without a usable CSeq there is nobody to answer.
        let both = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(inspect(both, &lim()).unwrap_err(), HeadError::MissingCseq);
    }

    #[test]
    fn no_blank_line_is_no_head() {
        for msg in [
            &b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 1",
            b"GET / HTTP/1.1",
            b"HTTP/1.1 200 OK\r\nCSeq: 1\r\n",
            b"",
        ] {
            assert_eq!(inspect(msg, &lim()).unwrap_err(), HeadError::NoHead);
        }
    }

    #[test]
    fn too_many_headers_is_too_large_with_cseq() {
        let limits = HeadLimits {
            max_head_bytes: 1 << 20,
            max_headers: 10,
        };
        let mut msg = String::from("GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 31\r\n");
        for i in 0..9 {
            msg.push_str(&format!("X-{i}: v\r\n"));
        }
        msg.push_str("\r\n");
        let err = inspect(msg.as_bytes(), &limits).unwrap_err();
        assert_eq!(err, HeadError::TooLarge { cseq: Some(31) });
        // With the default limit it is fine; with a limit above the stack buffer too.
        assert_eq!(inspect(msg.as_bytes(), &lim()).unwrap().cseq, 31);
        let big = HeadLimits {
            max_head_bytes: 1 << 20,
            max_headers: 500,
        };
        assert_eq!(inspect(msg.as_bytes(), &big).unwrap().cseq, 31);
        let mut many = String::from("HTTP/1.1 200 OK\r\nCSeq: 4\r\n");
        for i in 0..100 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let err = inspect(many.as_bytes(), &lim()).unwrap_err();
        assert_eq!(err, HeadError::TooLarge { cseq: Some(4) });
        assert_eq!(inspect(many.as_bytes(), &big).unwrap().cseq, 4);
    }

    #[test]
    fn too_long_is_too_large_with_cseq() {
        let long = "a".repeat(DEFAULT_MAX_HEAD_BYTES);
        let msg = format!("GET / HTTP/1.1\r\nCSeq: 55\r\nHost: bob\r\nX-Long: {long}\r\n\r\n");
        let err = inspect(msg.as_bytes(), &lim()).unwrap_err();
        assert_eq!(err, HeadError::TooLarge { cseq: Some(55) });
        // The limit counts the whole head including its "\r\n\r\n": exactly at it is fine.
        let msg = b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 1\r\nContent-Length: 4\r\n\r\nbody";
        let exact = HeadLimits {
            max_head_bytes: msg.len() - 4,
            ..lim()
        };
        assert_eq!(inspect(msg, &exact).unwrap().head_len, msg.len() - 4);
        let short = HeadLimits {
            max_head_bytes: msg.len() - 5,
            ..lim()
        };
        assert_eq!(
            inspect(msg, &short).unwrap_err(),
            HeadError::TooLarge { cseq: Some(1) }
        );
        // A CSeq line cut off by the cap is not trusted ("CSeq: 12" of "CSeq: 123").
        let msg = b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 123\r\n\r\n";
        let cut = HeadLimits {
            max_head_bytes: msg.len() - 5,
            ..lim()
        };
        assert_eq!(
            inspect(msg, &cut).unwrap_err(),
            HeadError::TooLarge { cseq: None }
        );
    }

    #[test]
    fn garbage_has_no_cseq() {
        let cases: [&[u8]; 6] = [
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x00\x01\x02\xff\r\n\r\n",
            b"hello world\r\n\r\n",
            b"CSeq: 5\r\n\r\n",
            b"GET / HTTP/1.1\r\nCSeq: 1\r\nCSeq: 2\r\nBad Header: x\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ];
        for msg in cases {
            let err = inspect(msg, &lim()).unwrap_err();
            assert!(matches!(err, HeadError::Malformed { .. }), "{err:?}");
            assert_eq!(err.cseq(), None, "{msg:?}");
        }
        let long_garbage = vec![0xffu8; DEFAULT_MAX_HEAD_BYTES + 10];
        let err = inspect(&long_garbage, &lim()).unwrap_err();
        assert_eq!(err.cseq(), None);
    }

    #[test]
    fn malformed_recovers_cseq() {
        let msg = b"GET / HTTP/1.1\r\nHost: bob\r\ncseq:\t 17 \r\nBad Header: x\r\n\r\n";
        let err = inspect(msg, &lim()).unwrap_err();
        assert_eq!(
            err,
            HeadError::Malformed {
                cseq: Some(17),
                reason: "invalid header name"
            }
        );
        let msg = b"GET / HTTP/3\r\nHost: bob\r\nCSeq: 17\r\n\r\n";
        assert_eq!(inspect(msg, &lim()).unwrap_err().cseq(), Some(17));
    }

    #[test]
    fn bare_line_endings_are_refused() {
        let msg = b"GET / HTTP/1.1\nHost: bob\r\nCSeq: 2\r\n\r\n";
        let err = inspect(msg, &lim()).unwrap_err();
        assert_eq!(
            err,
            HeadError::Malformed {
                cseq: Some(2),
                reason: "bare LF line ending"
            }
        );
        let msg = b"GET / HTTP/1.1\r\nHost: bob\r\nCSeq: 2\n\n";
        assert_eq!(inspect(msg, &lim()).unwrap_err().cseq(), Some(2));
        // The bare-LF check relies on httparse refusing a CR without LF anywhere in the head.
        for msg in [
            &b"GET / HTTP/1.1\r\nHost: b\rc\r\nCSeq: 2\r\n\r\n"[..],
            b"GET /\r HTTP/1.1\r\nHost: b\r\nCSeq: 2\r\n\r\n",
            b"HTTP/1.1 200 O\rK\r\nCSeq: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: b\r\nCSeq: 2\r\r\n\r\n",
        ] {
            assert!(matches!(
                inspect(msg, &lim()),
                Err(HeadError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn leading_empty_lines_are_kept_in_place() {
        let msg = b"\r\nHTTP/1.1 204 No Content\r\nCSeq: 1\r\n\r\n";
        let info = inspect(msg, &lim()).unwrap();
        assert_eq!(
            (info.kind, info.status, info.head_len),
            (HeadKind::Response, 204, msg.len())
        );
        assert_eq!(
            rewrite(msg, &info, 2, None),
            b"\r\nHTTP/1.1 204 No Content\r\nCSeq: 2\r\n\r\n"
        );
    }

    #[test]
    fn error_response_parses_back() {
        for (status, token) in [(404, "unknown-address"), (504, "timeout"), (499, "x")] {
            let mut dst = BytesMut::new();
            let reason = "no endpoint holds \"bob\"";
            write_error_response(&mut dst, status, token, u64::MAX, reason);
            let info = inspect(&dst, &lim()).unwrap();
            assert_eq!((info.status, info.cseq), (status, u64::MAX));
            let mut hs = [httparse::EMPTY_HEADER; 8];
            let mut r = httparse::Response::new(&mut hs);
            let n = r.parse(&dst).unwrap().unwrap();
            assert_eq!(r.version, Some(1));
            assert_eq!(r.reason, Some(reason_phrase(status)));
            let get = |name: &str| {
                r.headers
                    .iter()
                    .find(|h| h.name == name)
                    .map(|h| h.value.to_vec())
                    .unwrap()
            };
            assert_eq!(get("Httpws-Error"), token.as_bytes());
            assert_eq!(get("Content-Type"), b"text/plain; charset=utf-8");
            let body = &dst[n..];
            assert_eq!(body, format!("{reason}\n").as_bytes());
            assert_eq!(get("Content-Length"), body.len().to_string().as_bytes());
        }
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(299), "Unknown");
    }

    #[test]
    fn decimal_helpers() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::MAX / 10,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut dst = BytesMut::new();
            put_u64(&mut dst, n);
            assert_eq!(&dst[..], n.to_string().as_bytes());
            assert_eq!(dec_len(n), n.to_string().len());
            assert_eq!(parse_u64(&dst), Some(n));
        }
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"007"), Some(7));
    }

    #[test]
    fn lf_minus_cr_matches_naive_count() {
        let mut rng = Rng(7);
        for len in [0, 1, 63, 64, 65, 128, 200, 1000] {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| [b'\r', b'\n', b'a'][rng.below(3)])
                    .collect();
                let lf = bytes.iter().filter(|&&b| b == b'\n').count() as isize;
                let cr = bytes.iter().filter(|&&b| b == b'\r').count() as isize;
                assert_eq!(lf_minus_cr(&bytes), lf - cr);
            }
        }
        assert_eq!(lf_minus_cr(&[b'\n'; 300]), 300);
        assert_eq!(lf_minus_cr(&[b'\r'; 300]), -300);
    }

    /// xorshift64*: a deterministic generator so the property test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn case(&mut self, s: &str) -> String {
            s.chars()
                .map(|c| {
                    if self.next() & 1 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        }
    }

    #[test]
    fn property_random_header_orders() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let response = rng.below(2) == 0;
            let cseq = match rng.below(3) {
                0 => rng.next(),
                1 => rng.below(1000) as u64,
                _ => u64::MAX - rng.below(3) as u64,
            };
            let host = format!(
                "peer-{}.example{}",
                rng.below(100),
                [":", ":8080"][rng.below(2)]
            );
            let host = host.trim_end_matches(':').to_string();
            // (line, kept?) in random order.
            let mut lines: Vec<(String, bool)> = Vec::new();
            let ows = |r: &mut Rng| ["", " ", "  ", "\t"][r.below(4)];
            lines.push((
                format!(
                    "{}:{}{cseq}{}",
                    rng.case("cseq"),
                    ows(&mut rng),
                    ows(&mut rng)
                ),
                false,
            ));
            if !response {
                lines.push((format!("{}: {host}", rng.case("host")), true));
            }
            for _ in 0..rng.below(MAX_REMOVED_LINES) {
                lines.push((
                    format!("{}: forged{}", rng.case("httpws-from"), rng.below(9)),
                    false,
                ));
            }
            for i in 0..rng.below(20) {
                let v = ["v", "", "a b", "CSeq: 1", "Httpws-From: x"][rng.below(5)];
                let name = ["X-", "Cseqx-", "Hostx-", "Httpws-Fromx-"][rng.below(4)];
                lines.push((format!("{name}{i}: {v}"), true));
            }
            for i in (1..lines.len()).rev() {
                lines.swap(i, rng.below(i + 1));
            }
            let start = if response {
                "HTTP/1.1 200 OK"
            } else {
                "POST /p?q=1 HTTP/1.1"
            };
            let body: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let mut msg = format!("{start}\r\n");
            for (l, _) in &lines {
                msg.push_str(l);
                msg.push_str("\r\n");
            }
            msg.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let head_len = msg.len();
            let mut msg = msg.into_bytes();
            msg.extend_from_slice(&body);

            let info = inspect(&msg, &lim()).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(info.head_len, head_len);
            assert_eq!(info.cseq, cseq);
            assert_eq!(&msg[info.head_len..], &body[..]);
            if response {
                assert_eq!(
                    (info.kind, info.status, info.host.clone()),
                    (HeadKind::Response, 200, None)
                );
            } else {
                assert_eq!(info.host(&msg), Some(host.as_bytes()));
            }

            let new_cseq = rng.next() >> rng.below(64);
            let from = (!response).then_some("alice.example");
            let out = rewrite(&msg, &info, new_cseq, from);
            let got = headers_of(&out);
            // Kept lines in their order, the CSeq line in its place, From last.
            let mut want: Vec<(String, Vec<u8>)> = Vec::new();
            for (l, kept) in &lines {
                let (name, value) = l.split_once(':').unwrap();
                if *kept {
                    want.push((name.to_string(), value.trim().as_bytes().to_vec()));
                } else if name.eq_ignore_ascii_case("cseq") {
                    want.push(("CSeq".into(), new_cseq.to_string().into_bytes()));
                }
            }
            want.push(("Content-Length".into(), body.len().to_string().into_bytes()));
            if let Some(f) = from {
                want.push(("Httpws-From".into(), f.as_bytes().to_vec()));
            }
            assert_eq!(got, want, "round {round}");
            // The rewritten head inspects to the new CSeq (what the target will see).
            let mut again = out.clone();
            again.extend_from_slice(&body);
            let info2 = inspect(&again, &lim()).unwrap();
            assert_eq!((info2.cseq, info2.head_len), (new_cseq, out.len()));
        }
    }

    #[test]
    fn strict_framing_refuses_every_ambiguous_shape() {
        let req = |extra: &str, body: &str| {
            format!("POST http://bob/x HTTP/1.1\r\nHost: bob\r\nCSeq: 8\r\n{extra}\r\n{body}")
        };
        let refused = [
            req("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "abc"),
            req("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"),
            req("Content-Length: +3\r\n", "abc"),
            req("Content-Length: 0x3\r\n", "abc"),
            req("Content-Length: \r\n", ""),
            req("Content-Length: 3, 4\r\n", "abc"),
            req("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
            req("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
            req(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            req("Content-Length: 3\r\n", "abcdef"),
            req("Content-Length: 3\r\n", "ab"),
            req("", "smuggled"),
            req(
                "Transfer-Encoding: chunked\r\n",
                "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1",
            ),
            req("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n"),
            req("X-A: a\0b\r\n", ""),
            "GET http://mallory/x HTTP/1.1\r\nHost: bob\r\nCSeq: 8\r\n\r\n".to_string(),
            "GET / HTTP/1.1\r\nHost: bob\rCSeq: 8\r\n\r\n".to_string(),
        ];
        for msg in &refused {
            let err = inspect(msg.as_bytes(), &lim()).expect_err(msg);
            assert!(
                matches!(
                    err,
                    HeadError::Malformed { .. } | HeadError::MissingCseq | HeadError::BadCseq
                ),
                "{msg:?}: {err:?}"
            );
        }
        let accepted = [
            req("Content-Length: 3\r\n", "abc"),
            req(
                "Transfer-Encoding: Chunked\r\n",
                "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            ),
            req("", ""),
            "GET http://BOB:80/x HTTP/1.1\r\nHost: bob:80\r\nCSeq: 8\r\n\r\n".to_string(),
        ];
        for msg in &accepted {
            assert!(inspect(msg.as_bytes(), &lim()).is_ok(), "{msg:?}");
        }
        // Responses: a HEAD answer declares a length it does not carry; more is refused.
        let head = "HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 99\r\n\r\n";
        assert!(inspect(head.as_bytes(), &lim()).is_ok());
        let long = "HTTP/1.1 200 OK\r\nCSeq: 1\r\nContent-Length: 1\r\n\r\nab";
        assert!(inspect(long.as_bytes(), &lim()).is_err());
        let close_delimited = "HTTP/1.1 200 OK\r\nCSeq: 1\r\n\r\nanything";
        assert!(inspect(close_delimited.as_bytes(), &lim()).is_ok());
    }
}
