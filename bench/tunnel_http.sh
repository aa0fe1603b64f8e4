#!/usr/bin/env bash
# HTTP through the tunnel vs. the same service direct (DESIGN.md §4: "HTTP through the tunnel
# (wrk → httpws → local service) ≥ rathole's requests/s and ≤ its p99 in the same run").
#
#   bash bench/tunnel_http.sh [--out FILE] [--direct-only]
#   env: REPS=3 CONNS=64 DURATION=10s THREADS=1 PROXY_ARGS= ENDPOINT_ARGS=
#        NO_BUILD=1 (use target/release/httpws as it is)
#
# Starts, each with its own temp files and only by PID:
#   nginx     worker_processes 1, access_log off, 127.0.0.1:FREE, `return 200 "ok\n"`
#   proxy     httpws proxy --listen 127.0.0.1:0
#   svc       httpws endpoint --proxy ws://PROXY --name svc --serve http://127.0.0.1:NGINX
#   client    httpws endpoint --proxy ws://PROXY --name client --listen 127.0.0.1:0
# then runs REPS interleaved pairs of
#   direct    wrk --latency -tTHREADS -cCONNS -dDURATION http://127.0.0.1:NGINX/
#   tunnel    wrk --latency -tTHREADS -cCONNS -dDURATION -H 'Host: svc' http://127.0.0.1:INGRESS/
# and prints a markdown table (medians over reps) plus the RSS (idle and after the runs) and
# CPU (cores used during the tunnel runs, µs per request) of the proxy and both agents.
# Errors (wrk "Socket errors" / "Non-2xx or 3xx responses") are shown per run and summed in
# the table. Progress goes to stderr, the report to stdout (and to FILE with --out).
# --direct-only skips the build and the tunnel (checks the nginx/wrk harness alone).
set -euo pipefail
cd "$(dirname "$0")/.."

out_file="" direct_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out_file="$2"; shift 2 ;;
    --out=*) out_file="${1#--out=}"; shift ;;
    --direct-only) direct_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
REPS=${REPS:-3} CONNS=${CONNS:-64} DURATION=${DURATION:-10s} THREADS=${THREADS:-1}
PROXY_ARGS=${PROXY_ARGS:-} ENDPOINT_ARGS=${ENDPOINT_ARGS:-}

LOG_TAG=tunnel_http
# shellcheck source=bench/lib.sh
. bench/lib.sh

