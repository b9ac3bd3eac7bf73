#!/usr/bin/env bash
# push/pull of many small files to a local S3 server: taxon vs dvc, same data, same jobs.
#
#   bench/push_pull.sh            # 10,000 files of 1-4 KB (seeded), 3 runs, medians + ratios
#   N=2000 RUNS=1 JOBS=8 bench/push_pull.sh
#   S3_SERVER=moto bench/push_pull.sh
#
# Each run starts a fresh server (scripts/s3-server.sh), then times, in fresh repos:
#   taxon: `taxon data add data && taxon data push`, then (cache and data removed) `taxon data pull`
#   dvc:   `dvc add data && dvc push`,              then (cache and data removed) `dvc pull`
# and, per step, the CPU time the server process spent (from /proc/PID/stat).
# Restored data is compared with the original (diff -r). TAXON_BIN picks the binary (default:
# target/release/taxon under $CARGO_TARGET_DIR, built if missing). dvc comes from $TAXON_VENV.
#
# S3_SERVER: s3s-fs (default; Rust, ~0.3 ms of server CPU per request, built once on first use,
# see scripts/s3-server.sh) or moto (Python, ~2.3 ms per PUT: the server, not the client, is then
# what is measured). The s3s-fs data lives on /dev/shm when it is writable (S3_DATA_DIR
# overrides), so the server's disk work does not weigh on the clients' timings.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
RUNS=${RUNS:-3}
JOBS=${JOBS:-$((4 * $(nproc)))}
export S3_SERVER=${S3_SERVER:-s3s-fs}
venv=${TAXON_VENV:-$HOME/.cache/taxon/venv}
dvc="$venv/bin/dvc"
py="$venv/bin/python3"
target=${CARGO_TARGET_DIR:-$here/target}
if [ -z "${TAXON_BIN:-}" ]; then
    TAXON_BIN="$target/release/taxon"
    if [ ! -x "$TAXON_BIN" ]; then
        (cd "$here" && cargo build --release -p taxon-cli)
    fi
