//! [`write_http_head`]: the head of a target's response as a plain HTTP client of the public
//! ingress gets it: no CSeq, no `Httpws-From`, no hop-by-hop lines, and framed exactly, since
//! the client's connection is kept alive.

use bytes::BytesMut;

use crate::proto::head::MAX_HOP_LINES;
use crate::proto::head::inspect::HeadInfo;
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
    if info.framing == Framing::None && !bodiless {
        put_content_length(dst, body.len() as u64);
    }
    Ok(())
}
