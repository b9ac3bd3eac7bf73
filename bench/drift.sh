#!/usr/bin/env bash
# The drift measurement of the README's Monitor section: how often `taxon monitor drift` says
# "drift" on windows of current data, by scenario and window size, against the reference
# profile `taxon train` writes (the BBC linear model's predictions on its 178-text validation
# split).
#
# usage: bench/drift.sh
#   env: WINDOWS=30 (windows per scenario and size), SIZES="50 100 200 500",
#        WORK=/tmp/taxon-bench-drift, BENCH_DIR (where bench/linear.sh keeps the BBC split;
#        default ~/.cache/taxon/bench-linear), TAXON_BIN (a prebuilt binary instead of the
#        release build), CARGO_TARGET_DIR, TAXON_VENV (Python for the window sampler),
#        ONLY (run the scenarios whose name contains this).
# Scenarios (bench/drift_windows.py): the test split (no drift: the false-alarm rate), another
# domain (paragraphs of the Python standard library's docstrings, from the venv's own Python),
# a label shift (the test split with `sports` drawn three times as often), a length shift (the
# test split's texts cut to their first third of words).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
WORK=${WORK:-/tmp/taxon-bench-drift}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
VENV=${TAXON_VENV:-$HOME/.cache/taxon/venv}
mkdir -p "$WORK"
if [[ -z ${TAXON_BIN:-} ]]; then
    echo "== building taxon (release)" >&2
    cargo build --release -q -p taxon-cli
fi
TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
DATA=$BENCH_DIR/data/bbc
if [[ ! -f $DATA/train.jsonl ]]; then
    echo "== no BBC split in $DATA: running taxon quickstart in $WORK" >&2
    (cd "$WORK" && "$TAXON" quickstart --dir qs --port 0 >/dev/null)
    DATA=$WORK/qs/data/bbc
fi
if [[ ! -f $WORK/model/profile.json ]]; then
    echo "== training the linear model (seed 42, validation 10% stratified)" >&2
    (cd "$WORK" && "$TAXON" -q train --model-type linear --data "$DATA/train.jsonl" \
        --output model --checkpoint-every 0 --threads 2)
fi
"$VENV/bin/python" bench/drift_windows.py --taxon "$TAXON" --model "$WORK/model" \
    --test "$DATA/test.jsonl" --work "$WORK" --windows "${WINDOWS:-30}" \
    --sizes ${SIZES:-50 100 200 500} --only "${ONLY:-}"
