//! The service side's settings.

use std::time::Duration;

use super::url::ServiceUrl;

/// Time the service has to answer; kept under the proxy's 30 s deadline so that the caller
/// learns the service was slow (504 from us) rather than only that the endpoint was.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(25);

/// Service-side settings.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub service: ServiceUrl,
    pub preserve_host: bool,
    pub service_timeout: Duration,
    pub max_service_conns: usize,
    pub max_head_bytes: usize,
    /// Largest request or response body (responses beyond it → 502 `service-error`).
    pub max_body_bytes: usize,
    pub max_incoming: usize,
}
