//! Local ports for loadgen's connections: how many one source address has
//! (`net.ipv4.ip_local_port_range` less the reserved ports), how many loopback source
//! addresses N connections to one proxy port need, and reusing ports held in TIME_WAIT
//! (`net.ipv4.tcp_tw_reuse`).

use super::check::{Check, Status, ok, sysctl_fix, unknown};
use super::procfs::Read;

/// `net.ipv4.ip_local_port_range` that `tuning/sysctl.conf` sets (first, last port).
/// First even, last odd: the kernel wants different parities (it splits bind/connect by parity).
pub const TUNED_PORT_RANGE: (u64, u64) = (10240, 65535);

/// First loopback source address loadgen uses (127.0.0.1 is left to everything else).
pub const FIRST_LOOPBACK_SOURCE: [u8; 4] = [127, 0, 0, 2];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::procfs::parse_ranges;

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
}
