#!/usr/bin/env bash
# httpws side by side with its baselines and peers: one script, one run, interleaved
# repetitions, medians of REPS (docs/design.md, Performance targets).
#
#   bash bench/compare.sh [--only relay,http,idle] [--out FILE] [--results]
#
# --results also puts the report into bench/RESULTS.md, replacing the text between the
# `<!-- compare.sh:begin -->` and `<!-- compare.sh:end -->` markers (appended if absent).
#
# Sections (all by default; --only takes a list separated by , | or spaces, repeatable):
#   relay  relay vs direct echo with loadgen, for two proxy configurations side by side:
#          "one" = proxy --shards SHARDS_ONE RELAY_PROXY_ARGS, and "default" = the proxy as a
#          user runs it, without --shards (one shard per core; SHARDS_DEFAULT=N adds --shards
#          N) and with DEFAULT_PROXY_ARGS; the direct baseline is examples/echo --threads
#          ECHO_THREADS. All three are up for the whole section; each rep runs one of each, in
#          an order rotated per rep. Phases:
#          max: closed-loop runs (--conns LG_CONNS --in-flight LG_IN_FLIGHT), the saturation
#            throughput of each; then half: open-loop runs at HALF × the lower of the two
#            relays' median max (--rate, the same for all three), p50/p99;
#          cpu: open-loop runs at --rate CPU_RATE --conns CPU_CONNS against each relay
#            configuration, with loadgen --watch-cpu reading the proxy's utime+stime at the
#            start and end of exactly the measured window: proxy CPU µs per round trip (ticks
#            ÷ getconf CLK_TCK ÷ round trips answered OK in the window).
#          Report: relay ÷ direct for both configurations, and default ÷ one for the max
#          throughput and the CPU per round trip. Targets (each configuration): throughput
#          ratio ≥ 0.5; relay p50 ≤ direct p50 + 40 µs; relay p99 ≤ 2 × direct p99. Plots
#          (loadgen --plot, the last rep's three runs) go to PLOTS_DIR.
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
#          process (loadgen --idle, or bench/idle_clients.py). Target ≤ 1 KiB.
#
# env (defaults):  REPS=3 DURATION=10s NO_BUILD=0 KEEP_TMP=0
#   relay: WARMUP=2s LG_CONNS=1000 LG_IN_FLIGHT=256 LG_PAYLOAD=64 LG_PATTERN=pairs
#          SHARDS_ONE=1 SHARDS_DEFAULT= (empty: no --shards flag) ECHO_THREADS=1
#          RELAY_PROXY_ARGS= (the one-shard proxy) DEFAULT_PROXY_ARGS= (the default
#          proxy: nothing, as a user runs it) CPU_RATE=30000 CPU_CONNS=1000
#          LG_THREADS=1 HALF=0.5 LG_ARGS= PLOTS_DIR=bench/plots
#   http:  CONNS=64 WRK_THREADS=1 PROXY_ARGS= ENDPOINT_ARGS=
#   idle:  IDLE_COUNTS="10000 max" IDLE_CLIENT=auto|loadgen|python IDLE_SOURCES=127.0.0.2-127.0.0.20
#          IDLE_PROXY_ARGS="--idle-timeout 1h" IDLE_SETTLE=3
# Every process is started by this script and stopped by its PID. Progress goes to stderr,
# the markdown report to stdout (and to FILE with --out). Exit status 1 if a section failed
# (its logs are then kept in the temp dir named on stderr).
#
# Each section leaves its raw measurements in the temp dir; bench/report.py renders them
# (`python3 bench/report.py --help`), so KEEP_TMP=1 keeps what a report can be rendered from again.
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
    -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
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
LG_PAYLOAD=${LG_PAYLOAD:-64} LG_PATTERN=${LG_PATTERN:-pairs}
SHARDS_ONE=${SHARDS_ONE:-1} SHARDS_DEFAULT=${SHARDS_DEFAULT:-} ECHO_THREADS=${ECHO_THREADS:-1}
LG_THREADS=${LG_THREADS:-1} HALF=${HALF:-0.5} RELAY_PROXY_ARGS=${RELAY_PROXY_ARGS:-}
DEFAULT_PROXY_ARGS=${DEFAULT_PROXY_ARGS:-} CPU_RATE=${CPU_RATE:-30000} CPU_CONNS=${CPU_CONNS:-1000}
LG_ARGS=${LG_ARGS:-} PLOTS_DIR=${PLOTS_DIR:-bench/plots}
if [ -n "${SHARDS:-}" ]; then
  # SHARDS once set both the proxy's --shards and the echo's --threads; the relay section now
  # runs two proxies, so a lone SHARDS would be ambiguous.
  echo "SHARDS is gone: SHARDS_ONE (the --shards of the first proxy, default 1), SHARDS_DEFAULT" \
       "(empty: the second proxy runs without --shards) and ECHO_THREADS (examples/echo --threads)" >&2
  exit 2
