//! CPUs: how many shards the proxy starts by default (one per usable core), and whether
//! loadgen on the same host has a core beside them.

use super::check::{Check, Status, ok};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus() {
        assert_eq!(check_cpus(1000, 1, Some(1)).status, Status::Warn);
        let c = check_cpus(1000, 2, Some(16));
        assert_eq!(c.status, Status::Ok);
        assert!(c.current.contains("of 16 online"));
        assert!(c.current.contains("~500 connections each"));
    }
}
