//! Indications: WebSocket messages that start with `:` and are never HTTP (docs/protocol.md §2).
//!
//! Two are defined: `:host <address>` (the proxy's first message, naming the registered
//! address) and `:error <token> "<reason>"` (a connection-level problem). The reason is quoted
//! with `"` and `\` escaped by `\`, so it may hold any text, spaces and newlines included.
//! Unknown indications parse as [`Indication::Other`] so that newer peers can add some.

/// Name of the indication that announces the registered address.
const HOST_NAME: &str = "host";
/// Name of the indication that reports a connection-level error.
const ERROR_NAME: &str = "error";

/// The closed vocabulary of `:error` tokens: every connection-level problem the proxy reports
/// (docs/protocol.md §2 lists them all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndicationError {
    /// No usable HTTP head or CSeq.
    BadMessage,
    /// A response nobody waits for.
    UnknownCseq,
    /// The same CSeq is already in flight from this sender.
    DuplicateCseq,
    /// The message is over the size limit.
    MessageTooLarge,
    /// A newcomer with the same credential took the address over.
    Replaced,
    /// The proxy is shutting down.
    Shutdown,
}

impl IndicationError {
    /// Every token, for tables and tests.
    pub const ALL: [IndicationError; 6] = [
        IndicationError::BadMessage,
        IndicationError::UnknownCseq,
        IndicationError::DuplicateCseq,
        IndicationError::MessageTooLarge,
        IndicationError::Replaced,
        IndicationError::Shutdown,
    ];

    /// The wire spelling, e.g. `"bad-message"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndicationError::BadMessage => "bad-message",
            IndicationError::UnknownCseq => "unknown-cseq",
            IndicationError::DuplicateCseq => "duplicate-cseq",
            IndicationError::MessageTooLarge => "message-too-large",
            IndicationError::Replaced => "replaced",
            IndicationError::Shutdown => "shutdown",
        }
    }

    /// The token for a wire spelling (exact, lowercase), or `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Why a message is not a well-formed indication.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The message is empty or its first byte is not `:`: it is no indication.
    #[error("message does not start with ':'")]
    NotIndication,
    /// The message starts with `:` but is not UTF-8 text.
    #[error("indication is not valid UTF-8")]
    NotUtf8,
    /// No name after the `:`, or a `:host` or `:error` that breaks its grammar; carries which
    /// rule.
    #[error("malformed indication: {0}")]
    Malformed(&'static str),
}

/// A parsed indication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indication {
    /// `:host <address>`: the address this connection is registered under.
    Host(String),
    /// `:error <token> "<reason>"`, reason unescaped. The token is kept as text so that a
    /// newer peer's tokens survive; [`IndicationError::parse`] maps the known ones.
    Error {
        /// The token as sent, e.g. `replaced`.
        token: String,
        /// The reason, unquoted and unescaped.
        reason: String,
    },
    /// An indication this version does not know: the whole message text, leading `:` included,
    /// so that it can be logged or passed on unchanged.
    Other(String),
}

/// `:host <address>`
pub fn encode_host(address: &str) -> String {
    format!(":{HOST_NAME} {address}")
}

