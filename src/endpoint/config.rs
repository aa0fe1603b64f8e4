//! Endpoint settings: the proxy URL, the name and token, and every limit and timer, with
//! defaults as named constants.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::scheme;
use crate::proto::address::VirtualAddress;
use crate::proto::handshake::Token;

/// Time allowed for the TCP connect plus the opening handshake to the proxy.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence from the proxy after which the session pings it.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
/// Time the proxy has to answer a ping before the tunnel is declared dead.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay; it doubles per failed attempt up to the maximum.
pub const DEFAULT_RECONNECT_INITIAL: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Largest WebSocket message sent or accepted; the proxy's default limit, which a message
/// must never exceed (the proxy closes the whole tunnel with 1009 if one does).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Room kept in a message for the head when sizing the largest body.
pub const HEAD_ALLOWANCE_BYTES: usize = 64 * 1024;
/// Largest HTTP head read from a local client or service.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Incoming requests handled at once; beyond it the session stops reading (the proxy then
/// answers further callers `target-busy`) instead of queueing without bound.
pub const DEFAULT_MAX_INCOMING: usize = 1024;
/// How long a streamed body of ours may wait for the far side's credit before its exchange is
/// reset (`timeout`): nothing granted for this long means the stream is forgotten (the proxy
/// drops an answer that comes after its own deadline quietly, and would never grant it) or
/// its reader has stopped. Twice the proxy's default `--stream-idle-timeout`, which resets a
/// stream where nothing moves first.
pub const DEFAULT_CREDIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Outgoing frames queued to the tunnel's writer before senders wait.
pub const OUTGOING_QUEUE_FRAMES: usize = 1024;

/// Where the proxy is: parsed from `ws://host[:port][/]` or `wss://host[:port][/]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `wss://`: TLS to the proxy.
    pub tls: bool,
    /// Host name or IP literal, without brackets, for connecting (and, with TLS, the name
    /// the certificate must carry).
    pub host: String,
    /// The TCP port (80 for `ws://`, 443 for `wss://` unless the URL gives one).
    pub port: u16,
    /// The `Host` header value (`host[:port]` as written).
    pub authority: String,
}

/// Why a proxy URL is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyUrlError {
    /// Neither `ws://` nor `wss://`; the URL as given.
    #[error("proxy URL must start with ws:// or wss:// (got {0:?})")]
    Scheme(String),
    /// Nothing (or only a port) after the scheme.
    #[error("proxy URL has no host")]
    NoHost,
    /// A port that is not a number from 0 to 65535.
    #[error("invalid port in proxy URL")]
    Port,
    /// Anything after the authority: the session adds the `/<name>` path itself.
    #[error("proxy URL must not have a path, query or user info (the agent adds /<name>)")]
    Path,
}

impl ProxyUrl {
    /// Parse `ws://host[:port][/]` or `wss://host[:port][/]` (scheme in any case; an IPv6
    /// literal in brackets).
    pub fn parse(url: &str) -> Result<ProxyUrl, ProxyUrlError> {
        let (tls, rest) = if let Some(rest) = scheme::strip(url, "ws://") {
            (false, rest)
        } else if let Some(rest) = scheme::strip(url, "wss://") {
            (true, rest)
        } else {
            return Err(ProxyUrlError::Scheme(url.to_owned()));
        };
        let default_port = if tls { 443 } else { 80 };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(ProxyUrlError::Path);
        }
        if authority.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(ProxyUrlError::NoHost)?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().map_err(|_| ProxyUrlError::Port)?),
                None if after.is_empty() => (host, default_port),
                None => return Err(ProxyUrlError::Port),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| ProxyUrlError::Port)?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        Ok(ProxyUrl {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
        })
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "wss" } else { "ws" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

/// Everything a tunnel session needs. The token is masked in `Debug` (see [`Token`]).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Where the proxy is.
    pub proxy: ProxyUrl,
    /// The name to register; `None` lets the proxy assign one (kept across reconnects).
    pub name: Option<VirtualAddress>,
    /// Presented as `Authorization: Bearer` when set.
    pub token: Option<Token>,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_PING_INTERVAL`].
    pub ping_interval: Duration,
    /// See [`DEFAULT_PONG_TIMEOUT`].
    pub pong_timeout: Duration,
    /// See [`DEFAULT_RECONNECT_INITIAL`].
    pub reconnect_initial: Duration,
    /// See [`DEFAULT_RECONNECT_MAX`].
    pub reconnect_max: Duration,
    /// See [`DEFAULT_MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// See [`DEFAULT_MAX_INCOMING`].
    pub max_incoming: usize,
    /// See [`DEFAULT_CREDIT_TIMEOUT`].
    pub credit_timeout: Duration,
    /// TLS settings for a `wss://` proxy; None there means the system's roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Register as public (`?public=1`): take calls from the proxy's public HTTP ingress.
    pub public: bool,
}

impl SessionConfig {
    /// Defaults for everything but the proxy.
    pub fn new(proxy: ProxyUrl) -> Self {
        SessionConfig {
            proxy,
            name: None,
            token: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            reconnect_initial: DEFAULT_RECONNECT_INITIAL,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_incoming: DEFAULT_MAX_INCOMING,
            credit_timeout: DEFAULT_CREDIT_TIMEOUT,
            tls: None,
            public: false,
        }
    }

    /// The largest body that still fits in a message with its head.
    pub fn max_body_bytes(&self) -> usize {
        self.max_message_bytes.saturating_sub(HEAD_ALLOWANCE_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let u = ProxyUrl::parse("ws://127.0.0.1:8080").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.authority, "127.0.0.1:8080");
        let u = ProxyUrl::parse("WS://relay.example/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("relay.example", 80));
        let u = ProxyUrl::parse("ws://[::1]:9000").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        let u = ProxyUrl::parse("wss://relay.example").unwrap();
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.port), ("relay.example", 443));
        assert_eq!(u.to_string(), "wss://relay.example");
        assert!(!ProxyUrl::parse("ws://x").unwrap().tls);
        assert!(matches!(
            ProxyUrl::parse("http://x"),
            Err(ProxyUrlError::Scheme(_))
        ));
        assert_eq!(ProxyUrl::parse("ws://x/bob"), Err(ProxyUrlError::Path));
        assert_eq!(ProxyUrl::parse("ws://x:99999"), Err(ProxyUrlError::Port));
        assert_eq!(ProxyUrl::parse("ws://"), Err(ProxyUrlError::NoHost));
    }
}
