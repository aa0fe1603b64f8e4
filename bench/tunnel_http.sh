#!/usr/bin/env bash
# HTTP through the tunnel vs. the same service direct (docs/design.md, Performance targets: "HTTP through the tunnel
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
  stderr_tail proxy svc client
fi

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
echo "$report"
if [ -n "$out_file" ]; then printf '%s\n' "$report" >"$out_file"; log "wrote $out_file"; fi
