//! Command line: flags, their parsers (`100k`, `127.0.0.2-127.0.0.20`, `ws://host:port`), and
//! the checked [`Config`] the workers run from.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};

/// Most source addresses one range may expand to (a typo like 127.0.0.2-127.1.0.0 is refused
/// rather than allocating millions of entries).
const MAX_SOURCES: usize = 65_536;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for httpws: opens many endpoints and measures CSeq round-trip latency",
    long_about = "Opens --conns endpoints on the httpws proxy (each registered as /<prefix>-<i>), \
                  sends HTTP requests between them through the relay, answers the requests \
                  addressed to them, and measures every request's round trip (CSeq matched) in \
                  an HdrHistogram. Checks that every request got exactly one response.\n\n\
                  Open loop: --rate R (latency from each request's intended send time, so a \
                  stall cannot hide). Closed loop: --closed-loop --in-flight K (the default). \
                  --direct runs the same traffic against a plain WebSocket echo server \
                  (cargo run --release --example echo) as the baseline."
)]
pub struct Args {
    /// The proxy (or, with --direct, the echo server): ws://HOST:PORT
    #[arg(long, visible_alias = "url", default_value = "ws://127.0.0.1:8080")]
    pub proxy: String,
    /// Talk to a plain WebSocket echo server instead of the proxy: each connection's requests
    /// come back to itself as the response (--pattern is ignored).
    #[arg(long)]
    pub direct: bool,
    /// Number of connections (endpoints); accepts 100k, 1m.
    #[arg(long, default_value = "100", value_parser = parse_count)]
    pub conns: u64,
    /// New connections per second while ramping up (accepts 10k).
    #[arg(long, default_value = "10k", value_parser = parse_count)]
    pub connect_rate: u64,
    /// Time one connection may take to connect and register.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// Source addresses, bound round-robin: 127.0.0.2-127.0.0.20, or a comma list of
    /// addresses and ranges (each source gives about one port range of connections).
    #[arg(long)]
    pub source: Option<String>,
    /// Endpoints register as /<prefix>-<i>.
    #[arg(long, default_value = "lg")]
    pub name_prefix: String,
    /// Worker threads, each with its own single-threaded runtime (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Open loop: total requests per second at fixed intended send times (accepts 50k).
    #[arg(long, value_parser = parse_count, conflicts_with_all = ["closed_loop", "in_flight", "idle"])]
    pub rate: Option<u64>,
    /// Open loop: send requests in bursts of N sharing one intended time (rate unchanged).
    /// Fewer, larger wake-ups for loadgen and the server; 1 spaces every request evenly.
    #[arg(long, default_value = "1", value_parser = parse_count, requires = "rate")]
    pub burst: u64,
    /// Closed loop (the default without --rate): --in-flight requests outstanding at all times.
    #[arg(long)]
    pub closed_loop: bool,
    /// Closed loop: requests outstanding in total, spread over threads and connections.
    #[arg(long, default_value = "64", value_parser = parse_count)]
    pub in_flight: u64,
    /// Who calls whom: pairs (conn 2i <-> 2i+1) or random (a uniformly random other conn).
    #[arg(long, value_enum, default_value = "pairs")]
    pub pattern: Pattern,
    /// Request body size in bytes (the response echoes it).
    #[arg(long, default_value = "64", value_parser = parse_count)]
    pub payload: u64,
    /// Measured time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Traffic before the measured time (not recorded).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// A request without a response after this long counts as a timeout (and, if none ever
    /// comes, as lost); also how long the end of the run waits for stragglers.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Hold the connections open with no traffic for --duration (memory runs), then close.
    #[arg(long, conflicts_with_all = ["closed_loop"])]
    pub idle: bool,
    /// Write a machine-readable summary here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<String>,
    /// Write the latency percentile distribution as an SVG plot here.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// Also draw the distribution recorded in this earlier --json summary on the plot
    /// (e.g. the --direct baseline next to the relay); repeatable.
    #[arg(long, value_name = "FILE.json", requires = "plot")]
    pub plot_with: Vec<String>,
    /// Name of this run in the plot's legend (default: relay or direct).
    #[arg(long)]
    pub label: Option<String>,
    /// No progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Pairs,
    Random,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Pairs => "pairs",
            Pattern::Random => "random",
        }
    }
}

/// What traffic to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Traffic {
    /// Requests per second in total, at fixed intended times, `burst` at a time per thread.
    Open { rate: u64, burst: u64 },
    /// Requests outstanding in total.
    Closed { in_flight: u64 },
    /// No requests at all.
    Idle,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub url: String,
    /// `host[:port]` as written in the URL, for the `Host` header of the opening handshake.
    pub authority: String,
    pub target: SocketAddr,
    pub direct: bool,
    pub conns: usize,
    pub connect_rate: u64,
    pub connect_timeout: Duration,
    pub sources: Vec<IpAddr>,
    pub name_prefix: String,
    pub threads: usize,
    pub traffic: Traffic,
    pub pattern: Pattern,
    pub payload: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub json: Option<String>,
    pub plot: Option<String>,
    pub plot_with: Vec<String>,
    pub label: String,
    pub quiet: bool,
}

