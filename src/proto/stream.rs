//! Stream messages (protocol 2, docs/protocol.md §12): the body of a streamed request or
//! response travelling as data messages after its head, with end, reset and credit messages,
//! all tagged with the exchange's CSeq.
//!
//! A stream message is a WebSocket message whose first byte is `~`:
//!
//! ```text
//! ~<verb> <dir><cseq>[ <arg>]\n[<payload>]
//! ```
//!
//! `<dir>` is `>` when `<cseq>` names a request the sender of the message sent, `<` when it
//! names one the sender received: the two numbering spaces of one connection (its own CSeqs as
//! a caller, the proxy's as a target) never mix. The proxy rewrites the tag line only (flipping
//! the direction and renumbering the CSeq, as it does for heads); the payload is forwarded as
//! it came, without a copy. Parsing is strict: one space between fields, decimal numbers as
//! heads write them, the line ends in LF, and a tag line is short.

use bytes::BytesMut;

use crate::proto::http1::decimal::{len_u64, parse_u64, put_u64};

/// The first byte of every stream message (never the first byte of an HTTP message or of an
/// indication).
pub const STREAM_MARK: u8 = b'~';
/// Credit each direction of a stream starts with, in bytes: a sender may send this much body
/// before the receiver grants more.
pub const STREAM_WINDOW: u64 = 256 * 1024;
/// Longest tag line accepted (`~credit >18446744073709551615 18446744073709551615\n` is 52).
pub const MAX_TAG_BYTES: usize = 64;
/// The header whose presence makes a head a stream head: its body follows as data messages.
pub const STREAM_HEADER: &[u8] = b"httpws-stream";
/// The only value [`STREAM_HEADER`] has.
pub const STREAM_HEADER_VALUE: &[u8] = b"body";

/// Which numbering space a stream message's CSeq is in, seen from the connection it travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `>`: a request the sender of this message sent (its own CSeq).
    Outgoing,
    /// `<`: a request the sender of this message received (the CSeq the proxy gave it).
    Incoming,
}

impl Direction {
    fn mark(self) -> u8 {
        match self {
            Direction::Outgoing => b'>',
            Direction::Incoming => b'<',
        }
    }

    /// The same exchange seen from the other end of the relay.
    pub fn flipped(self) -> Direction {
        match self {
            Direction::Outgoing => Direction::Incoming,
            Direction::Incoming => Direction::Outgoing,
        }
    }
}

/// What a stream message does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Body bytes (the payload): the request's from the requester, the response's from the
    /// responder.
    Data,
    /// The sender's body is complete.
    End,
    /// The sender, as receiver of the other side's body, grants this many more bytes.
    Credit(u64),
    /// The exchange is aborted, both directions.
    Reset(ResetReason),
}

/// Why a stream was reset: the closed vocabulary of `~reset` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The sender gave the exchange up (a caller went away, a client disconnected).
    Cancel,
    /// The other side disconnected (or was replaced, or the proxy shut down) mid-stream.
    TargetGone,
    /// Nothing moved on the stream for `--stream-idle-timeout`.
    Timeout,
    /// A sender sent more than the credit it had.
    FlowControl,
    /// The body went past what the receiving side can take (a protocol-1 peer's message
    /// limit, a declared `Content-Length`).
    TooLarge,
    /// A stream message broke the protocol (data after end, data for a whole body).
    Protocol,
    /// The proxy is stopping.
    Shutdown,
}

impl ResetReason {
    /// Every reason, for tables and tests.
    pub const ALL: [ResetReason; 7] = [
        Self::Cancel,
        Self::TargetGone,
        Self::Timeout,
        Self::FlowControl,
        Self::TooLarge,
        Self::Protocol,
        Self::Shutdown,
    ];

    /// The wire spelling.
    pub fn token(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::TargetGone => "target-gone",
            Self::Timeout => "timeout",
            Self::FlowControl => "flow-control",
            Self::TooLarge => "too-large",
            Self::Protocol => "protocol",
            Self::Shutdown => "shutdown",
        }
    }

    /// The reason a token names, if it is one of ours.
    pub fn from_token(token: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.token().as_bytes() == token)
    }
}

