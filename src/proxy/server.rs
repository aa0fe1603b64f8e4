//! Starting and stopping a whole proxy: one `SO_REUSEPORT` listener and one pinned thread
//! per shard, a shared router, and the shutdown signal.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};

use crate::proxy::access::{AccessError, PolicyCell};
use crate::proxy::config::ProxyConfig;
use crate::proxy::router::ShardRouter;
use crate::proxy::shard::{self, Control, Driver};
use crate::proxy::tls::{self, TlsError};

/// Pending-connection queue per listener.
const LISTEN_BACKLOG: i32 = 4096;

/// A proxy whose shards are running.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    driver: Driver,
    shards: usize,
    threads: Vec<JoinHandle<io::Result<()>>>,
    control: Arc<Control>,
    router: Arc<ShardRouter>,
    config: Arc<ProxyConfig>,
}

impl RunningProxy {
    /// The address actually bound (the port is filled in when `--listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the plain-HTTP ingress listener (`--http-listen`), if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Re-read the tokens file (SIGHUP). Live connections are untouched; on error the old
    /// policy stays in force.
    pub fn reload_policy(&self) -> Result<(), AccessError> {
        self.control.policy.reload()
    }

    /// A handle that can start the shutdown from another thread (a signal handler thread).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            control: self.control.clone(),
            router: self.router.clone(),
            config: self.config.clone(),
        }
    }

    /// Wait until every shard has stopped. The first shard error is returned.
    pub fn wait(self) -> io::Result<()> {
        let stopper = self.shutdown_handle();
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a shard thread panicked")));
            if let Err(e) = outcome {
                // One shard failing takes the others down too, rather than limping on.
                stopper.shutdown();
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }
}

/// Starts the graceful shutdown of a running proxy.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    control: Arc<Control>,
    router: Arc<ShardRouter>,
    config: Arc<ProxyConfig>,
}

impl ShutdownHandle {
    /// See [`RunningProxy::reload_policy`].
    pub fn reload_policy(&self) -> Result<(), AccessError> {
        self.control.policy.reload()
    }

    /// Re-read the certificate and key (SIGHUP, after a renewal). New connections get the new
    /// certificate; open ones keep their sessions; on error the old one stays in force.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        let Some(files) = &self.config.tls else {
            return Ok(false);
        };
        let config = tls::server_config(&files.cert, &files.key)?;
        self.control.set_tls(config);
        Ok(true)
    }

    pub fn shutdown(&self) {
        self.control.begin_shutdown();
        for id in 0..self.router.shards() {
            self.router.notify(id);
        }
    }
}

/// Bind every shard's listener and start the shards.
pub fn start(config: ProxyConfig) -> io::Result<RunningProxy> {
    let shards = config.shards.clamp(1, usize::from(u16::MAX));
    let driver = Driver::resolve(config.driver)?;
    // The first listener fixes the port (it may be 0); the others share it via SO_REUSEPORT.
    let first = bind(config.listen)?;
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..shards {
        listeners.push(bind(local_addr)?);
    }
    let mut http_listeners: Vec<Option<std::net::TcpListener>> =
        (0..shards).map(|_| None).collect();
    let mut http_addr = None;
    if let Some(addr) = config.http_listen {
        let first = bind(addr)?;
        let bound = first.local_addr()?;
        http_listeners[0] = Some(first);
        for slot in http_listeners.iter_mut().skip(1) {
            *slot = Some(bind(bound)?);
        }
        http_addr = Some(bound);
    }
    let config = Arc::new(ProxyConfig { shards, ..config });
    let router = Arc::new(ShardRouter::new(shards));
    let policy = PolicyCell::new(config.tokens.clone()).map_err(io::Error::other)?;
    let tls = match &config.tls {
        Some(files) => Some(tls::server_config(&files.cert, &files.key).map_err(io::Error::other)?),
        None => None,
    };
    let control = Arc::new(Control::new(policy, tls));
    let cores = if config.pin_shards {
        core_affinity::get_core_ids()
    } else {
        None
    };
    let mut threads = Vec::with_capacity(shards);
    for (id, (listener, http_listener)) in listeners.into_iter().zip(http_listeners).enumerate() {
        let (config, router, control) = (config.clone(), router.clone(), control.clone());
        let core = cores
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| c[id % c.len()]);
        let thread = std::thread::Builder::new()
            .name(format!("httpws-shard-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                tracing::info!(shard = id, driver = driver.name(), "shard starting");
                shard::run(id, driver, config, router, control, listener, http_listener)
            })?;
        threads.push(thread);
    }
    Ok(RunningProxy {
        local_addr,
        http_addr,
        driver,
        shards,
        threads,
        control,
        router,
        config,
    })
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
