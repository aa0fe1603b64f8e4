"""compare.sh section 1: relay vs direct echo (loadgen) for two proxy configurations (one
shard, and the default a user runs), and its rows of the targets table.

Reads, from compare.sh's temp dir: the loadgen runs (reports.loadgen) of the phases max, half
(targets one, default, direct) and cpu (one, default; their JSON has `watched_cpu`, the
proxy's CPU ticks over exactly the measured window), relay.rate (the half phase's --rate),
relay.cpu_rate (`RATE CONNS` of the cpu phase), relay.default_shards (the default proxy's
shard threads), relay.echo_banner, relay.rss_idle and relay.rss_after (`proxy_one=KiB
proxy_default=KiB echo=KiB`, then the same as `RSS:PEAK`). Writes summary.relay.
"""
import os
from statistics import median

from reports.fmt import fmt_kib, fmt_us
from reports.loadgen import load_runs, pct, problems
from reports.procs import kv_pairs, rss_and_peak
from reports.targets import write_targets
from reports.tmpdir import read_text

PHASES = ("max", "half", "cpu")
TARGETS = ("one", "default", "direct")
RELAYS = ("one", "default")
PERCENTILES = ("p50", "p90", "p99", "p99.9", "max")
PLOTS = ("relay_vs_direct_max.svg", "relay_vs_direct_half.svg")
# Targets: relay throughput ≥ half the direct one; relay p50 at most this much above direct's;
# relay p99 at most this many times direct's.
MIN_THROUGHPUT_RATIO = 0.5
MAX_P50_EXTRA_US = 40
MAX_P99_RATIO = 2
# Thread-per-core pays (docs/design.md): with the default shard count, proxy CPU per round trip
# at most this many times one shard's at CPU_RATE, and saturation throughput at least one
# shard's; and the default configuration's CPU per round trip at most this many µs.
MAX_DEFAULT_CPU_RATIO = 1.15
MIN_DEFAULT_THROUGHPUT_RATIO = 1.0
MAX_CPU_US_PER_ROUND_TRIP = 7


