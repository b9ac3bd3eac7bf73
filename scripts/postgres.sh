#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for tests, on 127.0.0.1 only.
#
#   scripts/postgres.sh start DIR [PORT]  # initdb in DIR/data, listen on 127.0.0.1:PORT (a free
#                                         # port when omitted or 0); prints the URL and writes it
#                                         # to DIR/url, the postmaster's PID to DIR/pid
#   scripts/postgres.sh stop DIR          # stops the PID in DIR/pid, removes DIR/data
#
# The binaries (initdb, pg_ctl, postgres) come from PATH (PG_BIN overrides). PostgreSQL refuses
# to run as root: as root the cluster belongs to the user `postgres` and the commands run
# through runuser. Authentication is `trust` for the local superuser `postgres`, so the cluster
# is for tests only; fsync is off (a crash of the machine loses it, which a test cluster may).
# With openssl on PATH it also speaks TLS, with a self-signed certificate DIR/server.crt.
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2 port=${3:-0}
bin=${PG_BIN:-$(dirname "$(command -v pg_ctl || echo /usr/local/bin/pg_ctl)")}

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case $cmd in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$port" = 0 ]; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        runuser -u postgres -- test -w "$dir" || {
            echo "postgres.sh: the user postgres cannot write $dir (a parent folder closed to it?); use a folder under /tmp" >&2
            exit 1
        }
    fi
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # TLS with a self-signed certificate for 127.0.0.1 when openssl is there (clients may check
    # it with sslrootcert=DIR/server.crt).
    tls=""
    if command -v openssl >/dev/null; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=127.0.0.1 \
            -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
        chmod 600 "$dir/server.key"
        [ "$(id -u)" = 0 ] && chown postgres "$dir/server.key" "$dir/server.crt"
        tls="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
    fi
    # -k: the Unix socket lives in DIR, not in /var/run/postgresql (which may not exist).
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200 $tls" start >/dev/null || {
        cat "$dir/postgres.log" >&2
        exit 1
    }
    head -1 "$dir/data/postmaster.pid" >"$dir/pid"
    url="postgres://postgres@127.0.0.1:$port/postgres"
    echo "$url" >"$dir/url"
    echo "$url"
    ;;
stop)
    [ -f "$dir/pid" ] || { echo "postgres.sh: no $dir/pid" >&2; exit 1; }
    pid=$(cat "$dir/pid")
    # SIGINT: the fast shutdown (ends sessions, checkpoints, exits).
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "postgres.sh: $pid did not stop in 10 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir/data" "$dir/pid" "$dir/server.key" "$dir/server.crt"
    ;;
*) usage ;;
esac
