#!/usr/bin/env bash
# Benchmark: `taxon data add` of a 1 GB file vs `md5sum` (the single-core md5 limit) and vs
# `dvc add` (DVC 3, in a `dvc init --no-scm` repo). Same file, same machine, one run.
#
# Each tool runs RUNS times (default 3) on a fresh cache; the file stays in the page cache for
# all of them (md5sum runs first and warms it). Prints the medians and the ratios.
#
#   bench/add.sh                 # builds taxon in release mode first
#   TAXON_BIN=path/to/taxon SIZE_MB=256 RUNS=3 bench/add.sh
#   TAXON_DVC=path/to/dvc bench/add.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
SEED=${SEED:-42}
DVC=${TAXON_DVC:-$HOME/.cache/taxon/venv/bin/dvc}

if [[ -z "${TAXON_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p taxon-cli)
    TAXON_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/taxon
fi
TAXON_BIN=$(realpath "$TAXON_BIN")
[[ -x "$DVC" ]] || { echo "dvc not found at $DVC (set TAXON_DVC)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taxon-bench-add.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

echo "making a ${SIZE_MB} MB file of seeded random text (seed $SEED) in $WORK" >&2
python3 - "$WORK/data.txt" "$SIZE_MB" "$SEED" <<'PY'
import random, sys
path, size_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
         for _ in range(5000)]
# A 4 MiB block of random sentences; each copy gets its own numbered header line so the file
# never repeats byte for byte.
lines, n = [], 0
while n < (4 << 20):
    line = " ".join(rng.choices(words, k=rng.randint(5, 30))) + "\n"
    lines.append(line); n += len(line)
block = "".join(lines).encode()
target = size_mb << 20
with open(path, "wb") as f:
    i = 0
    while f.tell() < target:
        f.write(b"block %d %d\n" % (i, rng.getrandbits(64)))
        f.write(block[: target - f.tell()])
        i += 1
PY

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

md5_t=(); taxon_t=(); dvc_t=()
for i in $(seq "$RUNS"); do
    t0=$(now); md5sum "$WORK/data.txt" >/dev/null; t1=$(now)
    md5_t+=("$(echo "$t1 - $t0" | bc -l)")

    # taxon: a fresh repo (fresh cache, no state file) around the same file.
    rm -rf "$WORK/t"; mkdir "$WORK/t"; ln "$WORK/data.txt" "$WORK/t/data.txt"
    (cd "$WORK/t" && "$TAXON_BIN" -q data init >/dev/null)
    t0=$(now); (cd "$WORK/t" && "$TAXON_BIN" -q data add data.txt >/dev/null); t1=$(now)
    taxon_t+=("$(echo "$t1 - $t0" | bc -l)")
    chmod -R u+w "$WORK/t"; rm -rf "$WORK/t"

    # dvc: a fresh `dvc init --no-scm` repo; dvc moves the file into its cache, so give it a copy
    # made before the clock starts.
    rm -rf "$WORK/d"; mkdir "$WORK/d"; cp "$WORK/data.txt" "$WORK/d/data.txt"
    (cd "$WORK/d" && "$DVC" init --no-scm -q)
    t0=$(now); (cd "$WORK/d" && "$DVC" add -q data.txt); t1=$(now)
    dvc_t+=("$(echo "$t1 - $t0" | bc -l)")
    chmod -R u+w "$WORK/d"; rm -rf "$WORK/d"
    echo "run $i: md5sum ${md5_t[-1]} s, taxon ${taxon_t[-1]} s, dvc ${dvc_t[-1]} s" >&2
done

m=$(median "${md5_t[@]}"); t=$(median "${taxon_t[@]}"); d=$(median "${dvc_t[@]}")
mb=$SIZE_MB
printf '\n%-22s %10s %10s\n' "tool (${SIZE_MB} MB)" "median s" "MB/s"
printf '%-22s %10.3f %10.0f\n' "md5sum" "$m" "$(echo "$mb / $m" | bc -l)"
printf '%-22s %10.3f %10.0f\n' "taxon data add" "$t" "$(echo "$mb / $t" | bc -l)"
printf '%-22s %10.3f %10.0f\n' "dvc add" "$d" "$(echo "$mb / $d" | bc -l)"
printf '\ntaxon speed / md5sum speed: %.2fx (target >= 0.8x)\n' "$(echo "$m / $t" | bc -l)"
printf 'taxon speedup over dvc:     %.2fx (target >= 3x)\n' "$(echo "$d / $t" | bc -l)"
