//! `httpws proxy` (and `httpws` alone): the relay, run until SIGINT or SIGTERM, its tokens
//! file and certificate re-read on SIGHUP.

use std::io::Write;

use anyhow::Context;
use httpws::proxy::{self, DriverChoice, ProxyConfig, TlsFiles};

use super::{DriverArg, ProxyArgs};

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
            pin_shards: self.pin,
            max_handshake_bytes: self.max_handshake_bytes,
            max_head_bytes: self.max_head_bytes,
            max_message_bytes: self.max_message_bytes,
            max_inflight: self.max_inflight.max(1),
            max_queued_bytes: self.max_queued_bytes,
            request_timeout: self.request_timeout,
            max_streams: self.max_streams.max(1),
            max_stream_window: self
                .max_stream_window
                .max(httpws::proto::stream::STREAM_WINDOW),
            stream_idle_timeout: self.stream_idle_timeout,
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

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
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
