//! The closed vocabulary of `Httpws-Error`: every token httpws writes on an answer it made
//! itself (rather than the target), each with its one status. The proxy, the agent, the
//! library and the JavaScript client write only these; `docs/protocol.md` §2 and §7 list them
//! all. An answer the target made never carries `Httpws-Error` (the proxy renames a target's
//! own to `Httpws-Target-Error`).

/// Why httpws, not the target, answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// No endpoint holds the target address (proxy).
    UnknownAddress,
    /// An access rule forbids this caller → target, a private endpoint was called from the
    /// internet (proxy), or a web page tried to drive an agent (agent's listener).
    Forbidden,
    /// The target's queue or in-flight limit is full, or the proxy is shutting down (proxy);
    /// an endpoint holds as many requests as it may (library, JavaScript client).
    TargetBusy,
    /// The target disconnected before answering (proxy), or the tunnel dropped while the
    /// request waited (agent's listener).
    TargetGone,
    /// No answer before the deadline (proxy, agent).
    Timeout,
    /// The request is malformed but could be answered (proxy, agent, endpoints).
    BadRequest,
    /// The answer cannot be relayed to a plain HTTP client (public ingress, agent's listener).
    BadResponse,
    /// The message is over the size limit (public ingress, agent's listener, endpoints).
    MessageTooLarge,
    /// The request head is over the size or line limit (public ingress).
    HeadTooLarge,
    /// A method that is not served here: `CONNECT`, or not `GET`/`HEAD` for the proxy's own
    /// pages (public ingress).
    MethodNotAllowed,
    /// A `Transfer-Encoding` other than `chunked` alone (public ingress).
    UnsupportedCoding,
    /// No tunnel right now (agent's listener).
    TunnelDown,
    /// The local service refused or did not accept the connection (agent's service side).
    ServiceUnavailable,
    /// The local service reset the connection or sent an unusable answer (agent's service
    /// side, endpoints whose handler failed).
    ServiceError,
    /// The endpoint serves no requests (agent without `--serve`, library without a handler).
    NoService,
}

impl AnswerError {
    /// Every token, for tables and tests.
    pub const ALL: [AnswerError; 15] = [
        Self::UnknownAddress,
        Self::Forbidden,
        Self::TargetBusy,
        Self::TargetGone,
        Self::Timeout,
        Self::BadRequest,
        Self::BadResponse,
        Self::MessageTooLarge,
        Self::HeadTooLarge,
        Self::MethodNotAllowed,
        Self::UnsupportedCoding,
        Self::TunnelDown,
        Self::ServiceUnavailable,
        Self::ServiceError,
        Self::NoService,
    ];

    /// The HTTP status of an answer with this token.
    pub fn status(self) -> u16 {
        match self {
            Self::UnknownAddress => 404,
            Self::Forbidden => 403,
            Self::TargetBusy => 503,
            Self::TargetGone | Self::BadResponse | Self::TunnelDown => 502,
            Self::ServiceUnavailable | Self::ServiceError => 502,
            Self::Timeout => 504,
            Self::BadRequest => 400,
            Self::MessageTooLarge => 413,
            Self::HeadTooLarge => 431,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedCoding | Self::NoService => 501,
        }
    }

    /// The `Httpws-Error` header value.
    pub fn token(self) -> &'static str {
        match self {
            Self::UnknownAddress => "unknown-address",
            Self::Forbidden => "forbidden",
            Self::TargetBusy => "target-busy",
            Self::TargetGone => "target-gone",
            Self::Timeout => "timeout",
            Self::BadRequest => "bad-request",
            Self::BadResponse => "bad-response",
            Self::MessageTooLarge => "message-too-large",
            Self::HeadTooLarge => "head-too-large",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::UnsupportedCoding => "unsupported-coding",
            Self::TunnelDown => "tunnel-down",
            Self::ServiceUnavailable => "service-unavailable",
            Self::ServiceError => "service-error",
            Self::NoService => "no-service",
        }
    }

    /// The error a token names, if it is one of ours.
    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.token() == token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_with_one_status_each() {
        let table: Vec<_> = AnswerError::ALL
            .iter()
            .map(|e| (e.token(), e.status()))
            .collect();
        assert_eq!(
            table,
            vec![
                ("unknown-address", 404),
                ("forbidden", 403),
                ("target-busy", 503),
                ("target-gone", 502),
                ("timeout", 504),
                ("bad-request", 400),
                ("bad-response", 502),
                ("message-too-large", 413),
                ("head-too-large", 431),
                ("method-not-allowed", 405),
                ("unsupported-coding", 501),
                ("tunnel-down", 502),
                ("service-unavailable", 502),
                ("service-error", 502),
                ("no-service", 501),
            ]
        );
        for e in AnswerError::ALL {
            assert_eq!(AnswerError::from_token(e.token()), Some(e));
        }
        assert_eq!(AnswerError::from_token("refused"), None);
    }
}
