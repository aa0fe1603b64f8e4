//! This host's side of a run: the `--source` addresses checked before starting, the
//! open-files limit raised, and what to change when a [`Limit`] stopped the ramp.

use anyhow::Context;

use crate::args::Config;
use crate::worker::Limit;

/// Headroom the advice adds to one open file per connection, for loadgen's own descriptors
/// (runtimes, timers, stdio, the files it writes).
const SPARE_FILES: usize = 1024;

/// Every --source address must be local (bindable), or every connection from it fails.
pub fn check_sources(config: &Config) -> anyhow::Result<()> {
    for &source in &config.sources {
        std::net::TcpListener::bind((source, 0)).with_context(|| {
            format!("--source {source} cannot be bound (is it an address of this host?)")
        })?;
    }
    Ok(())
}

/// Raise the soft open-files limit to the hard one; returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// What a limit that stopped the ramp means here, and how to lift it.
pub fn limit_advice(limit: Limit, config: &Config, nofile: u64) -> String {
    let want = config.conns + SPARE_FILES;
    match limit {
        Limit::OpenFiles => format!(
            "the open-files limit of this process (RLIMIT_NOFILE = {nofile}) is reached (EMFILE).\n  \
             fix: raise it before running loadgen: `ulimit -n {want}` (above the hard limit: \
             tuning/limits.conf or LimitNOFILE=), and check the host with `httpws doctor --conns {}`",
            config.conns
        ),
        Limit::SystemFiles => format!(
            "the system-wide open-files limit (fs.file-max) is reached (ENFILE).\n  \
             fix: raise fs.file-max (tuning/sysctl.conf); `httpws doctor --conns {}` shows what is needed",
            config.conns
        ),
        Limit::Ports => format!(
            "no local port is left for a source address → {} (EADDRNOTAVAIL).\n  \
             fix: spread connections over more source addresses (--source 127.0.0.2-127.0.0.20 \
             gives ~28k each with the default port range), or widen net.ipv4.ip_local_port_range \
             (tuning/sysctl.conf); `httpws doctor --conns {}` shows how many are needed",
            config.target, config.conns
        ),
    }
}
