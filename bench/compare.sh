#!/usr/bin/env bash
# httpws side by side with its baselines and peers: one script, one run, interleaved
# repetitions, medians of REPS (DESIGN.md §4, issue 4).
#
#   bash bench/compare.sh [--only relay,http,idle] [--out FILE] [--results]
#
# --results also puts the report into bench/RESULTS.md, replacing the text between the
# `<!-- compare.sh:begin -->` and `<!-- compare.sh:end -->` markers (appended if absent).
#
# Sections (all by default; --only takes a list separated by , | or spaces, repeatable):
#   relay  relay vs direct echo with loadgen: proxy (--shards SHARDS) and examples/echo
#          (--threads SHARDS); REPS interleaved pairs of closed-loop runs (--conns LG_CONNS
#          --in-flight LG_IN_FLIGHT) give the max throughput of each; then REPS interleaved
#          pairs of open-loop runs at HALF × the relay's median max (--rate) give p50/p99.
#          Targets: throughput ratio ≥ 0.5; relay p50 ≤ direct p50 + 40 µs; relay p99 ≤ 2 ×
#          direct p99. Plots (loadgen --plot) go to PLOTS_DIR.
#   http   wrk against one nginx `return 200`: direct; nginx reverse proxy (a second nginx,
#          proxy_pass + upstream keepalive); rathole with the tcp and the websocket
#          transport; httpws (client agent → proxy → svc agent → nginx, as bench/tunnel_http.sh);
#          httpws_ingress (wrk → proxy's public HTTP ingress → public svc agent → nginx: the
#          same hops as rathole).
#          All run at once; each rep runs every target once, in an order rotated per rep.
#          req/s, p50, p99, RSS and CPU per request of each relay's processes.
#          Target: httpws ≥ rathole's req/s and ≤ its p99.
#   idle   proxy RSS per idle registered connection at IDLE_COUNTS (default 10000 and the
#          most the open-files limit allows), a fresh proxy per count, clients in a separate
#          process (loadgen --idle, or bench/idle_clients.py). Target ≤ 2 KiB (goal 1 KiB).
#
# env (defaults):  REPS=3 DURATION=10s NO_BUILD=0 KEEP_TMP=0
#   relay: WARMUP=2s LG_CONNS=1000 LG_IN_FLIGHT=256 LG_PAYLOAD=64 LG_PATTERN=pairs SHARDS=1
#          LG_THREADS=1 HALF=0.5 RELAY_PROXY_ARGS=--no-pin LG_ARGS= PLOTS_DIR=bench/plots
#   http:  CONNS=64 WRK_THREADS=1 PROXY_ARGS= ENDPOINT_ARGS=
#   idle:  IDLE_COUNTS="10000 max" IDLE_CLIENT=auto|loadgen|python IDLE_SOURCES=127.0.0.2-127.0.0.20
#          IDLE_PROXY_ARGS="--idle-timeout 1h" IDLE_SETTLE=3
# Every process is started by this script and stopped by its PID. Progress goes to stderr,
# the markdown report to stdout (and to FILE with --out). Exit status 1 if a section failed
# (its logs are then kept in the temp dir named on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

only_args=() out_file="" write_results=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only_args+=("$2"); shift 2 ;;
    --only=*) only_args+=("${1#--only=}"); shift ;;
    --out) out_file="$2"; shift 2 ;;
    --out=*) out_file="${1#--out=}"; shift ;;
    --results) write_results=1; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
sections=()
if [ ${#only_args[@]} -eq 0 ]; then
  sections=(relay http idle)
else
  for s in $(printf '%s ' "${only_args[@]}" | tr ',|' '  '); do
    case "$s" in relay|http|idle) sections+=("$s") ;; *) echo "unknown section: $s (relay, http, idle)" >&2; exit 2 ;; esac
  done
fi
has_section() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

REPS=${REPS:-3} DURATION=${DURATION:-10s} NO_BUILD=${NO_BUILD:-0}
WARMUP=${WARMUP:-2s} LG_CONNS=${LG_CONNS:-1000} LG_IN_FLIGHT=${LG_IN_FLIGHT:-256}
LG_PAYLOAD=${LG_PAYLOAD:-64} LG_PATTERN=${LG_PATTERN:-pairs} SHARDS=${SHARDS:-1}
LG_THREADS=${LG_THREADS:-1} HALF=${HALF:-0.5} RELAY_PROXY_ARGS=${RELAY_PROXY_ARGS---no-pin}
LG_ARGS=${LG_ARGS:-} PLOTS_DIR=${PLOTS_DIR:-bench/plots}
CONNS=${CONNS:-64} WRK_THREADS=${WRK_THREADS:-1} PROXY_ARGS=${PROXY_ARGS:-} ENDPOINT_ARGS=${ENDPOINT_ARGS:-}
IDLE_COUNTS=${IDLE_COUNTS:-10000 max} IDLE_CLIENT=${IDLE_CLIENT:-auto}
IDLE_SOURCES=${IDLE_SOURCES:-127.0.0.2-127.0.0.20} IDLE_PROXY_ARGS=${IDLE_PROXY_ARGS---idle-timeout 1h}
IDLE_SETTLE=${IDLE_SETTLE:-3}

LOG_TAG=compare
# shellcheck source=bench/lib.sh
. bench/lib.sh

# q ARGS...: a command line for the report (single quotes only where needed).
q() {
  local a out=()
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
# cmdlog SECTION LABEL CMD...: remember a command for the report's command list.
cmdlog() { local s=$1 l=$2; shift 2; printf '%s\t%s\n' "$l" "$(q "$@")" >>"$tmp/cmds.$s"; }

# --- tools and builds --------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bin=target/release/httpws lg=target/release/loadgen echo_bin=target/release/examples/echo
rathole_bin=""
has_section http && need_nginx_wrk
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
if has_section http; then
  rathole_bin=$(command -v rathole || true)
  [ -n "$rathole_bin" ] || { [ -x "$HOME/.cargo/bin/rathole" ] && rathole_bin=$HOME/.cargo/bin/rathole; } || true
  if [ -z "$rathole_bin" ]; then
    log "cargo install rathole --locked (minutes)"
    if ! cargo install rathole --locked >&2; then
      # rathole 0.5.0's lock file pins time 0.3.29, which current rustc rejects (E0282).
      log "cargo install rathole --locked failed; retrying without --locked"
      cargo install rathole >&2 || log "cargo install rathole failed: the http section runs without rathole"
    fi
    [ -x "$HOME/.cargo/bin/rathole" ] && rathole_bin=$HOME/.cargo/bin/rathole
  fi
fi
lg_ok=1
if [ "$NO_BUILD" != 1 ]; then
  log "cargo build --release --bin httpws --example echo"
  cargo build --release --quiet --bin httpws --example echo
  if has_section relay || { has_section idle && [ "$IDLE_CLIENT" != python ]; }; then
    log "cargo build --release -p loadgen"
    if ! cargo build --release --quiet -p loadgen >&2; then log "loadgen did not build"; lg_ok=0; fi
  fi
fi
[ -x "$lg" ] || lg_ok=0
[ -x "$bin" ] || { echo "$bin is missing (run without NO_BUILD=1)" >&2; exit 1; }

bench_init compare
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg) START_S=$SECONDS

