//! `httpws doctor [--conns N]`: checks this host against what N connections need.
//!
//! Each check prints OK, WARN or FAIL with the value found, the value needed, and (when not
//! OK) the exact command that fixes it, pointing at the files in `tuning/`. The exit status is 0
//! when no check FAILs and 1 otherwise, so the command can gate a start-up script or a systemd
//! `ExecStartPre=`.
//!
//! Everything is read straight from `/proc`, `/sys` and `getrlimit(2)`; nothing is shelled out.
//! A file that is missing or unreadable (containers, other kernels) gives "unknown" and a WARN,
//! never a panic. The sizing assumes the benchmark set-up: the proxy *and* `loadgen` on this
//! host, loadgen connecting over loopback, so system-wide counts (files, epoll watches, socket
//! memory) are needed twice. The evaluation functions (`check_*`) are pure, so they are tested
//! with made-up values; only [`Facts::gather`] touches the host.

use std::fmt::Write as _;
use std::io::Write as _;

/// Connections planned for when `--conns` is not given (the owner's `loadgen --conns 100k`).
pub const DEFAULT_CONNS: &str = "100k";

/// File descriptors a process needs besides its connections: listeners (one per shard),
/// eventfds, io_uring rings, stdio, log files. Count.
pub const FD_HEADROOM: u64 = 1024;

/// The listen backlog each shard's `SO_REUSEPORT` listener asks for (connections); the kernel
/// caps it at `net.core.somaxconn`. Mirrors `LISTEN_BACKLOG` in `src/proxy/server.rs`.
pub const PROXY_LISTEN_BACKLOG: u64 = 4096;

/// Submission-queue entries each shard's io_uring asks for. Mirrors `URING_ENTRIES` in
/// `src/proxy/shard.rs`, so the probe fails the same way the proxy would (e.g. on memlock).
pub const PROXY_URING_ENTRIES: u32 = 1024;

/// Size of the kernel's `struct io_uring_params`, in bytes.
const IO_URING_PARAMS_BYTES: usize = 120;

/// `net.core.somaxconn` that `tuning/sysctl.conf` sets (connections).
pub const TUNED_SOMAXCONN: u64 = 65535;

/// `net.ipv4.tcp_max_syn_backlog` that `tuning/sysctl.conf` sets (half-open connections).
pub const TUNED_SYN_BACKLOG: u64 = 65535;

/// `net.ipv4.ip_local_port_range` that `tuning/sysctl.conf` sets (first, last port).
/// First even, last odd: the kernel wants different parities (it splits bind/connect by parity).
pub const TUNED_PORT_RANGE: (u64, u64) = (10240, 65535);

/// `fs.nr_open` that `tuning/sysctl.conf` sets (file descriptors per process): what systemd
/// (v240 and later) sets at boot on 64-bit hosts. `LimitNOFILE`/limits.conf use 2097152.
pub const TUNED_NR_OPEN: u64 = 1_073_741_816;

/// `fs.file-max` that `tuning/sysctl.conf` sets (file descriptors, whole system): unlimited
/// (`LONG_MAX`), as systemd sets it.
pub const TUNED_FILE_MAX: u64 = i64::MAX as u64;

/// `fs.epoll.max_user_watches` suggested (commented out) in `tuning/sysctl.conf` (watches
/// per user); the default scales with RAM, so it is only set where it falls short.
pub const TUNED_EPOLL_WATCHES: u64 = 4_194_304;

/// `net.netfilter.nf_conntrack_max` that `tuning/sysctl.conf` sets (tracked flows).
pub const TUNED_CONNTRACK_MAX: u64 = 2_097_152;

/// Spare conntrack entries on top of N, in percent of N (TIME_WAIT churn, reconnects, and
/// everything else on the host that is tracked).
pub const CONNTRACK_SLACK_PERCENT: u64 = 25;

/// Proxy memory per idle registered connection, in bytes (the DESIGN.md §4 ceiling).
pub const PROXY_BYTES_PER_CONN: u64 = 2 * 1024;

/// Proxy memory that does not depend on the connection count (code, shard tables, allocator
/// arenas, io_uring rings), in bytes.
pub const PROXY_BASE_BYTES: u64 = 64 * 1024 * 1024;

/// Kernel memory per idle TCP socket, in bytes: the `TCP` slab object (~2.3 KiB), socket
/// inode (~0.7 KiB), `struct file`, dentry and epoll item. No buffers: an idle socket holds
/// none. Rounded up.
pub const KERNEL_BYTES_PER_SOCKET: u64 = 4 * 1024;

/// First loopback source address loadgen uses (127.0.0.1 is left to everything else).
pub const FIRST_LOOPBACK_SOURCE: [u8; 4] = [127, 0, 0, 2];

/// The commands that install the persistent settings from `tuning/`.
const SYSCTL_PERSIST: &str =
    "sudo install -m 644 tuning/sysctl.conf /etc/sysctl.d/90-httpws.conf && sudo sysctl --system";

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Connections to plan for (plain count, or with a suffix: 100k, 1.5m, 1m).
    #[arg(long, value_name = "N", default_value = DEFAULT_CONNS, value_parser = parse_count)]
    pub conns: u64,
}

