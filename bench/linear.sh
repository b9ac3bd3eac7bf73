#!/usr/bin/env bash
# taxon `linear` vs fastText vs scikit-learn TF-IDF + LinearSVC on the BBC News split of
# `taxon quickstart`, same machine, same thread budget, in one run.
#
# usage: bench/linear.sh [RUNS]      (env: THREADS=2, BENCH_DIR, CARGO_TARGET_DIR,
#                                     TAXON_BIN=a prebuilt taxon instead of this checkout's,
#                                     TAXON_BASELINE=another taxon binary, e.g. main's, measured
#                                     in the same runs as `taxon_baseline` for before/after)
# Prints a JSON line per measurement, then medians and ratios. taxon trains on all of train.jsonl
# (--validation-ratio 0) and writes no per-epoch checkpoints (--checkpoint-every 0), as fastText
# and LinearSVC do; `taxon train` checkpoints every epoch by default.
set -euo pipefail
RUNS=${1:-3}
THREADS=${THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
VENV=${VENV:-$HOME/.cache/taxon/venv}
OUT=$BENCH_DIR/results.jsonl

[[ -n ${TAXON_BIN:-} ]] || (cd "$ROOT" && cargo build --release -q -p taxon-cli)
TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
# tool name -> binary; the baseline alternates with this checkout's binary in every run.
SIDES=("taxon=$TAXON")
[[ -z ${TAXON_BASELINE:-} ]] || SIDES+=("taxon_baseline=$TAXON_BASELINE")

DATA=$BENCH_DIR/data/bbc
if [[ ! -s $DATA/train.jsonl || ! -s $DATA/test.jsonl ]]; then
    echo "making the BBC split with taxon quickstart in $BENCH_DIR" >&2
    mkdir -p "$BENCH_DIR"
    "$TAXON" -q quickstart --dir "$BENCH_DIR" >&2
fi

if ! "$VENV/bin/python" -c 'import fasttext, sklearn' 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q fasttext-wheel scikit-learn >&2
fi

: > "$OUT"
sed -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' "$DATA/test.jsonl" > "$BENCH_DIR/test_x10.jsonl"
for run in $(seq 0 $((RUNS - 1))); do
  for side in "${SIDES[@]}"; do
    tool=${side%%=*} bin=${side#*=}
    model=$BENCH_DIR/model_${tool}_$run
    start=$(date +%s.%N)
    "$bin" -q --json train --model-type linear --data "$DATA/train.jsonl" --output "$model" \
        --threads "$THREADS" --seed "$run" --validation-ratio 0 --checkpoint-every 0 --no-track > "$BENCH_DIR/train_$run.json"
    end=$(date +%s.%N)
    "$bin" -q --json eval "$model" "$DATA/test.jsonl" --threads "$THREADS" > "$BENCH_DIR/eval_$run.json"
    python3 - "$BENCH_DIR/train_$run.json" "$BENCH_DIR/eval_$run.json" "$run" "$start" "$end" "$tool" >> "$OUT" <<'PY'
import json, sys
t, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"tool": sys.argv[6], "run": int(sys.argv[3]), "train_seconds": t["train_seconds"],
                  "wall_seconds": float(sys.argv[5]) - float(sys.argv[4]), "accuracy": e["accuracy"],
                  "macro_f1": e["macro_f1"]}))
PY
  done
done
for side in "${SIDES[@]}"; do
  tool=${side%%=*} bin=${side#*=}
  for n in $(printf '%s\n' 1 "$THREADS" | sort -un); do
    "$bin" -q --json eval "$BENCH_DIR/model_${tool}_0" "$BENCH_DIR/test_x10.jsonl" --threads "$n" |
        python3 -c "import json,sys; e=json.load(sys.stdin); print(json.dumps({'tool':'$tool','predict_threads':$n,'docs':e['examples'],'docs_per_sec':e['docs_per_sec']}))" >> "$OUT"
  done
done
"$VENV/bin/python" "$ROOT/bench/linear_peers.py" "$DATA/train.jsonl" "$DATA/test.jsonl" \
    --threads "$THREADS" --runs "$RUNS" 2>/dev/null >> "$OUT"
cat "$OUT"

python3 - "$OUT" "$THREADS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
threads = int(sys.argv[2])
def med(tool, key, **kw):
    v = [r[key] for r in rows if r["tool"] == tool and key in r and all(r.get(k) == x for k, x in kw.items())]
    return statistics.median(v) if v else float("nan")
print(f"\nmedians over runs, {threads} threads")
print(f"{'':24}{'accuracy':>10}{'train s':>10}")
tools = [t for t in ("taxon", "taxon_baseline", "fasttext", "tfidf_linearsvc") if any(r["tool"] == t for r in rows)]
for tool in tools:
    print(f"{tool:24}{med(tool, 'accuracy') * 100:>9.2f}%{med(tool, 'train_seconds'):>10.2f}")
print(f"taxon wall (incl. load+save) {med('taxon', 'wall_seconds'):.2f}s")
print(f"train speed taxon/fastText: {med('fasttext', 'train_seconds') / med('taxon', 'train_seconds'):.2f}x")
for n in sorted({1, threads}):
    t, f = med("taxon", "docs_per_sec", predict_threads=n), med("fasttext", "docs_per_sec", predict_threads=n)
    print(f"predict {n} thread(s): taxon {t:,.0f} docs/s, fastText {f:,.0f} docs/s, ratio {t / f:.2f}x")
if "taxon_baseline" in tools:
    print(f"train speed taxon/baseline: {med('taxon_baseline', 'train_seconds') / med('taxon', 'train_seconds'):.2f}x")
    for n in sorted({1, threads}):
        t, b = med("taxon", "docs_per_sec", predict_threads=n), med("taxon_baseline", "docs_per_sec", predict_threads=n)
        print(f"predict {n} thread(s): taxon/baseline {t / b:.2f}x")
PY