# Each section runs in a subshell with its own PIDs and cleanup, so a failing section is
# reported and the next one still runs.
# stderr_tail NAME...: the last lines of each process's stderr, if any, into the log.
stderr_tail() {
  local n
  for n in "$@"; do
    if [ -s "$tmp/$n.err" ]; then
      log "$n stderr (last 5 of $(wc -l <"$tmp/$n.err") lines):"; tail -n 5 "$tmp/$n.err" >&2
      printf '%s\t%s\n' "$n" "$(tail -n 3 "$tmp/$n.err" | tr '\n\t' '  ')" >>"$tmp/stderr.notes"
    fi
  done
}

# =========================================================================================
# 1. relay vs direct echo (loadgen)
# =========================================================================================
# run_lg PHASE TARGET REP SERVER_PID ARGS...: one loadgen run → $tmp/lg.PHASE.TARGET.REP.{json,out,err,rc,cpu}
run_lg() {
  local phase=$1 target=$2 rep=$3 spid=$4; shift 4
  local f="$tmp/lg.$phase.$target.$rep" c0 c1 rc=0
  log "rep $rep/$REPS: $phase $target: loadgen $(q "$@")"
  c0=$(cpu_ticks "$spid")
  local TIMEFORMAT='%R %U %S'  # bash's time: loadgen's own wall, user and system seconds
  { time "$lg" "$@" --json "$f.json" >"$f.out" 2>"$f.err"; } 2>"$f.time" || rc=$?
  c1=$(cpu_ticks "$spid")
  echo "$rc" >"$f.rc"; echo "$((c1 - c0))" >"$f.cpu"
  kill -0 "$spid" 2>/dev/null || { log "the $target server (pid $spid) died during the run"; tail -n 20 "$f.err" >&2; return 1; }
  if [ -s "$f.json" ]; then
    python3 - "$f.json" "$rc" <<'PY' >&2
import json, sys
j = json.load(open(sys.argv[1])); r = j["requests"]; p = j["latency"]["percentiles"]
bad = {k: r[k] for k in ("timeouts", "lost", "duplicates", "unknown", "bad_messages", "protocol_errors") if r.get(k)}
if j.get("errors"): bad["errors"] = j["errors"]
if j["connections"].get("dropped"): bad["conns_dropped"] = j["connections"]["dropped"]
print(f"[compare]   {j['throughput_rps']:,.0f} req/s, p50 {p['p50_us']:.0f} µs, p99 {p['p99_us']:.0f} µs"
      f"{'  !! ' + str(bad) if bad else ''}{'  !! exit ' + sys.argv[2] if sys.argv[2] != '0' else ''}")
PY
  else
    log "  no JSON summary (exit $rc):"; tail -n 20 "$f.err" "$f.out" >&2
    return 1
  fi
}

section_relay() {
  if [ "$lg_ok" != 1 ]; then
    log "relay: skipped: $lg is missing or did not build"
    echo "skipped: \`$lg\` is missing or did not build" >"$tmp/skip.relay"
    return 0
  fi
  [ -x "$echo_bin" ] || { log "$echo_bin is missing"; return 1; }
  # shellcheck disable=SC2086
  spawn relay_proxy "$bin" --log warn proxy --listen 127.0.0.1:0 --shards "$SHARDS" $RELAY_PROXY_ARGS
  local proxy_pid=$spawned
  wait_for "$proxy_pid" "$tmp/relay_proxy.out" 'listening on ws://'
  local proxy_url; proxy_url=$(grep -oE 'ws://[^ ]+' "$tmp/relay_proxy.out" | head -n1)
  # shellcheck disable=SC2086
  cmdlog relay "proxy (pid $proxy_pid)" "$bin" --log warn proxy --listen 127.0.0.1:0 --shards "$SHARDS" $RELAY_PROXY_ARGS
  spawn echo "$echo_bin" --listen 127.0.0.1:0 --threads "$SHARDS"
  local echo_pid=$spawned
  wait_for "$echo_pid" "$tmp/echo.out" 'echo listening on ws://'
  local echo_url; echo_url=$(grep -oE 'ws://[^ ]+' "$tmp/echo.out" | head -n1)
  cmdlog relay "echo (pid $echo_pid)" "$echo_bin" --listen 127.0.0.1:0 --threads "$SHARDS"
  log "relay: proxy (pid $proxy_pid) on $proxy_url; echo (pid $echo_pid) on $echo_url: $(head -n1 "$tmp/echo.out")"
  echo "$(head -n1 "$tmp/echo.out")" >"$tmp/relay.echo_banner"
  echo "proxy=$(rss_kib "$proxy_pid") echo=$(rss_kib "$echo_pid")" >"$tmp/relay.rss_idle"

  # shellcheck disable=SC2206
  local common=(--conns "$LG_CONNS" --payload "$LG_PAYLOAD" --duration "$DURATION" --warmup "$WARMUP"
                --threads "$LG_THREADS" --quiet $LG_ARGS)
  local relay_t=(--proxy "$proxy_url" --pattern "$LG_PATTERN") direct_t=(--proxy "$echo_url" --direct)
  local closed=(--closed-loop --in-flight "$LG_IN_FLIGHT") rep plot=()
  mkdir -p "$PLOTS_DIR"
  cmdlog relay "max, relay" "$lg" "${relay_t[@]}" "${closed[@]}" "${common[@]}" --json FILE
  cmdlog relay "max, direct" "$lg" "${direct_t[@]}" "${closed[@]}" "${common[@]}" --json FILE
  for rep in $(seq "$REPS"); do
    run_lg max direct "$rep" "$echo_pid" "${direct_t[@]}" "${closed[@]}" "${common[@]}" --label direct
    [ "$rep" = "$REPS" ] && plot=(--plot "$PLOTS_DIR/relay_vs_direct_max.svg" --plot-with "$tmp/lg.max.direct.$rep.json" --label relay)
    run_lg max relay "$rep" "$proxy_pid" "${relay_t[@]}" "${closed[@]}" "${common[@]}" "${plot[@]}"
  done
  local max rate
  max=$(python3 -c 'import json, statistics, sys; print(statistics.median(json.load(open(f))["throughput_rps"] for f in sys.argv[1:]))' \
    "$tmp"/lg.max.relay.*.json)
  rate=$(python3 -c "print(max(1, round($max * $HALF)))")
  echo "$rate" >"$tmp/relay.rate"
  log "relay: median relay max ${max} req/s → open loop at --rate $rate"
  local open=(--rate "$rate")
  cmdlog relay "half, relay" "$lg" "${relay_t[@]}" "${open[@]}" "${common[@]}" --json FILE
  cmdlog relay "half, direct" "$lg" "${direct_t[@]}" "${open[@]}" "${common[@]}" --json FILE
  plot=()
  for rep in $(seq "$REPS"); do
    run_lg half direct "$rep" "$echo_pid" "${direct_t[@]}" "${open[@]}" "${common[@]}" --label direct
    [ "$rep" = "$REPS" ] && plot=(--plot "$PLOTS_DIR/relay_vs_direct_half.svg" --plot-with "$tmp/lg.half.direct.$rep.json" --label relay)
    run_lg half relay "$rep" "$proxy_pid" "${relay_t[@]}" "${open[@]}" "${common[@]}" "${plot[@]}"
  done
  echo "proxy=$(rss_kib "$proxy_pid"):$(hwm_kib "$proxy_pid") echo=$(rss_kib "$echo_pid"):$(hwm_kib "$echo_pid")" >"$tmp/relay.rss_after"
  stderr_tail relay_proxy echo
  stop_pid "$proxy_pid" "$echo_pid"
}