def render(tmp, reps, half, clk_tck, plots_dir, settings):
    """Print the section; write its target rows to $tmp/summary.relay."""
    data = {(p, t): load_runs(tmp, p, t, reps, clk_tck) for p in PHASES for t in TARGETS}
    rate = int(read_text(f"{tmp}/relay.rate"))
    cpu_rate, cpu_conns = (int(x) for x in read_text(f"{tmp}/relay.cpu_rate").split())
    shards = read_text(f"{tmp}/relay.default_shards").strip()
    names = {"one": "relay, 1 shard", "default": f"relay, default ({shards} shards)", "direct": "direct"}
    s = {}
    print("## 1. Relay vs direct echo (loadgen)\n")
    print(f"Settings: `{settings}`. {read_text(tmp + '/relay.echo_banner').strip()}.  ")
    print("Relay: loadgen endpoints call each other through the proxy (2 reads + 2 writes per round "
          "trip in the proxy), once with `--shards 1` and once with the proxy's default (no `--shards`: "
          f"one shard per core, {shards} here); direct: each request comes back from examples/echo "
          "(1 + 1). Each rep runs the three in an order rotated per rep. Max = closed loop; then open "
          f"loop at {half:.0%} of the lower relay median max = **{rate:,} req/s** for all three "
          f"(latency from the intended send time); then open loop at **{cpu_rate:,} req/s** over "
          f"{cpu_conns:,} connections against each relay, for the proxy's CPU per round trip.\n")
    print(f"| phase | target | req/s (median of {reps}) | p50 | p90 | p99 | p99.9 | max | "
          "server CPU per request (cores) | loadgen CPU per request (cores) | problems |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (p, t), rs in data.items():
        if p == "cpu" and t == "direct":
            continue
        phase = {"max": "max (closed loop)", "half": f"{rate:,}/s (open loop)",
                 "cpu": f"{cpu_rate:,}/s (open loop, {cpu_conns:,} conns)"}[p]
        if not rs:
            print(f"| {phase} | {names[t]} | (no run) | | | | | | | | |")
            continue
        m = {k: median(pct(j, k) for j in rs) for k in PERCENTILES}
        m["rps"] = median(j["throughput_rps"] for j in rs)
        if p == "cpu":
            m["cpu_us"] = median_cpu_per_round_trip(rs)
        s[(p, t)] = m
        print(f"| {phase} | {names[t]} | {m['rps']:,.0f} | {fmt_us(m['p50'])} | {fmt_us(m['p90'])} | "
              f"{fmt_us(m['p99'])} | {fmt_us(m['p99.9'])} | {fmt_us(m['max'])} | {cpu_per_request(rs, '_cpu_s')} | "
              f"{cpu_per_request(rs, '_lg_cpu_s')} | {problems(rs)} |")
    print()
    print("Per rep (req/s / p50 / p99): " + "; ".join(
        f"{p} {t} " + ", ".join(per_rep_cell(j) for j in rs) for (p, t), rs in data.items() if rs) + ".  ")
    print("CPU per request = utime + stime over the whole loadgen run (ramp and warm-up included) / "
          "the requests answered OK in it (warm-up included): the server from /proc/PID/stat, loadgen from "
          "bash's `time`; in parentheses, cores used over the run's wall time. In relay mode loadgen plays "
          "both endpoints of every round trip (it sends and answers each request), so it also does about "
          "twice the work per round trip of the direct mode.\n")
    print_default_vs_one(s, data, names, rate, cpu_rate)
    print_rss(tmp)
    plots = [p for p in PLOTS if os.path.exists(os.path.join(plots_dir, p))]
    if plots:
        print("Plots (the last rep's three runs): " + ", ".join(f"`{plots_dir}/{p}`" for p in plots) + ".")
    print()
    write_targets(tmp + "/summary.relay", target_rows(s, rate, cpu_rate, names))


def cpu_per_round_trip(j):
    """The watched proxy's CPU µs per round trip over exactly the measured window of run j, as
    loadgen --watch-cpu worked it out (ticks in the window / CLK_TCK / round trips answered OK
    in it), or None where loadgen could not read the proxy or nothing was answered."""
    return (j.get("watched_cpu") or {}).get("us_per_round_trip")


def median_cpu_per_round_trip(rs):
    v = [x for x in (cpu_per_round_trip(j) for j in rs) if x is not None]
    return median(v) if v else None


def print_default_vs_one(s, data, names, rate, cpu_rate):
    """The two configurations side by side, with the ratio default ÷ 1 shard."""
    print(f"**Default shards vs 1** (medians; ratio = {names['default']} ÷ {names['one']}):\n")
    print(f"| measure | {names['one']} | {names['default']} | default ÷ 1 |")
    print("|---|---|---|---|")

    # The medians, and each configuration's relay ÷ direct max throughput as a phase of its own.
    m = dict(s)
    for t in RELAYS:
        if ("max", t) in s and ("max", "direct") in s:
            m[("ratio", t)] = {"rps": s[("max", t)]["rps"] / s[("max", "direct")]["rps"]}

    def row(label, key, phase, fmt):
        a, b = m.get((phase, "one"), {}).get(key), m.get((phase, "default"), {}).get(key)
        if a is None or b is None:
            print(f"| {label} | {fmt(a) if a is not None else '-'} | {fmt(b) if b is not None else '-'} | - |")
        else:
            print(f"| {label} | {fmt(a)} | {fmt(b)} | {b / a:.2f} |")

    row("max throughput, closed loop (req/s)", "rps", "max", lambda v: f"{v:,.0f}")
    row(f"proxy CPU per round trip at {cpu_rate:,}/s, measured window", "cpu_us", "cpu", lambda v: f"{v:.1f} µs")
    row(f"throughput at {cpu_rate:,}/s (req/s)", "rps", "cpu", lambda v: f"{v:,.0f}")
    row(f"p50 at {cpu_rate:,}/s", "p50", "cpu", fmt_us)
    row(f"p99 at {cpu_rate:,}/s", "p99", "cpu", fmt_us)
    row(f"p50 at {rate:,}/s", "p50", "half", fmt_us)
    row(f"p99 at {rate:,}/s", "p99", "half", fmt_us)
    row("relay ÷ direct max throughput", "rps", "ratio", lambda v: f"{v:.2f}")
    print()
    cells = []
    for t in RELAYS:
        per = [cpu_per_round_trip(j) for j in data[("cpu", t)]]
        late = [max(j["watched_cpu"]["start_late_us"], j["watched_cpu"]["end_late_us"])
                for j in data[("cpu", t)] if j.get("watched_cpu")]
        cells.append(f"{names[t]} " + ", ".join("-" if v is None else f"{v:.1f}" for v in per) + " µs"
                     + (f" (readings at most {max(late):,.0f} µs after their boundary)" if late else ""))
    print("Proxy CPU per round trip per rep: " + "; ".join(cells) + ". The CPU is the proxy's utime + "
          "stime from /proc/PID/stat, read by loadgen (`--watch-cpu`) as its measured window starts and as "
          "it ends, in clock ticks (`getconf CLK_TCK`), divided by the round trips answered OK in that "
          "window.\n")


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
    """Each proxy's and the echo server's RSS before and after the runs, and their peak."""
    before = kv_pairs(read_text(tmp + "/relay.rss_idle"))
    after = rss_and_peak(read_text(tmp + "/relay.rss_after"))
    print("RSS: " + ", ".join(f"{n} {fmt_kib(before[n])} before the runs, {fmt_kib(after[n][0])} after "
          f"(peak {fmt_kib(after[n][1])})" for n in ("proxy_one", "proxy_default", "echo")) + ".")


def target_rows(s, rate, cpu_rate, names):
    """The medians s of each (phase, target) → rows of the targets table: the relay ÷ direct
    targets for each configuration, then default ÷ 1 shard and the default's CPU per round trip."""
    rows = []
    for t in RELAYS:
        if ("max", t) in s and ("max", "direct") in s:
            a, b = s[("max", t)], s[("max", "direct")]
            r = a["rps"] / b["rps"]
            rows.append((f"{names[t]} / direct max throughput",
                         f"{r:.2f} ({a['rps']:,.0f} / {b['rps']:,.0f} req/s)", "≥ 0.50", r >= MIN_THROUGHPUT_RATIO))
        if ("half", t) in s and ("half", "direct") in s:
            a, b = s[("half", t)], s[("half", "direct")]
            d = a["p50"] - b["p50"]
            rows.append((f"{names[t]} p50 − direct p50 at {rate:,}/s",
                         f"{d:+,.0f} µs ({a['p50']:,.0f} − {b['p50']:,.0f})", "≤ 40 µs", d <= MAX_P50_EXTRA_US))
            r = a["p99"] / b["p99"]
            rows.append((f"{names[t]} p99 / direct p99 at {rate:,}/s",
                         f"{r:.2f} ({a['p99']:,.0f} / {b['p99']:,.0f} µs)", "≤ 2", r <= MAX_P99_RATIO))
    if ("max", "one") in s and ("max", "default") in s:
        a, b = s[("max", "one")]["rps"], s[("max", "default")]["rps"]
        rows.append(("default shards ÷ 1 shard, max throughput", f"{b / a:.2f} ({b:,.0f} / {a:,.0f} req/s)",
                     f"≥ {MIN_DEFAULT_THROUGHPUT_RATIO:.2f}", b / a >= MIN_DEFAULT_THROUGHPUT_RATIO))
    a = s.get(("cpu", "one"), {}).get("cpu_us")
    b = s.get(("cpu", "default"), {}).get("cpu_us")
    if a and b:
        rows.append((f"default shards ÷ 1 shard, proxy CPU per round trip at {cpu_rate:,}/s",
                     f"{b / a:.2f} ({b:.1f} / {a:.1f} µs)", f"≤ {MAX_DEFAULT_CPU_RATIO:.2f}",
                     b / a <= MAX_DEFAULT_CPU_RATIO))
    if b:
        rows.append((f"proxy CPU per round trip at {cpu_rate:,}/s, default shards", f"{b:.1f} µs",
                     f"≤ {MAX_CPU_US_PER_ROUND_TRIP} µs", b <= MAX_CPU_US_PER_ROUND_TRIP))
    return rows
