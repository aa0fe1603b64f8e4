//! Why the library's calls fail: connecting, a request, serving.

use std::time::Duration;

use crate::endpoint::config::ProxyUrlError;
use crate::endpoint::http1::Http1Error;
use crate::endpoint::session::{Failure, Fatal};
use crate::endpoint::stream::BodyError;
use crate::endpoint::tls::TlsError;
use crate::proto::address::AddressError;

/// Why [`EndpointBuilder::connect`](super::EndpointBuilder::connect) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The proxy URL is not `ws://host[:port]` or `wss://host[:port]`.
    #[error(transparent)]
    Url(#[from] ProxyUrlError),
    /// The name is not a valid virtual address.
    #[error("invalid endpoint name: {0}")]
    Name(#[from] AddressError),
    /// The token is empty or not visible ASCII (the proxy's rule).
    #[error("invalid token: it must be non-empty visible ASCII")]
    Token,
    /// The proxy refused us for good ([`Fatal::Refused`] carries its status and reason), or
    /// the URL's scheme does not match the server.
    #[error(transparent)]
    Fatal(#[from] Fatal),
    /// The tunnel did not register within the wait given.
    #[error("no registration with the proxy within {0:?}")]
    Timeout(Duration),
    /// No trust anchors for a `wss://` proxy (a CA file that cannot be read, say).
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why [`Endpoint::request`](super::Endpoint::request) got no HTTP response. Errors the proxy or the target answer
/// with (404 `unknown-address`, 504 `timeout`, …) are responses, not these.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The tunnel could not carry the request, or dropped it.
    #[error(transparent)]
    Tunnel(#[from] Failure),
    /// Neither the URI nor a `Host` header names the target endpoint.
    #[error("request has no target: give an absolute URI (http://name/path) or a Host header")]
    NoTarget,
    /// The response cannot be parsed, or is an interim `1xx` (the agent's `bad-response`).
    #[error("malformed response: {0}")]
    BadResponse(#[from] Http1Error),
    /// A body could not be read whole: the request's own (an application body that failed),
    /// or, for [`request_whole`](super::Endpoint::request_whole), the response's (over the
    /// limit, or its stream broke).
    #[error("body: {0}")]
    Body(#[from] BodyError),
}

/// Why [`Endpoint::serve`](super::Endpoint::serve) could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another `serve` took this endpoint's incoming requests.
    #[error("this endpoint is already serving")]
    AlreadyServing,
}
