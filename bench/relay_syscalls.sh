#!/usr/bin/env bash
# Syscalls, context switches and CPU per round trip of the proxy on the relay path, for one or
# more proxy builds side by side (a before/after table for a change in the proxy's io).
#
#   bash bench/relay_syscalls.sh [--bin 'PATH [PROXY FLAGS]']... [--out FILE]
#   env: SHARDS="1 default" MODES="rate max" RATE=30000 CONNS=1000 IN_FLIGHT=256 PAYLOAD=64
#        DURATION=8s WARMUP=2s WINDOW=4 REPS=1 NO_BUILD=0
#
# --bin (repeatable; default target/release/httpws) names each proxy build, optionally with
# proxy flags of its own (`--bin 'target/release/httpws --pin'`); every build runs
# with every SHARDS entry ("default" = no --shards flag, as a user runs it) in every MODE:
#   rate  loadgen --rate RATE (open loop: ordinary load)
#   max   loadgen --closed-loop --in-flight IN_FLIGHT (saturation)
# with --conns CONNS --pattern pairs --payload PAYLOAD --threads 1 --duration DURATION
# --warmup WARMUP --watch-cpu PROXY, a fresh proxy per run, runs in an order rotated per rep.
# WARMUP+1 s into each run, `perf stat -p PROXY` counts context switches, CPU migrations and
# the entries of the syscalls the proxy makes on this path for WINDOW seconds (inside
# loadgen's measured window); each count is divided by the round trips answered in that
# window (loadgen's throughput × WINDOW). CPU per round trip is loadgen's --watch-cpu reading
# over its whole measured window. Needs perf (Debian linux-perf) and tracepoint access (root).
# Every process is started by this script and stopped by its PID. Report on stdout (and FILE).
set -euo pipefail
cd "$(dirname "$0")/.."

bins=() out_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bins+=("$2"); shift 2 ;;
    --out) out_file="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
SHARDS=${SHARDS:-"1 default"} MODES=${MODES:-"rate max"} RATE=${RATE:-30000}
CONNS=${CONNS:-1000} IN_FLIGHT=${IN_FLIGHT:-256} PAYLOAD=${PAYLOAD:-64}
DURATION=${DURATION:-8s} WARMUP=${WARMUP:-2s} WINDOW=${WINDOW:-4} REPS=${REPS:-1}

LOG_TAG=relay_syscalls
# shellcheck source=bench/lib.sh
. bench/lib.sh

command -v perf >/dev/null || { log "needs perf (Debian linux-perf)"; exit 1; }
lg=target/release/loadgen
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release --bin httpws; cargo build --release -p loadgen"
  cargo build --release --quiet --bin httpws
  cargo build --release --quiet -p loadgen
fi
[ ${#bins[@]} -gt 0 ] || bins=(target/release/httpws)
for b in "${bins[@]}"; do [ -x "${b%% *}" ] || { log "no proxy binary at ${b%% *}"; exit 1; }; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bench_init relay_syscalls

events=context-switches,cpu-migrations
for s in recvfrom sendmsg writev io_uring_enter epoll_wait write read poll; do
  events+=",syscalls:sys_enter_$s"
done
warmup_s=${WARMUP%s}

# one_run BIN_INDEX SHARDS MODE REP: a fresh proxy, one loadgen run, perf stat inside it.
one_run() {
  local bi=$1 shards=$2 mode=$3 rep=$4 f proxy bin args=()
  f="$tmp/run.$bi.$shards.$mode.$rep"
  read -ra args <<<"${bins[$bi]}"
  bin=${args[0]} args=("${args[@]:1}")
  [ "$shards" = default ] || args+=(--shards "$shards")
  httpws_proxy_start "proxy.$bi.$shards.$mode.$rep" "$bin" "${args[@]}"
  proxy=$spawned
  local lg_args=(--url "$proxy_url" --conns "$CONNS" --pattern pairs --payload "$PAYLOAD"
    --threads 1 --duration "$DURATION" --warmup "$WARMUP" --watch-cpu "$proxy" --json "$f.json")
  if [ "$mode" = rate ]; then lg_args+=(--rate "$RATE"); else lg_args+=(--closed-loop --in-flight "$IN_FLIGHT"); fi
  log "rep $rep: ${bins[$bi]} shards=$shards $mode"
  "$lg" "${lg_args[@]}" >"$f.out" 2>"$f.err" &
  local lgpid=$!
  sleep "$((warmup_s + 1))"
  perf stat -x, -e "$events" -p "$proxy" -o "$f.perf" -- sleep "$WINDOW" 2>/dev/null || true
  local rc=0; wait "$lgpid" || rc=$?
  echo "$rc" >"$f.rc"
  stop_pid "$proxy"
  [ -s "$f.json" ] || { log "  loadgen left no summary (exit $rc)"; tail -n 5 "$f.err" >&2; }
}

for rep in $(seq "$REPS"); do
  runs=()
  for bi in "${!bins[@]}"; do for s in $SHARDS; do for m in $MODES; do runs+=("$bi $s $m"); done; done; done
  # Rotate the order per rep so that no build always runs first.
  n=${#runs[@]} k=$(( (rep - 1) % n ))
  for i in $(seq 0 $((n - 1))); do
    # shellcheck disable=SC2086
    one_run ${runs[$(( (i + k) % n ))]} "$rep"
  done
done

report=$(python3 bench/report.py relay-syscalls --tmp "$tmp" --reps "$REPS" --window "$WINDOW" \
  --bins "${bins[@]}" --shards $SHARDS --modes $MODES \
  --settings "RATE=$RATE CONNS=$CONNS IN_FLIGHT=$IN_FLIGHT PAYLOAD=$PAYLOAD DURATION=$DURATION WARMUP=$WARMUP WINDOW=$WINDOW REPS=$REPS; $(machine_desc)")
echo "$report"
[ -z "$out_file" ] || echo "$report" >"$out_file"