need_nginx_wrk
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bin=target/release/httpws
if [ "$direct_only" = 0 ] && [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bin httpws"
  cargo build --release --quiet --bin httpws
fi
bench_init tunnel_http

# --- nginx -------------------------------------------------------------------------------
nginx_port=$(free_port)
nginx_start nginx "$(nginx_backend_server "$nginx_port")" "http://127.0.0.1:$nginx_port/"
nginx_pid=$spawned
log "nginx (pid $nginx_pid) on 127.0.0.1:$nginx_port"

# --- httpws proxy and the two agents ----------------------------------------------------
if [ "$direct_only" = 0 ]; then
  httpws_tunnel_start "$bin" "$nginx_port" "$PROXY_ARGS" "$ENDPOINT_ARGS"
  rss_idle="proxy=$(rss_kib "$proxy_pid") svc=$(rss_kib "$svc_pid") client=$(rss_kib "$client_pid")"
  cpu_before="proxy=$(cpu_ticks "$proxy_pid") svc=$(cpu_ticks "$svc_pid") client=$(cpu_ticks "$client_pid")"
fi

# --- runs --------------------------------------------------------------------------------
direct_args=(--latency -t"$THREADS" -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$nginx_port/")
tunnel_args=(--latency -t"$THREADS" -c"$CONNS" -d"$DURATION" -H 'Host: svc')
[ "$direct_only" = 0 ] && tunnel_args+=("http://$ingress/")
for rep in $(seq "$REPS"); do
  run_wrk direct "$rep" "${direct_args[@]}"
  [ "$direct_only" = 1 ] || run_wrk tunnel "$rep" "${tunnel_args[@]}"
done

rss_after=""
if [ "$direct_only" = 0 ]; then
  rss_after="proxy=$(rss_kib "$proxy_pid") svc=$(rss_kib "$svc_pid") client=$(rss_kib "$client_pid")"
  cpu_after="proxy=$(cpu_ticks "$proxy_pid") svc=$(cpu_ticks "$svc_pid") client=$(cpu_ticks "$client_pid")"
  for p in proxy svc client; do
    if [ -s "$tmp/$p.err" ]; then
      log "$p stderr (last 5 of $(wc -l <"$tmp/$p.err") lines):"; tail -n 5 "$tmp/$p.err" >&2
    fi
  done
fi

# --- report ------------------------------------------------------------------------------
cmd="REPS=$REPS CONNS=$CONNS DURATION=$DURATION THREADS=$THREADS"
[ -n "$PROXY_ARGS" ] && cmd+=" PROXY_ARGS='$PROXY_ARGS'"
[ -n "$ENDPOINT_ARGS" ] && cmd+=" ENDPOINT_ARGS='$ENDPOINT_ARGS'"
cmd+=" bash bench/tunnel_http.sh"
[ "$direct_only" = 1 ] && cmd+=" --direct-only"
report=$(
  TMP="$tmp" REPS="$REPS" CMD="$cmd" RSS_IDLE="${rss_idle:-}" RSS_AFTER="$rss_after" \
  CPU_BEFORE="${cpu_before:-}" CPU_AFTER="${cpu_after:-}" CLK_TCK="$(getconf CLK_TCK)" \
  DIRECT_ARGS="wrk ${direct_args[*]}" TUNNEL_ARGS="wrk --latency -t$THREADS -c$CONNS -d$DURATION -H 'Host: svc' http://${ingress:-INGRESS}/" \
  MACHINE="$(machine_desc)" \
  DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" NGINX_V="$(nginx -v 2>&1 | sed 's/.*: //')" \
  WRK_V="$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')" \
  python3 - <<'PY'
import os, re, statistics
exec(os.environ["PY_WRK"])  # parse_wrk, wrk_errors, fmt_lat, fmt_kib (bench/lib.sh)

tmp, reps = os.environ["TMP"], int(os.environ["REPS"])

runs = {}
for name in ("direct", "tunnel"):
    files = [f"{tmp}/wrk.{name}.{i}" for i in range(1, reps + 1)]
    if all(os.path.exists(f) for f in files):
        runs[name] = [parse_wrk(f) for f in files]

med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for n, rs in runs.items()}
base = med["direct"]["rps"]
print(f"Command: `{os.environ['CMD']}`  ")
print(f"Machine: {os.environ['MACHINE']}; {os.environ['NGINX_V']}, {os.environ['WRK_V']}. Date: {os.environ['DATE']}.  ")
print(f"direct: `{os.environ['DIRECT_ARGS']}`  ")
if "tunnel" in runs:
    print(f"tunnel: `{os.environ['TUNNEL_ARGS']}` (client agent → proxy → svc agent → nginx)")
print()
print(f"| target | req/s (median of {reps}) | p50 | p99 | req/s vs direct | errors |")
print("|---|---|---|---|---|---|")
for name, rs in runs.items():
    m = med[name]
    print(f"| {name} | {m['rps']:,.0f} | {fmt_lat(m['p50'])} | {fmt_lat(m['p99'])} | "
          f"{m['rps'] / base:.2f} | {wrk_errors(rs)} |")
print()
print("Per rep (req/s, p50, p99): " + "; ".join(
    f"{n} " + ", ".join(f"{r['rps']:,.0f}/{fmt_lat(r['p50'])}/{fmt_lat(r['p99'])}" for r in rs)
    for n, rs in runs.items()) + ".")
if os.environ["RSS_AFTER"]:
    idle = dict(kv.split("=") for kv in os.environ["RSS_IDLE"].split())
    after = dict(kv.split("=") for kv in os.environ["RSS_AFTER"].split())
    print()
    c0 = dict(kv.split("=") for kv in os.environ["CPU_BEFORE"].split())
    c1 = dict(kv.split("=") for kv in os.environ["CPU_AFTER"].split())
    tunnel_secs = sum(r["secs"] for r in runs["tunnel"])
    tunnel_reqs = sum(r["reqs"] for r in runs["tunnel"])
    tck = int(os.environ["CLK_TCK"])
    print("| process | RSS idle (registered, before wrk) | RSS after the runs | CPU during tunnel runs | CPU per request |")
    print("|---|---|---|---|---|")
    for p in ("proxy", "svc", "client"):
        label = {"proxy": "proxy", "svc": "svc agent (--serve)", "client": "client agent (--listen)"}[p]
        cpu_s = (int(c1[p]) - int(c0[p])) / tck
        print(f"| {label} | {fmt_kib(idle[p])} | {fmt_kib(after[p])} | "
              f"{cpu_s / tunnel_secs:.2f} cores | {cpu_s * 1e6 / tunnel_reqs:.1f} µs |")
    print()
    print("CPU = utime + stime from /proc/PID/stat over the whole run divided by the tunnel runs' "
          "wall time (the agents and proxy are idle during the direct runs).")
PY
)
echo "$report"
if [ -n "$out_file" ]; then printf '%s\n' "$report" >"$out_file"; log "wrote $out_file"; fi
