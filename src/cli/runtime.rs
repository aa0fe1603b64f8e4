//! The tokio runtime the endpoint side (`httpws endpoint`, `httpws demo`) runs on, and the
//! signal that stops it.

use anyhow::Context;

/// The tokio runtime the endpoint side runs on.
///
/// One thread runs tokio's single-threaded scheduler: no work stealing and no cross-thread
/// wake-ups, which is the cheapest per request for one tunnel. More threads add cores for
/// many local clients at some cost per request.
pub(super) fn endpoint_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .enable_all()
        .thread_name("httpws-endpoint")
        .build()
        .context("starting the endpoint runtime")
}

/// SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