/// Gather the host's facts and print every check. Returns when no check FAILed; otherwise
/// flushes the report and exits the process with status 1 (the `httpws` main returns
/// `anyhow::Result<()>`, which has no other way to say "ran fine, the answer is no").
pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    if !report(args.conns)? {
        std::process::exit(1);
    }
    Ok(())
}

/// Print the report for `conns` connections; true when no check FAILed.
fn report(conns: u64) -> anyhow::Result<bool> {
    let checks = evaluate(conns, &Facts::gather());
    let mut out = std::io::stdout().lock();
    out.write_all(render(conns, &checks).as_bytes())?;
    out.flush()?;
    Ok(checks.iter().all(|c| c.status != Status::Fail))
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Parse a connection count: `1000`, `100_000`, `100k`, `1m`, `1.5m` (k = 1,000,
/// m = 1,000,000; case-insensitive). The result must be a whole number ≥ 1.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a count (examples: 1000, 100k, 1m)");
    let t = text.trim().replace('_', "");
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000u64),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000u64),
        _ => (&t[..], 1u64),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || number.ends_with('.')
    {
        return Err(bad());
    }
    let too_big = || format!("{text:?} is too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let mut value = whole.checked_mul(scale).ok_or_else(too_big)?;
    // The fraction, digit by digit, must land on a whole number of connections.
    let mut place = scale;
    for digit in frac.bytes().map(|b| u64::from(b - b'0')) {
        if place % 10 != 0 {
            return Err(format!("{text:?} is not a whole number of connections"));
        }
        place /= 10;
        value = value.checked_add(digit * place).ok_or_else(too_big)?;
    }
    if value == 0 {
        return Err("the count must be at least 1".to_owned());
    }
    Ok(value)
}

/// Parse `net.ipv4.ip_local_port_range` ("32768\t60999").
pub fn parse_port_range(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) => Some((lo, hi)),
        _ => None,
    }
}

/// Ports one source address can use towards one destination: the range, inclusive, less the
/// reserved ports (`net.ipv4.ip_local_reserved_ports`) inside it.
pub fn ports_per_source(range: (u64, u64), reserved: &[(u64, u64)]) -> u64 {
    let (lo, hi) = range;
    if hi < lo {
        return 0;
    }
    let taken: u64 = reserved
        .iter()
        .map(|&(a, b)| {
            let (a, b) = (a.max(lo), b.min(hi));
            if b >= a { b - a + 1 } else { 0 }
        })
        .sum();
    (hi - lo + 1).saturating_sub(taken)
}

/// Source addresses loadgen needs so that `conns` connections to one `ip:port` fit.
pub fn sources_needed(conns: u64, ports_per_source: u64) -> Option<u64> {
    (ports_per_source > 0).then(|| conns.div_ceil(ports_per_source))
}

/// The `loadgen --source` range for `count` loopback addresses from [`FIRST_LOOPBACK_SOURCE`].
pub fn loopback_sources(count: u64) -> String {
    let first = u32::from_be_bytes(FIRST_LOOPBACK_SOURCE);
    let last = u64::from(first) + count.max(1) - 1;
    let last = std::net::Ipv4Addr::from(u32::try_from(last).unwrap_or(u32::MAX));
    format!("{}-{last}", std::net::Ipv4Addr::from(first))
}

/// "1 source address (…)" or "K source addresses (loadgen --source A-B)".
fn sources_phrase(k: u64) -> String {
    if k <= 1 {
        "1 source address (loadgen's default is fine)".to_owned()
    } else {
        format!(
            "{k} source addresses (loadgen --source {})",
            loopback_sources(k)
        )
    }
}

/// Parse a kernel list of numbers and ranges ("8080,9000-9100", "0-3,6"); empty is empty.
pub fn parse_ranges(text: &str) -> Option<Vec<(u64, u64)>> {
    text.trim()
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => part.parse().ok().map(|n| (n, n)),
            }
        })
        .collect()
}

/// Connections N plus the process's other descriptors.
pub fn fds_needed(conns: u64) -> u64 {
    conns.saturating_add(FD_HEADROOM)
}

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

/// A limit as printed: `unlimited` for the "infinite" values.
fn limit(value: u64) -> String {
    if value >= i64::MAX as u64 {
        "unlimited".to_owned()
    } else {
        value.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Facts about the host

/// A value read from the host, or why it is unknown.
pub type Read<T> = Result<T, String>;

/// What the io_uring probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uring {
    /// `io_uring_setup` returned a ring (closed again at once).
    Available,
    /// `io_uring_setup` failed with this errno.
    Refused { errno: i32, message: String },
}

/// Whether connection tracking is in the kernel, and its table size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conntrack {
    /// `nf_conntrack` is not loaded: no table to fill.
    NotLoaded,
    /// Loaded, with `nf_conntrack_max` and (if readable) `nf_conntrack_count`.
    Loaded { max: u64, count: Option<u64> },
    /// Cannot tell.
    Unknown(String),
}

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
const NETFILTER_DIR: &str = "/proc/sys/net/netfilter";
const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const CONNTRACK_COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";
const MEMINFO: &str = "/proc/meminfo";
const CPUS_ONLINE: &str = "/sys/devices/system/cpu/online";

