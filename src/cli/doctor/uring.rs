//! io_uring: whether this host lets the proxy set up a ring the way each shard does, and if
//! not, why (no kernel support, switched off, seccomp, locked-memory limit).

use super::check::{Check, Status, ok, sysctl_fix};
use super::procfs::Read;

/// Submission-queue entries each shard's io_uring asks for. Mirrors `URING_ENTRIES` in
/// `src/proxy/shard.rs`, so the probe fails the same way the proxy would (e.g. on memlock).
pub const PROXY_URING_ENTRIES: u32 = 1024;

/// Size of the kernel's `struct io_uring_params`, in bytes.
const IO_URING_PARAMS_BYTES: usize = 120;

/// What the io_uring probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uring {
    /// `io_uring_setup` returned a ring (closed again at once).
    Available,
    /// `io_uring_setup` failed with this errno.
    Refused { errno: i32, message: String },
}

/// Ask the kernel for an io_uring with `entries` entries, as a shard does, and close it.
#[cfg(target_os = "linux")]
pub(super) fn probe_io_uring(entries: u32) -> Uring {
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
pub(super) fn probe_io_uring(_entries: u32) -> Uring {
    Uring::Refused {
        errno: libc::ENOSYS,
        message: "not Linux".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
