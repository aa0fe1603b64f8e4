#!/usr/bin/env bash
# Stream figures (protocol 2): bulk transfers through the tunnel vs rathole and direct, many
# SSE streams through the proxy, head-of-line blocking, and a slow reader's memory. Loopback
# only; every figure is a ratio against a baseline measured in the same run.
#
#   bash bench/streams.sh [--only transfer,sse,hol,slow] [--out FILE]
#
# Sections (all by default; --only takes a list separated by , | or spaces):
#   transfer  BYTES (1 GiB) downloaded and uploaded with curl, REPS interleaved reps, to a local
#             HTTP service (a Python server in this script: GET /bytes/N, PUT/POST a body it
#             counts and discards):
#               direct      curl → service
#               rathole     curl → rathole server → rathole client (tcp transport) → service
#               rathole-ws  the same over rathole's websocket transport (no TLS)
#               httpws      curl → client agent (endpoint --listen) → proxy → svc agent
#                           (endpoint --serve) → service
#               ingress     curl → proxy's public ingress → svc agent (--public) → service
#                           (rathole's hops)
#             MiB/s (median) and CPU seconds of the relay's own processes per transfer.
#             Target: httpws and ingress ≥ rathole's download throughput.
#   sse       REPS interleaved pairs of runs: SSE_STREAMS event streams at one event per SSE_INTERVAL through a fresh proxy
#             (loadgen --stream events, 2 × SSE_STREAMS endpoints), and the same through
#             examples/echo (loadgen --direct: the one-hop baseline). Event latency p50/p99 of
#             both, the added p99, and the proxy's RSS: before, with the 2 × SSE_STREAMS
#             connections registered and idle (loadgen --idle), and with the streams open.
#             Target: added p99 ≤ 1 ms.
#   hol       REPS interleaved pairs of runs, head-of-line blocking: HOL_RATE small whole-message requests/s on one pair of
#             endpoints, alone and then beside one unbounded bulk download on the same
#             connections (loadgen --stream mixed), through the proxy and through the echo.
#             Small-request p50/p99 without and with the bulk stream, and their ratio, with
#             the bulk stream at each of HOL_BULK_RATES (a capped one leaves CPU to spare, so
#             what shows is queueing behind the bulk data; an uncapped one also starves the CPU).
#   slow      a curl reading SLOW_RATE (1 MiB/s) of a BYTES download through a fresh tunnel (after
#             one 64 MiB download at full speed) for SLOW_SECS: RSS of the proxy and both agents
#             sampled every SLOW_SAMPLE; the growth in KiB (the credit windows bound it).
#
# env (defaults): REPS=3 BYTES=1073741824 NO_BUILD=0 KEEP_TMP=0 PROXY_ARGS= ENDPOINT_ARGS=
#   sse:  SSE_STREAMS=1000 SSE_INTERVAL=100ms SSE_DURATION=10s SSE_WARMUP=3s LG_THREADS=1
#   hol:  HOL_RATE=1000 HOL_PAYLOAD=64 HOL_DURATION=5s HOL_WARMUP=2s HOL_CHUNK=16KiB
#         HOL_BULK_RATES="100MiB 0" (the bulk download's rate per run; 0: as fast as it goes)
#   slow: SLOW_RATE=1M SLOW_SECS=30 SLOW_SAMPLE=5
# Every process is started by this script and stopped by its PID (bench/lib.sh). Progress goes
# to stderr, the markdown report to stdout (and to FILE with --out). Exit status 1 if a
# section failed (its logs are then kept in the temp dir named on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

only_args=() out_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only_args+=("$2"); shift 2 ;;
    --only=*) only_args+=("${1#--only=}"); shift ;;
    --out) out_file="$2"; shift 2 ;;
    --out=*) out_file="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
all_sections=(transfer sse hol slow)
sections=()
if [ ${#only_args[@]} -eq 0 ]; then
  sections=("${all_sections[@]}")
else
  for s in $(printf '%s ' "${only_args[@]}" | tr ',|' '  '); do
    case "$s" in transfer|sse|hol|slow) sections+=("$s") ;; *) echo "unknown section: $s (transfer, sse, hol, slow)" >&2; exit 2 ;; esac
  done
fi
has_section() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

