//! The agent's listener (`--listen`): a local HTTP/1.1 server. Each request, proxy-style
//! (`GET http://bob/path`) or by `Host: bob`, goes over the tunnel to the endpoint it names;
//! the response comes back on the same client connection. Keep-alive, `Content-Length` and
//! chunked request bodies, `Expect: 100-continue`; hop-by-hop headers stop here.
//!
//! Every wait on a client is bounded, so that no client holds one of the `--max-clients`
//! slots for ever: the idle time before a request starts, the time to send it whole once it
//! has, and the time to take each answer.
//!
//! - [`ListenerConfig`] and its defaults; `serve` here: the accept loop.
//! - `connection`: one client connection, request after request, with its deadlines.
//! - `request`: a client's request checked and rewritten for the tunnel; `web_pages`: the
//!   refusal of requests a browser page made.
//! - `response`: the tunnel's whole answer written back, and the head lines a client gets;
//!   `streamed`: a streamed answer written as it arrives; `local_error`: the answers the
//!   agent makes itself.
//! - `upgrade`: a client's `Upgrade` request, and the two byte streams after a `101`.

mod config;
mod connection;
mod local_error;
mod request;
mod response;
mod streamed;
mod upgrade;
mod web_pages;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::session::Session;

pub use config::{
    DEFAULT_CLIENT_IDLE_TIMEOUT, DEFAULT_CLIENT_TIMEOUT, DEFAULT_MAX_CLIENTS,
    DEFAULT_REQUEST_TIMEOUT, ListenerConfig,
};

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serve local clients on `listener` until the task is dropped. Each connection's failure
/// is its own; the listener keeps running.
pub async fn serve(listener: TcpListener, session: Session, config: ListenerConfig) {
    let config = Arc::new(config);
    let clients = Arc::new(Semaphore::new(config.max_clients.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&clients).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "listener: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let session = session.clone();
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            if let Err(e) = connection::serve_client(stream, &session, &config).await {
                tracing::debug!(%peer, error = %e, "listener: client connection ended");
            }
            drop(permit);
        });
    }
}
