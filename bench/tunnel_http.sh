#!/usr/bin/env bash
# HTTP through the tunnel vs. the same service direct (docs/design.md, Performance targets: "HTTP through the tunnel
# (wrk → httpws → local service) ≥ rathole's requests/s and ≤ its p99 in the same run").
#
#   bash bench/tunnel_http.sh [--out FILE] [--direct-only] [--strace] [--perf DIR]
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
# Where the cost goes, each in one more tunnel run after the reps (so the measured ones are
# untouched): --strace puts each process under `strace -c -f -p` and adds its syscalls per
# request to the report (strace slows what it traces: read the counts, not the CPU); --perf
# DIR records both agents with `perf record --call-graph dwarf` into DIR/svc.data and
# DIR/client.data (`perf report -i DIR/svc.data --no-children`).
set -euo pipefail
cd "$(dirname "$0")/.."

out_file="" direct_only=0 do_strace=0 perf_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out_file="$2"; shift 2 ;;
    --out=*) out_file="${1#--out=}"; shift ;;
    --direct-only) direct_only=1; shift ;;
    --strace) do_strace=1; shift ;;
    --perf) perf_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
REPS=${REPS:-3} CONNS=${CONNS:-64} DURATION=${DURATION:-10s} THREADS=${THREADS:-1}
PROXY_ARGS=${PROXY_ARGS:-} ENDPOINT_ARGS=${ENDPOINT_ARGS:-}

LOG_TAG=tunnel_http
# shellcheck source=bench/lib.sh
. bench/lib.sh

need_nginx_wrk
[ "$do_strace" = 0 ] || command -v strace >/dev/null || { log "--strace needs strace"; exit 1; }
[ -z "$perf_dir" ] || command -v perf >/dev/null || { log "--perf needs perf (linux-perf)"; exit 1; }
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
fi

# --- where the cost goes (--perf, --strace) -----------------------------------------------
syscalls=""
if [ "$direct_only" = 0 ] && [ -n "$perf_dir" ]; then
  mkdir -p "$perf_dir"
  recorders=()
  for who in svc client; do
    eval "pid=\$${who}_pid"
    perf record -F 2000 -g --call-graph dwarf,16384 -p "$pid" -o "$perf_dir/$who.data" \
      -- sleep "$DURATION" >/dev/null 2>&1 &
    recorders+=($!)
  done
  run_wrk perf 1 "${tunnel_args[@]}"
  wait "${recorders[@]}" || true
  log "perf: $perf_dir/svc.data $perf_dir/client.data"
fi
if [ "$direct_only" = 0 ] && [ "$do_strace" = 1 ]; then
  tracers=()
  for who in proxy svc client; do
    eval "pid=\$${who}_pid"
    strace -c -f -p "$pid" -o "$tmp/strace.$who" 2>/dev/null &
    tracers+=($!)
  done
  sleep 0.5  # attaching is no event this script can wait for; the counts are per request anyway
  run_wrk strace 1 "${tunnel_args[@]}"
  kill -INT "${tracers[@]}" 2>/dev/null || true
  wait "${tracers[@]}" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.strace.1")
  syscalls=$'\n\n'"Syscalls per request under \`strace -c -f -p\` (one more tunnel run, $n requests):"$'\n\n'
  syscalls+="| process | syscall | calls per request | errors per request |"$'\n'"|---|---|---|---|"$'\n'
  for who in proxy svc client; do
    syscalls+=$(awk -v n="$n" -v who="$who" '$4 ~ /^[0-9]+$/ && $NF != "total" {e = ($5 ~ /^[0-9]+$/) ? $5 : 0; if ($4 / n >= 0.01) printf "| %s | %s | %.2f | %.2f |\n", who, $NF, $4 / n, e / n}' "$tmp/strace.$who")$'\n'
  done
fi
[ "$direct_only" = 1 ] || stderr_tail proxy svc client

# --- report ------------------------------------------------------------------------------
cmd="REPS=$REPS CONNS=$CONNS DURATION=$DURATION THREADS=$THREADS"
[ -n "$PROXY_ARGS" ] && cmd+=" PROXY_ARGS='$PROXY_ARGS'"
[ -n "$ENDPOINT_ARGS" ] && cmd+=" ENDPOINT_ARGS='$ENDPOINT_ARGS'"
cmd+=" bash bench/tunnel_http.sh"
[ "$direct_only" = 1 ] && cmd+=" --direct-only"
report=$(
  python3 bench/report.py tunnel-http --tmp "$tmp" --reps "$REPS" --clk-tck "$(getconf CLK_TCK)" --cmd "$cmd" \
    --rss-idle "${rss_idle:-}" --rss-after "$rss_after" --cpu-before "${cpu_before:-}" --cpu-after "${cpu_after:-}" \
    --direct-args "wrk ${direct_args[*]}" \
    --tunnel-args "wrk --latency -t$THREADS -c$CONNS -d$DURATION -H 'Host: svc' http://${ingress:-INGRESS}/" \
    --machine "$(machine_desc)" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --nginx-version "$(nginx -v 2>&1 | sed 's/.*: //')" --wrk-version "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
)
report+=$syscalls
echo "$report"
if [ -n "$out_file" ]; then printf '%s\n' "$report" >"$out_file"; log "wrote $out_file"; fi
