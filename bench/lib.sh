# shellcheck shell=bash
# Shared helpers for the bench/ scripts (sourced, never run):
#   log, need_nginx_wrk, bench_init (temp dir, PID bookkeeping, cleanup traps), spawn,
#   stop_pid, stderr_tail, wait_for, wait_http, rss_kib, hwm_kib, cpu_ticks, fd_count,
#   child_pids, free_port, nginx_start, nginx_backend_server, httpws_proxy_start,
#   httpws_tunnel_start, httpws_ingress_start, run_wrk, machine_desc.
# The reports are rendered by bench/report.py from the files these leave in $tmp.
# Every process is started by spawn and stopped by its PID only (stop_pid, or the EXIT trap).
# The caller sets LOG_TAG before sourcing and `set -euo pipefail`.

LOG_TAG=${LOG_TAG:-bench}
log() { echo "[$LOG_TAG] $*" >&2; }

# nginx and wrk from the distribution when missing; python3 and curl are required.
need_nginx_wrk() {
  if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    log "installing nginx and wrk"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >&2
  fi
  command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
  command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
}

# --- process bookkeeping -----------------------------------------------------------------
# bench_init NAME: $tmp (a fresh temp dir), pids=() and the traps that stop every spawned
# PID on exit. The temp dir is removed on success and kept (and named) on failure.
bench_init() {
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
# stop_pids: stop every PID in pids (stop_pid), all of them signalled at once.
stop_pids() { stop_pid "${pids[@]}"; }
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids
  if [ "$rc" != 0 ] && [ -d "$tmp" ]; then
    log "failed (rc=$rc); logs kept in $tmp"
  elif [ "${KEEP_TMP:-0}" = 1 ]; then
    log "logs kept in $tmp (KEEP_TMP=1)"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}

# spawn NAME CMD...: start CMD in the background with stdout in $tmp/NAME.out and stderr in
# $tmp/NAME.err; its PID goes to $spawned and to pids (stopped on exit).
spawn() {
  local name=$1; shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  spawned=$!
  pids+=("$spawned")
}

# stop_pid PID...: SIGTERM, up to 5 s, then SIGKILL; reap; forget it.
stop_pid() {
  local p q keep
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then log "pid $p ignored SIGTERM; SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
    keep=()
    for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    pids=("${keep[@]}")
  done
}

# stderr_tail NAME...: the last lines of each process's stderr ($tmp/NAME.err), if any, into
# the log; with STDERR_NOTES set, also `NAME<TAB>its last 3 lines` into that file.
stderr_tail() {
  local n
  for n in "$@"; do
    if [ -s "$tmp/$n.err" ]; then
      log "$n stderr (last 5 of $(wc -l <"$tmp/$n.err") lines):"; tail -n 5 "$tmp/$n.err" >&2
      [ -z "${STDERR_NOTES:-}" ] || printf '%s\t%s\n' "$n" "$(tail -n 3 "$tmp/$n.err" | tr '\n\t' '  ')" >>"$STDERR_NOTES"
    fi
  done
}

# wait_for PID FILE REGEX [SECONDS]: wait until FILE has a line matching REGEX, or fail if
# PID exits or the time runs out.
wait_for() {
  local pid=$1 file=$2 re=$3 secs=${4:-30}
  for _ in $(seq $((secs * 20))); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      grep -qE "$re" "$file" 2>/dev/null && return 0
      log "pid $pid exited before printing /$re/; its output:"; tail -n 20 "$file" "${file%.out}.err" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.05
  done
  log "timed out after ${secs}s waiting for /$re/ in $file:"; tail -n 20 "$file" "${file%.out}.err" >&2 2>/dev/null || true
  return 1
}

# wait_http PID URL [HOST] [SECONDS]: wait until URL answers 200 with body "ok" (optionally
# with a Host header), or fail if PID exits or the time runs out.
wait_http() {
  local pid=$1 url=$2 host=${3:-} secs=${4:-30} body
  local hdr=(); [ -n "$host" ] && hdr=(-H "Host: $host")
  for _ in $(seq $((secs * 10))); do
    kill -0 "$pid" 2>/dev/null || { log "pid $pid exited while waiting for $url"; return 1; }
    body=$(curl -sS --max-time 2 "${hdr[@]}" -w ' [HTTP %{http_code}]' "$url" 2>&1) || true
    ok_answer "$body" && return 0
    sleep 0.1
  done
  log "timed out after ${secs}s waiting for $url${host:+ (Host: $host)}; last answer: $(printf %q "$body")"
  return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }  # peak RSS
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
child_pids() { pgrep -P "$1" || true; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- nginx -------------------------------------------------------------------------------
# nginx_backend_server PORT: the server block every benchmark measures against.
nginx_backend_server() {
  printf '    server {\n        listen 127.0.0.1:%s;\n        location / { return 200 "ok\\n"; }\n    }\n' "$1"
}

# nginx_start NAME SERVER_BLOCKS CHECK_URL: an nginx (master + 1 worker, no access log) in
# $tmp/NAME with the given http-level blocks; waits until CHECK_URL answers "ok".
# Sets $spawned (the master's PID).
nginx_start() {
  local name=$1 servers=$2 url=$3 dir=$tmp/$1
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
$servers
}
EOF
  spawn "$name" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  if ! wait_http "$spawned" "$url" "" 10; then
    log "$name did not come up:"; cat "$tmp/$name.err" "$dir/logs/error.log" >&2 2>/dev/null || true
    return 1
  fi
}

