//! What [`Endpoint::serve`](super::Endpoint::serve) serves with ([`Serve`]): any
//! `tower::Service<http::Request<Body>>` whose response body is an `http_body::Body` (an
//! axum `Router`, a `tower::service_fn`, hyper-style services), or the original handler
//! form, an async function of a whole `http::Request<Bytes>` answering an
//! `http::Response<Bytes>`. And serving one request with it: the request's body whole or
//! streaming in, the response's whole or streaming out.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tower_service::Service;

use super::messages::{incoming_request, plain_response, response_head, response_lines};
use super::outgoing::{self, Outgoing};
use crate::endpoint::body::{Body, BoxError};
use crate::endpoint::session::{Incoming, Session};
use crate::endpoint::stream::BodyError;
use crate::proto::answer_error::AnswerError;
use crate::proto::handshake::Protocol;
use crate::proto::http1::framing;

/// A boxed future, as [`Serve::answer`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Marks the [`Serve`] implementation for `tower::Service`s.
#[derive(Debug)]
pub enum ServiceMarker {}
/// Marks the [`Serve`] implementation for handler functions of whole requests.
#[derive(Debug)]
pub enum HandlerMarker {}

/// Something [`Endpoint::serve`](super::Endpoint::serve) answers requests with. Implemented
/// for every `tower::Service<http::Request<Body>>` that is `Clone` (cloned per request,
/// as hyper does) with an `http_body::Body` response, and for every
/// `Fn(http::Request<Bytes>) -> impl Future<Output = http::Response<Bytes>>` (the request
/// body read whole first, within the tunnel's message limit); `Marker` only keeps the two
/// apart.
pub trait Serve<Marker>: Send + Sync + 'static {
    /// Answer one request: the response, or the service's error (answered
    /// `502 service-error`).
    fn answer(
        self: Arc<Self>,
        request: http::Request<Body>,
        max_body_bytes: usize,
    ) -> BoxFuture<Result<http::Response<Body>, BoxError>>;
}

impl<S, ResBody> Serve<ServiceMarker> for S
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    fn answer(
        self: Arc<Self>,
        request: http::Request<Body>,
        _max_body_bytes: usize,
    ) -> BoxFuture<Result<http::Response<Body>, BoxError>> {
        let mut service = S::clone(&self);
        Box::pin(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(request).await.map_err(Into::into)?;
            Ok(response.map(Body::new))
        })
    }
}

impl<F, Fut> Serve<HandlerMarker> for F
where
    F: Fn(http::Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Bytes>> + Send + 'static,
{
    fn answer(
        self: Arc<Self>,
        request: http::Request<Body>,
        max_body_bytes: usize,
    ) -> BoxFuture<Result<http::Response<Body>, BoxError>> {
        let (parts, body) = request.into_parts();
        Box::pin(async move {
            // The handler is called only once its whole request is here.
            match body.bytes_within(max_body_bytes).await {
                Ok(bytes) => Ok(self(http::Request::from_parts(parts, bytes))
                    .await
                    .map(Body::from)),
                Err(BodyError::TooLarge { limit }) => Ok(plain_response(
                    413,
                    &format!("the request body exceeds {limit} bytes\n"),
                )
                .map(Body::from)),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Answer `incoming` with `serve`, on `session`.
pub(super) async fn serve_one<S, M>(session: &Session, mut incoming: Incoming, serve: Arc<S>)
where
    S: Serve<M>,
{
    let max_body_bytes = session.max_body_bytes();
    let response = match incoming_request(&mut incoming, max_body_bytes) {
        Ok(request) => match serve.answer(request, max_body_bytes).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(error = %e, "endpoint: the service failed");
                failed("the service failed")
            }
        },
        Err(e) => plain_response(400, &format!("malformed request: {e}\n")).map(Body::from),
    };
    respond(session, &incoming, response).await;
}

/// `502 service-error`, as the agent answers for a service that failed.
fn failed(reason: &str) -> http::Response<Body> {
    let body = format!("{reason}\n");
    let mut response = http::Response::new(Body::from(body));
    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "httpws-error",
        http::HeaderValue::from_static(AnswerError::ServiceError.token()),
    );
    response
}

/// Send `response` as the answer to `incoming`: whole when small (or on a protocol-1
/// tunnel), else streamed.
async fn respond(session: &Session, incoming: &Incoming, response: http::Response<Body>) {
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    let streams = session.protocol() == Some(Protocol::V2);
    let body = if framing::response_is_bodiless(status, false) {
        Body::empty()
    } else {
        body
    };
    match outgoing::prepare(body, streams, session.max_body_bytes()).await {
        Ok(Outgoing::Whole(bytes)) => {
            let (head, bytes) = response_head(http::Response::from_parts(parts, bytes));
            session.respond(incoming, head, bytes).await;
        }
        Ok(Outgoing::Stream(body, length)) => {
            let head = response_lines(&parts);
            if let Some(writer) = session.respond_streaming(incoming, head, length).await {
                outgoing::send(body, writer).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "endpoint: the response body could not be sent");
            let reason = match e {
                BodyError::TooLarge { .. } => "the response is larger than the tunnel carries",
                _ => "the service's response body failed",
            };
            let (parts, body) = failed(reason).into_parts();
            let bytes = body.bytes().await.unwrap_or_default();
            let (head, bytes) = response_head(http::Response::from_parts(parts, bytes));
            session.respond(incoming, head, bytes).await;
        }
    }
}
