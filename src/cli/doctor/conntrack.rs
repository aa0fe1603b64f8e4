//! Connection tracking: whether netfilter's conntrack table is in the kernel, and whether N
//! connections fit in it.

use super::check::{Check, Status, ok, sysctl_fix, unknown};
use super::procfs::read_u64;

/// `net.netfilter.nf_conntrack_max` that `tuning/sysctl.conf` sets (tracked flows).
pub const TUNED_CONNTRACK_MAX: u64 = 2_097_152;

/// Spare conntrack entries on top of N, in percent of N (TIME_WAIT churn, reconnects, and
/// everything else on the host that is tracked).
pub const CONNTRACK_SLACK_PERCENT: u64 = 25;

const NETFILTER_DIR: &str = "/proc/sys/net/netfilter";
const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const CONNTRACK_COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

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

pub(super) fn conntrack() -> Conntrack {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