report_relay() {
  if [ -f "$tmp/skip.relay" ]; then
    printf '## 1. Relay vs direct echo (loadgen)\n\nSection %s\n' "$(cat "$tmp/skip.relay")"
    return 0
  fi
  TMP="$tmp" REPS="$REPS" HALF="$HALF" CLK_TCK="$(getconf CLK_TCK)" PLOTS_DIR="$PLOTS_DIR" \
  SETTINGS="SHARDS=$SHARDS LG_THREADS=$LG_THREADS LG_CONNS=$LG_CONNS LG_IN_FLIGHT=$LG_IN_FLIGHT LG_PAYLOAD=$LG_PAYLOAD LG_PATTERN=$LG_PATTERN DURATION=$DURATION WARMUP=$WARMUP" \
  python3 - <<'PY'
import glob, json, os, statistics
tmp, reps, tck = os.environ["TMP"], int(os.environ["REPS"]), int(os.environ["CLK_TCK"])
med = statistics.median

def load(phase, target):
    out = []
    for i in range(1, reps + 1):
        f = f"{tmp}/lg.{phase}.{target}.{i}"
        if not os.path.exists(f + ".json"):
            continue
        j = json.load(open(f + ".json"))
        j["_rc"] = int(open(f + ".rc").read())
        j["_cpu_s"] = int(open(f + ".cpu").read()) / tck
        wall, user, sys_ = (float(x) for x in open(f + ".time").read().split()[-3:])
        j["_wall_s"], j["_lg_cpu_s"] = wall, user + sys_
        out.append(j)
    return out

def pct(j, k):
    return j["latency"]["percentiles"].get(k + "_us", float("nan"))

def fmt_us(us):
    return f"{us:,.0f} µs" if us < 10000 else f"{us / 1000:,.1f} ms"

def problems(rs):
    agg = {}
    for j in rs:
        r = j["requests"]
        for k in ("timeouts", "late", "lost", "duplicates", "unknown", "bad_messages", "protocol_errors"):
            agg[k] = agg.get(k, 0) + (r.get(k) or 0)
        for k, v in (j.get("errors") or {}).items():
            agg["error " + k] = agg.get("error " + k, 0) + v
        for k, v in (j.get("indications") or {}).items():
            agg[":error " + k] = agg.get(":error " + k, 0) + v
        agg["conns dropped"] = agg.get("conns dropped", 0) + (j["connections"].get("dropped") or 0)
        agg["conns failed"] = agg.get("conns failed", 0) + (j["connections"].get("failed") or 0)
        if j["_rc"] != 0:
            agg["non-zero exits"] = agg.get("non-zero exits", 0) + 1
        if not j.get("exactly_once", True):
            agg["exactly-once check FAILED"] = agg.get("exactly-once check FAILED", 0) + 1
    return ", ".join(f"{k} {v}" for k, v in agg.items() if v) or "0"

data = {(p, t): load(p, t) for p in ("max", "half") for t in ("relay", "direct")}
rate = int(open(f"{tmp}/relay.rate").read())
s = {}
print("## 1. Relay vs direct echo (loadgen)\n")
print(f"Settings: `{os.environ['SETTINGS']}`. {open(tmp + '/relay.echo_banner').read().strip()}.  ")
print("Relay: loadgen endpoints call each other through the proxy (2 reads + 2 writes per round "
      "trip in the proxy); direct: each request comes back from examples/echo (1 + 1). "
      "Max = closed loop; then open loop at "
      f"{float(os.environ['HALF']):.0%} of the relay's median max = **{rate:,} req/s** for both "
      "(latency from the intended send time).\n")
print(f"| phase | target | req/s (median of {reps}) | p50 | p90 | p99 | p99.9 | max | server CPU per request (cores) | loadgen CPU per request (cores) | problems |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (p, t), rs in data.items():
    if not rs:
        print(f"| {p} | {t} | (no run) | | | | | | | |")
        continue
    m = {k: med(pct(j, k) for j in rs) for k in ("p50", "p90", "p99", "p99.9", "max")}
    m["rps"] = med(j["throughput_rps"] for j in rs)
    ok, wall = max(1, sum(j["requests"]["ok"] for j in rs)), sum(j["_wall_s"] for j in rs)
    cpu = f"{sum(j['_cpu_s'] for j in rs) / ok * 1e6:.1f} µs ({sum(j['_cpu_s'] for j in rs) / wall:.2f})"
    lcpu = f"{sum(j['_lg_cpu_s'] for j in rs) / ok * 1e6:.1f} µs ({sum(j['_lg_cpu_s'] for j in rs) / wall:.2f})"
    s[(p, t)] = m
    phase = "max (closed loop)" if p == "max" else f"{rate:,}/s (open loop)"
    print(f"| {phase} | {t} | {m['rps']:,.0f} | {fmt_us(m['p50'])} | {fmt_us(m['p90'])} | {fmt_us(m['p99'])} | "
          f"{fmt_us(m['p99.9'])} | {fmt_us(m['max'])} | {cpu} | {lcpu} | {problems(rs)} |")
print()
print("Per rep (req/s / p50 / p99): " + "; ".join(
    f"{p} {t} " + ", ".join(f"{j['throughput_rps']:,.0f}/{pct(j, 'p50'):,.0f}/{pct(j, 'p99'):,.0f} µs" for j in rs)
    for (p, t), rs in data.items() if rs) + ".  ")
print("CPU per request = utime + stime over the whole loadgen run (ramp and warm-up included) / "
      "the requests answered OK in it (warm-up included): the server from /proc/PID/stat, loadgen from "
      "bash's `time`; in parentheses, cores used over the run's wall time. In relay mode loadgen plays "
      "both endpoints of every round trip (it sends and answers each request), so it also does about "
      "twice the work per round trip of the direct mode.")
rss0 = dict(kv.split("=") for kv in open(tmp + "/relay.rss_idle").read().split())
rss1 = dict(kv.split("=") for kv in open(tmp + "/relay.rss_after").read().split())
print("RSS: " + ", ".join(f"{n} {int(rss0[n]) / 1024:.1f} MiB before the runs, {int(rss1[n].split(':')[0]) / 1024:.1f} MiB after "
      f"(peak {int(rss1[n].split(':')[1]) / 1024:.1f} MiB)" for n in ("proxy", "echo")) + ".")
plots = [p for p in ("relay_vs_direct_max.svg", "relay_vs_direct_half.svg") if os.path.exists(os.path.join(os.environ["PLOTS_DIR"], p))]
if plots:
    print("Plots (last rep, relay with the direct run of the same rep): " + ", ".join(f"`{os.environ['PLOTS_DIR']}/{p}`" for p in plots) + ".")
print()
rows = []
if ("max", "relay") in s and ("max", "direct") in s:
    r = s[("max", "relay")]["rps"] / s[("max", "direct")]["rps"]
    rows.append(("relay / direct max throughput", f"{r:.2f} ({s[('max', 'relay')]['rps']:,.0f} / {s[('max', 'direct')]['rps']:,.0f} req/s)", "≥ 0.50", r >= 0.5))
if ("half", "relay") in s and ("half", "direct") in s:
    a, b = s[("half", "relay")], s[("half", "direct")]
    d = a["p50"] - b["p50"]
    rows.append((f"relay p50 − direct p50 at {rate:,}/s", f"{d:+,.0f} µs ({a['p50']:,.0f} − {b['p50']:,.0f})", "≤ 40 µs", d <= 40))
    r = a["p99"] / b["p99"]
    rows.append((f"relay p99 / direct p99 at {rate:,}/s", f"{r:.2f} ({a['p99']:,.0f} / {b['p99']:,.0f} µs)", "≤ 2", r <= 2))
with open(tmp + "/summary.relay", "w") as f:
    for name, val, target, ok in rows:
        f.write(f"| {name} | {val} | {target} | {'met' if ok else '**not met**'} |\n")
PY
}

# =========================================================================================
# 2. HTTP tunnel vs peers (wrk)
# =========================================================================================
# rathole_start TRANSPORT NAME BACKEND_PORT: rathole server + client for service "svc";
# sets rh_server rh_client rh_port.
rathole_start() {
  local t=$1 name=$2 backend=$3 dir=$tmp/$2 ctrl ws=""
  ctrl=$(free_port); rh_port=$(free_port)
  mkdir -p "$dir"
  [ "$t" = websocket ] && ws=$'[server.transport.websocket]\ntls = false\n'
  cat >"$dir/server.toml" <<EOF
[server]
bind_addr = "127.0.0.1:$ctrl"
default_token = "bench"

[server.transport]
type = "$t"
$ws
[server.services.svc]
bind_addr = "127.0.0.1:$rh_port"
EOF
  cat >"$dir/client.toml" <<EOF
[client]
remote_addr = "127.0.0.1:$ctrl"
default_token = "bench"

[client.transport]
type = "$t"
${ws//server./client.}
[client.services.svc]
local_addr = "127.0.0.1:$backend"
EOF
  spawn "${name}_server" env RUST_LOG=warn "$rathole_bin" --server "$dir/server.toml"
  rh_server=$spawned
  spawn "${name}_client" env RUST_LOG=warn "$rathole_bin" --client "$dir/client.toml"
  rh_client=$spawned
  cmdlog http "$name server (pid $rh_server)" env RUST_LOG=warn "$rathole_bin" --server "$dir/server.toml"
  cmdlog http "$name client (pid $rh_client)" env RUST_LOG=warn "$rathole_bin" --client "$dir/client.toml"
  {
    echo "$name server.toml:"; sed 's/^/    /' "$dir/server.toml"
    echo "$name client.toml:"; sed 's/^/    /' "$dir/client.toml"
  } >>"$tmp/http.configs"
  kill -0 "$rh_client" 2>/dev/null || { log "$name client exited:"; cat "$tmp/${name}_client.err" >&2; return 1; }
  wait_http "$rh_server" "http://127.0.0.1:$rh_port/" "" 30 || { tail -n 20 "$tmp/${name}_server.err" "$tmp/${name}_client.err" >&2; return 1; }
  log "$name: server (pid $rh_server), client (pid $rh_client), service on 127.0.0.1:$rh_port"
}

section_http() {
  local backend_port rp_port
  backend_port=$(free_port)
  nginx_start backend "$(nginx_backend_server "$backend_port")" "http://127.0.0.1:$backend_port/"
  local backend_pid=$spawned backend_worker
  backend_worker=$(child_pids "$backend_pid" | head -n1)
  log "backend nginx (pid $backend_pid, worker $backend_worker) on 127.0.0.1:$backend_port"
  cmdlog http "backend nginx (pid $backend_pid)" nginx -p "$tmp/backend" -c "$tmp/backend/nginx.conf"

  rp_port=$(free_port)
  nginx_start nginx_rp "    upstream backend {
        server 127.0.0.1:$backend_port;
        keepalive $CONNS;
    }
    server {
        listen 127.0.0.1:$rp_port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }" "http://127.0.0.1:$rp_port/"
  local rp_pid=$spawned rp_worker
  rp_worker=$(child_pids "$rp_pid" | head -n1)
  log "nginx reverse proxy (pid $rp_pid, worker $rp_worker) on 127.0.0.1:$rp_port"
  cmdlog http "nginx reverse proxy (pid $rp_pid)" nginx -p "$tmp/nginx_rp" -c "$tmp/nginx_rp/nginx.conf"
  { echo "backend nginx.conf:"; sed 's/^/    /' "$tmp/backend/nginx.conf"
    echo "nginx reverse proxy nginx.conf (http block):"; sed -n '/upstream backend/,$p' "$tmp/nginx_rp/nginx.conf" | sed 's/^/    /'
  } >>"$tmp/http.configs"

  local targets=(direct nginx_proxy) rt_s="" rt_c="" rt_port="" rw_s="" rw_c="" rw_port=""
  if [ -n "$rathole_bin" ]; then
    rathole_start tcp rathole_tcp "$backend_port"
    rt_s=$rh_server rt_c=$rh_client rt_port=$rh_port
    rathole_start websocket rathole_ws "$backend_port"
    rw_s=$rh_server rw_c=$rh_client rw_port=$rh_port
    targets+=(rathole_tcp rathole_ws)
  else
    log "rathole is not installed: the http section runs without it"
    echo "rathole could not be installed (see stderr): no rathole targets in this run." >"$tmp/http.norathole"
  fi
  targets+=(httpws httpws_ingress)

  httpws_tunnel_start "$bin" "$backend_port" "$PROXY_ARGS" "$ENDPOINT_ARGS" http_
  httpws_ingress_start "$bin" "$backend_port" "$PROXY_ARGS" "$ENDPOINT_ARGS" ingress_
  # shellcheck disable=SC2086
  {
    cmdlog http "httpws proxy (pid $proxy_pid)" "$bin" --log warn proxy --listen 127.0.0.1:0 $PROXY_ARGS
    cmdlog http "httpws svc agent (pid $svc_pid)" "$bin" --log warn endpoint --proxy "$proxy_addr" --name svc --serve "http://127.0.0.1:$backend_port" $ENDPOINT_ARGS
    cmdlog http "httpws client agent (pid $client_pid)" "$bin" --log warn endpoint --proxy "$proxy_addr" --name client --listen 127.0.0.1:0 $ENDPOINT_ARGS
    cmdlog http "httpws ingress proxy (pid $ig_proxy_pid)" "$bin" --log warn proxy --listen 127.0.0.1:0 $PROXY_ARGS
    cmdlog http "httpws public svc agent (pid $ig_svc_pid)" "$bin" --log warn endpoint --proxy "ws://$ig_addr" --name svc --public --serve "http://127.0.0.1:$backend_port" $ENDPOINT_ARGS
  }

  # target → URL, extra wrk args, relay processes (name=pid)
  local -A url extra procs
  url[direct]="http://127.0.0.1:$backend_port/"; procs[direct]=""
  url[nginx_proxy]="http://127.0.0.1:$rp_port/"; procs[nginx_proxy]="worker=$rp_worker"
  url[rathole_tcp]="http://127.0.0.1:$rt_port/"; procs[rathole_tcp]="server=$rt_s client=$rt_c"
  url[rathole_ws]="http://127.0.0.1:$rw_port/"; procs[rathole_ws]="server=$rw_s client=$rw_c"
  url[httpws]="http://$ingress/"; procs[httpws]="proxy=$proxy_pid svc_agent=$svc_pid client_agent=$client_pid"
  extra[httpws]="Host: svc"
  url[httpws_ingress]="http://$ig_addr/"; procs[httpws_ingress]="proxy=$ig_proxy_pid svc_agent=$ig_svc_pid"
  extra[httpws_ingress]="Host: svc"
  local t kv

  # ticks_line "name=pid ...": "name=ticks ..." (CPU of each of those processes)
  ticks_line() { local kv o=""; for kv in $1; do o+="${kv%%=*}=$(cpu_ticks "${kv#*=}") "; done; echo "$o"; }
  rss_line() { local kv o=""; for kv in $1; do o+="${kv%%=*}=$(rss_kib "${kv#*=}"):$(hwm_kib "${kv#*=}") "; done; echo "$o"; }
  for t in "${targets[@]}"; do
    echo "$(rss_line "${procs[$t]}")" >"$tmp/http.rss_idle.$t"
    local a=(--latency -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION")
    [ -n "${extra[$t]:-}" ] && a+=(-H "${extra[$t]}")
    cmdlog http "wrk → $t" wrk "${a[@]}" "${url[$t]}"
  done

  local rep i n=${#targets[@]}
  for rep in $(seq "$REPS"); do
    for i in $(seq 0 $((n - 1))); do
      t=${targets[$(((i + rep - 1) % n))]}
      local args=(--latency -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION")
      [ -n "${extra[$t]:-}" ] && args+=(-H "${extra[$t]}")
      local r0 r1
      r0=$(ticks_line "${procs[$t]} backend=$backend_worker")
      run_wrk "$t" "$rep" "${args[@]}" "${url[$t]}"
      r1=$(ticks_line "${procs[$t]} backend=$backend_worker")
      printf '%s\n%s\n' "$r0" "$r1" >"$tmp/cpu.$t.$rep"
      echo "$i" >"$tmp/order.$t.$rep"
      for kv in ${procs[$t]}; do
        kill -0 "${kv#*=}" 2>/dev/null || { log "$t: process ${kv%%=*} (pid ${kv#*=}) died"; return 1; }
      done
    done
  done
  for t in "${targets[@]}"; do echo "$(rss_line "${procs[$t]}")" >"$tmp/http.rss_after.$t"; done
  echo "$(rss_kib "$backend_worker"):$(hwm_kib "$backend_worker")" >"$tmp/http.rss_backend"
  stderr_tail backend nginx_rp rathole_tcp_server rathole_tcp_client rathole_ws_server rathole_ws_client http_proxy http_svc http_client ingress_proxy ingress_svc
  # shellcheck disable=SC2086
  stop_pid "$proxy_pid" "$svc_pid" "$client_pid" "$ig_proxy_pid" "$ig_svc_pid" $rt_c $rt_s $rw_c $rw_s "$rp_pid" "$backend_pid"
}

report_http() {
  TMP="$tmp" REPS="$REPS" CLK_TCK="$(getconf CLK_TCK)" \
  SETTINGS="CONNS=$CONNS WRK_THREADS=$WRK_THREADS DURATION=$DURATION${PROXY_ARGS:+ PROXY_ARGS='$PROXY_ARGS'}${ENDPOINT_ARGS:+ ENDPOINT_ARGS='$ENDPOINT_ARGS'}" \
  python3 - <<'PY'
import os, statistics
exec(os.environ["PY_WRK"])
tmp, reps, tck = os.environ["TMP"], int(os.environ["REPS"]), int(os.environ["CLK_TCK"])
med = statistics.median
targets = ["direct", "nginx_proxy", "rathole_tcp", "rathole_ws", "httpws", "httpws_ingress"]
path = {
    "direct": "wrk → nginx",
    "nginx_proxy": "wrk → nginx (proxy_pass, upstream keepalive) → nginx",
    "rathole_tcp": "wrk → rathole server → tcp transport → rathole client → nginx",
    "rathole_ws": "wrk → rathole server → websocket transport → rathole client → nginx",
    "httpws": "wrk → client agent → proxy → svc agent → nginx",
    "httpws_ingress": "wrk → proxy (public HTTP ingress) → svc agent → nginx",
}
runs, cpu = {}, {}
for t in targets:
    fs = [f"{tmp}/wrk.{t}.{i}" for i in range(1, reps + 1)]
    if all(os.path.exists(f) for f in fs):
        runs[t] = [parse_wrk(f) for f in fs]
        # per process: CPU seconds during this target's runs, summed over reps
        c = {}
        for i in range(1, reps + 1):
            l0, l1 = open(f"{tmp}/cpu.{t}.{i}").read().splitlines()
            a = dict(kv.split("=") for kv in l0.split()); b = dict(kv.split("=") for kv in l1.split())
            for k in a:
                c[k] = c.get(k, 0) + (int(b[k]) - int(a[k])) / tck
        cpu[t] = c

def procs(kind, t):
    out = {}
    for kv in open(f"{tmp}/http.rss_{kind}.{t}").read().split():
        name, v = kv.split("=")
        rss, hwm = v.split(":")
        out[name] = (int(rss), int(hwm))
    return out

m = {t: {k: med(r[k] for r in rs) for k in ("rps", "p50", "p99")} for t, rs in runs.items()}
base = m["direct"]["rps"] if "direct" in m else None
print("## 2. HTTP through a tunnel vs peers (wrk → nginx `return 200`)\n")
print(f"Settings: `{os.environ['SETTINGS']}`; every target gets the same wrk command (httpws adds "
      f"`-H 'Host: svc'`); all relays run side by side, and each rep runs every target once, the order rotated by one per rep.\n")
if os.path.exists(tmp + "/http.norathole"):
    print("**" + open(tmp + "/http.norathole").read().strip() + "**\n")
print(f"| target | path | req/s (median of {reps}) | p50 | p99 | max (worst rep) | req/s vs direct | relay RSS before → after (peak) | relay CPU per request | backend nginx CPU per request | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for t, rs in runs.items():
    reqs = sum(r["reqs"] for r in rs)
    rcpu = sum(v for k, v in cpu[t].items() if k != "backend") * 1e6 / reqs
    bcpu = cpu[t]["backend"] * 1e6 / reqs
    p0, p1 = procs("idle", t), procs("after", t)
    if p0:
        rss = (f"{sum(v[0] for v in p0.values()) / 1024:.1f} → {sum(v[0] for v in p1.values()) / 1024:.1f} MiB "
               f"({sum(v[1] for v in p1.values()) / 1024:.1f})")
        rc = f"{rcpu:.1f} µs"
    else:
        rss, rc = "—", "—"
    print(f"| {t} | {path[t]} | {m[t]['rps']:,.0f} | {fmt_lat(m[t]['p50'])} | {fmt_lat(m[t]['p99'])} | {fmt_lat(max(r['max'] for r in rs))} | "
          f"{m[t]['rps'] / base:.2f} | {rss} | {rc} | {bcpu:.1f} µs | {wrk_errors(rs)} |")
print()
print("Per rep (reps 1, 2, 3; req/s / p50 / p99 / max): " + "; ".join(
    f"{t} " + ", ".join(f"{r['rps']:,.0f}/{fmt_lat(r['p50'])}/{fmt_lat(r['p99'])}/{fmt_lat(r['max'])}" for r in rs)
    for t, rs in runs.items()) + ".  ")
print("wrk 4 corrects its percentiles for coordinated omission (a response slower than the mean "
      "interval between one connection's requests adds synthetic samples), so one stall of all "
      "connections for a few hundred ms shows up as a p99 of that size in that rep; max shows it.\n")
print("| relay process | RSS before the runs | RSS after | peak RSS (VmHWM) | CPU during its runs | CPU per request |")
print("|---|---|---|---|---|---|")
for t, rs in runs.items():
    p0, p1 = procs("idle", t), procs("after", t)
    secs, reqs = sum(r["secs"] for r in rs), sum(r["reqs"] for r in rs)
    for name in p1:
        print(f"| {t} {name} | {p0[name][0] / 1024:.1f} MiB | {p1[name][0] / 1024:.1f} MiB | {p1[name][1] / 1024:.1f} MiB | "
              f"{cpu[t][name] / secs:.2f} cores | {cpu[t][name] * 1e6 / reqs:.1f} µs |")
b = open(f"{tmp}/http.rss_backend").read().strip().split(":")
print(f"\nBackend nginx worker: RSS {int(b[0]) / 1024:.1f} MiB (peak {int(b[1]) / 1024:.1f} MiB). "
      "CPU per request = utime + stime (from /proc/PID/stat, all the relay's processes, summed) "
      "during that target's wrk runs / its requests. nginx reverse proxy: its worker process "
      "(the master is idle). rathole: server + client. httpws: proxy + both agents. "
      "httpws_ingress: proxy + svc agent.\n")
rows = []
if "httpws" in m:
    print("| httpws path vs | req/s ratio (target ≥ 1) | p99 ratio (target ≤ 1) |")
    print("|---|---|---|")
    for ours in ("httpws", "httpws_ingress"):
        if ours not in m:
            continue
        for peer in ("rathole_tcp", "rathole_ws", "nginx_proxy"):
            if peer in m:
                rr, pr = m[ours]["rps"] / m[peer]["rps"], m[ours]["p99"] / m[peer]["p99"]
                print(f"| {ours} vs {peer} | {rr:.2f} | {pr:.2f} |")
                if peer.startswith("rathole"):
                    rows.append((f"{ours} / {peer} req/s", f"{rr:.2f} ({m[ours]['rps']:,.0f} / {m[peer]['rps']:,.0f})", "≥ 1", rr >= 1))
                    rows.append((f"{ours} / {peer} p99", f"{pr:.2f} ({fmt_lat(m[ours]['p99'])} / {fmt_lat(m[peer]['p99'])})", "≤ 1", pr <= 1))
    print()
cfg = f"{tmp}/http.configs"
if os.path.exists(cfg):
    print("<details><summary>configurations</summary>\n\n```\n" + open(cfg).read().rstrip() + "\n```\n</details>\n")
with open(tmp + "/summary.http", "w") as f:
    for name, val, target, ok in rows:
        f.write(f"| {name} | {val} | {target} | {'met' if ok else '**not met**'} |\n")
PY
}

# =========================================================================================
# 3. idle memory per registered connection
# =========================================================================================
idle_run() { # N REP CLIENT
  local n=$1 rep=$2 client=$3 name=idle.$1.$2
  # shellcheck disable=SC2086
  spawn "$name.proxy" "$bin" --log warn proxy --listen 127.0.0.1:0 $IDLE_PROXY_ARGS
  local proxy=$spawned
  wait_for "$proxy" "$tmp/$name.proxy.out" 'listening on ws://'
  local url; url=$(grep -oE 'ws://[^ ]+' "$tmp/$name.proxy.out" | head -n1)
  sleep 0.5
  local before fd0 after fd1 est rc=0 c
  before=$(rss_kib "$proxy"); fd0=$(fd_count "$proxy")
  log "rep $rep/$REPS: idle $n ($client): proxy (pid $proxy) RSS $before KiB"
  if [ "$client" = loadgen ]; then
    local hold=$((IDLE_SETTLE + 5))
    local a=(--proxy "$url" --idle --conns "$n" --source "$IDLE_SOURCES" --duration "${hold}s" --warmup 0s --quiet)
    [ "$rep" = 1 ] && cmdlog idle "clients for $n" "$lg" "${a[@]}" --json FILE
    spawn "$name.lg" "$lg" "${a[@]}" --json "$tmp/$name.json"
    c=$spawned
    wait_for "$c" "$tmp/$name.lg.err" 'connections established in' 300
    est=$(grep -oE '[0-9]+/[0-9]+ connections established' "$tmp/$name.lg.err" | head -n1 | cut -d/ -f1)
    sleep "$IDLE_SETTLE"
    kill -0 "$c" 2>/dev/null || log "loadgen exited before the RSS was read (hold ${hold}s too short?)"
    after=$(rss_kib "$proxy"); fd1=$(fd_count "$proxy")
    wait "$c" || rc=$?
    stop_pid "$c"
  else
    local fifo="$tmp/$name.fifo"
    mkfifo "$fifo"
    [ "$rep" = 1 ] && cmdlog idle "clients for $n" python3 bench/idle_clients.py --port "${url##*:}" --conns "$n" --sources 19
    python3 bench/idle_clients.py --port "${url##*:}" --conns "$n" --sources 19 <"$fifo" >"$tmp/$name.py.out" 2>"$tmp/$name.py.err" &
    c=$!; pids+=("$c")
    exec 3>"$fifo"
    wait_for "$c" "$tmp/$name.py.out" '^ready' 300
    est=$(awk '/^ready/ {print $2}' "$tmp/$name.py.out")
    sleep "$IDLE_SETTLE"
    after=$(rss_kib "$proxy"); fd1=$(fd_count "$proxy")
    exec 3>&-
    wait "$c" || rc=$?
    stop_pid "$c"
  fi
  kill -0 "$proxy" 2>/dev/null || { log "the proxy died"; return 1; }
  stderr_tail "$name.proxy"
  stop_pid "$proxy"
  log "  $est established; proxy RSS $before → $after KiB, fds $fd0 → $fd1; $(python3 -c "print(f'{($after - $before) / $n:.2f}')") KiB per connection"
  echo "$n $rep $before $after $est $fd0 $fd1 $rc" >>"$tmp/idle.tsv"
}

section_idle() {
  local client=$IDLE_CLIENT
  if [ "$client" = auto ]; then
    client=python
    [ "$lg_ok" = 1 ] && client=loadgen
  fi
  [ "$client" != loadgen ] || [ "$lg_ok" = 1 ] || { log "idle: IDLE_CLIENT=loadgen but $lg is missing"; return 1; }
  echo "$client" >"$tmp/idle.client"
  # The most connections the per-process open-files limit allows, less room for the
  # proxy's own descriptors, in thousands.
  local hard max counts=() c
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=1048576
  max=$(( (hard - 1000) / 1000 * 1000 ))
  for c in $IDLE_COUNTS; do [ "$c" = max ] && counts+=("$max") || counts+=("$c"); done
  echo "$hard" >"$tmp/idle.nofile"
  # shellcheck disable=SC2086
  cmdlog idle "proxy (fresh per count and rep)" "$bin" --log warn proxy --listen 127.0.0.1:0 $IDLE_PROXY_ARGS
  local rep n
  for rep in $(seq "$REPS"); do
    for n in "${counts[@]}"; do idle_run "$n" "$rep" "$client"; done
  done
}

report_idle() {
  TMP="$tmp" REPS="$REPS" SETTLE="$IDLE_SETTLE" \
  SETTINGS="IDLE_COUNTS='$IDLE_COUNTS' IDLE_PROXY_ARGS='$IDLE_PROXY_ARGS' IDLE_SOURCES=$IDLE_SOURCES" \
  python3 - <<'PY'
import os, statistics, json
tmp, reps = os.environ["TMP"], int(os.environ["REPS"])
med = statistics.median
client = open(tmp + "/idle.client").read().strip()
rows = [l.split() for l in open(tmp + "/idle.tsv")]
by = {}
for n, rep, b, a, est, fd0, fd1, rc in rows:
    by.setdefault(int(n), []).append(dict(rep=int(rep), b=int(b), a=int(a), est=int(est or 0), fd0=int(fd0), fd1=int(fd1), rc=int(rc)))
print("## 3. Idle memory per registered connection\n")
print(f"Settings: `{os.environ['SETTINGS']}`; clients: "
      + ("`loadgen --idle` (a separate process)" if client == "loadgen" else "`bench/idle_clients.py` (a separate process)")
      + f"; open files capped at {open(tmp + '/idle.nofile').read().strip()} per process. A fresh proxy per count and rep; "
      f"per connection = (proxy RSS {os.environ['SETTLE']} s after the last connection registered − RSS before any) / connections.\n")
print(f"| connections | established | proxy fds | RSS before | RSS after | per connection (median of {reps}) | per rep |")
print("|---|---|---|---|---|---|---|")
per = {}
for n, rs in sorted(by.items()):
    k = [(r["a"] - r["b"]) / r["est"] if r["est"] else float("nan") for r in rs]
    per[n] = med(k)
    bad = [r for r in rs if r["est"] != n or r["rc"] != 0]
    note = " **(" + "; ".join(f"rep {r['rep']}: {r['est']} established, exit {r['rc']}" for r in bad) + ")**" if bad else ""
    print(f"| {n:,} | {med(r['est'] for r in rs):,.0f}{note} | {med(r['fd1'] for r in rs):,.0f} | {med(r['b'] for r in rs) / 1024:.1f} MiB | "
          f"{med(r['a'] for r in rs) / 1024:.1f} MiB | **{per[n]:.2f} KiB** ({per[n] * 1024:.0f} B) | "
          + ", ".join(f"{x:.2f}" for x in k) + " KiB |")
ns = sorted(by)
if len(ns) >= 2:
    lo, hi = ns[0], ns[-1]
    marg = []
    for i in range(1, reps + 1):
        a = [r for r in by[lo] if r["rep"] == i]; b = [r for r in by[hi] if r["rep"] == i]
        if a and b:
            marg.append((b[0]["a"] - a[0]["a"]) / (b[0]["est"] - a[0]["est"]))
    if marg:
        print(f"\nMarginal cost from {lo:,} to {hi:,} connections (RSS after, per rep, median): **{med(marg):.2f} KiB** per connection.")
if client == "loadgen":
    drops = []
    for n, rs in by.items():
        for r in rs:
            f = f"{tmp}/idle.{n}.{r['rep']}.json"
            if os.path.exists(f):
                d = json.load(open(f))["connections"].get("dropped")
                if d:
                    drops.append(f"{n} rep {r['rep']}: {d}")
    print("\nConnections the proxy dropped while idle (loadgen): " + (", ".join(drops) if drops else "none") + ".")
print()
with open(tmp + "/summary.idle", "w") as f:
    for n in sorted(per):
        f.write(f"| proxy RSS per idle connection at {n:,} | {per[n]:.2f} KiB | ≤ 2 KiB (goal 1) | {'met' if per[n] <= 2 else '**not met**'} |\n")
PY
}

# =========================================================================================
failed=()
for s in "${sections[@]}"; do
  log "=== section $s ==="
  set +e
  (
    set -e
    pids=()
    trap stop_pids EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "section_$s"
  )
  rc=$?
  set -e
  [ "$rc" = 130 ] || [ "$rc" = 143 ] && exit "$rc"
  if [ "$rc" = 0 ]; then
    "report_$s" >"$tmp/report.$s" 2>"$tmp/report.$s.err" || { rc=$?; log "report for $s failed:"; cat "$tmp/report.$s.err" >&2; }
  fi
  if [ "$rc" != 0 ]; then
    failed+=("$s")
    printf '## %s\n\n**Section %s failed (exit %s)**; logs in %s. Last progress lines are on stderr.\n' "$s" "$s" "$rc" "$tmp" >"$tmp/report.$s"
  fi
done

# --- report ------------------------------------------------------------------------------
cmd="REPS=$REPS DURATION=$DURATION"
has_section relay && cmd+=" SHARDS=$SHARDS LG_THREADS=$LG_THREADS LG_CONNS=$LG_CONNS LG_IN_FLIGHT=$LG_IN_FLIGHT"
has_section http && cmd+=" CONNS=$CONNS"
cmd+=" bash bench/compare.sh"
[ ${#only_args[@]} -gt 0 ] && cmd+=" --only $(IFS=,; echo "${sections[*]}")"
versions="httpws $("$bin" --version 2>/dev/null | awk '{print $2}')"
has_section http && versions+=", $(nginx -v 2>&1 | sed 's/.*: //'), wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), rathole $("$rathole_bin" --version 2>/dev/null | awk '/Build Version/ {print $3}')"
[ "$lg_ok" = 1 ] && versions+=", loadgen $("$lg" --version 2>/dev/null | awk '{print $2}')"
report=$(
  echo "# bench/compare.sh"
  echo
  echo "Date: $START_DATE. Machine: $(machine_desc); load average $START_LOAD at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; run time $(( (SECONDS - START_S) / 60 )) min.  "
  echo "Versions: $versions.  "
  echo "Command: \`$cmd\`  "
  echo "Every figure is a median over REPS=$REPS interleaved repetitions; the load generator shares the cores with what it measures."
  echo
  if compgen -G "$tmp/summary.*" >/dev/null; then
    echo "## Targets (DESIGN.md §4)"
    echo
    echo "| measure | this run | target | |"
    echo "|---|---|---|---|"
    for s in relay http idle; do [ -f "$tmp/summary.$s" ] && cat "$tmp/summary.$s"; done
    echo
  fi
  for s in "${sections[@]}"; do cat "$tmp/report.$s"; echo; done
  echo "## Commands"
  echo
  for s in "${sections[@]}"; do
    [ -f "$tmp/cmds.$s" ] || continue
    echo "$s:"
    echo
    while IFS=$'\t' read -r label c; do echo "- $label: \`$c\`"; done <"$tmp/cmds.$s"
    echo
  done
  if [ -s "$tmp/stderr.notes" ]; then
    echo "## Process stderr (last lines)"
    echo
    while IFS=$'\t' read -r n l; do echo "- $n: \`$l\`"; done <"$tmp/stderr.notes"
    echo
  fi
)
echo "$report"
if [ -n "$out_file" ]; then printf '%s\n' "$report" >"$out_file"; log "wrote $out_file"; fi
if [ "$write_results" = 1 ]; then
  REPORT="$report" python3 - bench/RESULTS.md <<'PY'
import os, sys
path = sys.argv[1]
begin, end = "<!-- compare.sh:begin -->", "<!-- compare.sh:end -->"
# Headings move down two levels so the report nests under RESULTS.md's own sections.
body = "\n".join(("##" + l if l.startswith("#") else l) for l in os.environ["REPORT"].splitlines())
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
block = f"{begin}\n{body}\n{end}"
if begin in text and end in text:
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
  log "updated bench/RESULTS.md"
fi
if [ ${#failed[@]} -gt 0 ]; then log "failed sections: ${failed[*]}"; exit 1; fi
