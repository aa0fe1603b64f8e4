//! The listener's settings and their defaults.

use std::time::Duration;

/// Client connections served at once; more wait in the listen backlog.
pub const DEFAULT_MAX_CLIENTS: usize = 4096;
/// Time a client connection may sit idle between requests (before a request's first byte).
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a client has to send a whole request (head and body) once its first byte has come,
/// and to take each answer; past it the request gets `408` and the connection closes.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for a response over the tunnel. The proxy answers 504 after its own
/// deadline (30 s by default); this is the backstop so nothing can hang.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Listener settings.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// Largest request head from a client (larger → 431).
    pub max_head_bytes: usize,
    /// Largest request body from a client (larger → 413).
    pub max_body_bytes: usize,
    /// See [`DEFAULT_MAX_CLIENTS`].
    pub max_clients: usize,
    /// See [`DEFAULT_CLIENT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_CLIENT_TIMEOUT`].
    pub client_timeout: Duration,
    /// See [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Web pages (by `Origin`) that may send requests through the listener; by default none.
    pub allowed_origins: Vec<String>,
}
