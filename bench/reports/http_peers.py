"""compare.sh section 2: HTTP through a tunnel vs peers (wrk → nginx), and its target rows.

Reads, from compare.sh's temp dir, per target T and rep I: wrk.T.I (wrk's output), cpu.T.I
(two `name=ticks ...` lines, before and after that run, the backend nginx worker included);
per target: http.rss_idle.T and http.rss_after.T (`name=RSS:PEAK ...`); http.rss_backend
(`RSS:PEAK`), and if present http.norathole and http.configs. Writes summary.http.
"""
import os
from statistics import median

from reports.fmt import fmt_kib, fmt_lat
from reports.procs import cpu_seconds, rss_and_peak
from reports.targets import write_targets
from reports.tmpdir import read_text
from reports.wrk import load_reps, per_rep, wrk_errors

# In the order compare.sh starts them; a target without all its runs is left out.
PATHS = {
    "direct": "wrk → nginx",
    "nginx_proxy": "wrk → nginx (proxy_pass, upstream keepalive) → nginx",
    "rathole_tcp": "wrk → rathole server → tcp transport → rathole client → nginx",
    "rathole_ws": "wrk → rathole server → websocket transport → rathole client → nginx",
    "httpws": "wrk → client agent → proxy → svc agent → nginx",
    "httpws_ingress": "wrk → proxy (public HTTP ingress) → svc agent → nginx",
}
OURS = ("httpws", "httpws_ingress")
PEERS = ("rathole_tcp", "rathole_ws", "nginx_proxy")


