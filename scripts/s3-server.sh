#!/usr/bin/env bash
# Starts or stops a local S3-compatible server for tests and benchmarks, on 127.0.0.1 only.
#
#   scripts/s3-server.sh start DIR [BUCKET...]  # free port; writes DIR/port, DIR/pid, DIR/env
#   scripts/s3-server.sh stop DIR               # kills the PID in DIR/pid (and removes the
#                                               # s3s-fs data folder if start created it)
#
# S3_SERVER picks the server:
#   moto    (default) moto_server from $TAXON_VENV/bin (default $HOME/.cache/taxon/venv).
#           Objects in memory; accepts any credentials. ~2.3 ms of server CPU per PUT (Python,
#           one core), so it caps a small-file benchmark: use it for protocol tests.
#   s3s-fs  bench/s3-fs-server: s3s-fs 0.14.1 (Rust) with HEAD on a folder answering 404 so
#           `dvc pull` works. Real SigV4, objects as files under S3_DATA_DIR (default DIR/data;
#           a tmpfs such as /dev/shm keeps disk effects out of a benchmark). ~0.3 ms of server
#           CPU per request. Built on first use into $TAXON_TOOLS (default $HOME/.cache/taxon)
#           with `cargo install --locked` (several minutes, once per machine).
# Credentials: $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY when set, else taxon / taxon-secret;
# DIR/env holds `export` lines for them and S3_ENDPOINT. Buckets named after DIR are created.
set -euo pipefail

usage() { echo "usage: $0 start DIR [BUCKET...] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${TAXON_VENV:-$HOME/.cache/taxon/venv}
tools=${TAXON_TOOLS:-$HOME/.cache/taxon}
server=${S3_SERVER:-moto}
key=${AWS_ACCESS_KEY_ID:-taxon}
secret=${AWS_SECRET_ACCESS_KEY:-taxon-secret}

# Waits until LOG shows the server listening (or PID dies); prints the port.
wait_listening() {
    local pid=$1 log=$2 pattern=$3
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3-server: $server exited; log:" >&2
            cat "$log" >&2
            return 1
        fi
        if grep -q "$pattern" "$log" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "s3-server: $server did not start within 30 s" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}

start_moto() {
    local moto="$venv/bin/moto_server"
    [ -x "$moto" ] || moto=$(command -v moto_server || true)
    if [ -z "$moto" ] || [ ! -x "$moto" ]; then
        echo "s3-server: moto_server not found in $venv/bin or PATH; install with: $venv/bin/pip install 'moto[server]'" >&2
        exit 3
    fi
    local python port pid
    python=$(dirname "$moto")/python3
    [ -x "$python" ] || python=python3
    port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    "$moto" -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3-server: moto_server exited; log:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
        if "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
            for b in "$@"; do
                "$python" -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$port/$b', method='PUT'))"
            done
            return 0
        fi
        sleep 0.2
    done
    echo "s3-server: moto_server did not answer on port $port within 30 s" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
}

# The s3s-fs server binary, built from bench/s3-fs-server on first use.
s3s_fs_bin() {
    local bin="$tools/bin/taxon-s3-fs-server"
    if [ ! -x "$bin" ]; then
        echo "s3-server: building taxon-s3-fs-server into $tools/bin (once; several minutes)" >&2
        CARGO_TARGET_DIR="$tools/s3-fs-server-target" cargo install --quiet --locked \
            --path "$here/bench/s3-fs-server" --root "$tools" >&2
    fi
    echo "$bin"
}

start_s3s_fs() {
    local bin data pid port
    bin=$(s3s_fs_bin)
    data=${S3_DATA_DIR:-$dir/data}
    local created=0
    [ -e "$data" ] || created=1
    mkdir -p "$data"
    data=$(cd "$data" && pwd)
    for b in "$@"; do mkdir -p "$data/$b"; done
    # `stop` removes the data folder only when `start` created it.
    [ "$created" = 0 ] || echo "$data" >"$dir/data_dir"
    "$bin" --host 127.0.0.1 --port 0 --access-key "$key" --secret-key "$secret" "$data" \
        >"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    wait_listening "$pid" "$dir/server.log" "listening on" || exit 1
    port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/server.log" | head -1)
    [ -n "$port" ] || { echo "s3-server: no port in $dir/server.log" >&2; kill "$pid"; exit 1; }
    echo "$port" >"$dir/port"
}

case "$cmd" in
start)
    mkdir -p "$dir"
    case "$server" in
    moto) start_moto "$@" ;;
    s3s-fs) start_s3s_fs "$@" ;;
    *) echo "s3-server: unknown S3_SERVER=$server (moto or s3s-fs)" >&2; exit 2 ;;
    esac
    port=$(cat "$dir/port")
    printf 'export AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q S3_ENDPOINT=%q\n' \
        "$key" "$secret" "http://127.0.0.1:$port" >"$dir/env"
    echo "s3-server: $server pid $(cat "$dir/pid") on http://127.0.0.1:$port"
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$dir/pid" "$dir/port" "$dir/env"
    fi
    if [ -f "$dir/data_dir" ]; then
        rm -rf "$(cat "$dir/data_dir")"
        rm -f "$dir/data_dir"
    fi
    ;;
*) usage ;;
esac