fi
[ -x "$dvc" ] || { echo "dvc not found in $venv/bin (pip install dvc dvc-s3)" >&2; exit 3; }

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret DVC_NO_ANALYTICS=1 TAXON_QUIET=true
work=$(mktemp -d "${TMPDIR:-/tmp}/taxon-bench.XXXXXX")
shm=""
if [ "$S3_SERVER" = s3s-fs ] && [ -z "${S3_DATA_DIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    shm=$(mktemp -d /dev/shm/taxon-bench-s3.XXXXXX)
fi
cleanup() {
    "$here/scripts/s3-server.sh" stop "$work/s3" >/dev/null 2>&1 || true
    chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
    [ -z "$shm" ] || rm -rf "$shm"
}
trap cleanup EXIT

echo "generating $N files (1-4 KB, seed 42) in $work/src"
"$py" - "$work/src" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 9))) for _ in range(5000)]
for i in range(n):
    d = os.path.join(root, f"shard{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    size = rng.randint(1024, 4096)
    text = []
    total = 0
    while total < size:
        w = rng.choice(words); text.append(w); total += len(w) + 1
    with open(os.path.join(d, f"doc{i:05d}.txt"), "w") as f:
        f.write(" ".join(text)[:size])
PY

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
rmcache() { chmod -R u+w "$1/.dvc/cache" 2>/dev/null || true; rm -rf "$1/.dvc/cache" "$1/data"; }
# CPU seconds (user + system) the server process has used so far.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$spid/stat"; }
# timed NAME DIR CMD...: runs CMD in DIR; appends wall seconds to W_NAME, server CPU to C_NAME.
timed() {
    local name=$1 dir=$2 s e c0 c1
    shift 2
    c0=$(server_cpu); s=$(now)
    (cd "$dir" && "$@")
    e=$(now); c1=$(server_cpu)
    eval "W_$name+=(\"$(elapsed "$s" "$e")\"); C_$name+=(\"$(elapsed "$c0" "$c1")\")"
}

declare -a W_tadd W_tpush W_tpull W_dadd W_dpush W_dpull C_tadd C_tpush C_tpull C_dadd C_dpush C_dpull
for run in $(seq 1 "$RUNS"); do
    [ -z "$shm" ] || export S3_DATA_DIR="$shm/run-$run"
    "$here/scripts/s3-server.sh" start "$work/s3" bench >/dev/null
    spid=$(cat "$work/s3/pid")
    ep="http://127.0.0.1:$(cat "$work/s3/port")"

    # taxon
    t="$work/taxon-$run"; mkdir -p "$t"; cp -r "$work/src" "$t/data"
    (cd "$t" && "$TAXON_BIN" data init >/dev/null && "$TAXON_BIN" data remote add -d s3 "s3://bench/taxon-$run" \
        && "$TAXON_BIN" data remote modify s3 endpointurl "$ep")
    timed tadd "$t" "$TAXON_BIN" data add data >/dev/null
    timed tpush "$t" "$TAXON_BIN" data push -j "$JOBS" >/dev/null
    rmcache "$t"
    timed tpull "$t" "$TAXON_BIN" data pull -j "$JOBS" >/dev/null
    diff -r "$work/src" "$t/data" >/dev/null || { echo "taxon pull did not restore the data" >&2; exit 1; }

    # dvc
    d="$work/dvc-$run"; mkdir -p "$d"; cp -r "$work/src" "$d/data"
    (cd "$d" && "$dvc" init --no-scm -q && "$dvc" remote add -q -d s3 "s3://bench/dvc-$run" \
        && "$dvc" remote modify s3 endpointurl "$ep")
    timed dadd "$d" "$dvc" add -q data
    timed dpush "$d" "$dvc" push -q -j "$JOBS"
    rmcache "$d"
    timed dpull "$d" "$dvc" pull -q -j "$JOBS"
    diff -r "$work/src" "$d/data" >/dev/null || { echo "dvc pull did not restore the data" >&2; exit 1; }

    "$here/scripts/s3-server.sh" stop "$work/s3"
    rm -rf "$t" "$d" 2>/dev/null || { chmod -R u+w "$t" "$d"; rm -rf "$t" "$d"; }
    printf 'run %d: taxon add %.2fs push %.2fs (server %.2fs) pull %.2fs (server %.2fs) | dvc add %.2fs push %.2fs (server %.2fs) pull %.2fs (server %.2fs)\n' \
        "$run" "${W_tadd[-1]}" "${W_tpush[-1]}" "${C_tpush[-1]}" "${W_tpull[-1]}" "${C_tpull[-1]}" \
        "${W_dadd[-1]}" "${W_dpush[-1]}" "${C_dpush[-1]}" "${W_dpull[-1]}" "${C_dpull[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# add+push per run, so its median is of whole runs.
declare -a W_tap W_dap C_tap C_dap
for i in "${!W_tadd[@]}"; do
    W_tap+=("$(echo "${W_tadd[$i]} + ${W_tpush[$i]}" | bc -l)")
    W_dap+=("$(echo "${W_dadd[$i]} + ${W_dpush[$i]}" | bc -l)")
    C_tap+=("$(echo "${C_tadd[$i]} + ${C_tpush[$i]}" | bc -l)")
    C_dap+=("$(echo "${C_dadd[$i]} + ${C_dpush[$i]}" | bc -l)")
done
row() { # row LABEL TAXON_WALLS DVC_WALLS TAXON_CPUS DVC_CPUS (array names)
    local tw dw tc dc
    eval "tw=\$(median \"\${$2[@]}\"); dw=\$(median \"\${$3[@]}\")"
    eval "tc=\$(median \"\${$4[@]}\"); dc=\$(median \"\${$5[@]}\")"
    printf '%-12s %9.2fs %9.2fs %7.1fx %12.2fs %10.2fs\n' "$1" "$tw" "$dw" "$(echo "$dw / $tw" | bc -l)" "$tc" "$dc"
}
echo
echo "push/pull of $N small files to $S3_SERVER S3, jobs=$JOBS, median of $RUNS run(s) ($(nproc) cores)"
printf '%-12s %10s %10s %8s %13s %11s\n' step taxon dvc ratio "taxon:server" "dvc:server"
row "add" W_tadd W_dadd C_tadd C_dadd
row "push" W_tpush W_dpush C_tpush C_dpush
row "add + push" W_tap W_dap C_tap C_dap
row "pull" W_tpull W_dpull C_tpull C_dpull
echo "(taxon:server, dvc:server = CPU seconds the S3 server spent during that tool's step)"
