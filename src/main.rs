//! The `httpws` command: `httpws proxy` runs the relay, `httpws endpoint` the agent, and
//! `httpws demo` both, with a small web service, on loopback.

mod demo;
mod doctor;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use httpws::endpoint::{
    self,
    agent::{Agent, AgentConfig},
    config::{ProxyUrl, SessionConfig},
    egress::{EgressConfig, ServiceUrl},
    ingress::IngressConfig,
};
use httpws::proto::address::VirtualAddress;
use httpws::proto::handshake::Token;
use httpws::proto::origin;
use httpws::proxy::{self, DriverChoice, ProxyConfig, TlsFiles, config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "httpws", version, about = "HTTP over WebSocket relay")]
struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, default_value = "info", env = "HTTPWS_LOG")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
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
struct EndpointArgs {
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
    #[arg(long, default_value_t = endpoint::pool::DEFAULT_MAX_SERVICE_CONNS)]
    max_service_conns: usize,
    /// Largest WebSocket message sent or accepted; keep it within the proxy's limit.
    #[arg(long, default_value_t = endpoint::config::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Largest request or response body (default: the message limit less 64 KiB for the head).
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Largest HTTP head from a local client or the service (larger → 431 / 502).
    #[arg(long, default_value_t = endpoint::config::DEFAULT_MAX_HEAD_BYTES)]
    max_head_bytes: usize,
    /// Ingress: client connections served at once.
    #[arg(long, default_value_t = endpoint::ingress::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Silence from the proxy after which it is pinged.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    ping_interval: Duration,
    /// Time the proxy has to answer a ping before the tunnel is re-established.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pong_timeout: Duration,
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

impl EndpointArgs {
    fn into_config(self) -> anyhow::Result<AgentConfig> {
        if self.listen.is_none() && self.serve.is_none() {
            anyhow::bail!("give --listen ADDR, --serve URL, or both");
        }
        let proxy = ProxyUrl::parse(&self.proxy).context("--proxy")?;
        if self.ca.is_some() && !proxy.tls {
            anyhow::bail!("--ca is for a wss:// proxy; {proxy} is plain ws://");
        }
        // Resolved here rather than left to the session, so a bad --ca stops the agent at once.
        let tls = match proxy.tls {
            true => {
                Some(endpoint::tls::client_config(self.ca.as_deref()).context("TLS to the proxy")?)
            }
            false => None,
        };
        let mut session = SessionConfig::new(proxy);
        session.tls = tls;
        if let Some(name) = &self.name {
            session.name = Some(VirtualAddress::parse(name.as_bytes()).context("--name")?);
        }
        session.token = token(self.token, self.token_file.as_deref())?;
        session.public = self.public;
        session.connect_timeout = self.connect_timeout;
        session.ping_interval = self.ping_interval;
        session.pong_timeout = self.pong_timeout;
        session.reconnect_max = self.reconnect_max;
        session.max_message_bytes = self.max_message_bytes;
        let max_body_bytes = self
            .max_body_bytes
            .unwrap_or(session.max_body_bytes())
            .min(session.max_body_bytes());
        let serve = match &self.serve {
            Some(url) => Some(EgressConfig {
                service: ServiceUrl::parse(url).context("--serve")?,
                preserve_host: self.preserve_host,
                service_timeout: self.service_timeout,
                max_service_conns: self.max_service_conns,
                max_head_bytes: self.max_head_bytes,
                max_body_bytes,
                max_incoming: session.max_incoming,
            }),
            None => None,
        };
        Ok(AgentConfig {
            session,
            listen: self.listen,
            ingress: IngressConfig {
                max_head_bytes: self.max_head_bytes,
                max_body_bytes,
                max_clients: self.max_clients,
                idle_timeout: endpoint::ingress::DEFAULT_CLIENT_IDLE_TIMEOUT,
                client_timeout: self.client_timeout,
                request_timeout: self.request_timeout,
                allowed_origins: self.allowed_origins,
            },
            serve,
        })
    }
}

/// The token from --token (or HTTPWS_TOKEN) or --token-file, held to the proxy's rule.
fn token(given: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<Option<Token>> {
    let (token, source) = match (given, file) {
        // Checked here rather than by clap, whose message would name only --token when the
        // other token came from the environment.
        (Some(_), Some(_)) => anyhow::bail!(
            "--token-file and --token (or HTTPWS_TOKEN in the environment) both give a token: keep one"
        ),
        (Some(token), None) => (token, "--token (or HTTPWS_TOKEN)".to_owned()),
        (None, Some(path)) => (
            read_token_file(path)?,
            format!("--token-file {}", path.display()),
        ),
        (None, None) => return Ok(None),
    };
    // The token itself is never part of the message.
    let token = Token::checked(&token).map_err(|_| {
        anyhow::anyhow!(
            "{source}: a token must be non-empty visible ASCII (no spaces or control characters)"
        )
    })?;
    Ok(Some(token))
}

/// The first line of a token file, its line end trimmed.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file {}", path.display()))?;
    let first = text.lines().next().unwrap_or("");
    anyhow::ensure!(
        !first.is_empty(),
        "--token-file {}: the file is empty; its first line must be the token",
        path.display()
    );
    Ok(first.to_owned())
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DriverArg {
    Auto,
    Uring,
    Legacy,
}

#[derive(clap::Args, Debug)]
struct ProxyArgs {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Number of shards (threads); default: one per CPU.
    #[arg(long)]
    shards: Option<usize>,
    /// io driver: io_uring where available (auto), io_uring only, or epoll (legacy).
    #[arg(long, value_enum, default_value = "auto", env = "HTTPWS_DRIVER")]
    driver: DriverArg,
    /// Do not pin shard threads to cores.
    #[arg(long)]
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

impl ProxyArgs {
    fn into_config(self) -> ProxyConfig {
        let defaults = ProxyConfig::default();
        ProxyConfig {
            listen: self.listen,
            shards: self.shards.unwrap_or(defaults.shards).max(1),
            driver: match self.driver {
                DriverArg::Auto => DriverChoice::Auto,
                DriverArg::Uring => DriverChoice::Uring,
                DriverArg::Legacy => DriverChoice::Legacy,
            },
            pin_shards: !self.no_pin,
            max_handshake_bytes: self.max_handshake_bytes,
            max_head_bytes: self.max_head_bytes,
            max_message_bytes: self.max_message_bytes,
            max_inflight: self.max_inflight.max(1),
            max_queued_bytes: self.max_queued_bytes,
            request_timeout: self.request_timeout,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            pong_timeout: self.pong_timeout,
            shutdown_grace: self.shutdown_grace,
            tokens: self.tokens,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            allowed_origins: self.allowed_origins,
            domains: self.domains,
            public_names: self.public_names,
            http_listen: self.http_listen,
            serve_client: self.serve_client,
            serve_demo: self.serve_demo,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: logs piped to a file, journald or a
        // collector must stay plain text (and NO_COLOR turns them off everywhere).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    match cli.command {
        Some(Command::Proxy(args)) => run_proxy(args),
        Some(Command::Endpoint(args)) => run_endpoint(args),
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Doctor(args)) => doctor::run(args),
        Some(Command::HashToken) => hash_token(),
        None => run_proxy(ProxyArgs::default()),
    }
}

/// Raise the soft open-files limit to the hard one: every connection is a descriptor, and
/// the soft default (often 1024) would cap the proxy long before memory does.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit struct we own; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let soft = limit.rlim_cur;
    if soft < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            limit.rlim_cur = soft;
        }
    }
    tracing::info!(
        soft = limit.rlim_cur,
        hard = limit.rlim_max,
        "open files limit (each connection takes one)"
    );
}

