"""compare.sh section 1: relay vs direct echo (loadgen), and its rows of the targets table.

Reads, from compare.sh's temp dir: the loadgen runs (reports.loadgen), relay.rate (the
open-loop --rate), relay.echo_banner, relay.rss_idle and relay.rss_after (`proxy=KiB
echo=KiB`, then `proxy=RSS:PEAK echo=RSS:PEAK`). Writes summary.relay.
"""
import os
from statistics import median

from reports.fmt import fmt_kib, fmt_us
from reports.loadgen import load_runs, pct, problems
from reports.procs import kv_pairs, rss_and_peak
from reports.targets import write_targets
from reports.tmpdir import read_text

PHASES = ("max", "half")
TARGETS = ("relay", "direct")
PERCENTILES = ("p50", "p90", "p99", "p99.9", "max")
PLOTS = ("relay_vs_direct_max.svg", "relay_vs_direct_half.svg")
# Targets: relay throughput ≥ half the direct one; relay p50 at most this much above direct's;
# relay p99 at most this many times direct's.
MIN_THROUGHPUT_RATIO = 0.5
MAX_P50_EXTRA_US = 40
MAX_P99_RATIO = 2


def render(tmp, reps, half, clk_tck, plots_dir, settings):
    """Print the section; write its target rows to $tmp/summary.relay."""
    data = {(p, t): load_runs(tmp, p, t, reps, clk_tck) for p in PHASES for t in TARGETS}
    rate = int(read_text(f"{tmp}/relay.rate"))
    s = {}
    print("## 1. Relay vs direct echo (loadgen)\n")
    print(f"Settings: `{settings}`. {read_text(tmp + '/relay.echo_banner').strip()}.  ")
    print("Relay: loadgen endpoints call each other through the proxy (2 reads + 2 writes per round "
          "trip in the proxy); direct: each request comes back from examples/echo (1 + 1). "
          "Max = closed loop; then open loop at "
          f"{half:.0%} of the relay's median max = **{rate:,} req/s** for both "
          "(latency from the intended send time).\n")
    print(f"| phase | target | req/s (median of {reps}) | p50 | p90 | p99 | p99.9 | max | "
          "server CPU per request (cores) | loadgen CPU per request (cores) | problems |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (p, t), rs in data.items():
        if not rs:
            print(f"| {p} | {t} | (no run) | | | | | | | |")
            continue
        m = {k: median(pct(j, k) for j in rs) for k in PERCENTILES}
        m["rps"] = median(j["throughput_rps"] for j in rs)
        s[(p, t)] = m
        phase = "max (closed loop)" if p == "max" else f"{rate:,}/s (open loop)"
        print(f"| {phase} | {t} | {m['rps']:,.0f} | {fmt_us(m['p50'])} | {fmt_us(m['p90'])} | "
              f"{fmt_us(m['p99'])} | {fmt_us(m['p99.9'])} | {fmt_us(m['max'])} | {cpu_per_request(rs, '_cpu_s')} | "
              f"{cpu_per_request(rs, '_lg_cpu_s')} | {problems(rs)} |")
    print()
    print("Per rep (req/s / p50 / p99): " + "; ".join(
        f"{p} {t} " + ", ".join(per_rep_cell(j) for j in rs) for (p, t), rs in data.items() if rs) + ".  ")
    print("CPU per request = utime + stime over the whole loadgen run (ramp and warm-up included) / "
          "the requests answered OK in it (warm-up included): the server from /proc/PID/stat, loadgen from "
          "bash's `time`; in parentheses, cores used over the run's wall time. In relay mode loadgen plays "
          "both endpoints of every round trip (it sends and answers each request), so it also does about "
          "twice the work per round trip of the direct mode.")
    print_rss(tmp)
    plots = [p for p in PLOTS if os.path.exists(os.path.join(plots_dir, p))]
    if plots:
        print("Plots (last rep, relay with the direct run of the same rep): "
              + ", ".join(f"`{plots_dir}/{p}`" for p in plots) + ".")
    print()
    write_targets(tmp + "/summary.relay", target_rows(s, rate))


def per_rep_cell(j):
    """One run in the per-rep line: req/s/p50/p99."""
    return f"{j['throughput_rps']:,.0f}/{pct(j, 'p50'):,.0f}/{pct(j, 'p99'):,.0f} µs"


def cpu_per_request(rs, key):
    """CPU seconds under key, summed over runs rs, per request answered OK, and in parentheses
    as cores over the runs' wall time."""
    ok, wall = max(1, sum(j["requests"]["ok"] for j in rs)), sum(j["_wall_s"] for j in rs)
    secs = sum(j[key] for j in rs)
    return f"{secs / ok * 1e6:.1f} µs ({secs / wall:.2f})"


def print_rss(tmp):
    """The proxy's and the echo server's RSS before and after the runs, and their peak."""
    before = kv_pairs(read_text(tmp + "/relay.rss_idle"))
    after = rss_and_peak(read_text(tmp + "/relay.rss_after"))
    print("RSS: " + ", ".join(f"{n} {fmt_kib(before[n])} before the runs, {fmt_kib(after[n][0])} after "
          f"(peak {fmt_kib(after[n][1])})" for n in ("proxy", "echo")) + ".")


def target_rows(s, rate):
    """The medians s of each (phase, target) → rows of the targets table."""
    rows = []
    if ("max", "relay") in s and ("max", "direct") in s:
        a, b = s[("max", "relay")], s[("max", "direct")]
        r = a["rps"] / b["rps"]
        rows.append(("relay / direct max throughput", f"{r:.2f} ({a['rps']:,.0f} / {b['rps']:,.0f} req/s)",
                     "≥ 0.50", r >= MIN_THROUGHPUT_RATIO))
    if ("half", "relay") in s and ("half", "direct") in s:
        a, b = s[("half", "relay")], s[("half", "direct")]
        d = a["p50"] - b["p50"]
        rows.append((f"relay p50 − direct p50 at {rate:,}/s", f"{d:+,.0f} µs ({a['p50']:,.0f} − {b['p50']:,.0f})",
                     "≤ 40 µs", d <= MAX_P50_EXTRA_US))
        r = a["p99"] / b["p99"]
        rows.append((f"relay p99 / direct p99 at {rate:,}/s", f"{r:.2f} ({a['p99']:,.0f} / {b['p99']:,.0f} µs)",
                     "≤ 2", r <= MAX_P99_RATIO))
    return rows
