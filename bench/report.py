#!/usr/bin/env python3
"""The markdown reports of bench/compare.sh and bench/tunnel_http.sh, rendered from the raw
files those scripts leave in their temp dir (KEEP_TMP=1 keeps it), so that a report can be
rendered again, or its code changed and checked, without measuring again.

    python3 bench/report.py relay --tmp DIR --reps 3 --half 0.5 ...
    python3 bench/report.py SUBCOMMAND --help

The modules in bench/reports/ do the work, one per section or input format.
"""
import argparse
import sys

from reports import http_peers, idle, loadgen, relay, results, syscalls, tunnel_http
from reports.tmpdir import read_json


def main():
    args = parser().parse_args()
    args.run(args)


def parser():
    p = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True, metavar="SUBCOMMAND")

    c = sub.add_parser("loadgen-line", help="compare.sh run_lg's progress line for one loadgen run")
    c.add_argument("json", help="loadgen's --json summary")
    c.add_argument("rc", help="loadgen's exit status")
    c.set_defaults(run=lambda a: print(loadgen.progress_line(read_json(a.json), a.rc)))

    c = sub.add_parser("open-loop-rate", help="'MEDIAN RATE': the median max throughput of the closed-loop "
                                              "runs and the open-loop --rate at HALF of it")
    c.add_argument("--half", type=float, required=True, help="compare.sh's HALF")
    c.add_argument("json", nargs="+", help="loadgen's --json summaries of the closed-loop runs")
    c.set_defaults(run=lambda a: print(*loadgen.open_loop_rate(a.json, a.half)))

    c = section(sub, "relay", "compare.sh section 1 (relay vs direct echo); writes TMP/summary.relay")
    c.add_argument("--half", type=float, required=True, help="compare.sh's HALF")
    c.add_argument("--clk-tck", type=int, required=True, help="`getconf CLK_TCK`")
    c.add_argument("--plots-dir", required=True, help="compare.sh's PLOTS_DIR")
    c.set_defaults(run=lambda a: relay.render(a.tmp, a.reps, a.half, a.clk_tck, a.plots_dir, a.settings))

    c = section(sub, "http", "compare.sh section 2 (HTTP tunnel vs peers); writes TMP/summary.http")
    c.add_argument("--clk-tck", type=int, required=True, help="`getconf CLK_TCK`")
    c.set_defaults(run=lambda a: http_peers.render(a.tmp, a.reps, a.clk_tck, a.settings))

    c = section(sub, "idle", "compare.sh section 3 (idle memory); writes TMP/summary.idle")
    c.add_argument("--settle", required=True, help="compare.sh's IDLE_SETTLE (seconds, as given)")
    c.set_defaults(run=lambda a: idle.render(a.tmp, a.reps, a.settle, a.settings))

    c = sub.add_parser("tunnel-http", help="bench/tunnel_http.sh's report")
    c.add_argument("--tmp", required=True, help="the script's temp dir (wrk.direct.REP, wrk.tunnel.REP)")
    c.add_argument("--reps", type=int, required=True, help="REPS")
    c.add_argument("--clk-tck", type=int, required=True, help="`getconf CLK_TCK`")
    for name, what in (("cmd", "the command line to rerun it"), ("machine", "the machine, in words"),
                       ("date", "when it ran"), ("nginx-version", "nginx's version"),
                       ("wrk-version", "wrk's version"), ("direct-args", "the direct wrk command"),
                       ("tunnel-args", "the tunnel wrk command")):
        c.add_argument("--" + name, required=True, help=what)
    for name, what in (("rss-idle", "`proxy=KiB svc=KiB client=KiB` before wrk"),
                       ("rss-after", "the same after the runs"),
                       ("cpu-before", "`proxy=TICKS svc=TICKS client=TICKS` before wrk"),
                       ("cpu-after", "the same after the runs")):
        c.add_argument("--" + name, default="", help=what + " (empty with --direct-only)")
    c.set_defaults(run=tunnel_http.render)

    c = sub.add_parser("relay-syscalls", help="bench/relay_syscalls.sh's report")
    c.add_argument("--tmp", required=True, help="the script's temp dir (run.BIN.SHARDS.MODE.REP.*)")
    c.add_argument("--reps", type=int, required=True, help="REPS")
    c.add_argument("--window", type=float, required=True, help="WINDOW (seconds perf stat counted)")
    c.add_argument("--bins", nargs="+", required=True, help="the proxy builds, in --bin order")
    c.add_argument("--shards", nargs="+", required=True, help="SHARDS")
    c.add_argument("--modes", nargs="+", required=True, help="MODES")
    c.add_argument("--settings", required=True, help="the settings line, as the report shows it")
    c.set_defaults(run=syscalls.render)

    c = sub.add_parser("results", help="put the report on stdin into FILE between its compare.sh markers")
    c.add_argument("file", help="bench/RESULTS.md")
    c.set_defaults(run=lambda a: results.splice(a.file, sys.stdin.buffer.read().decode("utf-8")))
    return p


def section(sub, name, help_):
    """A subcommand for one of compare.sh's sections, with the options they all take."""
    c = sub.add_parser(name, help=help_)
    c.add_argument("--tmp", required=True, help="compare.sh's temp dir")
    c.add_argument("--reps", type=int, required=True, help="REPS")
    c.add_argument("--settings", required=True, help="the section's settings line, as the report shows it")
    return c


if __name__ == "__main__":
    main()