REPS=${REPS:-3} BYTES=${BYTES:-1073741824} NO_BUILD=${NO_BUILD:-0}
PROXY_ARGS=${PROXY_ARGS:-} ENDPOINT_ARGS=${ENDPOINT_ARGS:-}
SSE_STREAMS=${SSE_STREAMS:-1000} SSE_INTERVAL=${SSE_INTERVAL:-100ms} SSE_DURATION=${SSE_DURATION:-10s}
SSE_WARMUP=${SSE_WARMUP:-3s} LG_THREADS=${LG_THREADS:-1}
HOL_RATE=${HOL_RATE:-1000} HOL_PAYLOAD=${HOL_PAYLOAD:-64} HOL_DURATION=${HOL_DURATION:-5s}
HOL_WARMUP=${HOL_WARMUP:-2s} HOL_CHUNK=${HOL_CHUNK:-16KiB}
HOL_BULK_RATES=${HOL_BULK_RATES:-100MiB 0}
SLOW_RATE=${SLOW_RATE:-1M} SLOW_SECS=${SLOW_SECS:-30} SLOW_SAMPLE=${SLOW_SAMPLE:-5}
# The slow section's warm-up download, at full speed, before its RSS baseline.
SLOW_WARM_BYTES=$((64 * 1024 * 1024))
# Longest one curl transfer may take (a stalled relay fails the section instead of hanging).
TRANSFER_LIMIT_S=300

LOG_TAG=streams
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
# cmdlog LABEL CMD...: remember a command for the report's command list.
cmdlog() { local l=$1; shift; printf '%s\t%s\n' "$l" "$(q "$@")" >>"$tmp/cmds"; }

# --- tools and builds --------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
bin=target/release/httpws lg=target/release/loadgen echo_bin=target/release/examples/echo
rathole_bin=""
if has_section transfer; then
  rathole_bin=$(command -v rathole || true)
  [ -n "$rathole_bin" ] || { [ -x "$HOME/.cargo/bin/rathole" ] && rathole_bin=$HOME/.cargo/bin/rathole; } || true
  if [ -z "$rathole_bin" ]; then
    log "cargo install rathole --locked (minutes)"
    if ! cargo install rathole --locked >&2; then
      # rathole 0.5.0's lock file pins time 0.3.29, which current rustc rejects (E0282).
      log "cargo install rathole --locked failed; retrying without --locked"
      cargo install rathole >&2 || log "cargo install rathole failed: the transfer section runs without rathole"
    fi
    [ -x "$HOME/.cargo/bin/rathole" ] && rathole_bin=$HOME/.cargo/bin/rathole
  fi
fi
if [ "$NO_BUILD" != 1 ]; then
  log "cargo build --release --bin httpws --example echo -p loadgen"
  cargo build --release --quiet --bin httpws --example echo
  cargo build --release --quiet -p loadgen
fi
for b in "$bin" "$lg" "$echo_bin"; do [ -x "$b" ] || { echo "$b is missing (run without NO_BUILD=1)" >&2; exit 1; }; done

bench_init streams
: >"$tmp/cmds"
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg) START_S=$SECONDS
CLK_TCK=$(getconf CLK_TCK)

# --- the local HTTP service --------------------------------------------------------------
# GET / → "ok"; GET /bytes/N → N bytes; PUT or POST (Content-Length or chunked) → the body
# counted and discarded, answered with its length. One thread per connection.
cat >"$tmp/bulk_service.py" <<'EOF'
import http.server, socketserver, sys

BLOCK = b"x" * (1 << 20)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/bytes/"):
            n = int(self.path[len("/bytes/"):])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            view = memoryview(BLOCK)
            while n > 0:
                k = min(n, len(BLOCK))
                self.wfile.write(view[:k])
                n -= k
        else:
            self.answer(b"ok\n")

    def read_body(self):
        buf = bytearray(1 << 20)
        got = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return got
                left = size
                while left > 0:
                    k = self.rfile.readinto(memoryview(buf)[: min(left, len(buf))])
                    if not k:
                        return got
                    left -= k
                    got += k
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            k = self.rfile.readinto(memoryview(buf)[: min(left, len(buf))])
            if not k:
                break
            left -= k
            got += k
        return got

    def do_PUT(self):
        self.answer(b"%d\n" % self.read_body())

    do_POST = do_PUT

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
EOF
# service_start NAME: the service above; sets $spawned and $svc_port.
service_start() {
  spawn "$1" python3 -u "$tmp/bulk_service.py"
  wait_for "$spawned" "$tmp/$1.out" 'listening on http://'
  svc_port=$(grep -oE '127\.0\.0\.1:[0-9]+' "$tmp/$1.out" | head -n1 | cut -d: -f2)
}

# ticks PID...: the summed utime + stime of those processes.
ticks() { local p t=0; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }

