//! The latency percentile distribution as a hand-written SVG, in the style of HdrHistogram's
//! plots: x is the percentile on a log scale of 1/(1 − q) (0%, 90%, 99%, 99.9%, …), y the
//! latency. Several runs can share one plot (e.g. the relay and its direct baseline).

use std::fmt::Write;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 64.0;
/// Most decades on the x axis (6 = 99.9999%).
const MAX_DECADES: f64 = 6.0;
/// Latencies are drawn in µs below 10 ms, in ms from there.
const MS_FROM_NS: f64 = 1e7;
/// About how many grid lines the y axis gets.
const Y_TICKS: f64 = 6.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// One line on the plot.
pub struct Series {
    pub label: String,
    /// (x = log10(1 / (1 − q)), latency in ns), x rising.
    pub points: Vec<(f64, u64)>,
}

/// A step from {1, 2, 5} × 10^k giving about `target` ticks up to `max`.
fn nice_step(max: f64, target: f64) -> f64 {
    let raw = (max / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn percentile_label(x: u32) -> String {
    match x {
        0 => "0%".into(),
        1 => "90%".into(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace("99.%", "99%"),
    }
}

/// Render the plot. `title` goes on top; `subtitle` (the run's settings) under it.
pub fn render(title: &str, subtitle: &str, series: &[Series]) -> String {
    let scale = Scale::of(series);
    let mut svg = String::new();
    put_heading(&mut svg, title, subtitle);
    put_axes(&mut svg, &scale);
    put_series(&mut svg, &scale, series);
    svg.push_str("</svg>\n");
    svg
}

/// The axes' ranges, and where a data point lands in the SVG.
struct Scale {
    /// The x axis ends at this decade (1 = 90%, 2 = 99%, …).
    x_max: f64,
    /// The latency unit on the y axis, and nanoseconds per unit.
    unit: &'static str,
    div: f64,
    /// The top of the y axis and the distance between its grid lines, in `unit`.
    y_top: f64,
    step: f64,
    plot_w: f64,
    plot_h: f64,
}

impl Scale {
    fn of(series: &[Series]) -> Scale {
        let x_max = series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.0))
            .fold(1.0f64, f64::max)
            .ceil()
            .clamp(1.0, MAX_DECADES);
        let max_ns = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let (unit, div) = if max_ns < MS_FROM_NS {
            ("µs", 1e3)
        } else {
            ("ms", 1e6)
        };
        let y_top_raw = max_ns / div;
        let step = nice_step(y_top_raw, Y_TICKS);
        let y_top = (y_top_raw / step).ceil().max(1.0) * step;
        Scale {
            x_max,
            unit,
            div,
            y_top,
            step,
            plot_w: WIDTH - LEFT - RIGHT,
            plot_h: HEIGHT - TOP - BOTTOM,
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + x / self.x_max * self.plot_w
    }

    fn py(&self, v: f64) -> f64 {
        TOP + self.plot_h - v / self.y_top * self.plot_h
    }
}

/// The `<svg>` element, its background, the title and the subtitle.
fn put_heading(svg: &mut String, title: &str, subtitle: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#555">{}</text>"##,
        WIDTH / 2.0,
        escape(subtitle)
    );
}

/// The grid, the frame, the tick labels and the axis titles.
fn put_axes(svg: &mut String, scale: &Scale) {
    let Scale {
        x_max,
        unit,
        y_top,
        step,
        plot_w,
        plot_h,
        ..
    } = *scale;
    let mut v = 0.0;
    while v <= y_top + step * 1e-9 {
        let y = scale.py(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/>"##,
            LEFT + plot_w
        );
        let label = if step < 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 6.0,
            y + 4.0
        );
        v += step;
    }
    for i in 0..=(x_max as u32) {
        let x = scale.px(f64::from(i));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            percentile_label(i)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">latency ({unit})</text>"#,
        TOP + plot_h / 2.0
    );
}

/// The lines, and the legend in the top-left corner.
fn put_series(svg: &mut String, scale: &Scale, series: &[Series]) {
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if !s.points.is_empty() {
            let mut d = String::new();
            for (j, &(x, ns)) in s.points.iter().enumerate() {
                let cmd = if j == 0 { 'M' } else { 'L' };
                let _ = write!(
                    d,
                    "{cmd}{:.1},{:.1} ",
                    scale.px(x),
                    scale.py(ns as f64 / scale.div)
                );
            }
            let _ = writeln!(
                svg,
                r#"<path d="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                d.trim_end()
            );
        }
        let ly = TOP + 18.0 + i as f64 * 18.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/>"#,
            LEFT + 12.0,
            LEFT + 36.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 42.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(1), "90%");
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(3), "99.9%");
        assert_eq!(percentile_label(5), "99.999%");
    }

    #[test]
    fn steps() {
        assert_eq!(nice_step(1000.0, 5.0), 200.0);
        assert_eq!(nice_step(7.0, 6.0), 2.0);
        assert_eq!(nice_step(0.5, 5.0), 0.1);
    }

    #[test]
    fn renders_well_formed_svg() {
        let series = vec![
            Series {
                label: "relay <a&b>".into(),
                points: vec![(0.0, 50_000), (2.0, 90_000), (4.0, 2_000_000)],
            },
            Series {
                label: "direct".into(),
                points: vec![(0.0, 30_000), (3.0, 60_000)],
            },
        ];
        let svg = render("t", "s", &series);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("relay &lt;a&amp;b&gt;"));
        assert!(svg.contains("99.99%"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("latency (µs)"));
    }
}