impl Config {
    pub fn from_args(args: Args) -> anyhow::Result<Config> {
        let (authority, target) = parse_ws_url(&args.proxy)?;
        ensure!(args.conns > 0, "--conns must be at least 1");
        let conns = usize::try_from(args.conns).context("--conns is too large")?;
        ensure!(args.connect_rate > 0, "--connect-rate must be at least 1");
        let sources = match &args.source {
            Some(s) => parse_sources(s)?,
            None => Vec::new(),
        };
        if let Some(mismatch) = sources.iter().find(|s| s.is_ipv4() != target.is_ipv4()) {
            bail!("--source {mismatch} is not of the same address family as {target}");
        }
        check_name_prefix(&args.name_prefix, conns)?;
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, conns);
        let traffic = if args.idle {
            Traffic::Idle
        } else if let Some(rate) = args.rate {
            ensure!(rate > 0, "--rate must be at least 1");
            ensure!(args.burst > 0, "--burst must be at least 1");
            Traffic::Open {
                rate,
                burst: args.burst,
            }
        } else {
            ensure!(args.in_flight > 0, "--in-flight must be at least 1");
            Traffic::Closed {
                in_flight: args.in_flight,
            }
        };
        ensure!(
            args.payload <= 64 * 1024 * 1024,
            "--payload is limited to 64 MiB"
        );
        ensure!(!args.duration.is_zero(), "--duration must be positive");
        ensure!(!args.timeout.is_zero(), "--timeout must be positive");
        let label = args
            .label
            .unwrap_or_else(|| if args.direct { "direct" } else { "relay" }.to_string());
        Ok(Config {
            url: args.proxy,
            authority,
            target,
            direct: args.direct,
            conns,
            connect_rate: args.connect_rate,
            connect_timeout: args.connect_timeout,
            sources,
            name_prefix: args.name_prefix.to_ascii_lowercase(),
            threads,
            traffic,
            pattern: args.pattern,
            payload: args.payload as usize,
            duration: args.duration,
            warmup: if matches!(traffic, Traffic::Idle) {
                Duration::ZERO
            } else {
                args.warmup
            },
            timeout: args.timeout,
            json: args.json,
            plot: args.plot,
            plot_with: args.plot_with,
            label,
            quiet: args.quiet,
        })
    }

    /// The virtual address of connection `i`.
    pub fn name(&self, i: usize) -> String {
        format!("{}-{i}", self.name_prefix)
    }
}

/// `100`, `100k`, `1m`, `2.5k`, `1_000` → a count (k = 1000, m = 1,000,000, g = 10^9).
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_' && c != ',').collect();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000u64),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        _ => (t.as_str(), 1),
    };
    if num.is_empty() {
        return Err(format!("'{s}' is not a count (e.g. 1000, 100k, 1m)"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("'{s}' is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && mult > 1 => {
            let v = (f * mult as f64).round();
            if v < u64::MAX as f64 {
                Ok(v as u64)
            } else {
                Err(format!("'{s}' is too large"))
            }
        }
        _ => Err(format!("'{s}' is not a count (e.g. 1000, 100k, 1m)")),
    }
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

/// The prefix must make valid virtual addresses: one DNS label with `-<i>` appended.
fn check_name_prefix(prefix: &str, conns: usize) -> anyhow::Result<()> {
    let longest = format!("{prefix}-{}", conns - 1);
    let valid = !prefix.is_empty()
        && longest.len() <= 63
        && !prefix.starts_with('-')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !prefix.contains("..")
        && !prefix.ends_with('.')
        && !prefix.starts_with('.');
    ensure!(
        valid,
        "--name-prefix '{prefix}' does not make valid addresses (letters, digits, '-', '.'; \
         '{longest}' must be a valid host name)"
    );
    Ok(())
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

    #[test]
    fn name_prefixes() {
        assert!(check_name_prefix("lg", 100_000).is_ok());
        assert!(check_name_prefix("a.b", 10).is_ok());
        assert!(check_name_prefix("-x", 10).is_err());
        assert!(check_name_prefix("x_y", 10).is_err());
        assert!(check_name_prefix("", 10).is_err());
        assert!(check_name_prefix(&"a".repeat(60), 10_000).is_err());
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from(["loadgen", "--conns", "100k", "--rate", "50k"]).unwrap();
        let config = Config::from_args(Args {
            proxy: "ws://127.0.0.1:1".into(),
            ..args
        })
        .unwrap();
        assert_eq!(config.conns, 100_000);
        assert_eq!(
            config.traffic,
            Traffic::Open {
                rate: 50_000,
                burst: 1
            }
        );
        assert!(Args::try_parse_from(["loadgen", "--rate", "5", "--closed-loop"]).is_err());
        let args = Args::try_parse_from(["loadgen", "--proxy", "ws://127.0.0.1:1"]).unwrap();
        let config = Config::from_args(args).unwrap();
        assert_eq!(config.traffic, Traffic::Closed { in_flight: 64 });
    }
}
