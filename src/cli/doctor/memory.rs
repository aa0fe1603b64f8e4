//! Memory: what N connections cost (the proxy's own, and the kernel's for their sockets)
//! against what this process can still get (MemAvailable, under its cgroup's limit).

use super::check::{Check, Status, unknown};
use super::procfs::{Read, read_text, read_u64};

/// Proxy memory per idle registered connection, in bytes: the proxy's target, which
/// `bench/idle_rss.sh` measures.
pub const PROXY_BYTES_PER_CONN: u64 = 2 * 1024;

/// Proxy memory that does not depend on the connection count (code, shard tables, allocator
/// arenas, io_uring rings), in bytes.
pub const PROXY_BASE_BYTES: u64 = 64 * 1024 * 1024;

/// Kernel memory per idle TCP socket, in bytes: the `TCP` slab object (~2.3 KiB), socket
/// inode (~0.7 KiB), `struct file`, dentry and epoll item. No buffers: an idle socket holds
/// none. Rounded up.
pub const KERNEL_BYTES_PER_SOCKET: u64 = 4 * 1024;

const MEMINFO: &str = "/proc/meminfo";

/// Human-readable bytes (binary units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// MemAvailable, lowered to what this process's cgroup (v2) still allows.
pub(super) fn mem_available() -> Read<u64> {
    let meminfo = read_text(MEMINFO)?;
    let available = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("unknown ({MEMINFO}: no MemAvailable)"))?;
    Ok(cgroup_room().map_or(available, |room| available.min(room)))
}

/// Bytes left under this process's cgroup v2 `memory.max`, if it has one.
fn cgroup_room() -> Option<u64> {
    let cgroup = read_text("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    // Inside a container the cgroup root is usually the container's own.
    for dir in [format!("/sys/fs/cgroup{path}"), "/sys/fs/cgroup".to_owned()] {
        if let Ok(max) = read_u64(&format!("{dir}/memory.max")) {
            let current = read_u64(&format!("{dir}/memory.current")).unwrap_or(0);
            return Some(max.saturating_sub(current));
        }
    }
    None
}

/// Estimated bytes: (proxy RSS, kernel memory for the proxy's sockets).
pub fn memory_needed(conns: u64) -> (u64, u64) {
    (
        PROXY_BASE_BYTES.saturating_add(conns.saturating_mul(PROXY_BYTES_PER_CONN)),
        conns.saturating_mul(KERNEL_BYTES_PER_SOCKET),
    )
}

pub fn check_memory(conns: u64, available: &Read<u64>) -> Check {
    const NAME: &str = "memory";
    let (proxy, kernel) = memory_needed(conns);
    let needed = format!(
        "proxy RSS ~{} ({} KiB/conn + {}) + kernel sockets ~{} ({} KiB/socket; twice that with \
         loadgen on this host)",
        human_bytes(proxy),
        PROXY_BYTES_PER_CONN / 1024,
        human_bytes(PROXY_BASE_BYTES),
        human_bytes(kernel),
        KERNEL_BYTES_PER_SOCKET / 1024,
    );
    let avail = match available {
        Ok(a) => *a,
        Err(why) => return unknown(NAME, why, needed),
    };
    let current = format!(
        "{} available (MemAvailable, cgroup limit applied)",
        human_bytes(avail)
    );
    let status = if proxy > avail {
        Status::Fail
    } else if proxy.saturating_add(kernel) > avail {
        Status::Warn
    } else {
        Status::Ok
    };
    let fix = if status == Status::Ok {
        vec![]
    } else {
        vec![format!(
            "plan fewer connections (--conns) on this host, free memory, or use a host with \
             more than {} available",
            human_bytes(proxy.saturating_add(kernel))
        )]
    };
    Check {
        name: NAME,
        status,
        current,
        needed,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_estimate() {
        let (proxy, kernel) = memory_needed(1_000_000);
        assert_eq!(proxy, PROXY_BASE_BYTES + 2_048_000_000);
        assert_eq!(kernel, 4_096_000_000);
        assert_eq!(check_memory(1_000_000, &Ok(8 << 30)).status, Status::Ok);
        assert_eq!(check_memory(1_000_000, &Ok(3 << 30)).status, Status::Warn);
        assert_eq!(check_memory(1_000_000, &Ok(1 << 30)).status, Status::Fail);
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
