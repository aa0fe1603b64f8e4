//! The client library: [`Endpoint`], the endpoint role for Rust programs. Connect to a proxy
//! under a name, call other endpoints with `http::Request`s, and serve requests addressed to
//! this one with any `tower::Service` (an axum `Router`) or an async handler. Bodies are
//! [`Body`](crate::endpoint::body::Body), an `http_body::Body` that streams over a
//! protocol-2 tunnel. The `httpws endpoint` agent is built on the same session.
//!
//! - [`Endpoint`] and [`EndpointBuilder`] here; `errors`: why a call fails; `messages`: the
//!   conversions between `http` types and tunnel messages; `outgoing`: an application's body
//!   sent whole or streamed; [`serve`]: what `Endpoint::serve` takes, and one request
//!   served.

mod errors;
mod messages;
mod outgoing;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::body::Body;
use super::config::{ProxyUrl, SessionConfig};
use super::session::{Session, Status};
use crate::proto::address::VirtualAddress;
use crate::proto::handshake::{Protocol, Token};
use messages::{request_head, request_lines, tunnel_response};
use outgoing::Outgoing;

pub use errors::{ConnectError, RequestError, ServeError};
pub use messages::plain_response;
pub use serve::Serve;

/// Builds an [`Endpoint`]: the proxy URL, then optional name, token and timers.
#[derive(Debug)]
pub struct EndpointBuilder {
    config: Result<SessionConfig, ConnectError>,
}

impl EndpointBuilder {
    /// Register under `name` (otherwise the proxy assigns one).
    pub fn name(mut self, name: &str) -> Self {
        if let Ok(config) = &mut self.config {
            match VirtualAddress::parse(name.as_bytes()) {
                Ok(address) => config.name = Some(address),
                Err(e) => self.config = Err(e.into()),
            }
        }
        self
    }

    /// Present `token` as `Authorization: Bearer` (never logged). It must be non-empty
    /// visible ASCII, the proxy's rule.
    pub fn token(mut self, token: &str) -> Self {
        if let Ok(config) = &mut self.config {
            match Token::checked(token) {
                Ok(token) => config.token = Some(token),
                Err(_) => self.config = Err(ConnectError::Token),
            }
        }
        self
    }

    /// Take calls from the internet: register as public (`?public=1`), so the proxy's public
    /// HTTP ingress relays requests for this name. Endpoints are private by default.
    pub fn public(mut self, public: bool) -> Self {
        if let Ok(config) = &mut self.config {
            config.public = public;
        }
        self
    }

    /// With a `wss://` proxy, trust only the CA certificates in this PEM file instead of the
    /// system's roots.
    pub fn ca_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        if let Ok(config) = &mut self.config {
            match super::tls::client_config(Some(path.as_ref())) {
                Ok(tls) => config.tls = Some(tls),
                Err(e) => self.config = Err(e.into()),
            }
        }
        self
    }

    /// With a `wss://` proxy, use this rustls configuration (roots, client certificates).
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        if let Ok(config) = &mut self.config {
            config.tls = Some(tls);
        }
        self
    }

    /// Change any other setting.
    pub fn configure(mut self, f: impl FnOnce(&mut SessionConfig)) -> Self {
        if let Ok(config) = &mut self.config {
            f(config);
        }
        self
    }

    /// The settings as they stand.
    pub fn into_config(self) -> Result<SessionConfig, ConnectError> {
        self.config
    }

    /// Connect and wait for the registration, for at most `wait`. Afterwards the endpoint
    /// reconnects by itself whenever the tunnel drops. A refusal that retrying cannot fix
    /// (bad name, bad token, a name another credential holds) is returned at once as
    /// [`ConnectError::Fatal`] with the proxy's status and reason.
    pub async fn connect_within(self, wait: Duration) -> Result<Endpoint, ConnectError> {
        let endpoint = Endpoint::start(self.config?);
        let mut status = endpoint.session.status();
        let outcome = tokio::time::timeout(
            wait,
            status.wait_for(|s| matches!(s, Status::Up { .. } | Status::Failed(_))),
        )
        .await;
        let result = match outcome {
            Ok(Ok(s)) => match &*s {
                Status::Failed(fatal) => Err(ConnectError::Fatal(fatal.clone())),
                _ => Ok(()),
            },
            _ => Err(ConnectError::Timeout(wait)),
        };
        match result {
            Ok(()) => Ok(endpoint),
            Err(e) => {
                endpoint.close().await;
                Err(e)
            }
        }
    }

    /// [`EndpointBuilder::connect_within`] with the default wait of 10 seconds.
    pub async fn connect(self) -> Result<Endpoint, ConnectError> {
        self.connect_within(Duration::from_secs(10)).await
    }
}

/// One endpoint: a tunnel session plus HTTP conversions. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    session: Session,
}

impl Endpoint {
    /// Start building an endpoint for the proxy at `proxy_url` (`ws://host:port`, or
    /// `wss://host:port` for TLS, checked against the system's roots unless
    /// [`ca_file`](EndpointBuilder::ca_file) says otherwise).
    pub fn builder(proxy_url: &str) -> EndpointBuilder {
        EndpointBuilder {
            config: ProxyUrl::parse(proxy_url)
                .map(SessionConfig::new)
                .map_err(ConnectError::from),
        }
    }

