//! The parsers of flag values: counts (`100k`), source address lists (`127.0.0.2-127.0.0.20`)
//! and the proxy's URL (`ws://host:port`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail, ensure};

/// Most source addresses one range may expand to (a typo like 127.0.0.2-127.1.0.0 is refused
/// rather than allocating millions of entries).
const MAX_SOURCES: usize = 65_536;

/// Why a flag value is not a count (the text clap shows after the flag's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountError {
    #[error("'{0}' is not a count (e.g. 1000, 100k, 1m)")]
    NotACount(String),
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// `100`, `100k`, `1m`, `2.5k`, `1_000` → a count (k = 1000, m = 1,000,000, g = 10^9).
pub fn parse_count(s: &str) -> Result<u64, CountError> {
    let t: String = s.trim().chars().filter(|&c| c != '_' && c != ',').collect();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000u64),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        _ => (t.as_str(), 1),
    };
    if num.is_empty() {
        return Err(CountError::NotACount(s.to_string()));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| CountError::TooLarge(s.to_string()));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && mult > 1 => {
            let v = (f * mult as f64).round();
            if v < u64::MAX as f64 {
                Ok(v as u64)
            } else {
                Err(CountError::TooLarge(s.to_string()))
            }
        }
        _ => Err(CountError::NotACount(s.to_string())),
    }
}

/// Why a flag value is not a size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("'{0}' is not a size (e.g. 4096, 16KiB, 64MiB, 1GiB)")]
    NotASize(String),
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// `4096`, `16k`, `16KiB`, `64MiB`, `1GiB` → bytes (k, m, g and their KiB forms are powers of
/// 1024: these are buffer and body sizes).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| SizeError::NotASize(s.to_string()))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(SizeError::NotASize(s.to_string())),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::TooLarge(s.to_string()))
}

/// `127.0.0.2-127.0.0.20`, `127.0.0.2,127.0.0.3`, `127.0.0.2-5` (last octet), or a mix.
pub fn parse_sources(s: &str) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            None => out.push(
                part.parse::<IpAddr>()
                    .with_context(|| format!("--source: '{part}' is not an IP address"))?,
            ),
            Some((a, b)) => {
                let first: Ipv4Addr = a
                    .trim()
                    .parse()
                    .with_context(|| format!("--source: '{a}' is not an IPv4 address"))?;
                let b = b.trim();
                let last: Ipv4Addr = match b.parse::<u8>() {
                    Ok(octet) => {
                        let o = first.octets();
                        Ipv4Addr::new(o[0], o[1], o[2], octet)
                    }
                    Err(_) => b
                        .parse()
                        .with_context(|| format!("--source: '{b}' is not an IPv4 address"))?,
                };
                let (lo, hi) = (u32::from(first), u32::from(last));
                ensure!(lo <= hi, "--source: range {part} is backwards");
                ensure!(
                    (hi - lo) as usize + out.len() < MAX_SOURCES,
                    "--source: more than {MAX_SOURCES} addresses"
                );
                out.extend((lo..=hi).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
            }
        }
    }
    ensure!(!out.is_empty(), "--source: no addresses given");
    ensure!(
        out.len() <= MAX_SOURCES,
        "--source: more than {MAX_SOURCES} addresses"
    );
    Ok(out)
}

/// `ws://host:port[/]` → (authority for the Host header, a resolved address).
pub fn parse_ws_url(url: &str) -> anyhow::Result<(String, SocketAddr)> {
    let rest = if let Some(rest) = url.strip_prefix("ws://") {
        rest
    } else if url.starts_with("wss://") {
        bail!("{url}: wss:// is not supported (loadgen speaks plain ws:// on loopback or a LAN)");
    } else {
        bail!("{url}: expected ws://HOST:PORT");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    ensure!(!authority.is_empty(), "{url}: no host");
    let with_port = if has_port(authority) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    Ok((authority.to_string(), addr))
}

fn has_port(authority: &str) -> bool {
    match authority.rsplit_once(':') {
        // "[::1]" has a colon but no port; "[::1]:80" and "host:80" have one.
        Some((host, port)) => {
            port.chars().all(|c| c.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("100"), Ok(100));
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count("100K"), Ok(100_000));
        assert_eq!(parse_count("1m"), Ok(1_000_000));
        assert_eq!(parse_count("2.5k"), Ok(2_500));
        assert_eq!(parse_count("1_000"), Ok(1_000));
        assert!(parse_count("k").is_err());
        assert!(parse_count("ten").is_err());
        assert!(parse_count("-5").is_err());
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("99999999999999999999k").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16k"), Ok(16 * 1024));
        assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn sources() {
        let v = parse_sources("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], "127.0.0.4".parse::<IpAddr>().unwrap());
        let v = parse_sources("127.0.0.2-5, 10.0.0.1,::1").unwrap();
        assert_eq!(v.len(), 6);
        assert!(parse_sources("127.0.0.5-127.0.0.2").is_err());
        assert!(parse_sources("nope").is_err());
        assert!(parse_sources("10.0.0.0-10.255.255.255").is_err());
        assert!(parse_sources("").is_err());
    }

    #[test]
    fn urls() {
        let (auth, addr) = parse_ws_url("ws://127.0.0.1:9000").unwrap();
        assert_eq!(auth, "127.0.0.1:9000");
        assert_eq!(addr.port(), 9000);
        let (auth, addr) = parse_ws_url("ws://127.0.0.1/").unwrap();
        assert_eq!(auth, "127.0.0.1");
        assert_eq!(addr.port(), 80);
        let (_, addr) = parse_ws_url("ws://[::1]:81").unwrap();
        assert_eq!(addr.port(), 81);
        assert!(parse_ws_url("wss://x:1").is_err());
        assert!(parse_ws_url("http://x:1").is_err());
    }
}
