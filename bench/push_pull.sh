#!/usr/bin/env bash
# push/pull of many small files to an S3 server (moto): taxon vs dvc, same data, same jobs.
#
#   bench/push_pull.sh            # 10,000 files of 1-4 KB (seeded), 3 runs, medians + ratios
#   N=2000 RUNS=1 JOBS=8 bench/push_pull.sh
#
# Each run starts a fresh moto server (scripts/s3-server.sh), then times, in fresh repos:
#   taxon: `taxon data add data && taxon data push`, then (cache and data removed) `taxon data pull`
#   dvc:   `dvc add data && dvc push`,              then (cache and data removed) `dvc pull`
# Restored data is compared with the original (diff -r). TAXON_BIN picks the binary (default:
# target/release/taxon under $CARGO_TARGET_DIR, built if missing). dvc comes from $TAXON_VENV.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
RUNS=${RUNS:-3}
JOBS=${JOBS:-$((4 * $(nproc)))}
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

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench DVC_NO_ANALYTICS=1 TAXON_QUIET=true
work=$(mktemp -d "${TMPDIR:-/tmp}/taxon-bench.XXXXXX")
cleanup() { "$here/scripts/s3-server.sh" stop "$work/s3" >/dev/null 2>&1 || true; chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; }
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

declare -a T_PUSH T_PULL D_PUSH D_PULL
for run in $(seq 1 "$RUNS"); do
    "$here/scripts/s3-server.sh" start "$work/s3" >/dev/null
    port=$(cat "$work/s3/port")
    ep="http://127.0.0.1:$port"
    "$py" -c "import urllib.request as u; u.urlopen(u.Request('$ep/bench', method='PUT'))"

    # taxon
    t="$work/taxon-$run"; mkdir -p "$t"; cp -r "$work/src" "$t/data"
    (cd "$t" && "$TAXON_BIN" data init >/dev/null && "$TAXON_BIN" data remote add -d s3 "s3://bench/taxon-$run" \
        && "$TAXON_BIN" data remote modify s3 endpointurl "$ep")
    s=$(now); (cd "$t" && "$TAXON_BIN" data add data >/dev/null && "$TAXON_BIN" data push -j "$JOBS" >/dev/null); e=$(now)
    T_PUSH+=("$(elapsed "$s" "$e")")
    rmcache "$t"
    s=$(now); (cd "$t" && "$TAXON_BIN" data pull -j "$JOBS" >/dev/null); e=$(now)
    T_PULL+=("$(elapsed "$s" "$e")")
    diff -r "$work/src" "$t/data" >/dev/null || { echo "taxon pull did not restore the data" >&2; exit 1; }

    # dvc
    d="$work/dvc-$run"; mkdir -p "$d"; cp -r "$work/src" "$d/data"
    (cd "$d" && "$dvc" init --no-scm -q && "$dvc" remote add -q -d s3 "s3://bench/dvc-$run" \
        && "$dvc" remote modify s3 endpointurl "$ep")
    s=$(now); (cd "$d" && "$dvc" add -q data && "$dvc" push -q -j "$JOBS"); e=$(now)
    D_PUSH+=("$(elapsed "$s" "$e")")
    rmcache "$d"
    s=$(now); (cd "$d" && "$dvc" pull -q -j "$JOBS"); e=$(now)
    D_PULL+=("$(elapsed "$s" "$e")")
    diff -r "$work/src" "$d/data" >/dev/null || { echo "dvc pull did not restore the data" >&2; exit 1; }

    "$here/scripts/s3-server.sh" stop "$work/s3"
    rm -rf "$t" "$d" 2>/dev/null || { chmod -R u+w "$t" "$d"; rm -rf "$t" "$d"; }
    printf 'run %d: taxon add+push %.2fs pull %.2fs | dvc add+push %.2fs pull %.2fs\n' \
        "$run" "${T_PUSH[-1]}" "${T_PULL[-1]}" "${D_PUSH[-1]}" "${D_PULL[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tp=$(median "${T_PUSH[@]}"); tl=$(median "${T_PULL[@]}")
dp=$(median "${D_PUSH[@]}"); dl=$(median "${D_PULL[@]}")
echo
echo "push/pull of $N small files to moto S3, jobs=$JOBS, median of $RUNS run(s) ($(nproc) cores)"
printf '%-16s %10s %10s %8s\n' step taxon dvc ratio
printf '%-16s %9.2fs %9.2fs %7.1fx\n' "add + push" "$tp" "$dp" "$(echo "$dp / $tp" | bc -l)"
printf '%-16s %9.2fs %9.2fs %7.1fx\n' "pull" "$tl" "$dl" "$(echo "$dl / $tl" | bc -l)"
