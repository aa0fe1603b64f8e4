//! The `--serve` URL: `http://host:port[/base]`, the one service requests go to.

use crate::endpoint::scheme;

/// Where requests go: `http://host:port[/base]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUrl {
    /// `host:port` to connect to.
    pub addr: String,
    /// The authority as written, for the `Host` header.
    pub authority: String,
    /// A path prefix ("" for none), prepended to every request path.
    pub base_path: String,
}

/// Why a service URL is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceUrlError {
    /// Not `http://` (TLS to a local service is not supported).
    #[error("service URL must start with http:// (https to local services is not supported)")]
    Scheme,
    /// Nothing before the path.
    #[error("service URL has no host")]
    NoHost,
    /// User info, a query or a fragment, which a service URL has no use for.
    #[error("service URL must not carry user info, a query or a fragment")]
    Extra,
    /// A port that is not a number from 0 to 65535.
    #[error("invalid port in service URL")]
    Port,
}

impl ServiceUrl {
    /// Parse `http://host[:port][/base]` (scheme in any case; port 80 by default).
    pub fn parse(url: &str) -> Result<ServiceUrl, ServiceUrlError> {
        let rest = scheme::strip(url, "http://").ok_or(ServiceUrlError::Scheme)?;
        if rest.contains(['?', '#', '@']) {
            return Err(ServiceUrlError::Extra);
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(ServiceUrlError::NoHost);
        }
        let has_port = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                authority[i + 1..]
                    .parse::<u16>()
                    .map_err(|_| ServiceUrlError::Port)?;
                true
            }
            _ => false,
        };
        let addr = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(ServiceUrl {
            addr: addr.replace(['[', ']'], ""),
            authority: authority.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls() {
        let u = ServiceUrl::parse("http://127.0.0.1:9000/api/").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9000");
        assert_eq!(u.base_path, "/api");
        let u = ServiceUrl::parse("http://localhost").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.authority.as_str()),
            ("localhost:80", "localhost")
        );
        let u = ServiceUrl::parse("http://[::1]:81").unwrap();
        assert_eq!(u.addr, "::1:81");
        assert_eq!(ServiceUrl::parse("https://x"), Err(ServiceUrlError::Scheme));
        assert_eq!(ServiceUrl::parse("http://u@x"), Err(ServiceUrlError::Extra));
        assert_eq!(
            ServiceUrl::parse("http://x:http"),
            Err(ServiceUrlError::Port)
        );
    }
}
