//! Everything the checks look at ([`Facts`]), read from the host once.

use super::conntrack::{Conntrack, conntrack};
use super::files::nofile_limit;
use super::memory::mem_available;
use super::ports::parse_port_range;
use super::procfs::{Read, parse_ranges, read_text, read_u64};
use super::uring::{PROXY_URING_ENTRIES, Uring, probe_io_uring};

/// Everything the checks look at. Gathered once from the host; built by hand in tests.
#[derive(Clone, Debug)]
pub struct Facts {
    /// RLIMIT_NOFILE (soft, hard); "infinity" as `u64::MAX`.
    pub nofile: Read<(u64, u64)>,
    pub nr_open: Read<u64>,
    pub file_max: Read<u64>,
    pub epoll_watches: Read<u64>,
    pub uring: Uring,
    /// `kernel.io_uring_disabled` (0 allowed, 1 only `kernel.io_uring_group`, 2 nobody).
    pub uring_disabled: Read<u64>,
    pub kernel: Read<String>,
    pub somaxconn: Read<u64>,
    pub syn_backlog: Read<u64>,
    pub syncookies: Read<u64>,
    pub port_range: Read<(u64, u64)>,
    pub reserved_ports: Vec<(u64, u64)>,
    pub tw_reuse: Read<u64>,
    pub conntrack: Conntrack,
    /// Bytes this process could still get: MemAvailable, lowered by a cgroup limit.
    pub mem_available: Read<u64>,
    /// CPUs this process may run on (affinity and cgroup quota applied).
    pub cpus: usize,
    /// CPUs online on the host, if known.
    pub cpus_online: Option<u64>,
}

const NR_OPEN: &str = "/proc/sys/fs/nr_open";
const FILE_MAX: &str = "/proc/sys/fs/file-max";
const EPOLL_WATCHES: &str = "/proc/sys/fs/epoll/max_user_watches";
const URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";
const SYN_BACKLOG: &str = "/proc/sys/net/ipv4/tcp_max_syn_backlog";
const SYNCOOKIES: &str = "/proc/sys/net/ipv4/tcp_syncookies";
const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED_PORTS: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";
const TW_REUSE: &str = "/proc/sys/net/ipv4/tcp_tw_reuse";
const CPUS_ONLINE: &str = "/sys/devices/system/cpu/online";

impl Facts {
    /// Read everything from this host. Never fails: what cannot be read is "unknown".
    pub fn gather() -> Facts {
        let port_range = read_text(PORT_RANGE).and_then(|t| {
            parse_port_range(&t).ok_or_else(|| format!("unknown ({PORT_RANGE}: unexpected {t:?})"))
        });
        Facts {
            nofile: nofile_limit(),
            nr_open: read_u64(NR_OPEN),
            file_max: read_u64(FILE_MAX),
            epoll_watches: read_u64(EPOLL_WATCHES),
            uring: probe_io_uring(PROXY_URING_ENTRIES),
            uring_disabled: read_u64(URING_DISABLED),
            kernel: read_text(OSRELEASE),
            somaxconn: read_u64(SOMAXCONN),
            syn_backlog: read_u64(SYN_BACKLOG),
            syncookies: read_u64(SYNCOOKIES),
            port_range,
            reserved_ports: read_text(RESERVED_PORTS)
                .ok()
                .and_then(|t| parse_ranges(&t))
                .unwrap_or_default(),
            tw_reuse: read_u64(TW_REUSE),
            conntrack: conntrack(),
            mem_available: mem_available(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpus_online: read_text(CPUS_ONLINE)
                .ok()
                .and_then(|t| parse_ranges(&t))
                .map(|r| r.iter().map(|&(a, b)| b.saturating_sub(a) + 1).sum()),
        }
    }
}
