#!/usr/bin/env bash
# taxon `lstm` (BiLSTM, candle, CPU) on the BBC News split of `taxon quickstart`: training time
# and test accuracy with a fixed thread budget, next to `linear` trained in the same run.
#
# usage: bench/lstm.sh [EPOCHS]      (env: THREADS=2, MAX_LEN=256, BATCH=32, LR=2e-3,
#                                     BENCH_DIR, CARGO_TARGET_DIR)
# Prints a JSON line per model, then a summary line with the ratio of training times.
set -euo pipefail
EPOCHS=${1:-6}
THREADS=${THREADS:-2}
MAX_LEN=${MAX_LEN:-256}
BATCH=${BATCH:-32}
LR=${LR:-2e-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-lstm}
OUT=$BENCH_DIR/results.jsonl

(cd "$ROOT" && cargo build --release -q -p taxon-cli)
TAXON=$CARGO_TARGET_DIR/release/taxon

DATA=$BENCH_DIR/data/bbc
if [[ ! -s $DATA/train.jsonl || ! -s $DATA/test.jsonl ]]; then
    echo "making the BBC split with taxon quickstart in $BENCH_DIR" >&2
    mkdir -p "$BENCH_DIR"
    "$TAXON" -q quickstart --dir "$BENCH_DIR" >&2
fi

: > "$OUT"
run() { # name, then train flags
    local name=$1 model=$BENCH_DIR/model_$1
    shift
    local start end
    start=$(date +%s.%N)
    "$TAXON" -q --json train --data "$DATA/train.jsonl" --output "$model" --threads "$THREADS" \
        --validation-ratio 0 --checkpoint-every 0 --no-track "$@" > "$BENCH_DIR/train_$name.json"
    end=$(date +%s.%N)
    "$TAXON" -q --json eval "$model" "$DATA/test.jsonl" --threads "$THREADS" > "$BENCH_DIR/eval_$name.json"
    python3 - "$BENCH_DIR/train_$name.json" "$BENCH_DIR/eval_$name.json" "$name" "$start" "$end" \
        "$THREADS" >> "$OUT" <<'PY'
import json, sys
t, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"model": sys.argv[3], "threads": int(sys.argv[6]), "epochs": len(t["epochs"]),
                  "train_seconds": round(t["train_seconds"], 2),
                  "wall_seconds": round(float(sys.argv[5]) - float(sys.argv[4]), 2),
                  "accuracy": round(e["accuracy"], 4), "macro_f1": round(e["macro_f1"], 4),
                  "predict_docs_per_sec": round(e["docs_per_sec"], 1)}))
PY
}
run linear --model-type linear
run lstm --model-type lstm --epochs "$EPOCHS" --learning-rate "$LR" --batch-size "$BATCH" \
    --max-len "$MAX_LEN"
cat "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
r = {j["model"]: j for j in map(json.loads, open(sys.argv[1]))}
l, s = r["linear"], r["lstm"]
print(f"lstm: accuracy {s['accuracy']:.4f} (linear {l['accuracy']:.4f}), training "
      f"{s['train_seconds']:.1f} s = {s['train_seconds'] / max(l['train_seconds'], 1e-9):.0f}x linear's, "
      f"{s['threads']} threads")
PY
