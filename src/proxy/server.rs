//! Starting and stopping a whole proxy: one `SO_REUSEPORT` listener and one pinned thread
//! per shard, a shared router, and the shutdown signal.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::proxy::access::{AccessError, PolicyCell};
use crate::proxy::config::ProxyConfig;
use crate::proxy::control::Control;
use crate::proxy::router::ShardRouter;
use crate::proxy::runtime::{self, IoDriver};
use crate::proxy::tls::{self, TlsError};

/// Pending-connection queue per listener.
const LISTEN_BACKLOG: i32 = 4096;
/// How long a port in use is retried before the proxy gives up on it (a proxy killed just
/// before may still hold it, see [`claim`]).
const PORT_FREE_WAIT: Duration = Duration::from_secs(2);
/// Pause between tries of a port in use.
const PORT_RETRY: Duration = Duration::from_millis(20);

/// A proxy whose shards are running.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    driver: IoDriver,
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

    /// The io driver the shards run (`--driver auto` resolved).
    pub fn driver(&self) -> IoDriver {
        self.driver
    }

    /// How many shards run (`--shards`, clamped to 1..=65535).
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
    /// `Ok(false)`: the proxy serves no TLS, so there was nothing to re-read.
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        let Some(files) = &self.config.tls else {
            return Ok(false);
        };
        let config = tls::server_config(&files.cert, &files.key)?;
        self.control.set_tls(config);
        Ok(true)
    }

    /// Begin the graceful shutdown (docs/protocol.md §5) and wake every shard to see it.
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
    let driver = IoDriver::resolve(config.driver)?;
    let (local_addr, listeners) = bind_shared("--listen", config.listen, shards)?;
    let (http_addr, http_listeners): (_, Vec<Option<std::net::TcpListener>>) =
        match config.http_listen {
            Some(addr) => {
                let (bound, listeners) = bind_shared("--http-listen", addr, shards)?;
                (Some(bound), listeners.into_iter().map(Some).collect())
            }
            None => (None, (0..shards).map(|_| None).collect()),
        };
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
                runtime::run(id, driver, config, router, control, listener, http_listener)
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

/// One listener per shard on `addr`, sharing its port through `SO_REUSEPORT`, and the address
/// bound (the port filled in when `addr` asked for port 0).
///
/// `SO_REUSEPORT` would just as happily let a second proxy (or anything else run by the same
/// user) join the port and take a share of the connections, silently. So the port is first
/// claimed by a probe socket without `SO_REUSEPORT`, which fails if anyone listens there; it
/// is released only to bind the shards' sockets a moment later.
fn bind_shared(
    flag: &str,
    addr: SocketAddr,
    shards: usize,
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let named = |e: io::Error| bind_error(flag, addr, e);
    let probe = claim(addr).map_err(named)?;
    let bound = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the listener has no IP address"))?;
    drop(probe);
    let named = |e: io::Error| bind_error(flag, bound, e);
    let listeners = (0..shards)
        .map(|_| {
            let socket = new_socket(bound, true)?;
            socket.bind(&bound.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(socket.into())
        })
        .collect::<io::Result<Vec<_>>>()
        .map_err(named)?;
    Ok((bound, listeners))
}

/// Bind a socket without `SO_REUSEPORT` to `addr`: it fails while anything listens there.
///
/// A proxy that was just killed still listens for a moment: io_uring tears a dead process's
/// ring down asynchronously, and until then its pending accepts keep the listener open. So a
/// port found in use is tried again for [`PORT_FREE_WAIT`] before the answer is "in use".
fn claim(addr: SocketAddr) -> io::Result<Socket> {
    let deadline = Instant::now() + PORT_FREE_WAIT;
    loop {
        let probe = new_socket(addr, false)?;
        match probe.bind(&addr.into()) {
            Ok(()) => return Ok(probe),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(PORT_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}

fn new_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR only lets us bind past connections in TIME_WAIT; never past a listener.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A bind failure that names the flag and the address, in the words a user needs.
fn bind_error(flag: &str, addr: SocketAddr, e: io::Error) -> io::Error {
    let what = match e.kind() {
        io::ErrorKind::AddrInUse => "is in use (another process listens there)".to_owned(),
        io::ErrorKind::AddrNotAvailable => "is not an address of this host".to_owned(),
        io::ErrorKind::PermissionDenied => {
            "needs privileges (ports below 1024 need root or CAP_NET_BIND_SERVICE)".to_owned()
        }
        _ => format!("cannot be bound: {e}"),
    };
    io::Error::new(e.kind(), format!("{flag} {addr} {what}"))
}