# =========================================================================================
# transfer: 1 GiB each way, direct vs rathole vs httpws
# =========================================================================================
# rathole_start BACKEND_PORT TRANSPORT: rathole server + client (TRANSPORT: tcp, or
# websocket without TLS: the transport that, like httpws, frames and masks every byte) for
# service "svc"; sets rh_server rh_client rh_port.
rathole_start() {
  local backend=$1 transport=$2 dir=$tmp/rathole-$2 ctrl extra=""
  ctrl=$(free_port); rh_port=$(free_port)
  mkdir -p "$dir"
  [ "$transport" = websocket ] && extra='\n[%s.transport.websocket]\ntls = false\n'
  # shellcheck disable=SC2059
  printf "[server]\nbind_addr = \"127.0.0.1:%s\"\ndefault_token = \"bench\"\n\n[server.transport]\ntype = \"%s\"\n$(printf "$extra" server)\n[server.services.svc]\nbind_addr = \"127.0.0.1:%s\"\n" \
    "$ctrl" "$transport" "$rh_port" >"$dir/server.toml"
  # shellcheck disable=SC2059
  printf "[client]\nremote_addr = \"127.0.0.1:%s\"\ndefault_token = \"bench\"\n\n[client.transport]\ntype = \"%s\"\n$(printf "$extra" client)\n[client.services.svc]\nlocal_addr = \"127.0.0.1:%s\"\n" \
    "$ctrl" "$transport" "$backend" >"$dir/client.toml"
  spawn "rathole_server_$transport" env RUST_LOG=warn "$rathole_bin" --server "$dir/server.toml"
  rh_server=$spawned
  spawn "rathole_client_$transport" env RUST_LOG=warn "$rathole_bin" --client "$dir/client.toml"
  rh_client=$spawned
  cmdlog "rathole $transport server (pid $rh_server)" env RUST_LOG=warn "$rathole_bin" --server "$dir/server.toml"
  cmdlog "rathole $transport client (pid $rh_client)" env RUST_LOG=warn "$rathole_bin" --client "$dir/client.toml"
  wait_http "$rh_server" "http://127.0.0.1:$rh_port/" "" 30 || { tail -n 20 "$tmp/rathole_server_$transport.err" "$tmp/rathole_client_$transport.err" >&2; return 1; }
  log "rathole ($transport): server (pid $rh_server), client (pid $rh_client), service on 127.0.0.1:$rh_port"
}

