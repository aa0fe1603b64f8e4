//! The command-line flags as clap parses them, before any checking (see [`super::Config`]).

use std::time::Duration;

use clap::{Parser, ValueEnum};

use super::parse::{parse_count, parse_size};

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
                  (cargo run --release --example echo) as the baseline. \
                  --registered-on-101 drives a proxy of the original protocol, which sends no \
                  `:host` after the 101."
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
    /// Take the `101 Switching Protocols` as the registration: each endpoint is known by the
    /// address it asked for in its upgrade request (/<prefix>-<i>), and no `:host` message is
    /// awaited. For proxies of the original protocol, which send none (without this flag,
    /// every connection to one fails after --connect-timeout). Relay, whole messages only.
    #[arg(long, conflicts_with_all = ["direct", "stream"])]
    pub registered_on_101: bool,
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
    /// Read the CPU time (utime + stime, /proc/PID/stat) of process PID, the server under
    /// test, as the measured window starts and as it ends; the summary gives its ticks in the
    /// window and µs per round trip answered OK in the window (JSON: `watched_cpu`).
    #[arg(long, value_name = "PID", conflicts_with = "stream")]
    pub watch_cpu: Option<u32>,
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
    /// Protocol 2 streams (`Sec-WebSocket-Protocol: httpws.2`) instead of whole-message
    /// requests: `events` (server-sent events, --event-bytes every --interval per stream),
    /// `download` / `upload` (bodies of --stream-bytes in data messages within the credit),
    /// `mixed` (head-of-line blocking: small whole-message requests at --rate, measured
    /// without and then with one unbounded download per caller on the same connections).
    /// Connection 2i calls 2i+1; with --direct every connection calls itself through the echo.
    #[arg(long, value_enum, conflicts_with_all = ["closed_loop", "idle"])]
    pub stream: Option<StreamKind>,
    /// Stream mode: streams open at once in total, spread over the callers (mixed: bulk
    /// streams).
    #[arg(long, default_value = "1", value_parser = parse_count, requires = "stream")]
    pub streams: u64,
    /// Stream mode, events: time between two events of one stream.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s", requires = "stream")]
    pub interval: Duration,
    /// Stream mode, events: bytes of each event (one SSE `data:` line and its blank line).
    #[arg(long, default_value = "64", value_parser = parse_size, requires = "stream")]
    pub event_bytes: u64,
    /// Stream mode, download and upload: body bytes of each stream (accepts 64MiB, 1GiB);
    /// a finished stream is followed by the next until the measured time ends.
    #[arg(long, default_value = "64MiB", value_parser = parse_size, requires = "stream")]
    pub stream_bytes: u64,
    /// Stream mode, mixed: the bulk download's rate in bytes per second (accepts 100MiB);
    /// 0: as fast as the credit allows (which, on a machine with few cores, also measures
    /// how the small requests fare when the relay has no CPU to spare).
    #[arg(long, default_value = "0", value_parser = parse_size, requires = "stream")]
    pub bulk_rate: u64,
    /// Stream mode: body bytes in each data message (accepts 16KiB).
    #[arg(long, default_value = "16KiB", value_parser = parse_size, requires = "stream")]
    pub chunk: u64,
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

/// What a stream-mode run sends (`--stream`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Open-ended responses of events at an interval (Server-Sent Events).
    Events,
    /// Responses of `--stream-bytes` each, as fast as the credit allows.
    Download,
    /// Requests of `--stream-bytes` each, answered whole once received.
    Upload,
    /// Small whole-message requests alone, then beside one unbounded download per caller.
    Mixed,
}

impl StreamKind {
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Events => "events",
            StreamKind::Download => "download",
            StreamKind::Upload => "upload",
            StreamKind::Mixed => "mixed",
        }
    }
}
