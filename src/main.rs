//! The `httpws` command: `httpws proxy` runs the relay.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use httpws::proxy::{self, DriverChoice, ProxyConfig, config};

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
}

impl Default for ProxyArgs {
    fn default() -> Self {
        // Parsing no arguments gives exactly the documented defaults.
        match Cli::parse_from(["httpws", "proxy"]).command {
            Some(Command::Proxy(args)) => args,
            None => unreachable!("the proxy subcommand was given"),
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
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Some(Command::Proxy(args)) => run_proxy(args),
        None => run_proxy(ProxyArgs::default()),
    }
}

fn run_proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let config = args.into_config();
    // Signal handlers go in before anything is listening, so a SIGTERM that follows the
    // banner always means a graceful shutdown.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
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
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening on a non-loopback address with no tokens file: anyone who can reach it can register any free name");
    }
    // Tests and scripts read this line to learn the port.
    println!("httpws proxy listening on ws://{addr}");
    std::io::stdout().flush().ok();

    let handle = running.shutdown_handle();
    std::thread::Builder::new()
        .name("httpws-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
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
