//! [`write_http_head`]: the head of a target's response as a plain HTTP client of the public
//! ingress gets it: no CSeq, no `Httpws-From`, no hop-by-hop lines, and framed exactly, since
//! the client's connection is kept alive.

use bytes::BytesMut;

use crate::proto::head::MAX_HOP_LINES;
use crate::proto::head::inspect::{HeadInfo, Span};
use crate::proto::http1::chunked;
use crate::proto::http1::framing::{self, Framing};
use crate::proto::http1::write::put_content_length;

/// Why a response cannot go to a plain HTTP client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpHeadError {
    /// More than [`MAX_HOP_LINES`] hop-by-hop lines: they could not all be taken out.
    #[error("the response has more than {MAX_HOP_LINES} hop-by-hop header lines")]
    TooManyHopLines,
    /// A 1xx status where the final answer should be: the caller's connection would go out of step.
    #[error("an interim (1xx) response as the answer")]
    Interim,
    /// A body longer or shorter than its `Content-Length` (unless it answers `HEAD`).
    #[error("a body that differs from its Content-Length")]
    LengthMismatch,
    /// A chunked body that stops before its last chunk (unless it answers `HEAD`).
    #[error("an incomplete chunked body")]
    IncompleteChunked,
    /// Body bytes on a 204 or 304, statuses that carry none (unless it answers `HEAD`).
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
    let bodiless = framing::response_is_bodiless(info.status, head_request);
    if !head_request {
        if bodiless && !body.is_empty() {
            return Err(HttpHeadError::UnexpectedBody);
        }
        match info.framing {
            Framing::Length(n) if n != body.len() as u64 => {
                return Err(HttpHeadError::LengthMismatch);
            }
            Framing::Chunked if !bodiless && !chunked::is_complete(body) => {
                return Err(HttpHeadError::IncompleteChunked);
            }
            _ => {}
        }
    }
    copy_for_http(dst, msg, info, None);
    if info.framing == Framing::None && !bodiless {
        put_content_length(dst, body.len() as u64);
    }
    Ok(())
}

/// How a streamed response's body goes on to a plain HTTP client, after
/// [`write_http_stream_head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpBodyFraming {
    /// No body (an answer to `HEAD`, `204`, `304`): nothing is written after the head.
    Bodiless,
    /// The head declared `Content-Length`: the data is written as it comes.
    Length,
    /// `Transfer-Encoding: chunked` was added: each piece of data is one chunk.
    Chunked,
    /// No length and a caller that cannot take chunks (HTTP/1.0): the body runs until the
    /// connection closes.
    UntilClose,
}

/// Append the head of a streamed response (protocol 2) for a plain HTTP client, without its
/// blank line: as [`write_http_head`], without the `Httpws-Stream` line, and with
/// `Transfer-Encoding: chunked` added when the head declares no length and `chunked_ok` (the
/// caller spoke HTTP/1.1).
pub fn write_http_stream_head(
    dst: &mut BytesMut,
    msg: &[u8],
    info: &HeadInfo,
    head_request: bool,
    chunked_ok: bool,
) -> Result<HttpBodyFraming, HttpHeadError> {
    if info.hops_overflow {
        return Err(HttpHeadError::TooManyHopLines);
    }
    if info.status < 200 {
        return Err(HttpHeadError::Interim);
    }
    copy_for_http(dst, msg, info, Some(info.stream_line));
    let framing = if framing::response_is_bodiless(info.status, head_request) {
        HttpBodyFraming::Bodiless
    } else if info.framing != Framing::None {
        HttpBodyFraming::Length
    } else if chunked_ok {
        dst.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        HttpBodyFraming::Chunked
    } else {
        HttpBodyFraming::UntilClose
    };
    Ok(framing)
}

/// Copy the head up to (not including) its blank line, leaving out the CSeq, Httpws-From and
/// hop-by-hop lines and `skip` (writing renamed lines under their new name).
fn copy_for_http(dst: &mut BytesMut, msg: &[u8], info: &HeadInfo, skip: Option<Span>) {
    dst.reserve(info.head_len + 32);
    let mut skip = skip;
    let mut pos = 0;
    let mut copy_to = |dst: &mut BytesMut, pos: &mut usize, to: usize| {
        if let Some(span) = skip.filter(|s| s.end > s.start && (s.start as usize) < to) {
            dst.extend_from_slice(&msg[*pos..span.start as usize]);
            *pos = span.end as usize;
            skip = None;
        }
        dst.extend_from_slice(&msg[*pos..to]);
    };
    let (mut drops, mut hops) = (
        info.drops().iter().copied().enumerate().peekable(),
        info.hops().iter().copied().peekable(),
    );
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
        copy_to(dst, &mut pos, span.start as usize);
        if let Some(i) = renamed {
            info.write_renamed(dst, msg, i, span);
        }
        pos = span.end as usize;
    }
    copy_to(dst, &mut pos, info.head_len - 2);
}