fn read_text(path: &str) -> Read<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "not present".to_owned(),
                std::io::ErrorKind::PermissionDenied => "not readable".to_owned(),
                _ => e.to_string(),
            };
            format!("unknown ({path}: {why})")
        })
}

fn read_u64(path: &str) -> Read<u64> {
    let text = read_text(path)?;
    text.parse()
        .map_err(|_| format!("unknown ({path}: unexpected {text:?})"))
}

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

#[cfg(unix)]
fn nofile_limit() -> Read<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` to a valid, exclusively borrowed pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "unknown (getrlimit: {})",
            std::io::Error::last_os_error()
        ));
    }
    // rlim_t is u32 on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let widen = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v as u64
        }
    };
    Ok((widen(lim.rlim_cur), widen(lim.rlim_max)))
}

#[cfg(not(unix))]
fn nofile_limit() -> Read<(u64, u64)> {
    Err("unknown (not a Unix host)".to_owned())
}

/// Ask the kernel for an io_uring with `entries` entries, as a shard does, and close it.
#[cfg(target_os = "linux")]
fn probe_io_uring(entries: u32) -> Uring {
    /// `struct io_uring_params`: all zero asks for no features; the kernel fills it in.
    #[repr(C, align(8))]
    struct Params([u8; IO_URING_PARAMS_BYTES]);
    let mut params = Params([0; IO_URING_PARAMS_BYTES]);
    // SAFETY: io_uring_setup(2) reads and writes one `struct io_uring_params` (120 bytes) at
    // the pointer, which is valid, aligned, and exclusively ours for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            libc::c_long::from(entries),
            &mut params as *mut Params,
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return Uring::Refused {
            errno: err.raw_os_error().unwrap_or(0),
            message: err.to_string(),
        };
    }
    // SAFETY: `fd` is the descriptor the call above just created; nothing else owns it.
    unsafe { libc::close(fd as libc::c_int) };
    Uring::Available
}

#[cfg(not(target_os = "linux"))]
fn probe_io_uring(_entries: u32) -> Uring {
    Uring::Refused {
        errno: libc::ENOSYS,
        message: "not Linux".to_owned(),
    }
}

fn conntrack() -> Conntrack {
    match read_u64(CONNTRACK_MAX) {
        Ok(max) => Conntrack::Loaded {
            max,
            count: read_u64(CONNTRACK_COUNT).ok(),
        },
        // The netfilter directory exists without the conntrack keys, or /proc/sys/net exists
        // without netfilter: the module is not loaded.
        Err(_) if std::path::Path::new(NETFILTER_DIR).is_dir() => Conntrack::NotLoaded,
        Err(_) if std::path::Path::new("/proc/sys/net/ipv4").is_dir() => Conntrack::NotLoaded,
        Err(why) => Conntrack::Unknown(why),
    }
}

/// MemAvailable, lowered to what this process's cgroup (v2) still allows.
fn mem_available() -> Read<u64> {
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

// ---------------------------------------------------------------------------------------------
// Checks

/// How a check came out. Ordered by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub current: String,
    pub needed: String,
    /// Commands (or steps) that fix it; printed only when the status is not OK.
    pub fix: Vec<String>,
}

/// The names of every check, in report order (tests/doctor.rs looks for them too).
#[cfg(test)]
const CHECK_NAMES: [&str; 12] = [
    "open files (RLIMIT_NOFILE)",
    "fs.nr_open",
    "fs.file-max",
    "fs.epoll.max_user_watches",
    "io_uring",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "conntrack (nf_conntrack_max)",
    "memory",
    "CPUs (shards)",
];

/// Run every check against `facts` for `conns` connections.
pub fn evaluate(conns: u64, facts: &Facts) -> Vec<Check> {
    vec![
        check_nofile(conns, &facts.nofile, &facts.nr_open),
        check_nr_open(conns, &facts.nr_open),
        check_file_max(conns, &facts.file_max),
        check_epoll_watches(conns, &facts.epoll_watches),
        check_io_uring(&facts.uring, &facts.uring_disabled, &facts.kernel),
        check_somaxconn(&facts.somaxconn),
        check_syn_backlog(&facts.syn_backlog, &facts.syncookies),
        check_port_range(conns, &facts.port_range, &facts.reserved_ports),
        check_tw_reuse(&facts.tw_reuse),
        check_conntrack(conns, &facts.conntrack),
        check_memory(conns, &facts.mem_available),
        check_cpus(conns, facts.cpus, facts.cpus_online),
    ]
}

/// The WARN given for a value that could not be read.
fn unknown(name: &'static str, why: &str, needed: String) -> Check {
    Check {
        name,
        status: Status::Warn,
        current: why.to_owned(),
        needed,
        fix: vec!["cannot check from here (a container?): run `httpws doctor` on the host".into()],
    }
}

fn sysctl_fix(key: &str, value: impl std::fmt::Display) -> Vec<String> {
    vec![
        format!("sudo sysctl -w {key}={value}"),
        format!("persistent: {SYSCTL_PERSIST}"),
    ]
}

pub fn check_nofile(conns: u64, nofile: &Read<(u64, u64)>, nr_open: &Read<u64>) -> Check {
    const NAME: &str = "open files (RLIMIT_NOFILE)";
    let need = fds_needed(conns);
    let needed = format!(">= {need} soft and hard ({conns} connections + {FD_HEADROOM} spare)");
    let (soft, hard) = match nofile {
        Ok(v) => *v,
        Err(why) => return unknown(NAME, why, needed),
    };
    let current = format!("soft {}, hard {}", limit(soft), limit(hard));
    let (status, fix) = if soft >= need {
        (Status::Ok, vec![])
    } else if hard >= need {
        (
            Status::Warn,
            vec![
                format!(
                    "no root needed (soft may rise up to hard; `httpws proxy` raises its own at \
                     start): `ulimit -n {need}` in the shell that starts loadgen"
                ),
                "as a service: LimitNOFILE= in tuning/httpws-proxy.service".into(),
            ],
        )
    } else {
        let mut fix = Vec::new();
        if nr_open.as_ref().is_ok_and(|&n| n < need) {
            fix.push(format!("first raise fs.nr_open (the ceiling for hard): sudo sysctl -w fs.nr_open={TUNED_NR_OPEN}"));
        }
        fix.push(format!(
            "this shell (root raises hard): sudo prlimit --pid $$ --nofile={need}:{need}"
        ));
        fix.push(
            "logins: sudo install -m 644 tuning/limits.conf /etc/security/limits.d/90-httpws.conf \
             (then log in again)"
                .into(),
        );
        fix.push(
            "service: sudo install -m 644 tuning/httpws-proxy.service /etc/systemd/system/ \
             (LimitNOFILE=) && sudo systemctl daemon-reload"
                .into(),
        );
        (Status::Fail, fix)
    };
    Check {
        name: NAME,
        status,
        current,
        needed,
        fix,
    }
}

pub fn check_nr_open(conns: u64, nr_open: &Read<u64>) -> Check {
    const NAME: &str = "fs.nr_open";
    let need = fds_needed(conns);
    let needed = format!(">= {need} (the most any process's hard RLIMIT_NOFILE may be)");
    match nr_open.as_ref() {
        Err(why) => unknown(NAME, why, needed),
        Ok(&n) if n >= need => ok(NAME, n.to_string(), needed),
        Ok(&n) => Check {
            name: NAME,
            status: Status::Fail,
            current: n.to_string(),
            needed,
            fix: sysctl_fix("fs.nr_open", TUNED_NR_OPEN.max(need)),
        },
    }
}

fn ok(name: &'static str, current: String, needed: String) -> Check {
    Check {
        name,
        status: Status::Ok,
        current,
        needed,
        fix: vec![],
    }
}

pub fn check_file_max(conns: u64, file_max: &Read<u64>) -> Check {
    const NAME: &str = "fs.file-max";
    let one = fds_needed(conns);
    let both = one.saturating_mul(2);
    let needed = format!(
        ">= {both} (proxy + loadgen on this host; {one} for the proxy alone), whole system"
    );
    match file_max.as_ref() {
        Err(why) => unknown(NAME, why, needed),
        Ok(&n) if n >= both => ok(NAME, limit(n), needed),
        Ok(&n) => Check {
            name: NAME,
            status: if n >= one { Status::Warn } else { Status::Fail },
            current: limit(n),
            needed,
            fix: sysctl_fix("fs.file-max", TUNED_FILE_MAX.max(both)),
        },
    }
}

pub fn check_epoll_watches(conns: u64, watches: &Read<u64>) -> Check {
    const NAME: &str = "fs.epoll.max_user_watches";
    let both = fds_needed(conns).saturating_mul(2);
    let needed = format!(
        ">= {both} per user (epoll driver: one watch per socket, proxy + loadgen); \
         io_uring needs none"
    );
    match watches.as_ref() {
        Err(why) => unknown(NAME, why, needed),
        Ok(&n) if n >= both => ok(NAME, n.to_string(), needed),
        Ok(&n) => Check {
            name: NAME,
            status: Status::Warn,
            current: n.to_string(),
            needed,
            fix: vec![
                format!(
                    "sudo sysctl -w fs.epoll.max_user_watches={}",
                    TUNED_EPOLL_WATCHES.max(both)
                ),
                format!(
                    "persistent: uncomment fs.epoll.max_user_watches in tuning/sysctl.conf, \
                     then {SYSCTL_PERSIST}"
                ),
            ],
        },
    }
}

pub fn check_io_uring(uring: &Uring, disabled: &Read<u64>, kernel: &Read<String>) -> Check {
    const NAME: &str = "io_uring";
    let kernel = kernel.as_deref().unwrap_or("unknown");
    let disabled_text = match disabled {
        Ok(v) => format!("kernel.io_uring_disabled={v}"),
        Err(_) => "kernel.io_uring_disabled not present".to_owned(),
    };
    let needed = "io_uring_setup succeeds (else the proxy falls back to epoll; \
                  --driver uring fails)"
        .to_owned();
    match uring {
        Uring::Available => ok(
            NAME,
            format!("available (kernel {kernel}, {disabled_text})"),
            needed,
        ),
        Uring::Refused { errno, message } => {
            let mut fix = Vec::new();
            match (*errno, disabled) {
                (libc::ENOSYS, _) => fix.push(format!(
                    "kernel {kernel} has no io_uring (needs >= 5.6 built with CONFIG_IO_URING); \
                     the epoll driver works meanwhile"
                )),
                (libc::EPERM, Ok(2)) => fix.push(sysctl_fix("kernel.io_uring_disabled", 0).join("; ")),
                (libc::EPERM, Ok(1)) => fix.push(
                    "add the user to the group in kernel.io_uring_group, or sudo sysctl -w \
                     kernel.io_uring_disabled=0"
                        .into(),
                ),
                (libc::EPERM, _) => fix.push(
                    "a seccomp filter blocks it (Docker's default profile does): run with \
                     --security-opt seccomp=<profile allowing io_uring_setup/enter/register>"
                        .into(),
                ),
                (libc::ENOMEM, _) => fix.push(
                    "locked-memory limit (kernels < 5.12 charge rings to it): ulimit -l unlimited, \
                     or LimitMEMLOCK=infinity in tuning/httpws-proxy.service"
                        .into(),
                ),
                _ => fix.push("see io_uring_setup(2) for this error; the epoll driver works meanwhile".into()),
            }
            Check {
                name: NAME,
                status: Status::Warn,
                current: format!("refused: {message} (kernel {kernel}, {disabled_text})"),
                needed,
                fix,
            }
        }
    }
}

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

pub fn check_port_range(conns: u64, range: &Read<(u64, u64)>, reserved: &[(u64, u64)]) -> Check {
    const NAME: &str = "net.ipv4.ip_local_port_range";
    let tuned = ports_per_source(TUNED_PORT_RANGE, &[]);
    let (lo, hi) = match range {
        Ok(r) => *r,
        Err(why) => {
            let k = conns.div_ceil(tuned);
            return unknown(
                NAME,
                why,
                format!("with the tuned range, loadgen needs {}", sources_phrase(k)),
            );
        }
    };
    let ports = ports_per_source((lo, hi), reserved);
    let reserved_note = if ports < hi.saturating_sub(lo) + 1 {
        " after reserved ports"
    } else {
        ""
    };
    let current = format!("{lo}-{hi}: {ports} ports per source address{reserved_note}");
    let Some(k) = sources_needed(conns, ports) else {
        return Check {
            name: NAME,
            status: Status::Fail,
            current,
            needed: "a non-empty range".into(),
            fix: sysctl_fix(
                "net.ipv4.ip_local_port_range",
                format!("\"{} {}\"", TUNED_PORT_RANGE.0, TUNED_PORT_RANGE.1),
            ),
        };
    };
    let needed = format!(
        "{conns} connections to one proxy port from loopback: {}",
        sources_phrase(k)
    );
    // Only loadgen's outgoing connections use local ports; a narrow range just means more
    // source addresses. Worth widening when it would spare addresses.
    let status = if k > 1 && ports < tuned {
        Status::Warn
    } else {
        Status::Ok
    };
    let fix = if status == Status::Ok {
        vec![]
    } else {
        let k_tuned = conns.div_ceil(tuned);
        let mut fix = sysctl_fix(
            "net.ipv4.ip_local_port_range",
            format!("\"{} {}\"", TUNED_PORT_RANGE.0, TUNED_PORT_RANGE.1),
        );
        fix.push(format!(
            "then loadgen needs {}; or keep this range and use --source {}",
            sources_phrase(k_tuned),
            loopback_sources(k)
        ));
        fix
    };
    Check {
        name: NAME,
        status,
        current,
        needed,
        fix,
    }
}

pub fn check_tw_reuse(tw_reuse: &Read<u64>) -> Check {
    const NAME: &str = "net.ipv4.tcp_tw_reuse";
    let needed = "1 (or 2, loopback only: enough for loadgen on 127.0.0.x), so reconnects \
                  reuse ports held in TIME_WAIT"
        .to_owned();
    match tw_reuse.as_ref() {
        Err(why) => unknown(NAME, why, needed),
        Ok(&1) => ok(NAME, "1 (all connections)".into(), needed),
        Ok(&2) => ok(NAME, "2 (loopback only)".into(), needed),
        Ok(&n) => Check {
            name: NAME,
            status: Status::Warn,
            current: format!("{n} (off)"),
            needed,
            fix: sysctl_fix("net.ipv4.tcp_tw_reuse", 1),
        },
    }
}

pub fn conntrack_needed(conns: u64) -> u64 {
    conns.saturating_add(conns.saturating_mul(CONNTRACK_SLACK_PERCENT) / 100)
}

pub fn check_conntrack(conns: u64, conntrack: &Conntrack) -> Check {
    const NAME: &str = "conntrack (nf_conntrack_max)";
    let need = conntrack_needed(conns);
    let needed = format!(
        ">= {need} tracked flows ({conns} + {CONNTRACK_SLACK_PERCENT}%), or NOTRACK for the \
         proxy port, or nf_conntrack not loaded"
    );
    let fix = || {
        let mut fix = sysctl_fix(
            "net.netfilter.nf_conntrack_max",
            TUNED_CONNTRACK_MAX.max(need),
        );
        fix.push(
            "or skip tracking the proxy's port: the NOTRACK rules in tuning/README.md \
             (section conntrack)"
                .into(),
        );
        fix
    };
    match conntrack {
        Conntrack::Unknown(why) => unknown(NAME, why, needed),
        Conntrack::NotLoaded => ok(
            NAME,
            "nf_conntrack not loaded (no table to fill)".into(),
            needed,
        ),
        Conntrack::Loaded { max, count } => {
            let in_use = count.map_or(String::new(), |c| format!(", {c} in use"));
            let current = format!("loaded, max {max}{in_use}");
            if *max >= need {
                return ok(NAME, current, needed);
            }
            // A full table drops new connections' packets ("nf_conntrack: table full, dropping
            // packet") unless the proxy's port is NOTRACKed, which doctor cannot see. An
            // empty table usually means no rule has switched tracking on (its hooks are
            // registered on first use, e.g. by Docker or firewalld): a warning, not a blocker.
            let (status, current) = if *max >= conns {
                (Status::Warn, current)
            } else if *count == Some(0) {
                (
                    Status::Warn,
                    format!("{current} (nothing tracked now: no rule may be using it yet)"),
                )
            } else {
                (Status::Fail, current)
            };
            Check {
                name: NAME,
                status,
                current,
                needed,
                fix: fix(),
            }
        }
    }
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

pub fn check_cpus(conns: u64, cpus: usize, online: Option<u64>) -> Check {
    const NAME: &str = "CPUs (shards)";
    let cpus = cpus.max(1) as u64;
    let online = match online {
        Some(o) if o != cpus => format!(" of {o} online (affinity or cgroup quota)"),
        _ => String::new(),
    };
    let current = format!(
        "{cpus} usable{online}: {cpus} shard(s) by default, ~{} connections each",
        conns.div_ceil(cpus)
    );
    let needed = ">= 2 (one shard per core; loadgen on this host shares them)".to_owned();
    if cpus >= 2 {
        ok(NAME, current, needed)
    } else {
        Check {
            name: NAME,
            status: Status::Warn,
            current,
            needed,
            fix: vec!["run loadgen on another host, or give this one more cores".into()],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report

/// The whole report as printed.
pub fn render(conns: u64, checks: &[Check]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "httpws doctor: can this host hold {conns} connections? (sized for the proxy and \
         loadgen on this host)\n"
    );
    for check in checks {
        let _ = writeln!(out, "{:<5} {}", check.status.label(), check.name);
        let _ = writeln!(out, "      current: {}", check.current);
        let _ = writeln!(out, "      needed:  {}", check.needed);
        if check.status != Status::Ok {
            for (i, fix) in check.fix.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "      {} {fix}",
                    if i == 0 { "fix:    " } else { "        " }
                );
            }
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    let (fail, warn, okc) = (count(Status::Fail), count(Status::Warn), count(Status::Ok));
    let _ = writeln!(
        out,
        "\n{fail} FAIL, {warn} WARN, {okc} OK: {}. Settings and explanations: tuning/README.md",
        if fail > 0 {
            "this host cannot hold that many connections as it is"
        } else {
            "no blocker"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_suffixes() {
        assert_eq!(parse_count("1000"), Ok(1000));
        assert_eq!(parse_count("100_000"), Ok(100_000));
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count("100K"), Ok(100_000));
        assert_eq!(parse_count("1m"), Ok(1_000_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("1.5m"), Ok(1_500_000));
        assert_eq!(parse_count("2.5k"), Ok(2_500));
        assert_eq!(parse_count(".5k"), Ok(500));
        assert_eq!(parse_count(" 10k "), Ok(10_000));
    }

    #[test]
    fn bad_counts_are_refused() {
        for bad in [
            "", "k", "abc", "10x", "1.5", "1.2345k", "-5", "1e6", "0", "0k", "1.k", "1..5k",
        ] {
            assert!(parse_count(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_count("99999999999999999999").is_err());
        assert!(parse_count("99999999999999m").is_err());
    }

    #[test]
    fn port_range_arithmetic() {
        assert_eq!(parse_port_range("32768\t60999"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1 2 3"), None);
        assert_eq!(parse_port_range("x 2"), None);
        assert_eq!(ports_per_source((32768, 60999), &[]), 28232);
        assert_eq!(ports_per_source(TUNED_PORT_RANGE, &[]), 55296);
        assert_eq!(ports_per_source((100, 99), &[]), 0);
        // Reserved ports count only inside the range.
        assert_eq!(
            ports_per_source((1000, 1999), &[(8080, 8080), (1990, 2100), (10, 1009)]),
            980
        );
        assert_eq!(sources_needed(100_000, 28232), Some(4));
        assert_eq!(sources_needed(28232, 28232), Some(1));
        assert_eq!(sources_needed(28233, 28232), Some(2));
        assert_eq!(sources_needed(1_000_000, 55296), Some(19));
        assert_eq!(sources_needed(5, 0), None);
        assert_eq!(loopback_sources(1), "127.0.0.2-127.0.0.2");
        assert_eq!(loopback_sources(4), "127.0.0.2-127.0.0.5");
        assert_eq!(loopback_sources(300), "127.0.0.2-127.0.1.45");
        assert_eq!(
            parse_ranges("8080,9000-9100"),
            Some(vec![(8080, 8080), (9000, 9100)])
        );
        assert_eq!(parse_ranges(""), Some(vec![]));
        assert_eq!(parse_ranges("0-3,x"), None);
    }

    fn host() -> Facts {
        Facts {
            nofile: Ok((1_048_576, 1_048_576)),
            nr_open: Ok(1_048_576),
            file_max: Ok(9_223_372_036_854_775_807),
            epoll_watches: Ok(5_000_000),
            uring: Uring::Available,
            uring_disabled: Ok(0),
            kernel: Ok("6.8.0".into()),
            somaxconn: Ok(4096),
            syn_backlog: Ok(2048),
            syncookies: Ok(1),
            port_range: Ok((32768, 60999)),
            reserved_ports: vec![],
            tw_reuse: Ok(2),
            conntrack: Conntrack::NotLoaded,
            mem_available: Ok(16 << 30),
            cpus: 8,
            cpus_online: Some(8),
        }
    }

    #[test]
    fn a_well_tuned_host_passes_with_only_the_port_range_noted() {
        let checks = evaluate(100_000, &host());
        let names: Vec<_> = checks.iter().map(|c| c.name).collect();
        assert_eq!(names, CHECK_NAMES);
        for c in &checks {
            let expected = if c.name == "net.ipv4.ip_local_port_range" {
                Status::Warn
            } else {
                Status::Ok
            };
            assert_eq!(c.status, expected, "{c:?}");
        }
        let text = render(100_000, &checks);
        assert!(text.contains("0 FAIL, 1 WARN, 11 OK"), "{text}");
        assert!(text.contains("--source 127.0.0.2-127.0.0.5"), "{text}");
    }

    #[test]
    fn open_files() {
        let n = 100_000;
        let need = n + FD_HEADROOM;
        assert_eq!(
            check_nofile(n, &Ok((need, need)), &Ok(1 << 20)).status,
            Status::Ok
        );
        let soft_low = check_nofile(n, &Ok((1024, need)), &Ok(1 << 20));
        assert_eq!(soft_low.status, Status::Warn);
        assert!(soft_low.fix[0].contains(&format!("ulimit -n {need}")));
        let hard_low = check_nofile(n, &Ok((20_000, 20_000)), &Ok(50_000));
        assert_eq!(hard_low.status, Status::Fail);
        assert!(hard_low.fix.iter().any(|f| f.contains("fs.nr_open")));
        assert!(
            hard_low
                .fix
                .iter()
                .any(|f| f.contains("tuning/limits.conf"))
        );
        assert!(
            hard_low
                .fix
                .iter()
                .any(|f| f.contains("tuning/httpws-proxy.service"))
        );
        assert!(
            !check_nofile(n, &Ok((1, 1)), &Ok(u64::MAX))
                .fix
                .iter()
                .any(|f| f.contains("nr_open"))
        );
        assert_eq!(
            check_nofile(n, &Ok((u64::MAX, u64::MAX)), &Ok(0)).current,
            "soft unlimited, hard unlimited"
        );
        assert_eq!(
            check_nofile(n, &Err("unknown (x)".into()), &Ok(0)).status,
            Status::Warn
        );
        assert_eq!(check_nr_open(n, &Ok(need - 1)).status, Status::Fail);
        assert_eq!(check_nr_open(n, &Ok(need)).status, Status::Ok);
    }

    #[test]
    fn system_wide_files_count_both_ends() {
        let one = 1000 + FD_HEADROOM;
        assert_eq!(check_file_max(1000, &Ok(2 * one)).status, Status::Ok);
        assert_eq!(check_file_max(1000, &Ok(2 * one - 1)).status, Status::Warn);
        assert_eq!(check_file_max(1000, &Ok(one - 1)).status, Status::Fail);
        assert_eq!(check_epoll_watches(1000, &Ok(one)).status, Status::Warn);
        assert_eq!(check_epoll_watches(1000, &Ok(2 * one)).status, Status::Ok);
    }

    #[test]
    fn io_uring_outcomes() {
        let refused = |errno| Uring::Refused {
            errno,
            message: "x".into(),
        };
        let k = Ok("5.4".to_owned());
        assert_eq!(
            check_io_uring(&Uring::Available, &Err("n/a".into()), &k).status,
            Status::Ok
        );
        let off = check_io_uring(&refused(libc::EPERM), &Ok(2), &k);
        assert_eq!(off.status, Status::Warn);
        assert!(off.fix[0].contains("kernel.io_uring_disabled=0"));
        assert!(off.current.contains("kernel.io_uring_disabled=2"));
        assert!(
            check_io_uring(&refused(libc::EPERM), &Err("n/a".into()), &k).fix[0]
                .contains("seccomp")
        );
        assert!(check_io_uring(&refused(libc::ENOMEM), &Ok(0), &k).fix[0].contains("MEMLOCK"));
        assert!(check_io_uring(&refused(libc::ENOSYS), &Ok(0), &k).fix[0].contains("no io_uring"));
    }

    #[test]
    fn listen_queues() {
        assert_eq!(check_somaxconn(&Ok(4096)).status, Status::Ok);
        assert_eq!(check_somaxconn(&Ok(128)).status, Status::Warn);
        assert!(check_somaxconn(&Ok(128)).fix[0].contains("net.core.somaxconn=65535"));
        assert_eq!(check_syn_backlog(&Ok(128), &Ok(1)).status, Status::Ok);
        assert_eq!(check_syn_backlog(&Ok(128), &Ok(0)).status, Status::Warn);
        assert_eq!(check_syn_backlog(&Ok(8192), &Ok(0)).status, Status::Ok);
    }

    #[test]
    fn port_range_check() {
        let default = Ok((32768, 60999));
        assert_eq!(check_port_range(28_000, &default, &[]).status, Status::Ok);
        let narrow = check_port_range(100_000, &default, &[]);
        assert_eq!(narrow.status, Status::Warn);
        assert!(
            narrow
                .needed
                .contains("4 source addresses (loadgen --source 127.0.0.2-127.0.0.5)")
        );
        assert!(
            narrow
                .fix
                .iter()
                .any(|f| f.contains("--source 127.0.0.2-127.0.0.3"))
        );
        // Already wide: more addresses are simply what it takes.
        let wide = check_port_range(1_000_000, &Ok(TUNED_PORT_RANGE), &[]);
        assert_eq!(wide.status, Status::Ok);
        assert!(wide.needed.contains("127.0.0.2-127.0.0.20"));
        assert_eq!(check_port_range(10, &Ok((5, 4)), &[]).status, Status::Fail);
        assert_eq!(
            check_port_range(10, &Err("unknown".into()), &[]).status,
            Status::Warn
        );
    }

    #[test]
    fn tw_reuse_values() {
        assert_eq!(check_tw_reuse(&Ok(0)).status, Status::Warn);
        assert_eq!(check_tw_reuse(&Ok(1)).status, Status::Ok);
        assert_eq!(check_tw_reuse(&Ok(2)).status, Status::Ok);
        assert_eq!(check_tw_reuse(&Err("unknown".into())).status, Status::Warn);
    }

    #[test]
    fn conntrack_table() {
        assert_eq!(conntrack_needed(100_000), 125_000);
        assert_eq!(
            check_conntrack(100_000, &Conntrack::NotLoaded).status,
            Status::Ok
        );
        let loaded = |max| Conntrack::Loaded {
            max,
            count: Some(7),
        };
        assert_eq!(
            check_conntrack(100_000, &loaded(262_144)).status,
            Status::Ok
        );
        assert_eq!(
            check_conntrack(100_000, &loaded(110_000)).status,
            Status::Warn
        );
        let idle = check_conntrack(
            100_000,
            &Conntrack::Loaded {
                max: 65_536,
                count: Some(0),
            },
        );
        assert_eq!(idle.status, Status::Warn);
        let full = check_conntrack(100_000, &loaded(65_536));
        assert_eq!(full.status, Status::Fail);
        assert!(full.current.contains("7 in use"));
        assert!(full.fix.iter().any(|f| f.contains("NOTRACK")));
        assert_eq!(
            check_conntrack(1, &Conntrack::Unknown("unknown".into())).status,
            Status::Warn
        );
    }

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

    #[test]
    fn cpus() {
        assert_eq!(check_cpus(1000, 1, Some(1)).status, Status::Warn);
        let c = check_cpus(1000, 2, Some(16));
        assert_eq!(c.status, Status::Ok);
        assert!(c.current.contains("of 16 online"));
        assert!(c.current.contains("~500 connections each"));
    }

    #[test]
    fn unknown_everything_warns_and_never_fails() {
        let why = || Err::<u64, _>("unknown (gone)".to_owned());
        let facts = Facts {
            nofile: Err("unknown (gone)".into()),
            nr_open: why(),
            file_max: why(),
            epoll_watches: why(),
            uring: Uring::Refused {
                errno: libc::ENOSYS,
                message: "gone".into(),
            },
            uring_disabled: why(),
            kernel: Err("unknown".into()),
            somaxconn: why(),
            syn_backlog: why(),
            syncookies: why(),
            port_range: Err("unknown (gone)".into()),
            reserved_ports: vec![],
            tw_reuse: why(),
            conntrack: Conntrack::Unknown("unknown (gone)".into()),
            mem_available: why(),
            cpus: 4,
            cpus_online: None,
        };
        let checks = evaluate(1000, &facts);
        assert!(
            checks.iter().all(|c| c.status != Status::Fail),
            "{checks:?}"
        );
        assert!(render(1000, &checks).contains("unknown (gone)"));
    }

    #[test]
    fn gathering_this_host_does_not_panic() {
        let checks = evaluate(1000, &Facts::gather());
        assert_eq!(checks.len(), CHECK_NAMES.len());
    }
}