def render(tmp, reps, clk_tck, settings):
    """Print the section; write its target rows to $tmp/summary.http."""
    runs, cpu = {}, {}
    for t in PATHS:
        rs = load_reps(tmp, t, reps)
        if rs is not None:
            runs[t] = rs
            cpu[t] = cpu_during(tmp, t, reps, clk_tck)
    m = {t: {k: median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for t, rs in runs.items()}
    print("## 2. HTTP through a tunnel vs peers (wrk → nginx `return 200`)\n")
    print(f"Settings: `{settings}`; every target gets the same wrk command (httpws adds "
          "`-H 'Host: svc'`); all relays run side by side, and each rep runs every target once, "
          "the order rotated by one per rep.\n")
    if os.path.exists(tmp + "/http.norathole"):
        print("**" + read_text(tmp + "/http.norathole").strip() + "**\n")
    print_targets(tmp, runs, cpu, m, reps)
    print_processes(tmp, runs, cpu)
    rows = print_ratios(m)
    cfg = f"{tmp}/http.configs"
    if os.path.exists(cfg):
        print("<details><summary>configurations</summary>\n\n```\n" + read_text(cfg).rstrip()
              + "\n```\n</details>\n")
    write_targets(tmp + "/summary.http", rows)


def cpu_during(tmp, t, reps, clk_tck):
    """Per process of target t: its CPU seconds during t's runs, summed over reps."""
    c = {}
    for i in range(1, reps + 1):
        before, after = read_text(f"{tmp}/cpu.{t}.{i}").splitlines()
        for k, secs in cpu_seconds(before, after, clk_tck).items():
            c[k] = c.get(k, 0) + secs
    return c


def procs(tmp, kind, t):
    """{process: (RSS, peak)} in KiB of target t's relay, at kind "idle" (before) or "after" the runs."""
    return rss_and_peak(read_text(f"{tmp}/http.rss_{kind}.{t}"))


def print_targets(tmp, runs, cpu, m, reps):
    """The main table (one row per target) and the per-rep figures under it."""
    base = m["direct"]["rps"] if "direct" in m else None
    print(f"| target | path | req/s (median of {reps}) | p50 | p99 | max (worst rep) | req/s vs direct | "
          "relay RSS before → after (peak) | relay CPU per request | backend nginx CPU per request | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t, rs in runs.items():
        reqs = sum(r["reqs"] for r in rs)
        rcpu = sum(v for k, v in cpu[t].items() if k != "backend") * 1e6 / reqs
        bcpu = cpu[t]["backend"] * 1e6 / reqs
        p0, p1 = procs(tmp, "idle", t), procs(tmp, "after", t)
        if p0:
            rss = (f"{sum(v[0] for v in p0.values()) / 1024:.1f} → "
                   f"{sum(v[0] for v in p1.values()) / 1024:.1f} MiB "
                   f"({sum(v[1] for v in p1.values()) / 1024:.1f})")
            rc = f"{rcpu:.1f} µs"
        else:
            rss, rc = "—", "—"
        print(f"| {t} | {PATHS[t]} | {m[t]['rps']:,.0f} | {fmt_lat(m[t]['p50'])} | {fmt_lat(m[t]['p99'])} | "
              f"{fmt_lat(max(r['max'] for r in rs))} | "
              f"{m[t]['rps'] / base:.2f} | {rss} | {rc} | {bcpu:.1f} µs | {wrk_errors(rs)} |")
    print()
    print("Per rep (reps 1, 2, 3; req/s / p50 / p99 / max): " + per_rep(runs, per_rep_cell) + ".  ")
    print("wrk 4 corrects its percentiles for coordinated omission (a response slower than the mean "
          "interval between one connection's requests adds synthetic samples), so one stall of all "
          "connections for a few hundred ms shows up as a p99 of that size in that rep; max shows it.\n")


def per_rep_cell(r):
    """One wrk run in the per-rep line: req/s/p50/p99/max."""
    return f"{r['rps']:,.0f}/{fmt_lat(r['p50'])}/{fmt_lat(r['p99'])}/{fmt_lat(r['max'])}"


def print_processes(tmp, runs, cpu):
    """Memory and CPU of each relay process, and of the backend nginx worker."""
    print("| relay process | RSS before the runs | RSS after | peak RSS (VmHWM) | CPU during its runs | "
          "CPU per request |")
    print("|---|---|---|---|---|---|")
    for t, rs in runs.items():
        p0, p1 = procs(tmp, "idle", t), procs(tmp, "after", t)
        secs, reqs = sum(r["secs"] for r in rs), sum(r["reqs"] for r in rs)
        for name in p1:
            print(f"| {t} {name} | {fmt_kib(p0[name][0])} | {fmt_kib(p1[name][0])} | "
                  f"{fmt_kib(p1[name][1])} | "
                  f"{cpu[t][name] / secs:.2f} cores | {cpu[t][name] * 1e6 / reqs:.1f} µs |")
    b = read_text(f"{tmp}/http.rss_backend").strip().split(":")
    print(f"\nBackend nginx worker: RSS {fmt_kib(b[0])} (peak {fmt_kib(b[1])}). "
          "CPU per request = utime + stime (from /proc/PID/stat, all the relay's processes, summed) "
          "during that target's wrk runs / its requests. nginx reverse proxy: its worker process "
          "(the master is idle). rathole: server + client. httpws: proxy + both agents. "
          "httpws_ingress: proxy + svc agent.\n")


def print_ratios(m):
    """httpws's paths against each peer; returns the rows against rathole for the targets table."""
    rows = []
    if "httpws" not in m:
        return rows
    print("| httpws path vs | req/s ratio (target ≥ 1) | p99 ratio (target ≤ 1) |")
    print("|---|---|---|")
    for ours in OURS:
        if ours not in m:
            continue
        for peer in PEERS:
            if peer in m:
                rr, pr = m[ours]["rps"] / m[peer]["rps"], m[ours]["p99"] / m[peer]["p99"]
                print(f"| {ours} vs {peer} | {rr:.2f} | {pr:.2f} |")
                if peer.startswith("rathole"):
                    a, b = m[ours], m[peer]
                    rows.append((f"{ours} / {peer} req/s", f"{rr:.2f} ({a['rps']:,.0f} / {b['rps']:,.0f})",
                                 "≥ 1", rr >= 1))
                    rows.append((f"{ours} / {peer} p99", f"{pr:.2f} ({fmt_lat(a['p99'])} / {fmt_lat(b['p99'])})",
                                 "≤ 1", pr <= 1))
    print()
    return rows
