"""bench/tunnel_http.sh's report: wrk direct vs through the tunnel, and what the tunnel's
processes used.

Reads wrk.direct.REP and wrk.tunnel.REP from the script's temp dir; everything else (the
command, versions, the processes' RSS and CPU ticks) comes as arguments.
"""
from statistics import median

from reports.fmt import fmt_kib, fmt_lat
from reports.procs import cpu_seconds, kv_pairs
from reports.wrk import load_reps, per_rep, wrk_errors

PROCESSES = {"proxy": "proxy", "svc": "svc agent (--serve)", "client": "client agent (--listen)"}


def render(a):
    """Print the report; a holds the argparse options of `report.py tunnel-http`."""
    runs = {}
    for name in ("direct", "tunnel"):
        rs = load_reps(a.tmp, name, a.reps)
        if rs is not None:
            runs[name] = rs
    med = {n: {k: median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for n, rs in runs.items()}
    base = med["direct"]["rps"]
    print(f"Command: `{a.cmd}`  ")
    print(f"Machine: {a.machine}; {a.nginx_version}, {a.wrk_version}. Date: {a.date}.  ")
    print(f"direct: `{a.direct_args}`  ")
    if "tunnel" in runs:
        print(f"tunnel: `{a.tunnel_args}` (client agent → proxy → svc agent → nginx)")
    print()
    print(f"| target | req/s (median of {a.reps}) | p50 | p99 | req/s vs direct | errors |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        m = med[name]
        print(f"| {name} | {m['rps']:,.0f} | {fmt_lat(m['p50'])} | {fmt_lat(m['p99'])} | "
              f"{m['rps'] / base:.2f} | {wrk_errors(rs)} |")
    print()
    print("Per rep (req/s, p50, p99): " + per_rep(runs, per_rep_cell) + ".")
    if a.rss_after:
        print_processes(a, runs["tunnel"])


def per_rep_cell(r):
    """One wrk run in the per-rep line: req/s/p50/p99."""
    return f"{r['rps']:,.0f}/{fmt_lat(r['p50'])}/{fmt_lat(r['p99'])}"


def print_processes(a, tunnel_runs):
    """RSS and CPU of the proxy and both agents (idle during the direct runs)."""
    idle, after = kv_pairs(a.rss_idle), kv_pairs(a.rss_after)
    cpu = cpu_seconds(a.cpu_before, a.cpu_after, a.clk_tck)
    tunnel_secs = sum(r["secs"] for r in tunnel_runs)
    tunnel_reqs = sum(r["reqs"] for r in tunnel_runs)
    print()
    print("| process | RSS idle (registered, before wrk) | RSS after the runs | CPU during tunnel runs | "
          "CPU per request |")
    print("|---|---|---|---|---|")
    for p, label in PROCESSES.items():
        print(f"| {label} | {fmt_kib(idle[p])} | {fmt_kib(after[p])} | "
              f"{cpu[p] / tunnel_secs:.2f} cores | {cpu[p] * 1e6 / tunnel_reqs:.1f} µs |")
    print()
    print("CPU = utime + stime from /proc/PID/stat over the whole run divided by the tunnel runs' "
          "wall time (the agents and proxy are idle during the direct runs).")
