//! What a run reports: on stderr after the ramp, on stdout at the end (`text`), in the
//! `--json` summary (`json`) and on the `--plot` (`svg`); and the pieces they share.

mod json;
mod svg;
mod text;

use crate::args::{Config, Traffic};
use crate::worker::Limit;

pub use self::json::summarize;
pub use self::svg::write_plot;
pub use self::text::{print_ramp, print_summary};

/// Nanoseconds in a microsecond, the unit latencies are reported in.
const NS_PER_US: f64 = 1e3;

/// What the ramp achieved.
pub struct RampReport {
    pub established: u64,
    pub failed: u64,
    pub seconds: f64,
    pub limit: Option<(Limit, String)>,
}

fn mode(config: &Config) -> &'static str {
    if config.direct { "direct" } else { "relay" }
}

fn traffic_text(config: &Config) -> String {
    match config.traffic {
        Traffic::Open { rate, burst: 1 } => format!("open loop, {rate} req/s"),
        Traffic::Open { rate, burst } => format!("open loop, {rate} req/s in bursts of {burst}"),
        Traffic::Closed { in_flight } => format!("closed loop, {in_flight} in flight"),
        Traffic::Idle => "idle".into(),
    }
}

/// Nanoseconds as microseconds.
fn us(ns: u64) -> f64 {
    ns as f64 / NS_PER_US
}
