//! The library's HTTP body, [`Body`]: what [`Endpoint::request`](super::Endpoint::request)
//! answers with and what a served request carries, an [`http_body::Body`] as hyper and axum
//! use, so that the ecosystem's services and utilities work on it unchanged. A body that
//! arrived whole is in memory; one that streams over the tunnel yields its data as the data
//! messages arrive, granting credit back as it is polled (a consumer that stops polling
//! stops the sender), and fails with [`BodyError`] if the stream breaks: never a cut-off
//! body that ends as if complete. It also carries what an application sends: bytes, or any
//! `http_body::Body` ([`Body::new`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use super::stream::{BodyError, InboundBody};

/// An error of an application's body (or service), as `http_body` and tower pass them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body: whole, streamed over the tunnel, or an application's own.
pub struct Body {
    kind: Kind,
}

enum Kind {
    /// Whole, not yet taken (`None` once it has been).
    Full(Option<Bytes>),
    /// Streaming in over the tunnel.
    Tunnel(InboundBody),
    /// An application's body.
    Boxed(UnsyncBoxBody<Bytes, BodyError>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f
                .debug_tuple("Body::Full")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Tunnel(inbound) => f.debug_tuple("Body::Tunnel").field(inbound).finish(),
            Kind::Boxed(_) => f.write_str("Body::Boxed"),
        }
    }
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body {
            kind: Kind::Full(None),
        }
    }

    /// Any `http_body::Body` (a stream of server-sent events, a file, axum's body): sent
    /// as it produces data, streaming when its length is not known to be small.
    pub fn new<B>(body: B) -> Body
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let boxed = body
            .map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
            .map_err(|e| BodyError::Source(e.into().into()))
            .boxed_unsync();
        Body {
            kind: Kind::Boxed(boxed),
        }
    }

    pub(crate) fn tunnel(inbound: InboundBody) -> Body {
        Body {
            kind: Kind::Tunnel(inbound),
        }
    }

    /// The whole body, read to its end (unbounded: see [`bytes_within`](Self::bytes_within)).
    pub async fn bytes(self) -> Result<Bytes, BodyError> {
        self.bytes_within(usize::MAX).await
    }

    /// The whole body, read to its end, if it is at most `limit` bytes
    /// ([`BodyError::TooLarge`] as soon as it is longer).
    pub async fn bytes_within(mut self, limit: usize) -> Result<Bytes, BodyError> {
        if let Kind::Full(bytes) = &mut self.kind {
            let bytes = bytes.take().unwrap_or_default();
            return match bytes.len() <= limit {
                true => Ok(bytes),
                false => Err(BodyError::TooLarge { limit }),
            };
        }
        if http_body::Body::size_hint(&self).lower() > limit as u64 {
            return Err(BodyError::TooLarge { limit });
        }
        let mut whole = BytesMut::new();
        while let Some(frame) = self.frame().await {
            if let Ok(data) = frame?.into_data() {
                if whole.len() + data.len() > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                whole.extend_from_slice(&data);
            }
        }
        Ok(whole.freeze())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body {
            kind: Kind::Full(Some(bytes)),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::from(Bytes::from(text))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body::from(Bytes::from_static(bytes))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Body::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Tunnel(inbound) => match inbound.poll_chunk(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // The consumer has it now: the sender may send as much again.
                    inbound.release(data.len());
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                other => other.map(|next| next.map(|r| r.map(Frame::data))),
            },
            Kind::Boxed(boxed) => Pin::new(boxed).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Tunnel(inbound) => inbound.is_over(),
            Kind::Boxed(boxed) => boxed.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Tunnel(inbound) => match inbound.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            Kind::Boxed(boxed) => boxed.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use super::*;

    #[tokio::test]
    async fn whole_bodies_and_limits() {
        let body = Body::from("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.bytes().await.unwrap(), "hello");
        assert!(matches!(
            Body::from("hello").bytes_within(4).await,
            Err(BodyError::TooLarge { limit: 4 })
        ));
        let wrapped = Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
        assert_eq!(wrapped.bytes().await.unwrap(), "abc");
        assert!(Body::empty().is_end_stream());
    }
}
