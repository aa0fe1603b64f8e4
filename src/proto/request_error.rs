//! The errors the proxy answers a request with (DESIGN.md §2): each is a real HTTP response
//! carrying the caller's CSeq and an `Httpws-Error: <token>` header.

/// Why the proxy, not the target, answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No endpoint holds the target address.
    UnknownAddress,
    /// An access rule forbids this caller → target.
    Forbidden,
    /// The target's queue or in-flight limit is full.
    TargetBusy,
    /// The target disconnected before answering.
    TargetGone,
    /// No answer before the deadline.
    Timeout,
    /// The head is malformed but a CSeq could be read.
    BadRequest,
}

impl RequestError {
    pub const ALL: [RequestError; 6] = [
        Self::UnknownAddress,
        Self::Forbidden,
        Self::TargetBusy,
        Self::TargetGone,
        Self::Timeout,
        Self::BadRequest,
    ];

    pub fn status(self) -> u16 {
        match self {
            Self::UnknownAddress => 404,
            Self::Forbidden => 403,
            Self::TargetBusy => 503,
            Self::TargetGone => 502,
            Self::Timeout => 504,
            Self::BadRequest => 400,
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
        }
    }

    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.token() == token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_statuses_match_the_design() {
        let table: Vec<_> = RequestError::ALL
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
            ]
        );
        for e in RequestError::ALL {
            assert_eq!(RequestError::from_token(e.token()), Some(e));
        }
        assert_eq!(RequestError::from_token("nope"), None);
    }
}