fi
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
STDERR_NOTES=$tmp/stderr.notes  # stderr_tail's notes: the report's "Process stderr" list
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg) START_S=$SECONDS

# =========================================================================================
# 1. relay vs direct echo (loadgen)
# =========================================================================================
# run_lg PHASE TARGET REP SERVER_PID ARGS...: one loadgen run → $tmp/lg.PHASE.TARGET.REP.{json,out,err,rc,cpu,time}
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
    python3 bench/report.py loadgen-line "$f.json" "$rc" >&2
  else
    log "  no JSON summary (exit $rc):"; tail -n 20 "$f.err" "$f.out" >&2
    return 1
  fi
}

# relay_proxy_args CONFIG: the proxy flags of a relay configuration (one: --shards SHARDS_ONE
# RELAY_PROXY_ARGS; default: --shards SHARDS_DEFAULT only when set, then DEFAULT_PROXY_ARGS).
relay_proxy_args() {
  if [ "$1" = one ]; then
    echo "--shards $SHARDS_ONE $RELAY_PROXY_ARGS"
  else
    echo "${SHARDS_DEFAULT:+--shards $SHARDS_DEFAULT }$DEFAULT_PROXY_ARGS"
  fi
}

# rotated REP ITEM...: the items in the order of repetition REP (each rep starts one further
# on), so that no configuration always runs first or right after another.
rotated() {
  local rep=$1; shift
  local items=("$@") n=$# i
  for i in $(seq 0 $((n - 1))); do echo "${items[$(((i + rep - 1) % n))]}"; done
}