/// `:error <token> "<reason>"`: reason quoted, `"` and `\` escaped with `\`.
pub fn encode_error(token: IndicationError, reason: &str) -> String {
    let token = token.as_str();
    // Room for the fixed parts, the reason, and a few escapes without regrowing.
    let mut out = String::with_capacity(ERROR_NAME.len() + token.len() + reason.len() + 8);
    out.push(':');
    out.push_str(ERROR_NAME);
    out.push(' ');
    out.push_str(token);
    out.push_str(" \"");
    for c in reason.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether a message is an indication: its first byte is `:` (an HTTP message never starts
/// with one, so this single byte decides).
pub fn is_indication(msg: &[u8]) -> bool {
    msg.first() == Some(&b':')
}

/// Parse an indication message (starts with `:`); inverse of the encoders (unescapes the
/// reason).
///
/// Strict about the two defined indications, because a misparsed `:error` would hide a real
/// problem; lenient in one way only: `:error <token>` without a reason reads as an empty reason,
/// since the token alone carries the meaning.
pub fn parse(msg: &[u8]) -> Result<Indication, ParseError> {
    let rest = match msg.split_first() {
        Some((b':', rest)) => rest,
        _ => return Err(ParseError::NotIndication),
    };
    let text = std::str::from_utf8(rest).map_err(|_| ParseError::NotUtf8)?;
    let (name, args) = match text.split_once(' ') {
        Some((name, args)) => (name, Some(args)),
        None => (text, None),
    };
    match name {
        HOST_NAME => parse_host(args),
        ERROR_NAME => parse_error(args),
        "" => Err(ParseError::Malformed("empty indication name")),
        // `text` is `rest` as UTF-8 and `msg` is ':' + `rest`, so this rebuilds `msg` exactly.
        _ => Ok(Indication::Other(format!(":{text}"))),
    }
}

fn parse_host(args: Option<&str>) -> Result<Indication, ParseError> {
    match args {
        None | Some("") => Err(ParseError::Malformed("host without an address")),
        Some(address) if address.contains(|c: char| c.is_whitespace()) => {
            Err(ParseError::Malformed("host address contains whitespace"))
        }
        Some(address) => Ok(Indication::Host(address.to_owned())),
    }
}

fn parse_error(args: Option<&str>) -> Result<Indication, ParseError> {
    let args = args.ok_or(ParseError::Malformed("error without a token"))?;
    let (token, quoted) = match args.split_once(' ') {
        Some((token, quoted)) => (token, Some(quoted)),
        None => (args, None),
    };
    if token.is_empty() {
        return Err(ParseError::Malformed("error without a token"));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ParseError::Malformed("error token is not [a-z0-9-]"));
    }
    let reason = match quoted {
        None => String::new(),
        Some(quoted) => unquote(quoted)?,
    };
    Ok(Indication::Error {
        token: token.to_owned(),
        reason,
    })
}

/// `"<text>"` with `\"` and `\\` escapes → text. Anything after the closing quote, an
/// unterminated string, or another escape is malformed: the encoder never produces them.
fn unquote(quoted: &str) -> Result<String, ParseError> {
    let body = quoted
        .strip_prefix('"')
        .ok_or(ParseError::Malformed("error reason is not quoted"))?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => out.push(escaped),
                Some(_) => return Err(ParseError::Malformed("unknown escape in reason")),
                None => return Err(ParseError::Malformed("unterminated reason")),
            },
            '"' => {
                return if chars.as_str().is_empty() {
                    Ok(out)
                } else {
                    Err(ParseError::Malformed("text after the quoted reason"))
                };
            }
            c => out.push(c),
        }
    }
    Err(ParseError::Malformed("unterminated reason"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for token in IndicationError::ALL {
            assert_eq!(IndicationError::parse(token.as_str()), Some(token));
        }
        assert_eq!(IndicationError::DuplicateCseq.as_str(), "duplicate-cseq");
        assert_eq!(
            IndicationError::MessageTooLarge.as_str(),
            "message-too-large"
        );
        assert_eq!(IndicationError::parse("Replaced"), None);
        assert_eq!(IndicationError::parse("nope"), None);
    }

    #[test]
    fn host_round_trip() {
        let msg = encode_host("bob.example");
        assert_eq!(msg, ":host bob.example");
        assert!(is_indication(msg.as_bytes()));
        assert_eq!(
            parse(msg.as_bytes()),
            Ok(Indication::Host("bob.example".into()))
        );
    }

    #[test]
    fn error_quoting_round_trip() {
        for reason in [
            "",
            "plain",
            "say \"hi\"",
            "back\\slash",
            "\\\"",
            "\"",
            "\\",
            "a\nb ü",
        ] {
            let msg = encode_error(IndicationError::Replaced, reason);
            assert_eq!(
                parse(msg.as_bytes()),
                Ok(Indication::Error {
                    token: "replaced".into(),
                    reason: reason.into()
                }),
                "{msg}"
            );
        }
        assert_eq!(
            encode_error(IndicationError::BadMessage, r#"no "CSeq" \ here"#),
            r#":error bad-message "no \"CSeq\" \\ here""#
        );
    }

    #[test]
    fn error_without_reason_is_accepted() {
        assert_eq!(
            parse(b":error shutdown"),
            Ok(Indication::Error {
                token: "shutdown".into(),
                reason: String::new()
            })
        );
    }

    #[test]
    fn unknown_indications_are_kept_whole() {
        assert_eq!(parse(b":ping 42"), Ok(Indication::Other(":ping 42".into())));
        assert_eq!(parse(b":bye"), Ok(Indication::Other(":bye".into())));
    }

    #[test]
    fn malformed_indications() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(ParseError::NotIndication)
        );
        assert_eq!(parse(b""), Err(ParseError::NotIndication));
        assert_eq!(parse(b":host \xff"), Err(ParseError::NotUtf8));
        let malformed = |m: &[u8]| matches!(parse(m), Err(ParseError::Malformed(_)));
        assert!(malformed(b":"));
        assert!(malformed(b": host"));
        assert!(malformed(b":host"));
        assert!(malformed(b":host "));
        assert!(malformed(b":host a b"));
        assert!(malformed(b":error"));
        assert!(malformed(b":error "));
        assert!(malformed(b":error Bad \"x\""));
        assert!(malformed(b":error replaced x"));
        assert!(malformed(b":error replaced \"x"));
        assert!(malformed(b":error replaced \"x\\\""));
        assert!(malformed(b":error replaced \"x\\"));
        assert!(malformed(b":error replaced \"\\n\""));
        assert!(malformed(b":error replaced \"x\" y"));
        assert!(malformed(b":error replaced \"x\"\""));
    }

    #[test]
    fn is_indication_looks_at_first_byte_only() {
        assert!(is_indication(b":"));
        assert!(!is_indication(b""));
        assert!(!is_indication(b" :host"));
        assert!(!is_indication(b"HTTP/1.1 200 OK\r\n"));
    }
}