fn run_proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let config = args.into_config();
    let open = config.tokens.is_none();
    let tls = config.tls.is_some();
    raise_open_files_limit();
    // Signal handlers go in before anything is listening, so a SIGTERM that follows the
    // banner always means a graceful shutdown.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .context("installing signal handlers")?;
    let running = proxy::start(config).context("starting the proxy")?;
    let addr = running.local_addr();
    tracing::info!(
        %addr,
        shards = running.shards(),
        driver = running.driver().name(),
        "httpws proxy listening"
    );
    if open && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening on a non-loopback address with no tokens file: anyone who can reach it can register any free name");
    }
    // Tests and scripts read this line to learn the port.
    let scheme = if tls { "wss" } else { "ws" };
    println!("httpws proxy listening on {scheme}://{addr}");
    if let Some(http) = running.http_addr() {
        println!("httpws proxy public HTTP ingress on http://{http}");
    }
    std::io::stdout().flush().ok();

    let handle = running.shutdown_handle();
    std::thread::Builder::new()
        .name("httpws-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                if signal == signal_hook::consts::SIGHUP {
                    match handle.reload_policy() {
                        Ok(()) => tracing::info!("tokens file reloaded"),
                        Err(e) => tracing::error!(error = %e, "tokens file not reloaded; the previous one stays in force"),
                    }
                    match handle.reload_tls() {
                        Ok(true) => tracing::info!("TLS certificate reloaded"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in force"),
                    }
                    continue;
                }
                seen += 1;
                if seen == 1 {
                    tracing::info!(signal, "shutting down: answering in-flight requests");
                    handle.shutdown();
                } else {
                    tracing::warn!("second signal: exiting now");
                    std::process::exit(130);
                }
            }
        })
        .context("starting the signal thread")?;
    running.wait().context("a shard failed")?;
    tracing::info!("httpws proxy stopped");
    Ok(())
}