section_relay() {
  if [ "$lg_ok" != 1 ]; then
    log "relay: skipped: $lg is missing or did not build"
    echo "skipped: \`$lg\` is missing or did not build" >"$tmp/skip.relay"
    return 0
  fi
  [ -x "$echo_bin" ] || { log "$echo_bin is missing"; return 1; }
  # Two proxies, both up for the whole section (the one not measured sits idle): --shards
  # SHARDS_ONE, and the default a user gets (no --shards flag unless SHARDS_DEFAULT is set).
  local -A spid surl
  local c
  for c in one default; do
    # shellcheck disable=SC2046
    httpws_proxy_start "relay_proxy_$c" "$bin" $(relay_proxy_args "$c")
    spid[$c]=$spawned surl[$c]=$proxy_url
    # shellcheck disable=SC2046
    cmdlog relay "proxy $c (pid $spawned)" "$bin" --log warn proxy --listen 127.0.0.1:0 $(relay_proxy_args "$c")
  done
  # The shard threads the default configuration runs (its default is one per core).
  cat /proc/"${spid[default]}"/task/*/comm | grep -c '^httpws-shard-' >"$tmp/relay.default_shards" || true
  spawn echo "$echo_bin" --listen 127.0.0.1:0 --threads "$ECHO_THREADS"
  spid[direct]=$spawned
  wait_for "${spid[direct]}" "$tmp/echo.out" 'echo listening on ws://'
  surl[direct]=$(grep -oE 'ws://[^ ]+' "$tmp/echo.out" | head -n1)
  cmdlog relay "echo (pid ${spid[direct]})" "$echo_bin" --listen 127.0.0.1:0 --threads "$ECHO_THREADS"
  log "relay: proxy --shards $SHARDS_ONE (pid ${spid[one]}) on ${surl[one]}; default proxy, $(cat "$tmp/relay.default_shards") shards (pid ${spid[default]}) on ${surl[default]}; echo (pid ${spid[direct]}) on ${surl[direct]}: $(head -n1 "$tmp/echo.out")"
  head -n1 "$tmp/echo.out" >"$tmp/relay.echo_banner"
  echo "proxy_one=$(rss_kib "${spid[one]}") proxy_default=$(rss_kib "${spid[default]}") echo=$(rss_kib "${spid[direct]}")" >"$tmp/relay.rss_idle"

  # shellcheck disable=SC2206
  local base=(--payload "$LG_PAYLOAD" --duration "$DURATION" --warmup "$WARMUP" --threads "$LG_THREADS" --quiet $LG_ARGS)
  local common=(--conns "$LG_CONNS" "${base[@]}")
  local -A tgt label
  tgt[one]="--proxy ${surl[one]} --pattern $LG_PATTERN" label[one]="relay-1"
  tgt[default]="--proxy ${surl[default]} --pattern $LG_PATTERN" label[default]="relay-default"
  tgt[direct]="--proxy ${surl[direct]} --direct" label[direct]="direct"
  local closed=(--closed-loop --in-flight "$LG_IN_FLIGHT") rep t plot=() order
  mkdir -p "$PLOTS_DIR"
  # relay_phase PHASE PLOT_FILE TARGETS LOADGEN_ARGS...: REPS rotated rounds of one loadgen run
  # per target; the last run of the last rep draws the plot, with that rep's other runs.
  relay_phase() {
    local phase=$1 svg=$2 targets=$3; shift 3
    local t rep k o
    for t in $targets; do
      # shellcheck disable=SC2086
      cmdlog relay "$phase, $t" "$lg" ${tgt[$t]} "$@" --label "${label[$t]}" --json FILE
    done
    for rep in $(seq "$REPS"); do
      # shellcheck disable=SC2086
      mapfile -t order < <(rotated "$rep" $targets)
      for k in "${!order[@]}"; do
        t=${order[$k]} plot=()
        if [ -n "$svg" ] && [ "$rep" = "$REPS" ] && [ "$k" = $((${#order[@]} - 1)) ]; then
          plot=(--plot "$PLOTS_DIR/$svg")
          for o in "${order[@]:0:$k}"; do plot+=(--plot-with "$tmp/lg.$phase.$o.$rep.json"); done
        fi
        echo "$k" >"$tmp/order.$phase.$t.$rep"
        # shellcheck disable=SC2086
        run_lg "$phase" "$t" "$rep" "${spid[$t]}" ${tgt[$t]} "$@" --label "${label[$t]}" "${plot[@]}"
      done
    done
  }
  relay_phase max relay_vs_direct_max.svg "one default direct" "${closed[@]}" "${common[@]}"
  # One rate for every target: HALF × the lower of the two relays' median max.
  local max_rate rate=""
  for t in one default; do
    max_rate=$(python3 bench/report.py open-loop-rate --half "$HALF" "$tmp"/lg.max.$t.*.json)
    log "relay: median max of $t ${max_rate% *} req/s → --rate ${max_rate#* }"
    if [ -z "$rate" ] || [ "${max_rate#* }" -lt "$rate" ]; then rate=${max_rate#* }; fi
  done
  echo "$rate" >"$tmp/relay.rate"
  log "relay: open loop at --rate $rate"
  relay_phase half relay_vs_direct_half.svg "one default direct" --rate "$rate" "${common[@]}"
  # Proxy CPU per round trip at one fixed open-loop rate: loadgen reads the proxy's
  # utime+stime at the start and the end of exactly its measured window (--watch-cpu).
  echo "$CPU_RATE $CPU_CONNS" >"$tmp/relay.cpu_rate"
  local cpu=(--rate "$CPU_RATE" --conns "$CPU_CONNS" "${base[@]}")
  tgt[one]+=" --watch-cpu ${spid[one]}" tgt[default]+=" --watch-cpu ${spid[default]}"
  relay_phase cpu "" "one default" "${cpu[@]}"
  echo "proxy_one=$(rss_kib "${spid[one]}"):$(hwm_kib "${spid[one]}") proxy_default=$(rss_kib "${spid[default]}"):$(hwm_kib "${spid[default]}") echo=$(rss_kib "${spid[direct]}"):$(hwm_kib "${spid[direct]}")" >"$tmp/relay.rss_after"
  stderr_tail relay_proxy_one relay_proxy_default echo
  stop_pid "${spid[one]}" "${spid[default]}" "${spid[direct]}"
}

report_relay() {
  if [ -f "$tmp/skip.relay" ]; then
    printf '## 1. Relay vs direct echo (loadgen)\n\nSection %s\n' "$(cat "$tmp/skip.relay")"
    return 0
  fi
  # shellcheck disable=SC2016 # the quotes are for the report, around the values
  python3 bench/report.py relay --tmp "$tmp" --reps "$REPS" --half "$HALF" --clk-tck "$(getconf CLK_TCK)" \
    --plots-dir "$PLOTS_DIR" \
    --settings "SHARDS_ONE=$SHARDS_ONE SHARDS_DEFAULT='$SHARDS_DEFAULT' RELAY_PROXY_ARGS='$RELAY_PROXY_ARGS' DEFAULT_PROXY_ARGS='$DEFAULT_PROXY_ARGS' ECHO_THREADS=$ECHO_THREADS LG_THREADS=$LG_THREADS LG_CONNS=$LG_CONNS LG_IN_FLIGHT=$LG_IN_FLIGHT LG_PAYLOAD=$LG_PAYLOAD LG_PATTERN=$LG_PATTERN CPU_RATE=$CPU_RATE CPU_CONNS=$CPU_CONNS DURATION=$DURATION WARMUP=$WARMUP"
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
  # shellcheck disable=SC2016 # the quotes are for the report, around the values
  python3 bench/report.py http --tmp "$tmp" --reps "$REPS" --clk-tck "$(getconf CLK_TCK)" \
    --settings "CONNS=$CONNS WRK_THREADS=$WRK_THREADS DURATION=$DURATION${PROXY_ARGS:+ PROXY_ARGS='$PROXY_ARGS'}${ENDPOINT_ARGS:+ ENDPOINT_ARGS='$ENDPOINT_ARGS'}"
}

# =========================================================================================
# 3. idle memory per registered connection
# =========================================================================================
idle_run() { # N REP CLIENT
  local n=$1 rep=$2 client=$3 name=idle.$1.$2
  local proxy proxy_url
  # shellcheck disable=SC2086
  httpws_proxy_start "$name.proxy" "$bin" $IDLE_PROXY_ARGS
  proxy=$spawned
  sleep 0.5
  local before fd0 after fd1 est rc=0 c
  before=$(rss_kib "$proxy"); fd0=$(fd_count "$proxy")
  log "rep $rep/$REPS: idle $n ($client): proxy (pid $proxy) RSS $before KiB"
  if [ "$client" = loadgen ]; then
    local hold=$((IDLE_SETTLE + 5))
    local a=(--proxy "$proxy_url" --idle --conns "$n" --source "$IDLE_SOURCES" --duration "${hold}s" --warmup 0s --quiet)
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
    [ "$rep" = 1 ] && cmdlog idle "clients for $n" python3 bench/idle_clients.py --port "${proxy_url##*:}" --conns "$n" --sources 19
    python3 bench/idle_clients.py --port "${proxy_url##*:}" --conns "$n" --sources 19 <"$fifo" >"$tmp/$name.py.out" 2>"$tmp/$name.py.err" &
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
  python3 bench/report.py idle --tmp "$tmp" --reps "$REPS" --settle "$IDLE_SETTLE" \
    --settings "IDLE_COUNTS='$IDLE_COUNTS' IDLE_PROXY_ARGS='$IDLE_PROXY_ARGS' IDLE_SOURCES=$IDLE_SOURCES"
}

# =========================================================================================
# Each section runs in a subshell with its own PIDs and cleanup, so a failing section is
# reported and the next one still runs.
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
has_section relay && cmd+=" SHARDS_ONE=$SHARDS_ONE${SHARDS_DEFAULT:+ SHARDS_DEFAULT=$SHARDS_DEFAULT} ECHO_THREADS=$ECHO_THREADS LG_THREADS=$LG_THREADS LG_CONNS=$LG_CONNS LG_IN_FLIGHT=$LG_IN_FLIGHT CPU_RATE=$CPU_RATE CPU_CONNS=$CPU_CONNS"
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
    echo "## Targets (docs/design.md)"
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
  printf '%s\n' "$report" | python3 bench/report.py results bench/RESULTS.md
  log "updated bench/RESULTS.md"
fi
if [ ${#failed[@]} -gt 0 ]; then log "failed sections: ${failed[*]}"; exit 1; fi
