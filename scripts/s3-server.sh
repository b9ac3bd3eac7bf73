#!/usr/bin/env bash
# Starts or stops a local S3-compatible server (moto_server) for tests and benchmarks.
#
#   scripts/s3-server.sh start DIR   # picks a free port on 127.0.0.1, writes DIR/port, DIR/pid
#   scripts/s3-server.sh stop DIR    # kills the PID in DIR/pid
#
# moto_server comes from $TAXON_VENV/bin (default $HOME/.cache/taxon/venv). moto keeps objects
# in memory and accepts any credentials, so it tests the S3 protocol, not authentication.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1 dir=$2
venv=${TAXON_VENV:-$HOME/.cache/taxon/venv}

case "$cmd" in
start)
    moto="$venv/bin/moto_server"
    if [ ! -x "$moto" ]; then
        moto=$(command -v moto_server || true)
    fi
    if [ -z "$moto" ] || [ ! -x "$moto" ]; then
        echo "s3-server: moto_server not found in $venv/bin or PATH; install with: $venv/bin/pip install 'moto[server]'" >&2
        exit 3
    fi
    mkdir -p "$dir"
    python=$(dirname "$moto")/python3
    [ -x "$python" ] || python=python3
    port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    "$moto" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3-server: moto_server exited; log:" >&2
            cat "$dir/moto.log" >&2
            exit 1
        fi
        if "$python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
            echo "s3-server: moto_server pid $pid on http://127.0.0.1:$port"
            exit 0
        fi
        sleep 0.2
    done
    echo "s3-server: moto_server did not answer on port $port within 30 s" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null || true
        rm -f "$dir/pid" "$dir/port"
    fi
    ;;
*) usage ;;
esac
