//! Requests a web page made, refused: a page open in a browser on the agent's machine must
//! not drive the tunnel. Browsers mark such requests (`Origin`, `Sec-Fetch-Site`), and a
//! DNS-rebinding page gives itself away by the port in its `Host`.

use super::local_error::LocalError;
use crate::endpoint::http1;
use crate::proto::answer_error::AnswerError;
use crate::proto::origin;

/// Refuse requests that a web page made, so that a page open in a browser on this machine
/// cannot drive the tunnel (and call endpoints as this agent):
/// - `Origin` (sent by browsers on cross-origin and non-GET requests) not in
///   `--allowed-origins`;
/// - `Sec-Fetch-Site` other than `none` (typed by the user) or `same-origin` (sent by
///   browsers on every request, including the `<img>` and `<form>` kinds that carry no
///   Origin);
/// - DNS rebinding: a page whose own host name was made to resolve to this address sends
///   origin-form requests with `Host: <its name>:<this port>`. Deliberate clients name the
///   endpoint alone (`Host: bob`) or use the listener as a proxy (`curl -x`), so an
///   origin-form `Host` with a port is refused.
pub(super) fn refuse_web_pages(
    headers: &[httparse::Header<'_>],
    origin_form: bool,
    host: &[u8],
    allowed_origins: &[String],
) -> Result<(), LocalError> {
    let forbidden = |reason: String| LocalError::answer(AnswerError::Forbidden, reason, true);
    let repeated = |_| LocalError::new(400, "Origin or Sec-Fetch-Site header repeated");
    if let Some(value) = http1::single_header(headers, "origin").map_err(repeated)? {
        let text = String::from_utf8_lossy(value);
        if !origin::allowed(allowed_origins, &text) {
            return Err(forbidden(format!(
                "requests from web pages are refused (Origin: {text}); list trusted pages with --allowed-origins"
            )));
        }
        return Ok(());
    }
    if let Some(site) = http1::single_header(headers, "sec-fetch-site").map_err(repeated)? {
        if !(site.eq_ignore_ascii_case(b"none") || site.eq_ignore_ascii_case(b"same-origin")) {
            return Err(forbidden(format!(
                "a page of another site made this request (Sec-Fetch-Site: {})",
                String::from_utf8_lossy(site)
            )));
        }
    }
    let has_port = host
        .iter()
        .rposition(|&b| b == b':')
        .is_some_and(|i| !host[i + 1..].is_empty() && host[i + 1..].iter().all(u8::is_ascii_digit));
    if origin_form && has_port {
        return Err(forbidden(format!(
            "Host {:?} carries a port, as a browser page sends when its name was pointed at this \
             ingress (DNS rebinding); name the endpoint alone (Host: bob) or use the ingress as a \
             proxy (curl -x)",
            String::from_utf8_lossy(host)
        )));
    }
    Ok(())
}
