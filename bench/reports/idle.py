"""compare.sh section 3: proxy memory per idle registered connection, and its target rows.

Reads, from compare.sh's temp dir: idle.tsv (one line per count and rep: connections, rep,
RSS before and after in KiB, connections established, proxy fds before and after, the
clients' exit status), idle.client (loadgen or python), idle.nofile (the open-files cap) and,
with loadgen, idle.N.REP.json. Writes summary.idle.
"""
import os
from statistics import median

from reports.targets import write_targets
from reports.tmpdir import read_json, read_text

KIB = 1024  # bytes
# Target: at most this many KiB of proxy RSS per idle connection.
MAX_KIB_PER_CONN = 1.0


def render(tmp, reps, settle, settings):
    """Print the section; write its target rows to $tmp/summary.idle."""
    client = read_text(tmp + "/idle.client").strip()
    by = load_rows(tmp)
    print("## 3. Idle memory per registered connection\n")
    clients = "`loadgen --idle`" if client == "loadgen" else "`bench/idle_clients.py`"
    print(f"Settings: `{settings}`; clients: {clients} (a separate process)"
          f"; open files capped at {read_text(tmp + '/idle.nofile').strip()} per process. "
          "A fresh proxy per count and rep; "
          f"per connection = (proxy RSS {settle} s after the last connection registered − RSS before any) "
          "/ connections.\n")
    per = print_counts(by, reps)
    print_marginal(by, reps)
    if client == "loadgen":
        print_drops(tmp, by)
    print()
    write_targets(tmp + "/summary.idle", [
        (f"proxy RSS per idle connection at {n:,}", f"{per[n]:.2f} KiB", "≤ 1 KiB",
         per[n] <= MAX_KIB_PER_CONN)
        for n in sorted(per)])


def load_rows(tmp):
    """idle.tsv → {connections: [one dict per rep]}."""
    by = {}
    with open(tmp + "/idle.tsv", encoding="utf-8") as f:
        for line in f:
            n, rep, b, a, est, fd0, fd1, rc = line.split()
            by.setdefault(int(n), []).append(dict(rep=int(rep), b=int(b), a=int(a), est=int(est or 0),
                                                  fd0=int(fd0), fd1=int(fd1), rc=int(rc)))
    return by


def print_counts(by, reps):
    """One table row per connection count; returns {count: median KiB per connection}."""
    print("| connections | established | proxy fds | RSS before | RSS after | "
          f"per connection (median of {reps}) | per rep |")
    print("|---|---|---|---|---|---|---|")
    per = {}
    for n, rs in sorted(by.items()):
        k = [(r["a"] - r["b"]) / r["est"] if r["est"] else float("nan") for r in rs]
        per[n] = median(k)
        bad = [r for r in rs if r["est"] != n or r["rc"] != 0]
        note = ""
        if bad:
            note = " **(" + "; ".join(f"rep {r['rep']}: {r['est']} established, exit {r['rc']}" for r in bad) + ")**"
        print(f"| {n:,} | {median(r['est'] for r in rs):,.0f}{note} | {median(r['fd1'] for r in rs):,.0f} | "
              f"{median(r['b'] for r in rs) / 1024:.1f} MiB | "
              f"{median(r['a'] for r in rs) / 1024:.1f} MiB | **{per[n]:.2f} KiB** ({per[n] * KIB:.0f} B) | "
              + ", ".join(f"{x:.2f}" for x in k) + " KiB |")
    return per


def print_marginal(by, reps):
    """What one more connection costs between the smallest and the largest count (RSS after)."""
    ns = sorted(by)
    if len(ns) < 2:
        return
    lo, hi = ns[0], ns[-1]
    marg = []
    for i in range(1, reps + 1):
        a = [r for r in by[lo] if r["rep"] == i]
        b = [r for r in by[hi] if r["rep"] == i]
        if a and b:
            marg.append((b[0]["a"] - a[0]["a"]) / (b[0]["est"] - a[0]["est"]))
    if marg:
        print(f"\nMarginal cost from {lo:,} to {hi:,} connections (RSS after, per rep, median): "
              f"**{median(marg):.2f} KiB** per connection.")


def print_drops(tmp, by):
    """The connections the proxy dropped while they idled, from loadgen's JSON of each run."""
    drops = []
    for n, rs in by.items():
        for r in rs:
            f = f"{tmp}/idle.{n}.{r['rep']}.json"
            if os.path.exists(f):
                d = read_json(f)["connections"].get("dropped")
                if d:
                    drops.append(f"{n} rep {r['rep']}: {d}")
    print("\nConnections the proxy dropped while idle (loadgen): "
          + (", ".join(drops) if drops else "none") + ".")