    /// Start the session in the background without waiting (it retries until it registers).
    pub fn start(config: SessionConfig) -> Endpoint {
        Endpoint {
            session: Session::start(config),
        }
    }

    /// The underlying session, for callers that work with raw messages (the agent does).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The address this endpoint is registered under, while the tunnel is up.
    pub fn address(&self) -> Option<VirtualAddress> {
        self.session.address()
    }

    /// Send `req` to the endpoint its URI authority (`http://bob/path`) or `Host` header
    /// names, and wait for the response head: its body streams in as it arrives (or is
    /// whole, for a small answer). The caller's address reaches the target as
    /// `Httpws-From`. Proxy-made errors come back as responses with an `Httpws-Error` header.
    ///
    /// The request's body goes whole when its length is known to be at most
    /// [`WHOLE_BODY_MAX_BYTES`](crate::endpoint::stream::WHOLE_BODY_MAX_BYTES), else it
    /// streams as the target grants credit (on a protocol-1 tunnel it is read whole first,
    /// within the message limit). A streamed body that fails resets the exchange.
    pub async fn request<B: Into<Body>>(
        &self,
        req: http::Request<B>,
    ) -> Result<http::Response<Body>, RequestError> {
        let is_head = req.method() == http::Method::HEAD;
        let (parts, body) = req.into_parts();
        let streams = self.session.protocol() == Some(Protocol::V2);
        let max_body_bytes = self.session.max_body_bytes();
        let outgoing = outgoing::prepare(body.into(), streams, max_body_bytes)
            .await
            .map_err(|e| match e {
                super::stream::BodyError::TooLarge { .. } => {
                    RequestError::Tunnel(super::session::Failure::TooLarge)
                }
                e => RequestError::Body(e),
            })?;
        let response = match outgoing {
            Outgoing::Whole(body) => {
                let head = request_head(&parts, body.len())?;
                self.session.request(head, body).await?
            }
            Outgoing::Stream(body, length) => {
                let head = request_lines(&parts)?;
                let (writer, pending) = self.session.request_streaming(head, length).await?;
                tokio::spawn(outgoing::send(body, writer));
                pending.wait().await?
            }
        };
        Ok(tunnel_response(response, is_head, max_body_bytes)?)
    }

    /// [`request`](Self::request), with the response's body read whole (within the
    /// tunnel's message limit, [`RequestError::Body`] beyond it or if the stream breaks).
    pub async fn request_whole<B: Into<Body>>(
        &self,
        req: http::Request<B>,
    ) -> Result<http::Response<Bytes>, RequestError> {
        let (parts, body) = self.request(req).await?.into_parts();
        let bytes = body.bytes_within(self.session.max_body_bytes()).await?;
        Ok(http::Response::from_parts(parts, bytes))
    }

    /// Answer requests addressed to this endpoint with `service`, until the endpoint closes.
    /// `service` is any `tower::Service<http::Request<Body>>` whose response body is an
    /// `http_body::Body` (an axum `Router` serves unchanged), or an async function of a
    /// whole `http::Request<Bytes>` answering an `http::Response<Bytes>` (see [`Serve`]).
    /// Request bodies stream in as the service reads them; response bodies stream out
    /// unless their length is known to be small. Up to the session's `max_incoming`
    /// requests are handled at once. Only one `serve` may run per endpoint.
    pub async fn serve<S, M>(&self, service: S) -> Result<(), ServeError>
    where
        S: Serve<M>,
    {
        let mut incoming = self
            .session
            .take_incoming()
            .ok_or(ServeError::AlreadyServing)?;
        let service = Arc::new(service);
        let limit = Arc::new(Semaphore::new(super::config::DEFAULT_MAX_INCOMING));
        while let Some(request) = incoming.recv().await {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                break;
            };
            let session = self.session.clone();
            let service = Arc::clone(&service);
            tokio::spawn(async move {
                serve::serve_one(&session, request, service).await;
                drop(permit);
            });
        }
        Ok(())
    }

    /// Close the tunnel and stop reconnecting.
    pub async fn close(&self) {
        self.session.close().await;
    }
}

/// The header value of `Httpws-Error` on a response, if the proxy or an agent made it.
pub fn httpws_error<B>(response: &http::Response<B>) -> Option<&str> {
    response.headers().get("httpws-error")?.to_str().ok()
}

/// The header value of `Httpws-Target-Error` on a response: an error the target's own side
/// made (its agent could not reach its service, say), which the proxy renames from the
/// target's `Httpws-Error` so that it cannot pass for one of the proxy's own.
pub fn httpws_target_error<B>(response: &http::Response<B>) -> Option<&str> {
    let name = std::str::from_utf8(crate::proto::http1::header_name::HTTPWS_TARGET_ERROR).ok()?;
    response.headers().get(name)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_headers_tell_the_proxy_from_the_target() {
        let proxy = http::Response::builder()
            .header("Httpws-Error", "unknown-address")
            .body(())
            .unwrap();
        assert_eq!(httpws_error(&proxy), Some("unknown-address"));
        assert_eq!(httpws_target_error(&proxy), None);
        let target = http::Response::builder()
            .header("httpws-target-error", "service-unavailable")
            .body(())
            .unwrap();
        assert_eq!(httpws_target_error(&target), Some("service-unavailable"));
        assert_eq!(httpws_error(&target), None);
    }
}
