"""bench/relay_syscalls.sh's report: the proxy's syscalls, context switches and CPU per round
trip, per build, shard count and load, from the files the script leaves in its temp dir:
run.BIN.SHARDS.MODE.REP.{json,perf,rc} (loadgen's --json summary, `perf stat -x,` output, and
loadgen's exit status)."""
import os
from statistics import median

from reports.loadgen import PROGRESS_COUNTERS
from reports.relay import cpu_per_round_trip
from reports.tmpdir import read_json, read_text

# perf's event names, as the table's columns.
COLUMNS = (
    ("context-switches", "ctx switches"),
    ("cpu-migrations", "migrations"),
    ("syscalls:sys_enter_recvfrom", "recvfrom"),
    ("syscalls:sys_enter_sendmsg", "sendmsg"),
    ("syscalls:sys_enter_writev", "writev"),
    ("syscalls:sys_enter_io_uring_enter", "io_uring_enter"),
    ("syscalls:sys_enter_epoll_wait", "epoll_wait"),
    ("syscalls:sys_enter_write", "write"),
    ("syscalls:sys_enter_read", "read"),
    ("syscalls:sys_enter_poll", "poll"),
)
SYSCALLS = [name for name, _ in COLUMNS if name.startswith("syscalls:")]


def perf_counts(path):
    """{event: count} from `perf stat -x,` output (counts perf could not read are left out)."""
    counts = {}
    for line in read_text(path).splitlines():
        fields = line.split(",")
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            counts[fields[2]] = float(fields[0])
        except ValueError:
            continue
    return counts


def one_run(base, window):
    """Per round trip figures of one run, or None where it left no summary or no counts."""
    if not (os.path.exists(base + ".json") and os.path.exists(base + ".perf")):
        return None
    j = read_json(base + ".json")
    round_trips = j["throughput_rps"] * window
    counts = perf_counts(base + ".perf")
    if not round_trips or not counts:
        return None
    out = {name: counts[name] / round_trips for name in counts}
    out["syscalls"] = sum(counts.get(name, 0.0) for name in SYSCALLS) / round_trips
    out["rps"] = j["throughput_rps"]
    out["cpu_us"] = cpu_per_round_trip(j)
    out["rc"] = int(read_text(base + ".rc"))
    out["bad"] = {k: v for k, v in j["requests"].items() if k in PROGRESS_COUNTERS and v}
    return out


def render(a):
    print("## Proxy syscalls per round trip (bench/relay_syscalls.sh)\n")
    print(f"Settings: {a.settings}. Medians of {a.reps} rep(s); counts from `perf stat` over "
          f"{a.window} s inside loadgen's measured window, divided by the round trips answered in it.\n")
    head = ["build", "shards", "load", "req/s", "proxy CPU/rt", "syscalls/rt"] + [c for _, c in COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for bi, binary in enumerate(a.bins):
        for shards in a.shards:
            for mode in a.modes:
                runs = [one_run(f"{a.tmp}/run.{bi}.{shards}.{mode}.{rep}", a.window)
                        for rep in range(1, a.reps + 1)]
                runs = [r for r in runs if r]
                if not runs:
                    print(f"| `{binary}` | {shards} | {mode} | (no run measured) |")
                    continue

                def med(key):
                    vals = [r[key] for r in runs if r.get(key) is not None]
                    return median(vals) if vals else float("nan")

                load = "max (closed loop)" if mode == "max" else "open loop at RATE"
                cells = [f"`{binary}`", shards, load, f"{med('rps'):,.0f}", f"{med('cpu_us'):.1f} µs",
                         f"{med('syscalls'):.2f}"] + [f"{med(name):.2f}" for name, _ in COLUMNS]
                problems = [r["bad"] for r in runs if r["bad"]] + [f"exit {r['rc']}" for r in runs if r["rc"]]
                if problems:
                    cells[2] += f" (!! {problems})"
                print("| " + " | ".join(cells) + " |")
    print()
