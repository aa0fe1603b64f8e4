"""wrk 4's text output: parsing runs, summing their errors, listing them per rep."""
import os
import re

from reports.fmt import US_PER_S
from reports.tmpdir import read_text

# wrk's duration suffixes, in µs.
UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def dur_us(s):
    """`512.33us`, `1.02ms`, `10.00s` … → µs."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", s)
    return float(m.group(1)) * UNIT_US[m.group(2)]


def parse_wrk(path):
    """req/s, p50/p99/max (µs), requests, seconds, socket errors [connect, read, write, timeout], non-2xx.

    wrk 4 corrects its percentiles for coordinated omission (stats_correct: a response that took
    longer than the mean interval between a connection's requests adds synthetic samples), so a
    single stall of all connections can move p99; max shows such a stall."""
    t = read_text(path)
    r = {"rps": float(re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M).group(1))}
    for pct in ("50", "99"):
        r["p" + pct] = dur_us(re.search(r"^\s+%s%%\s+(\S+)" % pct, t, re.M).group(1))
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", t, re.M)
    r["max"] = dur_us(m.group(1)) if m else float("nan")
    m = re.search(r"^\s+(\d+) requests in ([\d.]+\w+)", t, re.M)
    r["reqs"], r["secs"] = int(m.group(1)), dur_us(m.group(2)) / US_PER_S
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    r["sock"] = [int(x) for x in se.groups()] if se else [0, 0, 0, 0]
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non2xx"] = int(n2.group(1)) if n2 else 0
    return r


def load_reps(tmp, name, reps):
    """The runs $tmp/wrk.NAME.1 … REPS (bench/lib.sh's run_wrk), or None unless all are there."""
    files = [f"{tmp}/wrk.{name}.{i}" for i in range(1, reps + 1)]
    if all(os.path.exists(f) for f in files):
        return [parse_wrk(f) for f in files]
    return None


def wrk_errors(rs):
    """The socket errors and non-2xx answers of several runs, summed; "0" when there are none."""
    sock = [sum(r["sock"][i] for r in rs) for i in range(4)]
    non2xx = sum(r["non2xx"] for r in rs)
    errs = []
    if any(sock):
        errs.append("socket connect/read/write/timeout " + "/".join(map(str, sock)))
    if non2xx:
        errs.append(f"non-2xx/3xx {non2xx}")
    return "; ".join(errs) or "0"


def per_rep(runs, cell):
    """`name a, b, c; name a, b, c` with cell(run) for each rep of each target in runs."""
    return "; ".join(f"{name} " + ", ".join(cell(r) for r in rs) for name, rs in runs.items())