# --- httpws ------------------------------------------------------------------------------
# httpws_proxy_start NAME BIN ARGS...: spawn NAME = BIN --log warn proxy --listen 127.0.0.1:0
# ARGS and wait for its banner. Sets $spawned (its PID) and $proxy_url (ws://HOST:PORT).
httpws_proxy_start() {
  local name=$1 bin=$2; shift 2
  spawn "$name" "$bin" --log warn proxy --listen 127.0.0.1:0 "$@"
  wait_for "$spawned" "$tmp/$name.out" 'listening on ws://'
  proxy_url=$(grep -oE 'ws://[^ ]+' "$tmp/$name.out" | head -n1)
}

# ok_answer TEXT: whether TEXT is curl's `-w ' [HTTP %{http_code}]'` output for the benchmark
# backend's 200 "ok" (the newline may be missing).
ok_answer() { [ "$1" = $'ok\n [HTTP 200]' ] || [ "$1" = 'ok [HTTP 200]' ]; }

# check_svc HOST:PORT WHAT: one request with `Host: svc` by hand, so that a broken path fails
# loudly instead of as a wrk error count.
check_svc() {
  local body
  body=$(curl -sS --max-time 5 -H 'Host: svc' -w ' [HTTP %{http_code}]' "http://$1/" 2>&1) || true
  ok_answer "$body" || { log "sanity request through the $2 failed: $(printf %q "$body")"; return 1; }
}

# httpws_tunnel_start BIN SERVICE_PORT PROXY_ARGS ENDPOINT_ARGS [PREFIX]: proxy + svc agent
# (--serve) + client agent (--listen):
#   BIN --log warn proxy --listen 127.0.0.1:0 PROXY_ARGS
#   BIN --log warn endpoint --proxy ws://PROXY --name svc --serve http://127.0.0.1:SERVICE_PORT ENDPOINT_ARGS
#   BIN --log warn endpoint --proxy ws://PROXY --name client --listen 127.0.0.1:0 ENDPOINT_ARGS
# and checks one request by hand (check_svc).
# Sets proxy_pid svc_pid client_pid proxy_addr ingress (host:port); files $tmp/PREFIX{proxy,svc,client}.*
httpws_tunnel_start() {
  local bin=$1 port=$2 proxy_args=$3 endpoint_args=$4 pre=${5:-}
  # shellcheck disable=SC2086
  httpws_proxy_start "${pre}proxy" "$bin" $proxy_args
  proxy_pid=$spawned proxy_addr=$proxy_url
  log "proxy (pid $proxy_pid) on $proxy_addr"
  # shellcheck disable=SC2086
  spawn "${pre}svc" "$bin" --log warn endpoint --proxy "$proxy_addr" --name svc \
    --serve "http://127.0.0.1:$port" $endpoint_args
  svc_pid=$spawned
  # shellcheck disable=SC2086
  spawn "${pre}client" "$bin" --log warn endpoint --proxy "$proxy_addr" --name client \
    --listen 127.0.0.1:0 $endpoint_args
  client_pid=$spawned
  wait_for "$svc_pid" "$tmp/${pre}svc.out" 'registered as svc'
  wait_for "$client_pid" "$tmp/${pre}client.out" 'registered as client'
  ingress=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$tmp/${pre}client.out" | head -n1 | sed 's|.*http://||')
  [ -n "$ingress" ] || { log "client endpoint printed no listen address"; cat "$tmp/${pre}client.out" >&2; return 1; }
  log "svc agent (pid $svc_pid), client agent (pid $client_pid) ingress on $ingress"
  check_svc "$ingress" tunnel
}

# httpws_ingress_start BIN SERVICE_PORT PROXY_ARGS ENDPOINT_ARGS [PREFIX]: the equal-hop path
# (client → relay → tunnel agent → service), as rathole and frp are measured:
#   BIN --log warn proxy --listen 127.0.0.1:0 PROXY_ARGS
#   BIN --log warn endpoint --proxy ws://PROXY --name svc --public --serve http://127.0.0.1:SERVICE_PORT ENDPOINT_ARGS
# wrk then talks to the proxy's public HTTP ingress with `Host: svc`. One request is checked
# by hand (check_svc). Sets ig_proxy_pid ig_svc_pid ig_addr (host:port); files $tmp/PREFIX{proxy,svc}.*
httpws_ingress_start() {
  local bin=$1 port=$2 proxy_args=$3 endpoint_args=$4 pre=${5:-}
  # shellcheck disable=SC2086
  httpws_proxy_start "${pre}proxy" "$bin" $proxy_args
  ig_proxy_pid=$spawned ig_addr=${proxy_url#ws://}
  # shellcheck disable=SC2086
  spawn "${pre}svc" "$bin" --log warn endpoint --proxy "ws://$ig_addr" --name svc --public \
    --serve "http://127.0.0.1:$port" $endpoint_args
  ig_svc_pid=$spawned
  wait_for "$ig_svc_pid" "$tmp/${pre}svc.out" 'registered as svc'
  log "ingress proxy (pid $ig_proxy_pid) on $ig_addr, public svc agent (pid $ig_svc_pid)"
  check_svc "$ig_addr" "public ingress"
}

# run_wrk NAME REP ARGS...: wrk ARGS > $tmp/wrk.NAME.REP, one progress line on stderr.
run_wrk() {
  local name=$1 rep=$2; shift 2
  local f="$tmp/wrk.$name.$rep"
  log "rep $rep/${REPS:-?}: $name: wrk $(printf '%q ' "$@")"
  wrk "$@" >"$f" 2>&1 || { log "wrk failed:"; cat "$f" >&2; return 1; }
  local rps errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  errs=$(grep -E 'Socket errors|Non-2xx' "$f" | sed 's/^ *//' | paste -sd ';' - || true)
  log "  $rps req/s${errs:+  !! $errs}"
}

machine_desc() {
  echo "nproc=$(nproc), $(uname -sr), $(awk -F: '/model name/ {sub(/^ */, "", $2); print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal:/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
}
