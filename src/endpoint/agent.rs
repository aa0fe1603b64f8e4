//! The `httpws endpoint` agent: one tunnel session with a listener (`--listen`), a service
//! side (`--serve`), or both, built on the client library's [`Endpoint`].

use std::net::SocketAddr;

use tokio::task::JoinHandle;

use super::client::Endpoint;
use super::config::SessionConfig;
use super::listener::{self, ListenerConfig};
use super::service::{self, ServiceConfig};
use super::session::Session;

/// Everything the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The tunnel to the proxy.
    pub session: SessionConfig,
    /// Where the listener listens, if it runs.
    pub listen: Option<SocketAddr>,
    /// The listener's limits and timers (unused without `listen`).
    pub listener: ListenerConfig,
    /// Where requests from the tunnel go, if anywhere.
    pub serve: Option<ServiceConfig>,
}

/// A running agent; its tasks stop when it is dropped.
pub struct Agent {
    endpoint: Endpoint,
    listen_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Bind the listener (so a bad address fails here, at once), then start the session, the
    /// listener and the service side on the current runtime.
    pub async fn start(config: AgentConfig) -> std::io::Result<Agent> {
        let socket = match config.listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let listen_addr = socket.as_ref().map(|l| l.local_addr()).transpose()?;
        let endpoint = Endpoint::start(config.session);
        let mut tasks = Vec::new();
        if let Some(service_config) = config.serve {
            let session = endpoint.session().clone();
            tasks.push(tokio::spawn(service::serve(session, service_config)));
        }
        if let Some(socket) = socket {
            let session = endpoint.session().clone();
            tasks.push(tokio::spawn(listener::serve(
                socket,
                session,
                config.listener,
            )));
        }
        Ok(Agent {
            endpoint,
            listen_addr,
            tasks,
        })
    }

    /// The listener's bound address (port 0 resolved).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// The tunnel session the agent runs on.
    pub fn session(&self) -> &Session {
        self.endpoint.session()
    }

    /// Close the tunnel (a close frame to the proxy) and stop serving.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.endpoint.close().await;
    }
}
