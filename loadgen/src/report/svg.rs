//! The `--plot` file: this run's percentile distribution and those of the earlier `--json`
//! summaries named by `--plot-with`, drawn by [`plot::render`].

use anyhow::Context;

use super::{NS_PER_US, traffic_text, us};
use crate::args::Config;
use crate::plot;
use crate::stats::{self, ThreadStats};

pub fn write_plot(config: &Config, s: &ThreadStats, path: &str) -> anyhow::Result<()> {
    let mut series = vec![plot::Series {
        label: series_label(
            &config.label,
            s.hist.value_at_quantile(0.5),
            s.hist.value_at_quantile(0.99),
        ),
        points: stats::distribution(&s.hist),
    }];
    for other in &config.plot_with {
        series.push(load_series(other)?);
    }
    let title = "loadgen: CSeq round-trip latency by percentile";
    let subtitle = format!(
        "{} conns, {}, payload {} B, {:.0} s measured",
        config.conns,
        traffic_text(config),
        config.payload,
        config.duration.as_secs_f64()
    );
    std::fs::write(path, plot::render(title, &subtitle, &series))
        .with_context(|| format!("writing {path}"))
}

fn series_label(label: &str, p50: u64, p99: u64) -> String {
    format!("{label} (p50 {:.0} µs, p99 {:.0} µs)", us(p50), us(p99))
}

/// A series from an earlier `--json` summary.
fn load_series(path: &str) -> anyhow::Result<plot::Series> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let label = v["label"].as_str().unwrap_or(path).to_string();
    let points: Vec<(f64, u64)> = v["latency"]["distribution"]
        .as_array()
        .with_context(|| format!("{path}: no latency.distribution"))?
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, (p[1].as_f64()? * NS_PER_US) as u64)))
        .collect();
    let pct = |k: &str| (v["latency"]["percentiles"][k].as_f64().unwrap_or(0.0) * NS_PER_US) as u64;
    Ok(plot::Series {
        label: series_label(&label, pct("p50_us"), pct("p99_us")),
        points,
    })
}
