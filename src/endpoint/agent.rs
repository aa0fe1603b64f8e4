//! The `httpws endpoint` agent: one tunnel session with an ingress (`--listen`), an egress
//! (`--serve`), or both, built on the client library's [`Endpoint`].

use std::net::SocketAddr;

use tokio::task::JoinHandle;

use super::client::Endpoint;
use super::config::SessionConfig;
use super::egress::{self, EgressConfig};
use super::ingress::{self, IngressConfig};
use super::session::Session;

/// Everything the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub session: SessionConfig,
    /// Where the ingress listens, if it runs.
    pub listen: Option<SocketAddr>,
    pub ingress: IngressConfig,
    /// Where requests from the tunnel go, if anywhere.
    pub serve: Option<EgressConfig>,
}

/// A running agent; its tasks stop when it is dropped.
pub struct Agent {
    endpoint: Endpoint,
    listen_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Bind the ingress (so a bad address fails here, at once), then start the session and
    /// the ingress and egress on the current runtime.
    pub async fn start(config: AgentConfig) -> std::io::Result<Agent> {
        let listener = match config.listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        let listen_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let endpoint = Endpoint::start(config.session);
        let mut tasks = Vec::new();
        if let Some(egress_config) = config.serve {
            let session = endpoint.session().clone();
            tasks.push(tokio::spawn(egress::serve(session, egress_config)));
        }
        if let Some(listener) = listener {
            let session = endpoint.session().clone();
            tasks.push(tokio::spawn(ingress::serve(
                listener,
                session,
                config.ingress,
            )));
        }
        Ok(Agent {
            endpoint,
            listen_addr,
            tasks,
        })
    }

    /// The ingress's bound address (port 0 resolved).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

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
