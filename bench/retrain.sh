#!/usr/bin/env bash
# The continuous-training loop of the README on real data (BBC News): a model trained by the
# standard pipeline on a small subset of the training split (SUBSET rows) serves the registry
# alias `production`; the rest of the training split arrives as traffic; the first FEEDBACK
# texts get their true label as feedback; an Alertmanager notification hits the server's
# webhook (`--retrain-on-alert`); `taxon pipeline retrain` adds the fresh labels, reruns the
# pipeline, and the gate promotes the new version, which the server swaps in. Reports the
# accuracy on the traffic that got no feedback before and after, the time from the alert to
# the new version serving, and the requests that failed meanwhile (bench/retrain_loop.py).
#
# usage: bench/retrain.sh
#   env: SUBSET=150, FEEDBACK=600, WORK=/tmp/taxon-bench-retrain, BENCH_DIR (where
#        bench/linear.sh keeps the BBC split; default ~/.cache/taxon/bench-linear),
#        TAXON_BIN, CARGO_TARGET_DIR, TAXON_VENV.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SUBSET=${SUBSET:-150}
FEEDBACK=${FEEDBACK:-600}
WORK=${WORK:-/tmp/taxon-bench-retrain}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
VENV=${TAXON_VENV:-$HOME/.cache/taxon/venv}
DATA=$BENCH_DIR/data/bbc
BENCH=$PWD/bench
if [[ ! -f $DATA/train.jsonl ]]; then
    echo "no $DATA/train.jsonl: bench/linear.sh builds the BBC split" >&2
    exit 2
fi
if [[ -z ${TAXON_BIN:-} ]]; then
    echo "== building taxon (release)" >&2
    cargo build --release -q -p taxon-cli
fi
TAXON=$(realpath "${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}")

rm -rf "$WORK"
mkdir -p "$WORK/data"
cd "$WORK"
# A seeded shuffle of the training split: the first SUBSET rows train v1, the rest is traffic.
"$VENV/bin/python" - "$DATA/train.jsonl" "$SUBSET" <<'EOF'
import json, random, sys
rows = [l for l in open(sys.argv[1]) if l.strip()]
random.Random(7).shuffle(rows)
n = int(sys.argv[2])
open("data/train.jsonl", "w").writelines(rows[:n])
open("traffic.jsonl", "w").writelines(rows[n:])
EOF
cp "$DATA/test.jsonl" data/test.jsonl
"$TAXON" -q pipeline init --data data >/dev/null
"$TAXON" -q data add data
echo "== v1: the standard pipeline on $SUBSET BBC training rows" >&2
"$TAXON" -q pipeline run >/dev/null
echo "   test accuracy $(python3 -c 'import json;print(json.load(open("reports/eval.json"))["accuracy"])')" >&2

"$TAXON" serve --alias production --port 0 --poll-interval 1 --prediction-log log \
    --prediction-log-text --retrain-on-alert 2>serve.log &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
PORT=
for _ in $(seq 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' serve.log | head -1)
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n $PORT ]] || { cat serve.log >&2; exit 1; }
echo "== traffic: $(wc -l <traffic.jsonl) BBC texts, feedback on the first $FEEDBACK; then the alert" >&2
"$VENV/bin/python" "$BENCH/retrain_loop.py" --port "$PORT" --traffic traffic.jsonl --feedback "$FEEDBACK"
"$TAXON" pipeline retrain --history
echo "test accuracy of the promoted version: $(python3 -c 'import json;print(json.load(open("reports/eval.json"))["accuracy"])') (the test split plus the fresh labels sent to it)"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $(grep -o -w -m1 -E 'avx512_vnni|avx512f|avx2' /proc/cpuinfo | sort -u | xargs)"
