//! Listen queues: the accept backlog (`net.core.somaxconn`) and the SYN queue
//! (`net.ipv4.tcp_max_syn_backlog`) that a burst of new connections lands in.

use super::check::{Check, Status, ok, sysctl_fix, unknown};
use super::procfs::Read;

/// The listen backlog each shard's `SO_REUSEPORT` listener asks for (connections); the kernel
/// caps it at `net.core.somaxconn`. Mirrors `LISTEN_BACKLOG` in `src/proxy/server.rs`.
pub const PROXY_LISTEN_BACKLOG: u64 = 4096;

/// `net.core.somaxconn` that `tuning/sysctl.conf` sets (connections).
pub const TUNED_SOMAXCONN: u64 = 65535;

/// `net.ipv4.tcp_max_syn_backlog` that `tuning/sysctl.conf` sets (half-open connections).
pub const TUNED_SYN_BACKLOG: u64 = 65535;

pub fn check_somaxconn(somaxconn: &Read<u64>) -> Check {
    const NAME: &str = "net.core.somaxconn";
    let needed = format!(
        ">= {PROXY_LISTEN_BACKLOG} (the backlog each shard's listener asks for; the kernel caps it here)"
    );
    match somaxconn.as_ref() {
        Err(why) => unknown(NAME, why, needed),
        Ok(&n) if n >= PROXY_LISTEN_BACKLOG => ok(NAME, n.to_string(), needed),
        Ok(&n) => Check {
            name: NAME,
            status: Status::Warn,
            current: n.to_string(),
            needed,
            fix: sysctl_fix("net.core.somaxconn", TUNED_SOMAXCONN),
        },
    }
}

pub fn check_syn_backlog(backlog: &Read<u64>, syncookies: &Read<u64>) -> Check {
    const NAME: &str = "net.ipv4.tcp_max_syn_backlog";
    let needed = format!(">= {PROXY_LISTEN_BACKLOG} half-open connections, or syncookies on");
    match backlog.as_ref() {
        Err(why) => unknown(NAME, why, needed),
        Ok(&n) if n >= PROXY_LISTEN_BACKLOG => ok(NAME, n.to_string(), needed),
        Ok(&n) if syncookies.as_ref().is_ok_and(|&c| c != 0) => ok(
            NAME,
            format!("{n} (tcp_syncookies on: a full SYN queue answers with cookies, no drops)"),
            needed,
        ),
        Ok(&n) => Check {
            name: NAME,
            status: Status::Warn,
            current: format!("{n}, tcp_syncookies off"),
            needed,
            fix: sysctl_fix("net.ipv4.tcp_max_syn_backlog", TUNED_SYN_BACKLOG),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_queues() {
        assert_eq!(check_somaxconn(&Ok(4096)).status, Status::Ok);
        assert_eq!(check_somaxconn(&Ok(128)).status, Status::Warn);
        assert!(check_somaxconn(&Ok(128)).fix[0].contains("net.core.somaxconn=65535"));
        assert_eq!(check_syn_backlog(&Ok(128), &Ok(1)).status, Status::Ok);
        assert_eq!(check_syn_backlog(&Ok(128), &Ok(0)).status, Status::Warn);
        assert_eq!(check_syn_backlog(&Ok(8192), &Ok(0)).status, Status::Ok);
    }
}
