//! The `httpws` command line: every subcommand's arguments (flags, defaults, help text and
//! environment variables, all in one place so that `--help` has one source), and the modules
//! that run each subcommand.

pub mod demo;
pub mod doctor;
pub mod endpoint;
pub mod proxy;
mod runtime;
pub mod token;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use httpws::proto::origin;
use httpws::proxy::config;

#[derive(Parser, Debug)]
#[command(name = "httpws", version, about = "HTTP over WebSocket relay")]
pub struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, default_value = "info", env = "HTTPWS_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the relay (the default when no command is given).
    Proxy(ProxyArgs),
    /// Run an endpoint agent: local HTTP in (--listen), a local service out (--serve).
    Endpoint(EndpointArgs),
    /// Start a proxy, two endpoints and a small web service on loopback, and call the
    /// service through the tunnel with `curl -x`.
    Demo(demo::DemoArgs),
    /// Check this host against what --conns N connections need (open files, sysctls,
    /// io_uring, conntrack, memory) and print the fix for each shortfall.
    Doctor(doctor::DoctorArgs),
    /// Print the SHA-256 of a token (read from stdin) for the tokens file.
    HashToken,
}

#[derive(clap::Args, Debug)]
pub struct EndpointArgs {
    /// The proxy's URL.
    #[arg(long, env = "HTTPWS_PROXY")]
    proxy: String,
    /// The name to register (default: one the proxy assigns, kept across reconnects).
    #[arg(long)]
    name: Option<String>,
    /// Bearer token presented to the proxy (never logged). Prefer the environment variable
    /// or --token-file: a command line is visible to every user of the machine.
    #[arg(long, env = "HTTPWS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the bearer token from the first line of this file (e.g. one only you can read);
    /// not together with --token or HTTPWS_TOKEN.
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Serve local HTTP clients here: proxy-style (curl -x) or `Host: <endpoint>` requests.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Send requests arriving over the tunnel to this local service (http://host:port[/base]).
    #[arg(long)]
    serve: Option<String>,
    /// Pass the caller's Host header to the service instead of the service's own authority.
    #[arg(long)]
    preserve_host: bool,
    /// Ingress: longest wait for a response over the tunnel.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    request_timeout: Duration,
    /// Ingress: time a local client has to send a whole request (head and body) once it has
    /// begun one, and to take each answer (then 408, and the connection closes).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    client_timeout: Duration,
    /// Egress: longest wait for the local service's response (then 504).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "25s")]
    service_timeout: Duration,
    /// Egress: requests at the service at once (the keep-alive pool's size).
    #[arg(long, default_value_t = httpws::endpoint::service::pool::DEFAULT_MAX_SERVICE_CONNS)]
    max_service_conns: usize,
    /// Largest WebSocket message sent or accepted; keep it within the proxy's limit.
    #[arg(long, default_value_t = httpws::endpoint::config::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Largest request or response body (default: the message limit less 64 KiB for the head).
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Largest HTTP head from a local client or the service (larger → 431 / 502).
    #[arg(long, default_value_t = httpws::endpoint::config::DEFAULT_MAX_HEAD_BYTES)]
    max_head_bytes: usize,
    /// Ingress: client connections served at once.
    #[arg(long, default_value_t = httpws::endpoint::listener::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Silence from the proxy after which it is pinged.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    ping_interval: Duration,
    /// Time the proxy has to answer a ping before the tunnel is re-established.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pong_timeout: Duration,
    /// Streams: longest a body we send may wait for the far side's credit before its stream
    /// is reset (timeout).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    credit_timeout: Duration,
    /// Longest delay between reconnect attempts (backoff doubles up to it, with jitter).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    reconnect_max: Duration,
    /// Time allowed to connect and register with the proxy.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    connect_timeout: Duration,
    /// Ingress: web pages (origins like http://localhost:3000, comma-separated, or `*`) whose
    /// requests are accepted. Default: none; requests with another Origin, cross-site
    /// Sec-Fetch-Site, or a DNS-rebinding Host get 403.
    #[arg(long, value_delimiter = ',', value_parser = origin::parse_allowed)]
    allowed_origins: Vec<String>,
    /// With a wss:// proxy: trust only the CA certificates in this PEM file (a private CA or
    /// a self-signed proxy certificate) instead of the system's roots.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Worker threads (1: a single-threaded runtime, the cheapest per request).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Take calls from the internet: register as public, so the proxy's public HTTP ingress
    /// relays requests for this name (without it, they get 403).
    #[arg(long)]
    public: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DriverArg {
    Auto,
    Uring,
    Legacy,
}

#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Number of shards (threads); default: one per CPU.
    #[arg(long)]
    shards: Option<usize>,
    /// io driver: io_uring where available (auto), io_uring only, or epoll (legacy).
    #[arg(long, value_enum, default_value = "auto", env = "HTTPWS_DRIVER")]
    driver: DriverArg,
    /// Pin each shard thread to a core of its own: for a host whose cores the proxy has to
    /// itself. Unpinned (the default), the kernel moves a shard off a core another process
    /// is using, which on shared cores is worth more than the cache locality pinning keeps.
    #[arg(long, conflicts_with = "no_pin")]
    pin: bool,
    /// Do not pin shard threads (the default; kept for scripts written when pinning was).
    #[arg(long, hide = true)]
    no_pin: bool,
    /// Largest opening-handshake head, in bytes (larger → 431).
    #[arg(long, default_value_t = config::DEFAULT_MAX_HANDSHAKE_BYTES)]
    max_handshake_bytes: usize,
    /// Largest HTTP head inside a message, in bytes.
    #[arg(long, default_value_t = config::DEFAULT_MAX_HEAD_BYTES)]
    max_head_bytes: usize,
    /// Largest WebSocket message, in bytes (larger → close 1009).
    #[arg(long, default_value_t = config::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Requests one connection may have in flight, as caller and as target.
    #[arg(long, default_value_t = config::DEFAULT_MAX_INFLIGHT)]
    max_inflight: usize,
    /// Bytes queued to one connection before requests to it get target-busy.
    #[arg(long, default_value_t = config::DEFAULT_MAX_QUEUED_BYTES)]
    max_queued_bytes: usize,
    /// Deadline for a response (e.g. 30s, 500ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    request_timeout: Duration,
    /// Open streams (protocol 2) one connection may have, as caller and as target.
    #[arg(long, default_value_t = config::DEFAULT_MAX_STREAMS)]
    max_streams: usize,
    /// Most credit a stream's sender may hold at once, per direction, in bytes: what one
    /// stream can make the proxy hold.
    #[arg(long, default_value_t = config::DEFAULT_MAX_STREAM_WINDOW)]
    max_stream_window: u64,
    /// How long a stream may go without data, credit or end before it is reset.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    stream_idle_timeout: Duration,
    /// Time allowed to complete the opening handshake.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    handshake_timeout: Duration,
    /// Silence after which a connection is pinged.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    idle_timeout: Duration,
    /// Time a pinged connection has to answer before it is dropped.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pong_timeout: Duration,
    /// On SIGINT/SIGTERM, time in-flight requests get before they fail.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    shutdown_grace: Duration,
    /// Tokens file (TOML): which token may register which names, and access rules between
    /// endpoints. Re-read on SIGHUP. Without it the proxy is open.
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Serve wss:// with this PEM certificate chain (leaf first); needs --tls-key. Re-read
    /// on SIGHUP.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Browser origins that may open a WebSocket, comma-separated (`https://app.example.com`),
    /// or `*` for any. Handshakes that carry another Origin get 403; clients that send no
    /// Origin (agents, libraries) are unaffected. Default: none, so no web page can connect.
    #[arg(long, value_delimiter = ',', value_parser = origin::parse_allowed)]
    allowed_origins: Vec<String>,
    /// Public HTTP ingress: a domain whose subdomains name endpoints, so that
    /// `bob.<domain>` reaches `bob` (repeatable, or comma-separated). A bare `Host: bob`
    /// always works. Plain HTTP requests (no Upgrade) on --listen go to the ingress.
    #[arg(long = "domain", value_delimiter = ',', value_parser = parse_domain)]
    domains: Vec<String>,
    /// A name of the proxy itself (repeatable, or comma-separated), e.g. the name in its
    /// certificate when there is no --domain: requests to it get the proxy's own pages, and
    /// pages the proxy served under it may open WebSockets back (--serve-demo). IP literals,
    /// `localhost` and the --domains are the proxy's names already.
    #[arg(long = "public-name", value_delimiter = ',', value_parser = parse_domain)]
    public_names: Vec<String>,
    /// Also serve the public HTTP ingress (only; no registrations) on this plain-HTTP address.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Serve the JavaScript client at /httpws.js (to Host: the proxy's own address).
    #[arg(long)]
    serve_client: bool,
    /// Serve the WebRTC signaling demo at /webrtc/ (and the client); pages it serves may open
    /// WebSockets back to it.
    #[arg(long)]
    serve_demo: bool,
}

/// A `--domain`: a host name (the virtual-address grammar), lowercase, no trailing dot.
fn parse_domain(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
    httpws::proto::address::VirtualAddress::validate(name.as_bytes())
        .map_err(|e| format!("{s:?} is not a domain name: {e}"))?;
    Ok(name)
}

impl Default for ProxyArgs {
    fn default() -> Self {
        // Parsing no arguments gives exactly the documented defaults.
        match Cli::parse_from(["httpws", "proxy"]).command {
            Some(Command::Proxy(args)) => args,
            _ => unreachable!("the proxy subcommand was given"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy_args(args: &[&str]) -> Result<ProxyArgs, clap::Error> {
        let argv = ["httpws", "proxy"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Some(Command::Proxy(args)) => Ok(args),
            _ => unreachable!("the proxy subcommand was given"),
        }
    }

    #[test]
    fn shards_are_unpinned_unless_asked() {
        let default = proxy_args(&[]).expect("no flags parse");
        assert!(!default.pin);
        let pinned = proxy_args(&["--pin"]).expect("--pin parses");
        assert!(pinned.pin);
        // Scripts from when pinning was the default still run.
        let unpinned = proxy_args(&["--no-pin"]).expect("--no-pin parses");
        assert!(!unpinned.pin && unpinned.no_pin);
        assert!(proxy_args(&["--pin", "--no-pin"]).is_err());
    }
}
