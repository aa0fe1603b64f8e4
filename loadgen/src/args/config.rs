//! The checked [`Config`] the workers run from, made from the flags, and the traffic it asks for.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::flags::{Args, Pattern, StreamKind};
use super::parse::{parse_sources, parse_ws_url};

/// Largest --payload (the message limit of the workers' decoder is this plus a head).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;
/// Smallest --event-bytes: `data: `, a 20-digit timestamp, a space, a 10-digit sequence
/// number and the blank line, with a byte to spare.
pub const MIN_EVENT_BYTES: usize = 40;
/// Largest --event-bytes and --chunk: one data message stays well inside the proxy's
/// default message limit.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Small whole-message requests per second in --stream mixed without --rate.
const DEFAULT_SMALL_RATE: u64 = 1_000;
/// Longest DNS label, which every virtual address `<prefix>-<i>` must fit in.
const MAX_LABEL_BYTES: usize = 63;

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

/// Stream mode (`--stream`): what each stream carries and how many are open at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamPlan {
    pub kind: StreamKind,
    /// Streams open at once in total (mixed: bulk streams), spread over the callers.
    pub streams: usize,
    /// events: between two events of one stream.
    pub interval: Duration,
    /// events: bytes of each event.
    pub event_bytes: usize,
    /// download, upload: body bytes of each stream.
    pub stream_bytes: u64,
    /// Body bytes per data message.
    pub chunk: usize,
    /// mixed: small whole-message requests per second in total (`--payload` bytes each).
    pub small_rate: u64,
    /// mixed: the bulk download's bytes per second (`None`: as fast as the credit allows).
    pub bulk_rate: Option<u64>,
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
    /// `--registered-on-101`: the `101` is the registration; no `:host` is awaited.
    pub registered_on_101: bool,
    pub threads: usize,
    pub traffic: Traffic,
    pub pattern: Pattern,
    pub payload: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    /// `--watch-cpu`: the process whose CPU time the measured window is read for.
    pub watch_cpu: Option<u32>,
    pub json: Option<String>,
    pub plot: Option<String>,
    pub plot_with: Vec<String>,
    pub label: String,
    pub quiet: bool,
    /// Stream mode, when `--stream` is given.
    pub stream: Option<StreamPlan>,
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
            args.payload <= MAX_PAYLOAD_BYTES as u64,
            "--payload is limited to 64 MiB"
        );
        ensure!(!args.duration.is_zero(), "--duration must be positive");
        ensure!(!args.timeout.is_zero(), "--timeout must be positive");
        let stream = match args.stream {
            None => None,
            Some(kind) => Some(stream_plan(&args, kind)?),
        };
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
            registered_on_101: args.registered_on_101,
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
            watch_cpu: args.watch_cpu,
            json: args.json,
            plot: args.plot,
            plot_with: args.plot_with,
            label,
            quiet: args.quiet,
            stream,
        })
    }

    /// The virtual address of connection `i`.
    pub fn name(&self, i: usize) -> String {
        format!("{}-{i}", self.name_prefix)
    }
}

/// The checked stream-mode settings.
fn stream_plan(args: &Args, kind: StreamKind) -> anyhow::Result<StreamPlan> {
    ensure!(args.streams > 0, "--streams must be at least 1");
    let streams = usize::try_from(args.streams).context("--streams is too large")?;
    ensure!(!args.interval.is_zero(), "--interval must be positive");
    let event_bytes = usize::try_from(args.event_bytes).unwrap_or(usize::MAX);
    ensure!(
        (MIN_EVENT_BYTES..=MAX_CHUNK_BYTES).contains(&event_bytes),
        "--event-bytes must be {MIN_EVENT_BYTES} to {MAX_CHUNK_BYTES}"
    );
    let chunk = usize::try_from(args.chunk).unwrap_or(usize::MAX);
    ensure!(
        (1..=MAX_CHUNK_BYTES).contains(&chunk),
        "--chunk must be 1 to {MAX_CHUNK_BYTES} bytes"
    );
    ensure!(args.stream_bytes > 0, "--stream-bytes must be at least 1");
    ensure!(
        kind == StreamKind::Mixed || args.rate.is_none(),
        "--rate is for whole-message requests: with --stream only in mixed mode"
    );
    let small_rate = args.rate.unwrap_or(DEFAULT_SMALL_RATE);
    ensure!(small_rate > 0, "--rate must be at least 1");
    Ok(StreamPlan {
        kind,
        streams,
        interval: args.interval,
        event_bytes,
        stream_bytes: args.stream_bytes,
        chunk,
        small_rate,
        bulk_rate: (args.bulk_rate > 0).then_some(args.bulk_rate),
    })
}

/// The prefix must make valid virtual addresses: one DNS label with `-<i>` appended.
fn check_name_prefix(prefix: &str, conns: usize) -> anyhow::Result<()> {
    let longest = format!("{prefix}-{}", conns - 1);
    let valid = !prefix.is_empty()
        && longest.len() <= MAX_LABEL_BYTES
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
    use clap::Parser;

    /// The config of a run against a proxy with the flags `extra`.
    fn parse(extra: &[&str]) -> anyhow::Result<Config> {
        let mut argv = vec!["loadgen", "--proxy", "ws://127.0.0.1:1"];
        argv.extend_from_slice(extra);
        Config::from_args(Args::try_parse_from(argv)?)
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
        assert_eq!(config.stream, None);
    }

    #[test]
    fn stream_flags() {
        let config = parse(&["--stream", "events", "--streams", "1k", "--interval", "1s"]).unwrap();
        let plan = config.stream.unwrap();
        assert_eq!(plan.kind, StreamKind::Events);
        assert_eq!(plan.streams, 1000);
        assert_eq!(plan.interval, Duration::from_secs(1));
        let plan = parse(&["--stream", "download", "--stream-bytes", "1GiB"])
            .unwrap()
            .stream
            .unwrap();
        assert_eq!(plan.stream_bytes, 1 << 30);
        let plan = parse(&["--stream", "mixed", "--rate", "2k"])
            .unwrap()
            .stream
            .unwrap();
        assert_eq!(plan.small_rate, 2000);
        assert_eq!(plan.bulk_rate, None);
        let plan = parse(&["--stream", "mixed", "--bulk-rate", "100MiB"])
            .unwrap()
            .stream
            .unwrap();
        assert_eq!(plan.bulk_rate, Some(100 << 20));
        assert!(parse(&["--stream", "events", "--rate", "5"]).is_err());
        assert!(parse(&["--stream", "events", "--event-bytes", "10"]).is_err());
        assert!(parse(&["--stream", "download", "--chunk", "0"]).is_err());
        assert!(parse(&["--streams", "5"]).is_err());
        assert!(parse(&["--stream", "events", "--registered-on-101"]).is_err());
    }

    #[test]
    fn registered_on_101_is_for_relay_runs() {
        assert!(!parse(&[]).unwrap().registered_on_101);
        assert!(parse(&["--registered-on-101"]).unwrap().registered_on_101);
        // A direct run never waits for a registration, so the flag would mean nothing there.
        assert!(parse(&["--direct", "--registered-on-101"]).is_err());
    }
}
