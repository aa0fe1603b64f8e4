//! `httpws endpoint`: the agent, run until SIGINT or SIGTERM or until the proxy refuses it
//! for good, printing the lines scripts wait for (listening, registered).

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use httpws::endpoint::{
    self,
    agent::{Agent, AgentConfig},
    config::{ProxyUrl, SessionConfig},
    listener::ListenerConfig,
    service::{ServiceConfig, ServiceUrl},
};
use httpws::proto::address::VirtualAddress;

use super::EndpointArgs;
use super::runtime::{endpoint_runtime, shutdown_signal};
use super::token::token;

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
        session.credit_timeout = self.credit_timeout;
        session.reconnect_max = self.reconnect_max;
        session.max_message_bytes = self.max_message_bytes;
        let max_body_bytes = self
            .max_body_bytes
            .unwrap_or(session.max_body_bytes())
            .min(session.max_body_bytes());
        let serve = match &self.serve {
            Some(url) => Some(ServiceConfig {
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
            listener: ListenerConfig {
                max_head_bytes: self.max_head_bytes,
                max_body_bytes,
                max_clients: self.max_clients,
                idle_timeout: endpoint::listener::DEFAULT_CLIENT_IDLE_TIMEOUT,
                client_timeout: self.client_timeout,
                request_timeout: self.request_timeout,
                allowed_origins: self.allowed_origins,
            },
            serve,
        })
    }
}

pub fn run(args: EndpointArgs) -> anyhow::Result<()> {
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
