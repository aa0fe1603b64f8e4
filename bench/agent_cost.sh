#!/usr/bin/env bash
# What each process of the HTTP tunnel costs per request: CPU, syscalls, and optionally a
# perf profile (issue 15's agent figures in bench/RESULTS.md).
#
#   bash bench/agent_cost.sh [--strace] [--perf DIR]
#   env: D=8 (seconds measured) WARMUP=3 CONNS=64 BIN=target/release/httpws (build it first)
#        PROXY_ARGS= ENDPOINT_ARGS=
#
# Starts, only by PID: nginx `return 200` on 127.0.0.1:FREE, `httpws proxy`, the svc agent
# (--serve nginx) and the client agent (--listen), as bench/tunnel_http.sh does; runs
# `wrk -t1 -cCONNS -H 'Host: svc'` against the client agent for WARMUP s, then for D s, and
# prints req/s, p50/p99 and each process's CPU per request (utime+stime from /proc over the
# measured run). --strace: a further D s run under `strace -c -f -p` of each process, printed
# as calls per request (strace slows what it traces: read the counts, not the CPU). --perf
# DIR: `perf record --call-graph dwarf` of both agents during the measured run, into
# DIR/svc.data and DIR/client.data (`perf report -i DIR/svc.data --no-children`).
set -euo pipefail
cd "$(dirname "$0")/.."

do_strace=0 perf_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --strace) do_strace=1; shift ;;
    --perf) perf_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
D=${D:-8} WARMUP=${WARMUP:-3} CONNS=${CONNS:-64} BIN=${BIN:-target/release/httpws}

LOG_TAG=agent_cost
# shellcheck source=bench/lib.sh
. bench/lib.sh
need_nginx_wrk
[ -x "$BIN" ] || { log "$BIN is missing: cargo build --release --bin httpws"; exit 1; }
[ "$do_strace" = 0 ] || command -v strace >/dev/null || { log "--strace needs strace"; exit 1; }
[ -z "$perf_dir" ] || command -v perf >/dev/null || { log "--perf needs perf (linux-perf)"; exit 1; }
bench_init agent_cost

nginx_port=$(free_port)
nginx_start nginx "$(nginx_backend_server "$nginx_port")" "http://127.0.0.1:$nginx_port/"
httpws_tunnel_start "$BIN" "$nginx_port" "${PROXY_ARGS:-}" "${ENDPOINT_ARGS:-}"
url="http://$ingress/"
wrk -t1 -c"$CONNS" -d"${WARMUP}s" -H 'Host: svc' "$url" >/dev/null

before=("$(cpu_ticks "$proxy_pid")" "$(cpu_ticks "$svc_pid")" "$(cpu_ticks "$client_pid")")
perf_pids=()
if [ -n "$perf_dir" ]; then
  mkdir -p "$perf_dir"
  for who in svc client; do
    eval "pid=\$${who}_pid"
    perf record -F 2000 -g --call-graph dwarf,16384 -p "$pid" -o "$perf_dir/$who.data" \
      -- sleep "$D" >/dev/null 2>&1 &
    perf_pids+=($!)
  done
fi
wrk --latency -t1 -c"$CONNS" -d"${D}s" -H 'Host: svc' "$url" >"$tmp/wrk.measured"
after=("$(cpu_ticks "$proxy_pid")" "$(cpu_ticks "$svc_pid")" "$(cpu_ticks "$client_pid")")
[ ${#perf_pids[@]} -eq 0 ] || wait "${perf_pids[@]}" || true

rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.measured")
echo "wrk -t1 -c$CONNS -d${D}s: $rps req/s, p50 $(awk '$1 == "50%" {print $2}' "$tmp/wrk.measured"), p99 $(awk '$1 == "99%" {print $2}' "$tmp/wrk.measured")"
grep -E 'Socket errors|Non-2xx' "$tmp/wrk.measured" || true
tck=$(getconf CLK_TCK)
i=0
for who in proxy svc client; do
  python3 - "$who" "${before[$i]}" "${after[$i]}" "$tck" "$rps" "$D" <<'PY'
import sys
who, before, after, tck, rps, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
cpu = (after - before) / tck
print(f"{who:>6}: {cpu * 1e6 / (rps * d):.2f} µs CPU per request ({cpu / d:.2f} cores)")
PY
  i=$((i + 1))
done

if [ "$do_strace" = 1 ]; then
  tracers=()
  for who in proxy svc client; do
    eval "pid=\$${who}_pid"
    strace -c -f -p "$pid" -o "$tmp/strace.$who" 2>/dev/null &
    tracers+=($!)
  done
  sleep 0.5  # strace attaching is not an event this script can wait for; the counts are per request anyway
  wrk -t1 -c"$CONNS" -d"${D}s" -H 'Host: svc' "$url" >"$tmp/wrk.strace"
  kill -INT "${tracers[@]}" 2>/dev/null || true
  wait "${tracers[@]}" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.strace")
  for who in proxy svc client; do
    echo "$who, syscalls per request under strace ($n requests):"
    awk -v n="$n" '$4 ~ /^[0-9]+$/ && $NF != "total" {e = ($5 ~ /^[0-9]+$/) ? $5 : 0; printf "  %-16s %.2f (errors %.2f)\n", $NF, $4 / n, e / n}' "$tmp/strace.$who" | head -8
  done
fi
