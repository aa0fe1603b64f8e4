//! Browser origins (RFC 6454): the `--allowed-origins` lists of the proxy's handshake and the
//! agent's ingress, and the check of an `Origin` header against one. A request that carries
//! `Origin` was made by a web page; everything else (agents, libraries, curl) sends none.

use crate::proto::public_request::{self, ProxyNames};

/// Whether a page from `origin` may go on: listed (compared as ASCII case-insensitive
/// serialized origins, RFC 6454), or `*` listed. An empty list allows no page at all.
pub fn allowed(allowed: &[String], origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// Whether `origin` is the origin of the server the request was sent to (its `Host`): a page
/// the proxy served itself opening a WebSocket back to it. The scheme must match how the
/// connection came in (`https` over TLS).
pub fn same_origin(origin: &str, host: &str, tls: bool) -> bool {
    let scheme = if tls { "https://" } else { "http://" };
    let origin = origin.trim_end_matches('/');
    origin.len() > scheme.len()
        && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
        && origin[scheme.len()..].eq_ignore_ascii_case(host.trim())
}

/// Whether `origin` is a page the proxy served itself (`--serve-demo`): the origin of the
/// `Host` the handshake was sent to, and that host one of the proxy's own names (an IP
/// literal, `localhost`, a `--domain` or a `--public-name`). "Origin equals Host" alone would
/// let any page in: a DNS-rebinding page, served under a name its owner points at the proxy,
/// has Origin and Host both equal to that name.
pub fn own_page(origin: &str, host: &str, tls: bool, names: ProxyNames<'_>) -> bool {
    same_origin(origin, host, tls)
        && public_request::host_name(host.as_bytes()).is_some_and(|n| names.is_proxy(n))
}

/// Check and normalize one `--allowed-origins` entry: `*`, or a serialized origin
/// `scheme://host[:port]` (RFC 6454) with no path, lowercased, as browsers send it.
pub fn parse_allowed(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry == "*" {
        return Ok(entry.to_owned());
    }
    let origin = entry.trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err(format!(
            "{entry:?} is not an origin like https://app.example.com"
        ));
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority_ok = !authority.is_empty() && !authority.contains(['/', '?', '#', '@', ' ']);
    if !(scheme_ok && authority_ok) {
        return Err(format!(
            "{entry:?} is not an origin like https://app.example.com (scheme://host[:port], no path)"
        ));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_needs_scheme_host_and_port() {
        assert!(same_origin(
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            false
        ));
        assert!(same_origin(
            "HTTPS://Relay.Example.com",
            "relay.example.com",
            true
        ));
        assert!(!same_origin(
            "http://relay.example.com",
            "relay.example.com",
            true
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8081",
            "127.0.0.1:8080",
            false
        ));
        assert!(!same_origin(
            "http://evil.example",
            "relay.example.com",
            false
        ));
        assert!(!same_origin("null", "null", false));
    }

    #[test]
    fn allowed_origins_are_normalized_and_checked() {
        assert_eq!(parse_allowed("*").unwrap(), "*");
        assert_eq!(
            parse_allowed("HTTPS://App.Example.com:8443/").unwrap(),
            "https://app.example.com:8443"
        );
        for bad in [
            "app.example.com",
            "https://",
            "https://a/b",
            "://a",
            "https://u@a",
        ] {
            assert!(parse_allowed(bad).is_err(), "{bad}");
        }
    }
}
