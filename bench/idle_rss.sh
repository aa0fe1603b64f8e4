#!/usr/bin/env bash
# Proxy RSS per idle registered connection (docs/design.md, Performance targets: <= 1 KiB at 10k).
#
#   bash bench/idle_rss.sh [CONNS...]        (default: 10000 19000)
#
# For each count: start a fresh release proxy on 127.0.0.1:0, read its RSS, open CONNS
# idle registered connections from bench/idle_clients.py (spread over 127.0.0.2-9), read
# the RSS again, and report (after - before) / CONNS. The per-process open-files cap
# (20,000 here) bounds CONNS on this machine; tuning/ covers more on a real host.
# TLS=1: the same over wss:// (a throwaway self-signed certificate for localhost, made
# with openssl), to price what a TLS session adds to an idle connection.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 19000)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --quiet --bin httpws
bin=target/release/httpws

LOG_TAG=idle_rss
# shellcheck source=bench/lib.sh
. bench/lib.sh  # rss_kib

tls_proxy_args=() tls_client_args=()
if [ "${TLS:-0}" = 1 ]; then
  certs=$(mktemp -d)
  trap 'rm -rf "$certs"' EXIT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
  tls_proxy_args=(--tls-cert "$certs/cert.pem" --tls-key "$certs/key.pem")
  tls_client_args=(--tls-ca "$certs/cert.pem")
fi

for n in "${counts[@]}"; do
  out=$(mktemp)
  # shellcheck disable=SC2086 # PROXY_ARGS is a list of flags
  "$bin" proxy --listen 127.0.0.1:0 --idle-timeout 1h --log warn ${PROXY_ARGS:---shards 2} "${tls_proxy_args[@]}" >"$out" &
  proxy=$!
  for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
  port=$(grep -o '127.0.0.1:[0-9]*' "$out" | cut -d: -f2)
  sleep 0.5
  before=$(rss_kib "$proxy")
  fifo=$(mktemp -u); mkfifo "$fifo"
  python3 bench/idle_clients.py --port "$port" --conns "$n" "${tls_client_args[@]}" <"$fifo" >"$out.clients" &
  clients=$!
  exec 3>"$fifo"
  for _ in $(seq 1200); do grep -q '^ready' "$out.clients" && break; sleep 0.1; done
  grep -q '^ready' "$out.clients" || { echo "clients did not get ready"; kill "$clients" "$proxy"; exit 1; }
  sleep 1
  after=$(rss_kib "$proxy")
  exec 3>&-
  wait "$clients" || true
  kill -TERM "$proxy"; wait "$proxy" || true
  rm -f "$fifo" "$out" "$out.clients"
  per=$(python3 -c "print(f'{($after - $before) * 1024 / $n:.0f}')")
  echo "tls=${TLS:-0} conns=$n rss_before_kib=$before rss_after_kib=$after bytes_per_conn=$per"
done