/// One parsed stream message (its payload is `&msg[payload_at..]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMessage {
    /// What it does.
    pub verb: Verb,
    /// Which numbering space `cseq` is in.
    pub dir: Direction,
    /// The exchange's CSeq in that space.
    pub cseq: u64,
    /// Where the payload starts (just after the tag line's LF).
    pub payload_at: usize,
}

/// Why a message is not a well-formed stream message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The tag line has no LF within [`MAX_TAG_BYTES`].
    #[error("stream message without a tag line")]
    NoTag,
    /// A verb this version does not know.
    #[error("unknown stream verb")]
    UnknownVerb,
    /// The direction is neither `>` nor `<`, or the CSeq is not a decimal u64.
    #[error("stream message with a bad CSeq")]
    BadCseq,
    /// A credit amount or a reset token that is missing or malformed, an argument where none
    /// belongs, or a payload on a message that has none.
    #[error("malformed stream message")]
    Malformed,
}

/// Whether `msg` is a stream message (and not HTTP or an indication).
pub fn is_stream(msg: &[u8]) -> bool {
    msg.first() == Some(&STREAM_MARK)
}

/// [`parse`] for a message that is a stream message; `None` for any other message.
pub fn parse_if_stream(msg: &[u8]) -> Option<Result<StreamMessage, StreamError>> {
    is_stream(msg).then(|| parse(msg))
}

/// Parse the tag line at the front of `msg` (which starts with `~`).
pub fn parse(msg: &[u8]) -> Result<StreamMessage, StreamError> {
    let window = &msg[..msg.len().min(MAX_TAG_BYTES)];
    let lf = window
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(StreamError::NoTag)?;
    let line = window.get(1..lf).ok_or(StreamError::NoTag)?;
    let mut fields = line.split(|&b| b == b' ');
    let verb = fields
        .next()
        .filter(|v| !v.is_empty())
        .ok_or(StreamError::UnknownVerb)?;
    let tag = fields.next().ok_or(StreamError::BadCseq)?;
    let arg = fields.next();
    if fields.next().is_some() {
        return Err(StreamError::Malformed);
    }
    let (dir, digits) = match tag.split_first() {
        Some((b'>', digits)) => (Direction::Outgoing, digits),
        Some((b'<', digits)) => (Direction::Incoming, digits),
        _ => return Err(StreamError::BadCseq),
    };
    let cseq = parse_u64(digits).ok_or(StreamError::BadCseq)?;
    let payload_at = lf + 1;
    let has_payload = msg.len() > payload_at;
    let verb = match (verb, arg) {
        (b"data", None) => Verb::Data,
        (b"end", None) if !has_payload => Verb::End,
        (b"credit", Some(n)) if !has_payload => {
            Verb::Credit(parse_u64(n).ok_or(StreamError::Malformed)?)
        }
        (b"reset", Some(token)) if !has_payload => {
            Verb::Reset(ResetReason::from_token(token).ok_or(StreamError::Malformed)?)
        }
        (b"data" | b"end" | b"credit" | b"reset", _) => return Err(StreamError::Malformed),
        _ => return Err(StreamError::UnknownVerb),
    };
    Ok(StreamMessage {
        verb,
        dir,
        cseq,
        payload_at,
    })
}

/// How long [`write_tag`] writes the tag line of `verb` about `cseq`, in bytes.
pub fn tag_len(verb: Verb, cseq: u64) -> usize {
    let verb_len = match verb {
        Verb::Data => 5,
        Verb::End => 4,
        Verb::Credit(n) => 7 + 1 + len_u64(n),
        Verb::Reset(reason) => 6 + 1 + reason.token().len(),
    };
    1 + verb_len + 1 + len_u64(cseq) + 1
}

