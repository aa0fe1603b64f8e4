//! How long a body is (RFC 9112 §6.3), read strictly: a message two parsers could read
//! differently is refused, never repaired. The relay, the public ingress and the agent all
//! apply these same rules.

use httparse::Header;

use crate::proto::http1::decimal::parse_u64;

/// What a head declares about its body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`: a request has no body; a
    /// response's body runs to the end of the message (or of the connection).
    #[default]
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a head's framing is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum FramingError {
    /// Two `Content-Length` lines, even if they agree.
    DuplicateLength,
    /// Not one plain decimal number (`+10`, `0x10`, empty, a list).
    BadLength,
    /// Two `Transfer-Encoding` lines.
    DuplicateCoding,
    /// A coding other than `chunked` alone (`gzip`, `gzip, chunked`, `identity`): httpws
    /// re-frames or relays bodies by their chunking, and cannot honour any other coding.
    UnsupportedCoding,
    /// Both `Content-Length` and `Transfer-Encoding`: the request-smuggling shape.
    LengthAndChunked,
}

impl FramingError {
    /// The reason, as a static text (heads refused on the hot path allocate nothing).
    pub fn reason(self) -> &'static str {
        match self {
            Self::DuplicateLength => "duplicate Content-Length",
            Self::BadLength => "invalid Content-Length",
            Self::DuplicateCoding => "duplicate Transfer-Encoding",
            Self::UnsupportedCoding => "Transfer-Encoding other than chunked",
            Self::LengthAndChunked => "both Transfer-Encoding and Content-Length",
        }
    }
}

/// The framing `headers` declare: at most one `Content-Length`, a plain decimal; at most one
/// `Transfer-Encoding`, exactly `chunked`; never both. Both together is refused as such
/// whatever the coding says: it is the smuggling shape.
pub fn declared(headers: &[Header<'_>]) -> Result<Framing, FramingError> {
    let mut length: Option<u64> = None;
    // Whether the one Transfer-Encoding line is exactly `chunked`.
    let mut coding: Option<bool> = None;
    for h in headers {
        let name = h.name.as_bytes();
        // The length first: most names are neither, and this is on every relayed message.
        if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_u64(h.value.trim_ascii()).ok_or(FramingError::BadLength)?;
            if length.replace(n).is_some() {
                return Err(FramingError::DuplicateLength);
            }
        } else if name.len() == 17 && name.eq_ignore_ascii_case(b"transfer-encoding") {
            let chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if coding.replace(chunked).is_some() {
                return Err(FramingError::DuplicateCoding);
            }
        }
    }
    match (length, coding) {
        (Some(_), Some(_)) => Err(FramingError::LengthAndChunked),
        (Some(n), None) => Ok(Framing::Length(n)),
        (None, Some(true)) => Ok(Framing::Chunked),
        (None, Some(false)) => Err(FramingError::UnsupportedCoding),
        (None, None) => Ok(Framing::None),
    }
}

/// Whether a response to this request with this status has no body, whatever its head says
/// (RFC 9110 §6.4.1): answers to `HEAD`, `1xx`, `204` and `304`.
pub fn response_is_bodiless(status: u16, request_was_head: bool) -> bool {
    request_was_head || (100..200).contains(&status) || status == 204 || status == 304
}

/// Whether a head declares a body of its own: a `Content-Length` other than 0, or any
/// `Transfer-Encoding`. A response that may not carry one (to `HEAD`, `204`, `304`) but
/// declares one hints that its sender might send it anyway.
pub fn declares_body(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && parse_u64(h.value) != Some(0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(list: &[(&'static str, &'static [u8])]) -> Result<Framing, FramingError> {
        let headers: Vec<Header<'static>> = list
            .iter()
            .map(|&(name, value)| Header { name, value })
            .collect();
        declared(&headers)
    }

    #[test]
    fn every_ambiguous_shape_is_refused() {
        use FramingError::*;
        assert_eq!(framing(&[]), Ok(Framing::None));
        assert_eq!(framing(&[("Content-Length", b"5")]), Ok(Framing::Length(5)));
        assert_eq!(
            framing(&[("transfer-encoding", b"Chunked")]),
            Ok(Framing::Chunked)
        );
        for (headers, error) in [
            (
                &[("Content-Length", &b"5"[..]), ("Content-Length", b"5")][..],
                DuplicateLength,
            ),
            (&[("Content-Length", b"5, 5")], BadLength),
            (&[("Content-Length", b"+5")], BadLength),
            (&[("Content-Length", b"0x5")], BadLength),
            (&[("Content-Length", b"")], BadLength),
            (&[("Transfer-Encoding", b"gzip")], UnsupportedCoding),
            (
                &[("Transfer-Encoding", b"gzip, chunked")],
                UnsupportedCoding,
            ),
            (
                &[("Transfer-Encoding", b"chunked, gzip")],
                UnsupportedCoding,
            ),
            (&[("Transfer-Encoding", b"identity")], UnsupportedCoding),
            (
                &[
                    ("Transfer-Encoding", b"chunked"),
                    ("Transfer-Encoding", b"chunked"),
                ],
                DuplicateCoding,
            ),
            (
                &[("Transfer-Encoding", b"chunked"), ("Content-Length", b"3")],
                LengthAndChunked,
            ),
            (
                &[("Transfer-Encoding", b"gzip"), ("Content-Length", b"3")],
                LengthAndChunked,
            ),
            (
                &[("Content-Length", b"3"), ("Transfer-Encoding", b"chunked")],
                LengthAndChunked,
            ),
        ] {
            assert_eq!(framing(headers), Err(error), "{headers:?}");
        }
    }

    #[test]
    fn bodiless_responses() {
        assert!(response_is_bodiless(200, true));
        for status in [100, 103, 204, 304] {
            assert!(response_is_bodiless(status, false), "{status}");
        }
        assert!(!response_is_bodiless(200, false));
    }

    #[test]
    fn bodies_declared_where_none_may_come() {
        assert!(declares_body(&header_list(&[("Content-Length", b"6")])));
        assert!(declares_body(&header_list(&[(
            "Transfer-Encoding",
            b"chunked"
        )])));
        assert!(!declares_body(&header_list(&[("Content-Length", b"0")])));
        assert!(!declares_body(&header_list(&[("X-Length", b"6")])));
    }

    fn header_list(list: &[(&'static str, &'static [u8])]) -> Vec<Header<'static>> {
        list.iter()
            .map(|&(name, value)| Header { name, value })
            .collect()
    }
}