/// The tokio runtime the endpoint side runs on.
///
/// One thread runs tokio's single-threaded scheduler: no work stealing and no cross-thread
/// wake-ups, which is the cheapest per request for one tunnel. More threads add cores for
/// many local clients at some cost per request.
fn endpoint_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
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

fn run_endpoint(args: EndpointArgs) -> anyhow::Result<()> {
    let threads = args.threads;
    let config = args.into_config()?;
    endpoint_runtime(threads)?.block_on(async move {
        let listen = config.listen;
        let agent = Agent::start(config)
            .await
            .map_err(|e| listen_error(listen, &e))?;
        if let Some(addr) = agent.listen_addr() {
            // Tests and scripts read these lines.
            println!("httpws endpoint listening on http://{addr}");
            std::io::stdout().flush().ok();
        }
        let mut status = agent.session().status();
        // The tunnel may have registered already: report the current status too.
        status.mark_changed();
        let outcome = loop {
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                    let now = status.borrow_and_update().clone();
                    match now {
                        endpoint::Status::Up { address, .. } => {
                            println!("httpws endpoint registered as {address}");
                            std::io::stdout().flush().ok();
                        }
                        endpoint::Status::Failed(fatal) => break Err(anyhow::anyhow!(fatal)),
                        endpoint::Status::Closed => break Ok(()),
                        endpoint::Status::Down => {}
                    }
                }
                _ = shutdown_signal() => {
                    tracing::info!("shutting down: closing the tunnel");
                    break Ok(());
                }
            }
        };
        agent.shutdown().await;
        outcome
    })
}

/// Why the agent could not start, naming the `--listen` address: binding it is the only
/// I/O `Agent::start` does before it runs.
fn listen_error(listen: Option<SocketAddr>, e: &std::io::Error) -> anyhow::Error {
    let Some(addr) = listen else {
        return anyhow::anyhow!("cannot start the agent: {e}");
    };
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => {
            anyhow::anyhow!("--listen {addr} is in use (another program listens there)")
        }
        ErrorKind::AddrNotAvailable => {
            anyhow::anyhow!("--listen {addr} is not an address of this machine")
        }
        ErrorKind::PermissionDenied => anyhow::anyhow!(
            "--listen {addr} is not allowed to this user (ports below 1024 need privileges)"
        ),
        _ => anyhow::anyhow!("--listen {addr} cannot be listened on: {e}"),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
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

/// `httpws hash-token`: the tokens file stores hashes, never tokens.
fn hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin()
        .read_line(&mut token)
        .context("reading the token from stdin")?;
    let token = token.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !token.is_empty(),
        "give the token on stdin: printf %s TOKEN | httpws hash-token"
    );
    println!("{}", httpws::proxy::access::hash_token(token));
    Ok(())
}
