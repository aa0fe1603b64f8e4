//! Proxy settings: every limit has a named default here and a flag in `httpws proxy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the proxy listens when no `--listen` is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Largest handshake head (request line + headers) accepted before answering 431.
pub const DEFAULT_MAX_HANDSHAKE_BYTES: usize = 8 * 1024;
/// Largest HTTP head inside one relayed message.
pub const DEFAULT_MAX_HEAD_BYTES: usize = crate::proto::head::DEFAULT_MAX_HEAD_BYTES;
/// Largest WebSocket message (after reassembly). Large enough for multi-MiB bodies through
/// the tunnel; every byte of it is only allocated once the peer has actually sent it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Requests one connection may have outstanding, as a caller and as a target.
pub const DEFAULT_MAX_INFLIGHT: usize = 4096;
/// Bytes queued towards one connection before new requests to it get `target-busy`. A
/// connection whose queue passes twice this (plus one message) is too slow and is closed.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Open streams one connection may have (protocol 2), as a caller and as a target.
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// Most credit a stream's sender may hold at once, per direction, in bytes: what one
/// stream can make the proxy hold (credit beyond it is clipped when relayed). Receivers
/// that keep up grow a stream's window towards it from the initial 256 KiB: 4 MiB carries a
/// 1 GiB loopback download about 1.4× faster than 1 MiB or 256 KiB (bench/RESULTS.md).
pub const DEFAULT_MAX_STREAM_WINDOW: u64 = 4 * 1024 * 1024;
/// How long a stream may go without data, credit or an end before it is reset `timeout`.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request may wait for its response before the caller gets `timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client has to complete the opening handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which the proxy pings a connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a pinged connection has to answer (any frame counts) before it is dropped.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(15);
/// On SIGINT/SIGTERM, how long in-flight requests get to be answered before they fail.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a closing connection may take to flush its last frames.
pub const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Which io driver each shard runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring when the kernel offers it, epoll otherwise.
    #[default]
    Auto,
    /// io_uring only; fail to start without it.
    Uring,
    /// The epoll (legacy) driver even where io_uring works.
    Legacy,
}

/// Everything a running proxy needs to know.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where every shard's `SO_REUSEPORT` listener binds (`--listen`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Shard threads, at least 1 (`--shards`; default one per CPU).
    pub shards: usize,
    /// The io driver every shard runs (`--driver`).
    pub driver: DriverChoice,
    /// Pin each shard thread to a core of its own (`--pin`; off by default).
    pub pin_shards: bool,
    /// Largest opening-handshake head, and public-ingress request head, in bytes
    /// (`--max-handshake-bytes`; 431 beyond it).
    pub max_handshake_bytes: usize,
    /// Largest HTTP head inside one relayed message, in bytes (`--max-head-bytes`).
    pub max_head_bytes: usize,
    /// Largest WebSocket message after reassembly, in bytes (`--max-message-bytes`; close 1009
    /// beyond it).
    pub max_message_bytes: usize,
    /// Requests one connection may have outstanding, as caller and as target (`--max-inflight`).
    pub max_inflight: usize,
    /// Bytes queued towards one connection before requests to it get `target-busy`
    /// (`--max-queued-bytes`); past [`hard_queued_bytes`](Self::hard_queued_bytes) it is closed.
    pub max_queued_bytes: usize,
    /// How long a relayed request waits for its response before `timeout` (`--request-timeout`).
    pub request_timeout: Duration,
    /// Open streams per connection, as caller and as target (`--max-streams`).
    pub max_streams: usize,
    /// Most credit a stream's sender may hold, per direction, in bytes (`--max-stream-window`).
    pub max_stream_window: u64,
    /// How long a stream may stand still before it is reset (`--stream-idle-timeout`).
    pub stream_idle_timeout: Duration,
    /// How long a new connection has for its TLS handshake and first head, and an ingress
    /// caller for each head once begun (`--handshake-timeout`).
    pub handshake_timeout: Duration,
    /// Silence after which a connection is pinged, and an ingress caller's connection may idle
    /// between requests (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// How long a pinged connection has to send anything at all before it is dropped
    /// (`--pong-timeout`).
    pub pong_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests get to be answered (`--shutdown-grace`).
    pub shutdown_grace: Duration,
    /// The tokens file (credentials and access rules); None runs the proxy open.
    pub tokens: Option<PathBuf>,
    /// Serve `wss://` with this certificate chain and key; None serves plain `ws://`.
    pub tls: Option<TlsFiles>,
    /// Browser origins allowed to open a WebSocket (handshakes carrying `Origin`); empty
    /// refuses every browser, `*` allows any. Clients that send no `Origin` are not browsers
    /// and are unaffected.
    pub allowed_origins: Vec<String>,
    /// Public ingress: host names under which `<address>.<domain>` reaches `<address>`
    /// (lowercase, no trailing dot).
    pub domains: Vec<String>,
    /// Names of the proxy itself (lowercase): requests to them get the proxy's own pages, and
    /// pages served under them may open WebSockets back (`--serve-demo`).
    pub public_names: Vec<String>,
    /// A second, plain-HTTP listener for the public ingress only (no registrations).
    pub http_listen: Option<SocketAddr>,
    /// Serve the JavaScript client at `/httpws.js`.
    pub serve_client: bool,
    /// Serve the WebRTC signaling demo at `/webrtc/` (and the client).
    pub serve_demo: bool,
}

/// PEM files for TLS: the certificate chain (leaf first) and its private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`--tls-cert`).
    pub cert: PathBuf,
    /// The private key of the chain's leaf (`--tls-key`).
    pub key: PathBuf,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a valid socket address"),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            driver: DriverChoice::Auto,
            pin_shards: false,
            max_handshake_bytes: DEFAULT_MAX_HANDSHAKE_BYTES,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_streams: DEFAULT_MAX_STREAMS,
            max_stream_window: DEFAULT_MAX_STREAM_WINDOW,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            tokens: None,
            tls: None,
            allowed_origins: Vec::new(),
            domains: Vec::new(),
            public_names: Vec::new(),
            http_listen: None,
            serve_client: false,
            serve_demo: false,
        }
    }
}

impl ProxyConfig {
    /// The names that reach the proxy itself (its pages) rather than an endpoint.
    pub fn names(&self) -> crate::proto::public_request::ProxyNames<'_> {
        crate::proto::public_request::ProxyNames {
            domains: &self.domains,
            public_names: &self.public_names,
        }
    }

    /// The queue size past which a connection counts as not reading and is closed.
    pub fn hard_queued_bytes(&self) -> usize {
        self.max_queued_bytes
            .saturating_mul(2)
            .saturating_add(self.max_message_bytes)
    }
}
