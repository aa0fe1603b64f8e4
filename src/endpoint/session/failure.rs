//! Why a request got no answer, and why the session gave up for good.

use crate::endpoint::tls_diagnosis::SchemeMismatch;
use crate::proto::http1::status;

/// Why a request got no response from the far end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No tunnel right now (connecting or reconnecting).
    #[error("the tunnel to the proxy is down")]
    TunnelDown,
    /// The tunnel dropped while the request was waiting.
    #[error("the tunnel dropped before the response arrived")]
    TargetGone,
    /// The message is larger than the tunnel's message limit.
    #[error("the message exceeds the tunnel's size limit")]
    TooLarge,
    /// The session was closed for good.
    #[error("the endpoint is closed")]
    Closed,
    /// A body that must stream, on a tunnel that speaks protocol 1 only (the proxy did not
    /// take up the offer of `httpws.2`).
    #[error("the tunnel carries whole messages only (the proxy does not speak protocol 2)")]
    NoStreams,
}

/// Why the session stopped trying (it retries everything else).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// The proxy refused the registration in a way retrying cannot fix (a bad name or token,
    /// a name another credential holds): its status and the reason it gave (the `text/plain`
    /// body of its answer, else the status line's phrase).
    #[error("the proxy refused the registration: {status} {}: {reason}", status::reason_phrase(*status))]
    Refused {
        /// The status of the proxy's refusal.
        status: u16,
        /// Why, in the proxy's words.
        reason: String,
    },
    /// The URL says `ws://` and the server speaks TLS, or the other way round.
    #[error("{0}")]
    WrongScheme(SchemeMismatch),
    /// Another connection with our credentials took the name over.
    #[error("replaced by another connection for the same name: {0}")]
    Replaced(String),
    /// `wss://` without any certificate authority to check the proxy against.
    #[error("cannot set up TLS to the proxy: {0}")]
    Tls(String),
}
