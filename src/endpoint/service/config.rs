//! The service side's settings.

use std::time::Duration;

use super::url::ServiceUrl;

/// Time the service has to answer; kept under the proxy's 30 s deadline so that the caller
/// learns the service was slow (504 from us) rather than only that the endpoint was.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(25);

/// Service-side settings.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Where requests go.
    pub service: ServiceUrl,
    /// Pass the caller's `Host` on instead of the service's authority.
    pub preserve_host: bool,
    /// See [`DEFAULT_SERVICE_TIMEOUT`].
    pub service_timeout: Duration,
    /// See [`DEFAULT_MAX_SERVICE_CONNS`](super::pool::DEFAULT_MAX_SERVICE_CONNS).
    pub max_service_conns: usize,
    /// Largest response head from the service (larger → 502 `service-error`).
    pub max_head_bytes: usize,
    /// Largest request or response body (responses beyond it → 502 `service-error`).
    pub max_body_bytes: usize,
    /// Requests from the tunnel handled at once; more wait, and the session stops reading.
    pub max_incoming: usize,
}