# transfer_one TARGET DIR REP URL HOST PIDS: one curl download or upload of BYTES;
# "$tmp/xfer.TARGET.DIR.REP" gets "bytes seconds http_code cpu_ticks".
transfer_one() {
  local target=$1 dir=$2 rep=$3 url=$4 host=$5 pids_=$6 f="$tmp/xfer.$1.$2.$3"
  local hdr=() c0 c1 w rc=0
  [ -n "$host" ] && hdr=(-H "Host: $host")
  # shellcheck disable=SC2086
  c0=$(ticks $pids_)
  if [ "$dir" = down ]; then
    w=$(curl -sS --max-time "$TRANSFER_LIMIT_S" "${hdr[@]}" -o /dev/null \
          -w '%{size_download} %{time_total} %{http_code}' "$url/bytes/$BYTES" 2>"$f.err") || rc=$?
  else
    w=$(curl -sS --max-time "$TRANSFER_LIMIT_S" "${hdr[@]}" -T "$tmp/upload.bin" -o "$f.body" \
          -w '%{size_upload} %{time_total} %{http_code}' "$url/sink" 2>"$f.err") || rc=$?
  fi
  # shellcheck disable=SC2086
  c1=$(ticks $pids_)
  echo "$w $((c1 - c0))" >"$f"
  local size=${w%% *} code=${w##* }
  if [ "$rc" != 0 ] || [ "$code" != 200 ] || [ "$size" != "$BYTES" ]; then
    log "  $target $dir rep $rep FAILED: curl exit $rc, HTTP $code, $size of $BYTES bytes: $(head -c 300 "$f.err")"
    echo "failed" >>"$f"
    return 1
  fi
  if [ "$dir" = up ] && [ "$(tr -d '\n' <"$f.body")" != "$BYTES" ]; then
    log "  $target up rep $rep FAILED: the service counted $(head -c 40 "$f.body") bytes, not $BYTES"
    echo "failed" >>"$f"
    return 1
  fi
  log "  rep $rep: $target $dir: $(python3 -c "import sys; b, t = float(sys.argv[1]), float(sys.argv[2]); print(f'{b / t / 1048576:.0f} MiB/s in {t:.2f} s')" "${w%% *}" "$(echo "$w" | cut -d' ' -f2)")"
}

section_transfer() {
  service_start transfer_service
  local svc=$svc_port service_pid=$spawned
  log "service (pid $service_pid) on 127.0.0.1:$svc"
  cmdlog "service (pid $service_pid)" python3 -u bulk_service.py
  truncate -s "$BYTES" "$tmp/upload.bin"
  httpws_tunnel_start "$bin" "$svc" "$PROXY_ARGS" "$ENDPOINT_ARGS" xfer_
  local hw_pids="$proxy_pid $svc_pid $client_pid"
  # shellcheck disable=SC2086
  {
    cmdlog "httpws proxy (pid $proxy_pid)" "$bin" --log warn proxy --listen 127.0.0.1:0 $PROXY_ARGS
    cmdlog "httpws svc agent (pid $svc_pid)" "$bin" --log warn endpoint --proxy "$proxy_addr" --name svc --serve "http://127.0.0.1:$svc" $ENDPOINT_ARGS
    cmdlog "httpws client agent (pid $client_pid)" "$bin" --log warn endpoint --proxy "$proxy_addr" --name client --listen 127.0.0.1:0 $ENDPOINT_ARGS
  }
  # The equal-hop path too (curl → proxy's public ingress → svc agent → service), as rathole's.
  httpws_ingress_start "$bin" "$svc" "$PROXY_ARGS" "$ENDPOINT_ARGS" xig_
  # shellcheck disable=SC2086
  {
    cmdlog "httpws ingress proxy (pid $ig_proxy_pid)" "$bin" --log warn proxy --listen 127.0.0.1:0 $PROXY_ARGS
    cmdlog "httpws public svc agent (pid $ig_svc_pid)" "$bin" --log warn endpoint --proxy "ws://$ig_addr" --name svc --public --serve "http://127.0.0.1:$svc" $ENDPOINT_ARGS
  }
  local -A url host procs
  url[direct]="http://127.0.0.1:$svc"; host[direct]=""; procs[direct]=""
  url[httpws]="http://$ingress"; host[httpws]=svc; procs[httpws]=$hw_pids
  url[ingress]="http://$ig_addr"; host[ingress]=svc; procs[ingress]="$ig_proxy_pid $ig_svc_pid"
  local targets=(direct httpws ingress)
  if [ -n "$rathole_bin" ]; then
    rathole_start "$svc" tcp
    url[rathole]="http://127.0.0.1:$rh_port"; host[rathole]=""; procs[rathole]="$rh_server $rh_client"
    rathole_start "$svc" websocket
    url[rathole-ws]="http://127.0.0.1:$rh_port"; host[rathole-ws]=""; procs[rathole-ws]="$rh_server $rh_client"
    targets=(direct rathole rathole-ws httpws ingress)
  else
    echo "rathole could not be installed: no rathole rows in this run." >"$tmp/transfer.norathole"
  fi
  printf '%s\n' "${targets[@]}" >"$tmp/transfer.targets"
  for t in "${targets[@]}"; do
    cmdlog "download via $t" curl -sS ${host[$t]:+-H "Host: ${host[$t]}"} -o /dev/null "${url[$t]}/bytes/$BYTES"
    cmdlog "upload via $t" curl -sS ${host[$t]:+-H "Host: ${host[$t]}"} -T upload.bin "${url[$t]}/sink"
  done
  local rep i dir t n=${#targets[@]}
  for rep in $(seq "$REPS"); do
    for dir in down up; do
      for i in $(seq 0 $((n - 1))); do
        t=${targets[$(((i + rep - 1) % n))]}
        transfer_one "$t" "$dir" "$rep" "${url[$t]}" "${host[$t]}" "${procs[$t]}"
      done
    done
  done
  echo "proxy=$(hwm_kib "$proxy_pid") svc_agent=$(hwm_kib "$svc_pid") client_agent=$(hwm_kib "$client_pid")" >"$tmp/transfer.hwm"
  stderr_tail xfer_proxy xfer_svc xfer_client xig_proxy xig_svc rathole_server_tcp rathole_client_tcp rathole_server_websocket rathole_client_websocket
}

report_transfer() {
  python3 - "$tmp" "$REPS" "$BYTES" "$CLK_TCK" <<'EOF'
import statistics, sys
tmp, reps, size, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
targets = open(f"{tmp}/transfer.targets").read().split()
rows = {}
for t in targets:
    for d in ("down", "up"):
        runs = []
        for r in range(1, reps + 1):
            fields = open(f"{tmp}/xfer.{t}.{d}.{r}").read().split()
            b, secs, ticks = float(fields[0]), float(fields[1]), int(fields[3])
            runs.append((b / secs / 2**20, ticks / tck))
        rows[t, d] = runs
def med(xs):
    return statistics.median(xs)
print(f"### Bulk transfers: {size / 2**30:g} GiB with curl (median of {reps})\n")
print("| path | download MiB/s | vs direct | vs rathole | CPU s (relay) | upload MiB/s | vs direct | vs rathole | CPU s (relay) |")
print("|---|---|---|---|---|---|---|---|---|")
for t in targets:
    cells = [t]
    for d in ("down", "up"):
        mib = med([m for m, _ in rows[t, d]])
        cpu = med([c for _, c in rows[t, d]])
        base = med([m for m, _ in rows["direct", d]])
        cells.append(f"{mib:,.0f}")
        cells.append(f"{mib / base:.2f}")
        if ("rathole", d) in rows:
            rh = med([m for m, _ in rows["rathole", d]])
            cells.append(f"{mib / rh:.2f}")
        else:
            cells.append("–")
        cells.append("–" if t == "direct" else f"{cpu:.2f}")
    print("| " + " | ".join(cells) + " |")
print()
print("Per rep (MiB/s): " + "; ".join(
    f"{t} {d} " + "/".join(f"{m:.0f}" for m, _ in rows[t, d]) for t in targets for d in ("down", "up")) + ".  ")
print("Paths: httpws = curl → client agent (--listen) → proxy → svc agent → service (one hop more than rathole); ingress = curl → proxy's public ingress → svc agent → service (rathole's hops); rathole = tcp transport, rathole-ws = websocket transport (framed and masked like httpws).  ")
print("CPU s (relay) = utime + stime of the relay's own processes over one transfer (httpws: proxy + both agents; ingress: proxy + svc agent; rathole: server + client); curl and the service are not counted.  ")
hwm = open(f"{tmp}/transfer.hwm").read().split()
print("Peak RSS after the transfers (VmHWM): " + ", ".join(f"{k.split('=')[0]} {int(k.split('=')[1]) / 1024:.1f} MiB" for k in hwm) + ".")
if "rathole" in targets:
    print()
    for ours in ("httpws", "ingress"):
        for theirs in ("rathole", "rathole-ws"):
            d = med([m for m, _ in rows[ours, "down"]]) / med([m for m, _ in rows[theirs, "down"]])
            u = med([m for m, _ in rows[ours, "up"]]) / med([m for m, _ in rows[theirs, "up"]])
            print(f"Target: {ours} download ≥ {theirs}'s: **{d:.2f}×** ({'met' if d >= 1 else 'not met'}); upload {u:.2f}×.  ")
EOF
  [ -f "$tmp/transfer.norathole" ] && { echo; cat "$tmp/transfer.norathole"; }
  return 0
}

# =========================================================================================
# sse: many event streams through the proxy vs the echo
# =========================================================================================
# run_lg NAME ARGS...: loadgen ARGS --json $tmp/NAME.json, output in $tmp/NAME.{out,err}.
run_lg() {
  local name=$1; shift
  local rc=0
  log "loadgen $(q "$@")"
  "$lg" "$@" --quiet --json "$tmp/$name.json" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
  sed 's/^/    /' "$tmp/$name.out" >&2
  [ -s "$tmp/$name.json" ] || { log "no JSON summary from $name (exit $rc)"; tail -n 20 "$tmp/$name.err" >&2; return 1; }
  [ "$rc" = 0 ] || log "loadgen $name exited $rc (its check failed; see above)"
  echo "$rc" >"$tmp/$name.rc"
}

# secs DURATION: seconds of a humantime duration like 20s or 500ms.
secs() { python3 -c "import sys, re; v = sys.argv[1]; m = re.fullmatch(r'([0-9.]+)(ms|s|m)', v); n = float(m[1]); print({'ms': n / 1000, 's': n, 'm': n * 60}[m[2]])" "$1"; }

section_sse() {
  httpws_proxy_start sse_proxy "$bin" $PROXY_ARGS
  local proxy=$spawned url=$proxy_url
  spawn sse_echo "$echo_bin" --listen 127.0.0.1:0 --threads 1
  local echo_pid=$spawned
  wait_for "$echo_pid" "$tmp/sse_echo.out" 'echo listening on ws://'
  local echo_url; echo_url=$(grep -oE 'ws://[^ ]+' "$tmp/sse_echo.out" | head -n1)
  # shellcheck disable=SC2086
  cmdlog "proxy (pid $proxy)" "$bin" --log warn proxy --listen 127.0.0.1:0 $PROXY_ARGS
  cmdlog "echo (pid $echo_pid)" "$echo_bin" --listen 127.0.0.1:0 --threads 1
  local common=(--stream events --streams "$SSE_STREAMS" --interval "$SSE_INTERVAL" --duration "$SSE_DURATION"
                --warmup "$SSE_WARMUP" --threads "$LG_THREADS")
  local relay=(--proxy "$url" --conns $((2 * SSE_STREAMS)) "${common[@]}")
  local direct=(--proxy "$echo_url" --direct --conns "$SSE_STREAMS" "${common[@]}")
  cmdlog "events through the proxy" "$lg" "${relay[@]}" --json FILE
  cmdlog "events through the echo" "$lg" "${direct[@]}" --json FILE
  local before during mid rep lg_job idle_rss hold
  before=$(rss_kib "$proxy")
  # The same connections registered and idle first, to tell the streams' memory from theirs.
  hold=$(python3 -c "print(int($(secs "$SSE_WARMUP") + 3))")
  cmdlog "idle connections (RSS baseline)" "$lg" --proxy "$url" --idle --conns $((2 * SSE_STREAMS)) --duration "${hold}s" --json FILE
  run_lg sse_idle --proxy "$url" --idle --conns $((2 * SSE_STREAMS)) --duration "${hold}s" &
  lg_job=$!
  sleep "$(secs "$SSE_WARMUP")"
  idle_rss=$(rss_kib "$proxy")
  wait "$lg_job"
  echo "$idle_rss" >"$tmp/sse.rss_idle"
  # The proxy's RSS is read in the middle of each relay run's window, with every stream open.
  mid=$(python3 -c "print($(secs "$SSE_WARMUP") + $(secs "$SSE_DURATION") / 2)")
  for rep in $(seq "$REPS"); do
    run_lg "sse_direct.$rep" "${direct[@]}"
    run_lg "sse_relay.$rep" "${relay[@]}" &
    lg_job=$!
    sleep "$mid"
    during=$(rss_kib "$proxy")
    wait "$lg_job"
    echo "$before $during $(rss_kib "$proxy") $(hwm_kib "$proxy")" >"$tmp/sse.rss.$rep"
  done
  stderr_tail sse_proxy sse_echo
  stop_pid "$proxy" "$echo_pid"
}

report_sse() {
  python3 - "$tmp" "$SSE_STREAMS" "$REPS" <<'EOF'
import json, statistics, sys
tmp, streams, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {k: [json.load(open(f"{tmp}/sse_{k}.{r}.json")) for r in range(1, reps + 1)] for k in ("direct", "relay")}
rss = [[int(x) for x in open(f"{tmp}/sse.rss.{r}").read().split()] for r in range(1, reps + 1)]
def lat(v, q):
    return v["events"]["latency"][q]
def med(k, q):
    return statistics.median(lat(v, q) for v in runs[k])
c = runs["relay"][0]["config"]
print(f"### {streams} SSE streams, one {c['event_bytes']} B event every {c['interval_s']:g} s each (loadgen --stream events, median of {reps})\n")
print("| path | events in window | p50 | p90 | p99 | p99.9 | errors | check |")
print("|---|---|---|---|---|---|---|---|")
for name, k in (("echo (direct, baseline)", "direct"), ("proxy (relay)", "relay")):
    vs = runs[k]
    events = statistics.median(v["events"]["in_window"] for v in vs)
    errs = sum(sum(v["errors"].values()) + sum(v["resets"].values()) for v in vs)
    ok = all(v["clean"] for v in vs)
    print(f"| {name} | {events:,.0f} | {med(k, 'p50_us'):.0f} µs | {med(k, 'p90_us'):.0f} µs | {med(k, 'p99_us'):.0f} µs | {med(k, 'p99.9_us'):.0f} µs | {errs} | {'OK' if ok else 'FAILED'} |")
added = med("relay", "p99_us") - med("direct", "p99_us")
print()
print(f"Added by the relay (medians): p50 {med('relay', 'p50_us') - med('direct', 'p50_us'):+.0f} µs, p99 **{added:+.0f} µs** "
      f"(target ≤ +1000 µs: {'met' if added <= 1000 else 'not met'}).  ")
print("Per rep p50/p99 (µs): " + "; ".join(
    f"{k} " + ", ".join(f"{lat(v, 'p50_us'):.0f}/{lat(v, 'p99_us'):.0f}" for v in runs[k]) for k in ("direct", "relay")) + ".  ")
before = rss[0][0]
idle = int(open(f"{tmp}/sse.rss_idle").read())
during = max(r[1] for r in rss)
after, hwm = rss[-1][2], rss[-1][3]
conns = c["conns"]
print(f"Proxy RSS: {before / 1024:.1f} MiB before; {idle / 1024:.1f} MiB with the {conns} connections registered and idle; "
      f"at most {during / 1024:.1f} MiB with {streams} streams open on them: +{during - idle:,} KiB for the streams, "
      f"**{(during - idle) / streams:.1f} KiB per open stream** ({(during - before) / streams:.1f} KiB with its two connections); "
      f"{after / 1024:.1f} MiB after; peak {hwm / 1024:.1f} MiB.  ")
print("Latency = receive time − the event's intended send time (written into the event), so a late sender shows.")
EOF
}

# =========================================================================================
# hol: small requests without and with one bulk stream on the same connections
# =========================================================================================
section_hol() {
  httpws_proxy_start hol_proxy "$bin" $PROXY_ARGS
  local proxy=$spawned url=$proxy_url
  spawn hol_echo "$echo_bin" --listen 127.0.0.1:0 --threads 1
  local echo_pid=$spawned
  wait_for "$echo_pid" "$tmp/hol_echo.out" 'echo listening on ws://'
  local echo_url; echo_url=$(grep -oE 'ws://[^ ]+' "$tmp/hol_echo.out" | head -n1)
  # One caller and one server through the proxy; through the echo one connection is both.
  local common=(--stream mixed --rate "$HOL_RATE" --payload "$HOL_PAYLOAD" --chunk "$HOL_CHUNK"
                --duration "$HOL_DURATION" --warmup "$HOL_WARMUP" --threads "$LG_THREADS")
  local rep rate
  for rate in $HOL_BULK_RATES; do
    cmdlog "HOL through the proxy, bulk at $rate" "$lg" --proxy "$url" --conns 2 "${common[@]}" --bulk-rate "$rate" --json FILE
    cmdlog "HOL through the echo, bulk at $rate" "$lg" --proxy "$echo_url" --direct --conns 1 "${common[@]}" --bulk-rate "$rate" --json FILE
  done
  echo "$HOL_BULK_RATES" >"$tmp/hol.rates"
  for rep in $(seq "$REPS"); do
    for rate in $HOL_BULK_RATES; do
      run_lg "hol_direct.$rate.$rep" --proxy "$echo_url" --direct --conns 1 "${common[@]}" --bulk-rate "$rate"
      run_lg "hol_relay.$rate.$rep" --proxy "$url" --conns 2 "${common[@]}" --bulk-rate "$rate"
    done
  done
  stderr_tail hol_proxy hol_echo
  stop_pid "$proxy" "$echo_pid"
}

report_hol() {
  python3 - "$tmp" "$REPS" <<'EOF'
import json, statistics, sys
tmp, reps = sys.argv[1], int(sys.argv[2])
rates = open(f"{tmp}/hol.rates").read().split()
runs = {(k, r): [json.load(open(f"{tmp}/hol_{k}.{r}.{i}.json")) for i in range(1, reps + 1)]
        for k in ("direct", "relay") for r in rates}
c = runs["relay", rates[0]][0]["config"]
def med(key, f):
    return statistics.median(f(v) for v in runs[key])
print(f"### Head-of-line blocking: {c['small_rate']} small requests/s ({c['payload']} B), alone and beside one bulk download on the same connections (loadgen --stream mixed, median of {reps})\n")
print("| path | bulk | small p50 alone | small p99 alone | small p50 with bulk | small p99 with bulk | p99 with / alone | bulk MiB/s | check |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rates:
    for name, k in (("echo (direct, baseline)", "direct"), ("proxy (relay)", "relay")):
        key = (k, r)
        a50 = med(key, lambda v: v["small"]["without_bulk"]["p50_us"])
        a99 = med(key, lambda v: v["small"]["without_bulk"]["p99_us"])
        b50 = med(key, lambda v: v["small"]["with_bulk"]["p50_us"])
        b99 = med(key, lambda v: v["small"]["with_bulk"]["p99_us"])
        mib = med(key, lambda v: v["throughput_mib_s"])
        ok = all(v["clean"] for v in runs[key])
        bulk = "as fast as it goes" if r == "0" else f"capped at {r}/s"
        print(f"| {name} | {bulk} | {a50:.0f} µs | {a99:.0f} µs | {b50:.0f} µs | {b99:.0f} µs | {b99 / max(a99, 1e-9):.2f} | {mib:,.0f} | {'OK' if ok else 'FAILED'} |")
print()
print("Per rep small p99 alone/with bulk (µs): " + "; ".join(
    f"{k} {r} " + ", ".join(f"{v['small']['without_bulk']['p99_us']:.0f}/{v['small']['with_bulk']['p99_us']:.0f}" for v in runs[k, r])
    for r in rates for k in ("direct", "relay")) + ".  ")
print("The bulk stream is one unbounded download in data messages of "
      f"{c['chunk']} B within the 256 KiB credit window; the small requests and their answers share both WebSocket connections with it. "
      "Latency from each small request's intended send time (open loop).")
EOF
}

# =========================================================================================
# slow: a 1 KiB/s reader of a large download; RSS of the proxy and both agents
# =========================================================================================
section_slow() {
  service_start slow_service
  local svc=$svc_port
  httpws_tunnel_start "$bin" "$svc" "$PROXY_ARGS" "$ENDPOINT_ARGS" slow_
  local procs=("proxy=$proxy_pid" "svc_agent=$svc_pid" "client_agent=$client_pid") kv line
  cmdlog "slow reader" curl -sS --limit-rate "$SLOW_RATE" -H 'Host: svc' -o /dev/null "http://$ingress/bytes/$BYTES"
  # One fast download first, so that "before" already holds the buffers any transfer uses
  # and the growth is the slow reader's alone.
  curl -sS --max-time "$TRANSFER_LIMIT_S" -H 'Host: svc' -o /dev/null "http://$ingress/bytes/$SLOW_WARM_BYTES"
  line="0"; for kv in "${procs[@]}"; do line+=" ${kv%%=*}=$(rss_kib "${kv#*=}")"; done
  echo "$line" >"$tmp/slow.rss"
  spawn slow_curl curl -sS --limit-rate "$SLOW_RATE" -H 'Host: svc' -o /dev/null \
    -w '%{size_download} %{http_code}\n' "http://$ingress/bytes/$BYTES"
  local curl_pid=$spawned t=0
  log "slow reader (curl pid $curl_pid, --limit-rate $SLOW_RATE) for ${SLOW_SECS}s"
  while [ "$t" -lt "$SLOW_SECS" ]; do
    sleep "$SLOW_SAMPLE"; t=$((t + SLOW_SAMPLE))
    kill -0 "$curl_pid" 2>/dev/null || { log "the slow curl ended early:"; cat "$tmp/slow_curl.out" "$tmp/slow_curl.err" >&2; return 1; }
    line="$t"; for kv in "${procs[@]}"; do line+=" ${kv%%=*}=$(rss_kib "${kv#*=}")"; done
    echo "$line" >>"$tmp/slow.rss"
    log "  ${t}s: $line"
  done
  for kv in "${procs[@]}"; do
    kill -0 "${kv#*=}" 2>/dev/null || { log "${kv%%=*} died"; return 1; }
  done
  stop_pid "$curl_pid"
  stderr_tail slow_proxy slow_svc slow_client
}

report_slow() {
  python3 - "$tmp" "$SLOW_RATE" "$BYTES" <<'EOF'
import sys
tmp, rate, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
samples = []
for line in open(f"{tmp}/slow.rss"):
    f = line.split()
    samples.append((int(f[0]), {k: int(v) for k, v in (x.split("=") for x in f[1:])}))
names = list(samples[0][1])
print(f"### Slow reader: curl --limit-rate {rate} of a {size / 2**30:g} GiB download through the tunnel\n")
print("RSS before = after one 64 MiB download at full speed through the same fresh tunnel.\n")
print("| process | RSS before | " + " | ".join(f"at {t} s" for t, _ in samples[1:]) + " | growth (first → last sample with the reader) | growth from before |")
print("|---|---|" + "---|" * (len(samples) - 1) + "---|---|")
for n in names:
    cells = [n, f"{samples[0][1][n]:,} KiB"] + [f"{s[n]:,} KiB" for _, s in samples[1:]]
    cells.append(f"{samples[-1][1][n] - samples[1][1][n]:+,} KiB")
    cells.append(f"{samples[-1][1][n] - samples[0][1][n]:+,} KiB")
    print("| " + " | ".join(cells) + " |")
print()
print("The service can send the whole body at once; what the relay holds for the stalled reader is bounded by the credit windows "
      "(256 KiB per direction and hop to begin with, grown to at most 4 MiB only while the reader keeps up) and the sockets' buffers, so the RSS stays flat while the reader crawls.")
EOF
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
    printf '### %s\n\n**Section %s failed (exit %s)**; logs in %s.\n' "$s" "$s" "$rc" "$tmp" >"$tmp/report.$s"
  fi
done

cmd="REPS=$REPS BYTES=$BYTES"
has_section sse && cmd+=" SSE_STREAMS=$SSE_STREAMS SSE_DURATION=$SSE_DURATION"
has_section hol && cmd+=" HOL_RATE=$HOL_RATE HOL_DURATION=$HOL_DURATION HOL_BULK_RATES='$HOL_BULK_RATES'"
has_section slow && cmd+=" SLOW_SECS=$SLOW_SECS"
cmd+=" bash bench/streams.sh"
[ ${#only_args[@]} -gt 0 ] && cmd+=" --only $(IFS=,; echo "${sections[*]}")"
versions="httpws $("$bin" --version 2>/dev/null | awk '{print $2}'), curl $(curl --version | head -n1 | awk '{print $2}'), $(python3 --version)"
[ -n "$rathole_bin" ] && versions+=", rathole $("$rathole_bin" --version 2>/dev/null | awk '/Build Version/ {print $3}')"
report=$(
  echo "Date: $START_DATE. Machine: $(machine_desc); load average $START_LOAD at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; run time $(( (SECONDS - START_S) / 60 )) min.  "
  echo "Versions: $versions.  "
  echo "Command: \`$cmd\`  "
  echo "Loopback only; curl, loadgen and the service share the cores with what they measure, so compare ratios within this run."
  echo
  for s in "${sections[@]}"; do cat "$tmp/report.$s"; echo; done
  echo "Commands:"
  echo
  while IFS=$'\t' read -r label c; do echo "- $label: \`$c\`"; done <"$tmp/cmds"
)
echo "$report"
if [ -n "$out_file" ]; then printf '%s\n' "$report" >"$out_file"; log "wrote $out_file"; fi
if [ ${#failed[@]} -gt 0 ]; then log "failed sections: ${failed[*]}"; exit 1; fi
