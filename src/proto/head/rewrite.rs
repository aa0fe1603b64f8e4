//! [`write_head`]: the head of a relayed message as the next endpoint gets it, with its CSeq
//! renumbered, `Httpws-From` stamped and the lines [`inspect`](super::inspect) marked
//! dropped or renamed.

use bytes::BytesMut;

use crate::proto::head::inspect::{HeadInfo, Span};
use crate::proto::http1::decimal::{len_u64, put_u64};
use crate::proto::http1::framing::Framing;
use crate::proto::http1::header_name;
use crate::proto::http1::write::put_content_length;

const CSEQ_PREFIX: &[u8] = b"CSeq: ";
const FROM_PREFIX: &[u8] = b"Httpws-From: ";
const CRLF: &[u8] = b"\r\n";

/// Append the rewritten head to `dst`: the original head with the CSeq line's value replaced
/// by `cseq` (the line stays in place, written as `"CSeq: <n>\r\n"`), every Httpws-From line
/// removed, and, if `from` is Some, `"Httpws-From: <from>\r\n"` added just before the blank
/// line. Ends with the blank line `"\r\n"`. Does not copy the body.
///
/// # Panics
/// If `msg` is not the message `info` was made from (a slice index is then out of bounds).
pub fn write_head(dst: &mut BytesMut, msg: &[u8], info: &HeadInfo, cseq: u64, from: Option<&str>) {
    dst.reserve(rewritten_head_len(msg, info, cseq, from));
    write_with(dst, msg, info, cseq, from, None);
}

/// [`write_head`] for a stream head whose body was assembled whole (for a protocol-1 peer):
/// without its `Httpws-Stream` line, and with `Content-Length: body_len` unless the head
/// declared the length itself (the assembler checked the body against it).
pub fn write_whole_head(
    dst: &mut BytesMut,
    msg: &[u8],
    info: &HeadInfo,
    cseq: u64,
    from: Option<&str>,
    body_len: u64,
) {
    dst.reserve(rewritten_head_len(msg, info, cseq, from) + 32);
    let length = (info.framing == Framing::None).then_some(body_len);
    write_with(dst, msg, info, cseq, from, Some((info.stream_line, length)));
}

/// The rewrite itself; `whole`: the stream line to leave out and the length to add.
fn write_with(
    dst: &mut BytesMut,
    msg: &[u8],
    info: &HeadInfo,
    cseq: u64,
    from: Option<&str>,
    whole: Option<(Span, Option<u64>)>,
) {
    debug_assert!(from.is_none_or(|f| !f.bytes().any(|b| b == b'\r' || b == b'\n')));
    let mut skip = whole.map(|(span, _)| span).filter(|_| info.stream);
    let mut pos = 0;
    // Copy msg[pos..to] into dst, leaving the skipped line out if it lies in between.
    let mut copy_to = |dst: &mut BytesMut, pos: &mut usize, to: usize| {
        if let Some(span) = skip.filter(|s| (s.start as usize) < to) {
            dst.extend_from_slice(&msg[*pos..span.start as usize]);
            *pos = span.end as usize;
            skip = None;
        }
        dst.extend_from_slice(&msg[*pos..to]);
    };
    for (i, span) in info.drops().iter().enumerate() {
        copy_to(dst, &mut pos, span.start as usize);
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
    copy_to(dst, &mut pos, info.head_len - 2);
    if let Some((_, Some(length))) = whole {
        put_content_length(dst, length);
    }
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
        .map(|(_, span)| {
            span.len() + header_name::HTTPWS_TARGET_ERROR.len() - header_name::HTTPWS_ERROR.len()
        })
        .sum();
    let cseq_line = CSEQ_PREFIX.len() + len_u64(cseq) + CRLF.len();
    let from_line = from.map_or(0, |f| FROM_PREFIX.len() + f.len() + CRLF.len());
    info.head_len - dropped + renamed + cseq_line + from_line
}