/// Append the tag line of a message with `verb` about exchange `cseq` in `dir`'s space.
pub fn write_tag(dst: &mut BytesMut, verb: Verb, dir: Direction, cseq: u64) {
    dst.reserve(MAX_TAG_BYTES);
    dst.extend_from_slice(&[STREAM_MARK]);
    dst.extend_from_slice(match verb {
        Verb::Data => b"data ",
        Verb::End => b"end ",
        Verb::Credit(_) => b"credit ",
        Verb::Reset(_) => b"reset ",
    });
    dst.extend_from_slice(&[dir.mark()]);
    put_u64(dst, cseq);
    match verb {
        Verb::Credit(n) => {
            dst.extend_from_slice(b" ");
            put_u64(dst, n);
        }
        Verb::Reset(reason) => {
            dst.extend_from_slice(b" ");
            dst.extend_from_slice(reason.token().as_bytes());
        }
        Verb::Data | Verb::End => {}
    }
    dst.extend_from_slice(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(verb: Verb, dir: Direction, cseq: u64) -> Vec<u8> {
        let mut dst = BytesMut::new();
        write_tag(&mut dst, verb, dir, cseq);
        dst.to_vec()
    }

    #[test]
    fn every_message_round_trips() {
        for verb in [
            Verb::Data,
            Verb::End,
            Verb::Credit(0),
            Verb::Credit(u64::MAX),
            Verb::Reset(ResetReason::Cancel),
            Verb::Reset(ResetReason::FlowControl),
        ] {
            for dir in [Direction::Outgoing, Direction::Incoming] {
                for cseq in [0, 17, u64::MAX] {
                    let wire = tag(verb, dir, cseq);
                    assert!(wire.len() <= MAX_TAG_BYTES, "{wire:?}");
                    assert!(is_stream(&wire));
                    let parsed = parse(&wire).expect("parses");
                    assert_eq!((parsed.verb, parsed.dir, parsed.cseq), (verb, dir, cseq));
                    assert_eq!(parsed.payload_at, wire.len());
                    assert_eq!(tag_len(verb, cseq), wire.len());
                }
            }
        }
        assert_eq!(
            tag(Verb::Credit(65536), Direction::Incoming, 3),
            b"~credit <3 65536\n"
        );
        assert_eq!(tag(Verb::Data, Direction::Outgoing, 17), b"~data >17\n");
        let mut msg = tag(Verb::Data, Direction::Outgoing, 17);
        msg.extend_from_slice(b"payload\n~end >1\n");
        let parsed = parse(&msg).expect("data with a payload that looks like a tag");
        assert_eq!(&msg[parsed.payload_at..], b"payload\n~end >1\n");
    }

    #[test]
    fn malformed_tags_are_refused() {
        use StreamError::*;
        for (msg, error) in [
            (&b"~data >17"[..], NoTag),
            (b"~\n", UnknownVerb),
            (b"~push >1\n", UnknownVerb),
            (b"~data 17\n", BadCseq),
            (b"~data >+17\n", BadCseq),
            (b"~data >\n", BadCseq),
            (b"~data  >17\n", BadCseq),
            (b"~data >17 x\n", Malformed),
            (b"~end >17\nbody", Malformed),
            (b"~credit >17\n", Malformed),
            (b"~credit >17 -1\n", Malformed),
            (b"~reset >17 nope\n", Malformed),
            (b"~reset >17\n", Malformed),
        ] {
            assert_eq!(parse(msg), Err(error), "{:?}", String::from_utf8_lossy(msg));
        }
        let long = format!("~data >1{}\n", "0".repeat(MAX_TAG_BYTES));
        assert_eq!(parse(long.as_bytes()), Err(NoTag));
        assert!(!is_stream(b"GET / HTTP/1.1\r\n") && !is_stream(b":host a"));
    }

    #[test]
    fn reset_tokens() {
        for r in ResetReason::ALL {
            assert_eq!(ResetReason::from_token(r.token().as_bytes()), Some(r));
        }
        assert_eq!(ResetReason::from_token(b"other"), None);
    }
}
