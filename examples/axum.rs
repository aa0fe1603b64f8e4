//! An axum `Router` served over the tunnel, unchanged: `Endpoint::serve` takes any
//! `tower::Service`, so the routes below answer callers of the endpoint `axum` exactly as
//! they would answer on a socket. `/events` streams server-sent events, `/download` a large
//! body of unknown length, `/count` reads an upload as it streams in; over a protocol-2
//! tunnel each goes as it is produced, never held whole.
//!
//! ```sh
//! cargo run --release -- proxy                                     # terminal 1
//! cargo run --example axum -- ws://127.0.0.1:8080                  # terminal 2
//! cargo run --release -- endpoint --proxy ws://127.0.0.1:8080 --listen 127.0.0.1:8081
//! curl -N -x http://127.0.0.1:8081 http://axum/events             # one event every 200 ms
//! curl -x http://127.0.0.1:8081 'http://axum/download?bytes=100000000' -o /dev/null
//! ```

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use httpws::endpoint::Endpoint;

/// What `/events` and `/download` take from their query.
#[derive(serde::Deserialize)]
pub struct Params {
    /// Events to send (`/events`), default 5.
    n: Option<u64>,
    /// Milliseconds between events, default 200.
    ms: Option<u64>,
    /// Bytes to send (`/download`), default 1 MiB.
    bytes: Option<u64>,
}

/// The pieces `/download` writes.
const PIECE_BYTES: u64 = 64 * 1024;

/// The byte at `offset` of every `/download` body (so that callers can check what came).
pub fn pattern_byte(offset: u64) -> u8 {
    ((offset % 251) as u8) ^ ((offset / 251 % 13) as u8)
}

/// The routes.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum, over httpws\n" }))
        .route("/events", get(events))
        .route("/download", get(download))
        .route("/count", post(count))
}

/// `n` events, `ms` apart.
async fn events(Query(p): Query<Params>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (n, gap) = (p.n.unwrap_or(5), Duration::from_millis(p.ms.unwrap_or(200)));
    Sse::new(stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        tokio::time::sleep(gap).await;
        Some((Ok(Event::default().data(format!("event {i}"))), i + 1))
    }))
}

/// `bytes` of the pattern, written piece by piece (its length is not declared).
async fn download(Query(p): Query<Params>) -> Body {
    let total = p.bytes.unwrap_or(1 << 20);
    Body::from_stream(stream::unfold(0u64, move |at| async move {
        if at >= total {
            return None;
        }
        let n = (total - at).min(PIECE_BYTES);
        let piece: Vec<u8> = (at..at + n).map(pattern_byte).collect();
        Some((Ok::<_, Infallible>(Bytes::from(piece)), at + n))
    }))
}

/// The upload's length, read as it streams in.
async fn count(body: Body) -> String {
    let mut data = body.into_data_stream();
    let mut total = 0u64;
    while let Some(Ok(piece)) = data.next().await {
        total += piece.len() as u64;
    }
    format!("{total}\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proxy = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let endpoint = Endpoint::builder(&proxy).name("axum").connect().await?;
    println!("serving the axum router as `axum` on {proxy}");
    endpoint.serve(router()).await?;
    Ok(())
}
