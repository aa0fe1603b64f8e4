#!/usr/bin/env bash
# Autobahn|Testsuite conformance run: `wstest -m fuzzingclient` against examples/echo.rs,
# a WebSocket echo server on the proxy's own handshake and frame codec (src/proto/).
# Exits 1 if any case FAILED; see docs/autobahn.md for the expected result.
#
#   bash bench/autobahn/run.sh            # env: PYTHON2, AUTOBAHN_VENV, ECHO_ARGS
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REPORTS=$ROOT/bench/autobahn/reports # gitignored
# Pinned so verdicts are reproducible; 25.10.1 pins its own Python 2.7 dependencies,
# so pip resolves it there.
ABTS_VERSION=25.10.1
VENV=${AUTOBAHN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/httpws/autobahn-py27-$ABTS_VERSION}

# wstest runs only on Python 2.7, which many machines lack: the run is optional there.
PY2=${PYTHON2:-}
if [[ -z $PY2 ]]; then
    # Run each candidate: a pyenv shim is on PATH even when its version is not selected.
    for candidate in python2.7 "$HOME"/.pyenv/versions/2.7*/bin/python; do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
            PY2=$(command -v "$candidate")
            break
        fi
    done
fi
if [[ -z $PY2 ]]; then
    echo "autobahn: Python 2.7 not found (set PYTHON2=/path/to/python2.7); skipping." >&2
    exit 0
fi

# A private virtualenv, reused across runs (installing takes a minute).
install_wstest() {
    echo "autobahn: creating $VENV with $PY2"
    # virtualenv 20.22 dropped Python 2 support.
    "$PY2" -m virtualenv --version >/dev/null 2>&1 ||
        "$PY2" -m pip install --quiet 'virtualenv<20.22' || return 1
    "$PY2" -m virtualenv --quiet "$VENV" || return 1
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "autobahntestsuite==$ABTS_VERSION"
}
if [[ ! -x $VENV/bin/wstest ]] && ! install_wstest; then
    rm -rf "$VENV"
    # In CI (AUTOBAHN_OPTIONAL=1) a package index that cannot serve Python 2.7 packages is
    # a missing prerequisite, like a missing Python 2.7; by hand it is an error.
    if [[ ${AUTOBAHN_OPTIONAL:-0} == 1 ]]; then
        echo "autobahn: could not install autobahntestsuite; skipping." >&2
        exit 0
    fi
    echo "autobahn: could not install autobahntestsuite" >&2
    exit 1
fi

cd "$ROOT"
cargo build --release --example echo

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
# Port 0: the echo picks a free port and prints it, so there is no race for one.
# One thread is enough for conformance (the cases run one connection at a time).
# shellcheck disable=SC2086 # ECHO_ARGS is a list of flags, e.g. "--driver legacy"
target/release/examples/echo --listen 127.0.0.1:0 --threads 1 ${ECHO_ARGS:-} \
    >"$REPORTS/echo.log" 2>&1 &
ECHO_PID=$!
trap 'kill "$ECHO_PID" 2>/dev/null || true; wait "$ECHO_PID" 2>/dev/null || true' EXIT
URL=
for _ in $(seq 100); do
    URL=$(grep -o 'ws://[0-9.:]*' "$REPORTS/echo.log" || true)
    [[ -n $URL ]] && break
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $URL ]]; then
    echo "autobahn: the echo server did not start:" >&2
    cat "$REPORTS/echo.log" >&2
    exit 1
fi

# 12.* and 13.* are permessage-deflate, which is not offered by design (docs/design.md).
cat >"$REPORTS/spec.json" <<JSON
{
  "outdir": "$REPORTS/servers",
  "servers": [{"agent": "httpws-echo", "url": "$URL"}],
  "cases": ["*"],
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON
echo "autobahn: wstest $ABTS_VERSION fuzzingclient against $URL (log: $REPORTS/wstest.log)"
(cd "$REPORTS" && "$VENV/bin/wstest" -m fuzzingclient -s spec.json >wstest.log 2>&1)

# wstest itself exits 0 whatever the outcome: the verdicts are in index.json.
"$VENV/bin/python" "$ROOT/bench/autobahn/verdicts.py" "$REPORTS/servers/index.json"
