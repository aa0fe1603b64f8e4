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

log() { echo "[tunnel_http] $*" >&2; }

# --- tools -------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  log "installing nginx and wrk"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >&2
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bin=target/release/httpws
if [ "$direct_only" = 0 ] && [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bin httpws"
  cargo build --release --quiet --bin httpws
fi

# --- process bookkeeping -----------------------------------------------------------------
tmp=$(mktemp -d /tmp/tunnel_http.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then log "pid $p ignored SIGTERM; SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  if [ "$rc" != 0 ] && [ -d "$tmp" ]; then
    log "failed (rc=$rc); logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for PID FILE REGEX [SECONDS]: wait until FILE has a line matching REGEX, or fail if
# PID exits or the time runs out.
wait_for() {
  local pid=$1 file=$2 re=$3 secs=${4:-30} i
  for i in $(seq $((secs * 20))); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "pid $pid exited before printing /$re/; its output:"; tail -n 20 "$file" "${file%.out}.err" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.05
  done
  log "timed out after ${secs}s waiting for /$re/ in $file:"; tail -n 20 "$file" "${file%.out}.err" >&2 2>/dev/null || true
  return 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- nginx -------------------------------------------------------------------------------
nginx_port=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path $tmp/nginx/client_body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { return 200 "ok\n"; }
    }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/logs/error.log" \
  >"$tmp/nginx.out" 2>"$tmp/nginx.err" &
pids+=($!)
nginx_pid=$!
up=0
for _ in $(seq 200); do
  kill -0 "$nginx_pid" 2>/dev/null || break
  curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/" 2>/dev/null && { up=1; break; }
  sleep 0.05
done
if [ "$up" = 0 ]; then
  log "nginx did not come up:"; cat "$tmp/nginx.err" "$tmp/nginx/logs/error.log" >&2 2>/dev/null || true; exit 1
fi
log "nginx (pid $nginx_pid) on 127.0.0.1:$nginx_port"

# --- httpws proxy and the two agents ----------------------------------------------------
if [ "$direct_only" = 0 ]; then
  # shellcheck disable=SC2086
  "$bin" --log warn proxy --listen 127.0.0.1:0 $PROXY_ARGS >"$tmp/proxy.out" 2>"$tmp/proxy.err" &
  proxy_pid=$!; pids+=($proxy_pid)
  wait_for "$proxy_pid" "$tmp/proxy.out" 'listening on ws://'
  proxy_addr=$(grep -oE 'ws://[^ ]+' "$tmp/proxy.out" | head -n1)
  log "proxy (pid $proxy_pid) on $proxy_addr"

  # shellcheck disable=SC2086
  "$bin" --log warn endpoint --proxy "$proxy_addr" --name svc --serve "http://127.0.0.1:$nginx_port" \
    $ENDPOINT_ARGS >"$tmp/svc.out" 2>"$tmp/svc.err" &
  svc_pid=$!; pids+=($svc_pid)
  # shellcheck disable=SC2086
  "$bin" --log warn endpoint --proxy "$proxy_addr" --name client --listen 127.0.0.1:0 \
    $ENDPOINT_ARGS >"$tmp/client.out" 2>"$tmp/client.err" &
  client_pid=$!; pids+=($client_pid)
  wait_for "$svc_pid" "$tmp/svc.out" 'registered as svc'
  wait_for "$client_pid" "$tmp/client.out" 'registered as client'
  ingress=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$tmp/client.out" | head -n1 | sed 's|.*http://||')
  [ -n "$ingress" ] || { log "client endpoint printed no listen address"; cat "$tmp/client.out" >&2; exit 1; }
  log "svc agent (pid $svc_pid), client agent (pid $client_pid) ingress on $ingress"

  # One request by hand first, so a broken path fails loudly instead of as a wrk error count.
  body=$(curl -sS --max-time 5 -H 'Host: svc' -w ' [HTTP %{http_code}]' "http://$ingress/" 2>&1) || true
  if [ "$body" != $'ok\n [HTTP 200]' ] && [ "$body" != 'ok [HTTP 200]' ]; then
    log "sanity request through the tunnel failed: $(printf %q "$body")"; exit 1
  fi
  rss_idle="proxy=$(rss_kib "$proxy_pid") svc=$(rss_kib "$svc_pid") client=$(rss_kib "$client_pid")"
  cpu_before="proxy=$(cpu_ticks "$proxy_pid") svc=$(cpu_ticks "$svc_pid") client=$(cpu_ticks "$client_pid")"
fi

# --- runs --------------------------------------------------------------------------------
run_wrk() { # NAME REP ARGS...
  local name=$1 rep=$2; shift 2
  local f="$tmp/wrk.$name.$rep"
  log "rep $rep/$REPS: $name: wrk $(printf '%q ' "$@")"
  wrk "$@" >"$f" 2>&1 || { log "wrk failed:"; cat "$f" >&2; exit 1; }
  local rps errs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  errs=$(grep -E 'Socket errors|Non-2xx' "$f" | sed 's/^ *//' | paste -sd ';' - || true)
  log "  $rps req/s${errs:+  !! $errs}"
}
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
  MACHINE="nproc=$(nproc), $(uname -sr), $(awk -F: '/model name/ {sub(/^ */, "", $2); print $2; exit}' /proc/cpuinfo)" \
  DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" NGINX_V="$(nginx -v 2>&1 | sed 's/.*: //')" \
  WRK_V="$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')" \
  python3 - <<'PY'
import os, re, statistics

tmp, reps = os.environ["TMP"], int(os.environ["REPS"])
UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}

def dur_us(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", s)
    return float(m.group(1)) * UNIT[m.group(2)]

def parse(path):
    t = open(path).read()
    r = {"rps": float(re.search(r"^Requests/sec:\s+([\d.]+)", t, re.M).group(1))}
    for pct in ("50", "99"):
        r["p" + pct] = dur_us(re.search(r"^\s+%s%%\s+(\S+)" % pct, t, re.M).group(1))
    m = re.search(r"^\s+(\d+) requests in ([\d.]+\w+)", t, re.M)
    r["reqs"], r["secs"] = int(m.group(1)), dur_us(m.group(2)) / 1e6
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    r["sock"] = [int(x) for x in se.groups()] if se else [0, 0, 0, 0]
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non2xx"] = int(n2.group(1)) if n2 else 0
    return r

def fmt_lat(us):
    if us < 1000:
        return f"{us:.0f} µs"
    return f"{us / 1000:.2f} ms" if us < 1e6 else f"{us / 1e6:.2f} s"

def fmt_kib(k):
    return f"{int(k) / 1024:.1f} MiB"

runs = {}
for name in ("direct", "tunnel"):
    files = [f"{tmp}/wrk.{name}.{i}" for i in range(1, reps + 1)]
    if all(os.path.exists(f) for f in files):
        runs[name] = [parse(f) for f in files]

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
    sock = [sum(r["sock"][i] for r in rs) for i in range(4)]
    non2xx = sum(r["non2xx"] for r in rs)
    errs = []
    if any(sock):
        errs.append("socket connect/read/write/timeout " + "/".join(map(str, sock)))
    if non2xx:
        errs.append(f"non-2xx/3xx {non2xx}")
    print(f"| {name} | {m['rps']:,.0f} | {fmt_lat(m['p50'])} | {fmt_lat(m['p99'])} | "
          f"{m['rps'] / base:.2f} | {'; '.join(errs) or '0'} |")
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
