#!/usr/bin/env bash
# `taxon pipeline` next to DVC on the same files: the standard pipeline of `taxon pipeline
# init` (validate, train, evaluate, register and promote) on a corpus other than BBC, run once
# by taxon; then, ROUNDS times each, the checks a user runs most: a run with nothing to do
# (`taxon pipeline run` vs `dvc repro`) and the status (`taxon pipeline status` vs `dvc
# status`); and a change of one training parameter (taxon re-runs train, evaluate, register).
# Prints the median wall time of each, and checks on the way that dvc reports taxon's run as
# up to date.
#
# usage: bench/pipeline.sh
#   env: CORPUS=fortunes (a folder of bench/linear.sh's data: fortunes, manpages, bbc),
#        ROUNDS=5, WORK=/tmp/taxon-bench-pipeline, BENCH_DIR (default ~/.cache/taxon/bench-linear),
#        TAXON_BIN (a prebuilt binary instead of the release build), CARGO_TARGET_DIR,
#        TAXON_VENV (where dvc is; scripts/setup-tools.sh installs it).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
CORPUS=${CORPUS:-fortunes}
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-/tmp/taxon-bench-pipeline}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
VENV=${TAXON_VENV:-$HOME/.cache/taxon/venv}
DATA=$BENCH_DIR/data/$CORPUS
if [[ ! -f $DATA/train.jsonl ]]; then
    echo "no $DATA/train.jsonl: bench/linear.sh builds the corpora (fortunes, manpages, bbc)" >&2
    exit 2
fi
if [[ -z ${TAXON_BIN:-} ]]; then
    echo "== building taxon (release)" >&2
    cargo build --release -q -p taxon-cli
fi
TAXON=$(realpath "${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}")
# The stages call `taxon` by name; dvc comes from the venv.
BIN_DIR=$(mktemp -d)
trap 'rm -rf "$BIN_DIR"' EXIT
ln -s "$TAXON" "$BIN_DIR/taxon"
export PATH=$BIN_DIR:$VENV/bin:$PATH DVC_NO_ANALYTICS=1

rm -rf "$WORK"
mkdir -p "$WORK/data"
cp "$DATA/train.jsonl" "$DATA/test.jsonl" "$WORK/data/"
cd "$WORK"

# Seconds (wall) that "$@" takes; its output goes to last.log, its failure fails the bench.
secs() {
    local t0 t1
    t0=$(date +%s.%N)
    if ! "$@" >last.log 2>&1; then
        echo "failed: $*" >&2
        tail -20 last.log >&2
        return 1
    fi
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }

echo "== $CORPUS: $(wc -l <data/train.jsonl) train, $(wc -l <data/test.jsonl) test rows" >&2
taxon -q pipeline init --data data --name "$CORPUS" >/dev/null
first=$(secs taxon pipeline run)
echo "== first run (every stage): ${first} s; accuracy $(python3 -c 'import json;print(json.load(open("reports/eval.json"))["accuracy"])')" >&2
if [[ $(dvc status --json) != "{}" ]]; then
    echo "dvc does not see taxon's run as up to date:" >&2
    dvc status >&2
    exit 1
fi

declare -A t
for _ in $(seq "$ROUNDS"); do
    t[taxon_noop]+=" $(secs taxon pipeline run)"
    t[dvc_noop]+=" $(secs dvc repro)"
    t[taxon_status]+=" $(secs taxon pipeline status)"
    t[dvc_status]+=" $(secs dvc status)"
done
sed -i 's/^  seed: 42$/  seed: 43/' params.yaml
changed=$(secs taxon pipeline run)

printf '\n%-44s %10s %10s %8s\n' "$CORPUS, median of $ROUNDS (s)" taxon dvc "dvc/taxon"
for pair in "run with nothing to do:noop" "status:status"; do
    name=${pair%%:*}
    key=${pair##*:}
    a=$(median ${t[taxon_$key]})
    b=$(median ${t[dvc_$key]})
    printf '%-44s %10s %10s %7.1fx\n' "$name" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print b / a}')"
done
printf '%-44s %10s\n' "first run, every stage (taxon)" "$first"
printf '%-44s %10s\n' "train.seed changed: train, evaluate, register" "$changed"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $(grep -o -w -m1 -E 'avx512_vnni|avx512f|avx2' /proc/cpuinfo | sort -u | xargs)"
