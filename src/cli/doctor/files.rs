//! Open files: every connection is a descriptor. The process's RLIMIT_NOFILE, the kernel's
//! ceiling for it (`fs.nr_open`), and the system-wide counts (`fs.file-max`, epoll watches)
//! that the proxy and loadgen on one host both draw on.

use super::check::{Check, SYSCTL_PERSIST, Status, ok, sysctl_fix, unknown};
use super::procfs::Read;

/// File descriptors a process needs besides its connections: listeners (one per shard),
/// eventfds, io_uring rings, stdio, log files. Count.
pub const FD_HEADROOM: u64 = 1024;

/// `fs.nr_open` that `tuning/sysctl.conf` sets (file descriptors per process): what systemd
/// (v240 and later) sets at boot on 64-bit hosts. `LimitNOFILE`/limits.conf use 2097152.
pub const TUNED_NR_OPEN: u64 = 1_073_741_816;

/// `fs.file-max` that `tuning/sysctl.conf` sets (file descriptors, whole system): unlimited
/// (`LONG_MAX`), as systemd sets it.
pub const TUNED_FILE_MAX: u64 = i64::MAX as u64;

/// `fs.epoll.max_user_watches` suggested (commented out) in `tuning/sysctl.conf` (watches
/// per user); the default scales with RAM, so it is only set where it falls short.
pub const TUNED_EPOLL_WATCHES: u64 = 4_194_304;

/// Connections N plus the process's other descriptors.
pub fn fds_needed(conns: u64) -> u64 {
    conns.saturating_add(FD_HEADROOM)
}

/// A limit as printed: `unlimited` for the "infinite" values.
fn limit(value: u64) -> String {
    if value >= i64::MAX as u64 {
        "unlimited".to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(unix)]
pub(super) fn nofile_limit() -> Read<(u64, u64)> {
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
pub(super) fn nofile_limit() -> Read<(u64, u64)> {
    Err("unknown (not a Unix host)".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
