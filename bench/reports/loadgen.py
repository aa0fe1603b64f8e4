"""loadgen's runs as compare.sh records them: the JSON summary and the files next to it.

compare.sh's run_lg leaves, per run, $tmp/lg.PHASE.TARGET.REP.{json,rc,cpu,time}: loadgen's
`--json` summary, its exit status, the server's CPU ticks during the run, and bash's `time`
of loadgen itself (wall, user and system seconds).
"""
import os
from statistics import median

from reports.tmpdir import read_json, read_text

# The request counters whose non-zero values are trouble.
PROBLEM_COUNTERS = ("timeouts", "late", "lost", "duplicates", "unknown", "bad_messages", "protocol_errors")
# What the progress line of one run flags: the same but `late`, which only the report counts.
PROGRESS_COUNTERS = ("timeouts", "lost", "duplicates", "unknown", "bad_messages", "protocol_errors")


def pct(j, k):
    """Percentile k ("p50", "max" …) of a run in µs; NaN where loadgen did not report it."""
    return j["latency"]["percentiles"].get(k + "_us", float("nan"))


def progress_line(j, rc):
    """The one line run_lg logs after a run: throughput, p50, p99 and anything wrong."""
    r, p = j["requests"], j["latency"]["percentiles"]
    bad = {k: r[k] for k in PROGRESS_COUNTERS if r.get(k)}
    if j.get("errors"):
        bad["errors"] = j["errors"]
    if j["connections"].get("dropped"):
        bad["conns_dropped"] = j["connections"]["dropped"]
    return (f"[compare]   {j['throughput_rps']:,.0f} req/s, p50 {p['p50_us']:.0f} µs, p99 {p['p99_us']:.0f} µs"
            f"{'  !! ' + str(bad) if bad else ''}{'  !! exit ' + rc if rc != '0' else ''}")


def load_runs(tmp, phase, target, reps, clk_tck):
    """The runs of one phase and target that left a JSON summary, each with _rc, _cpu_s (the
    server's CPU seconds), _wall_s and _lg_cpu_s (loadgen's wall time and CPU seconds)."""
    out = []
    for i in range(1, reps + 1):
        f = f"{tmp}/lg.{phase}.{target}.{i}"
        if not os.path.exists(f + ".json"):
            continue
        j = read_json(f + ".json")
        j["_rc"] = int(read_text(f + ".rc"))
        j["_cpu_s"] = int(read_text(f + ".cpu")) / clk_tck
        wall, user, sys_ = (float(x) for x in read_text(f + ".time").split()[-3:])
        j["_wall_s"], j["_lg_cpu_s"] = wall, user + sys_
        out.append(j)
    return out


def problems(rs):
    """Everything that went wrong in runs rs, summed per kind: `timeouts 3, conns dropped 1`, or "0"."""
    agg = {}
    for j in rs:
        r = j["requests"]
        for k in PROBLEM_COUNTERS:
            agg[k] = agg.get(k, 0) + (r.get(k) or 0)
        for k, v in (j.get("errors") or {}).items():
            agg["error " + k] = agg.get("error " + k, 0) + v
        for k, v in (j.get("indications") or {}).items():
            agg[":error " + k] = agg.get(":error " + k, 0) + v
        agg["conns dropped"] = agg.get("conns dropped", 0) + (j["connections"].get("dropped") or 0)
        agg["conns failed"] = agg.get("conns failed", 0) + (j["connections"].get("failed") or 0)
        if j["_rc"] != 0:
            agg["non-zero exits"] = agg.get("non-zero exits", 0) + 1
        if not j.get("exactly_once", True):
            agg["exactly-once check FAILED"] = agg.get("exactly-once check FAILED", 0) + 1
    return ", ".join(f"{k} {v}" for k, v in agg.items() if v) or "0"


def open_loop_rate(paths, half):
    """The median throughput of the closed-loop runs in paths, and the open-loop --rate at HALF
    of it (at least 1 req/s)."""
    best = median(read_json(p)["throughput_rps"] for p in paths)
    return best, max(1, round(best * half))
