#!/usr/bin/env bash
# Serving a fine-tuned MiniLM: `taxon serve` against a FastAPI + uvicorn + PyTorch service
# (bench/bert_server.py) around the same model folder, under taxon-loadgen closed loops.
#
# usage: bench/serve_bert.sh
#   env: MODEL (a taxon bert folder; default ~/.cache/taxon/bench-bert/model_e1_t2_head-tail_128_s0,
#        which bench/bert.sh makes), DURATION=30s (each measured window), WARMUP=3s,
#        CONCURRENCIES="1 8 32", TEXTS=sentences|articles (sentences: distinct 5-30 word spans
#        of the BBC test split's sentences, bench/serve_texts.py; articles: the test split's
#        whole articles, which taxon and the peer truncate to max_len 128 word pieces),
#        TEXTS_COUNT=20000 (sentences), SERVER_CPUS (the cores both servers are pinned to;
#        default every core but the last), LOADGEN_CPUS (default the last core), THREADS (the
#        servers' thread budget; default the number of SERVER_CPUS), PY_ENDPOINT=async|sync
#        (bench/bert_server.py --endpoint), INT8=1 (both sides int8: taxon serves the folder
#        `taxon model optimize MODEL --int8` writes, the peer applies PyTorch's dynamic int8
#        quantization to the same fp32 folder), CHECK_TEXTS=200 (texts sent to both servers to
#        compare labels), SERVE_ARGS (extra `taxon serve` flags), PYTHON (default
#        ~/.cache/taxon/venv-torch/bin/python, from scripts/setup-bench-torch.sh), BENCH_DIR
#        (default ~/.cache/taxon/bench-linear: data/bbc/test.jsonl), OUT (default
#        ~/.cache/taxon/bench-serve-bert: one folder per run with every loadgen JSON report and
#        summary.md), WORK=/tmp/taxon-bench-serve-bert (texts and server logs), CARGO_TARGET_DIR,
#        TAXON_BIN / LOADGEN_BIN (prebuilt binaries instead of a release build), LEVEL=avx512|avx2
#        (both servers capped at a CPU family: taxon with TAXON_KERNELS=LEVEL, PyTorch through
#        its own switches, bench/lib.sh torch_caps; so an AVX-512 machine stands in for an
#        AVX2-only one; default: each side's best).
#
# Both servers are started pinned to SERVER_CPUS (taskset) with the same thread budget:
#   taxon serve --threads THREADS --model-threads THREADS --cache-size 0 (HTTP threads and the
#     model worker's compute threads; the prediction cache is off so every request runs the
#     model; batching is on, as configured by default);
#   bert_server.py --threads THREADS (torch.set_num_threads; one uvicorn worker; one forward
#     pass per request).
# The load generator runs pinned to LOADGEN_CPUS, on 127.0.0.1, one keep-alive connection per
# concurrent client, each sending the next text as soon as it has an answer (closed loop). Each
# concurrency runs taxon then python, after a WARMUP that is not recorded. Both servers stay up
# for the whole run (the idle one uses no CPU). Before the loops, CHECK_TEXTS texts go to both
# servers: the summary says on how many the labels agree and the largest probability gap.
set -euo pipefail
REPRO=
for v in MODEL DURATION WARMUP CONCURRENCIES TEXTS TEXTS_COUNT SERVER_CPUS LOADGEN_CPUS THREADS \
    PY_ENDPOINT INT8 CHECK_TEXTS SERVE_ARGS LEVEL; do
    if [[ -n ${!v+set} ]]; then
        REPRO+="$v=$(printf '%q' "${!v}") "
    fi
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}
MODEL=${MODEL:-$HOME/.cache/taxon/bench-bert/model_e1_t2_head-tail_128_s0}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-3s}
CONCURRENCIES=${CONCURRENCIES:-1 8 32}
TEXTS=${TEXTS:-sentences}
TEXTS_COUNT=${TEXTS_COUNT:-20000}
PY_ENDPOINT=${PY_ENDPOINT:-async}
INT8=${INT8:-0}
CHECK_TEXTS=${CHECK_TEXTS:-200}
PYTHON=${PYTHON:-$HOME/.cache/taxon/venv-torch/bin/python}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
W=${WORK:-/tmp/taxon-bench-serve-bert}
read -r -a EXTRA <<< "${SERVE_ARGS:-}"
LEVEL=${LEVEL:-}

die() {
    echo "bench/serve_bert.sh: $*" >&2
    exit 2
}

NCPU=$(nproc)
if [[ -z ${SERVER_CPUS:-} ]]; then
    if ((NCPU > 1)); then
        SERVER_CPUS=0-$((NCPU - 2))
        [[ $NCPU == 2 ]] && SERVER_CPUS=0
    else
        SERVER_CPUS=0
    fi
fi
LOADGEN_CPUS=${LOADGEN_CPUS:-$((NCPU - 1))}
# The number of cores in a taskset list such as 0-2,5.
count_cpus() {
    local n=0 part
    IFS=, read -r -a parts <<< "$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            n=$((n + BASH_REMATCH[2] - BASH_REMATCH[1] + 1))
        elif [[ $part =~ ^[0-9]+$ ]]; then
            n=$((n + 1))
        else
            die "SERVER_CPUS: expected a core list such as 0 or 0-3 or 0,2, got '$1'"
        fi
    done
    echo "$n"
}
THREADS=${THREADS:-$(count_cpus "$SERVER_CPUS")}
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$THREADS'"
[[ $CHECK_TEXTS =~ ^[0-9]+$ ]] || die "CHECK_TEXTS must be a number, got '$CHECK_TEXTS'"
[[ $TEXTS == sentences || $TEXTS == articles ]] || die "TEXTS must be sentences or articles, got '$TEXTS'"
[[ $PY_ENDPOINT == async || $PY_ENDPOINT == sync ]] || die "PY_ENDPOINT must be async or sync, got '$PY_ENDPOINT'"
[[ -s $MODEL/model.json ]] || die "MODEL=$MODEL has no model.json (make it with bench/bert.sh, or set MODEL to a taxon bert folder)"
DATA=$BENCH_DIR/data/bbc/test.jsonl
[[ -s $DATA ]] || die "$DATA is missing (bench/linear.sh makes the BBC split; or set BENCH_DIR)"
"$PYTHON" -c "import fastapi, uvicorn, torch, transformers, tokenizers" 2>/dev/null \
    || die "$PYTHON cannot import fastapi, uvicorn, torch, transformers and tokenizers: run scripts/setup-bench-torch.sh"

mkdir -p "$W"
W=$(cd "$W" && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
PRECISION=fp32
[[ $INT8 == 1 ]] && PRECISION=int8
OUT=${OUT:-$HOME/.cache/taxon/bench-serve-bert}/$STAMP-$TEXTS-$PRECISION
mkdir -p "$OUT"
ulimit -n 8192 2>/dev/null || true

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_binaries
if [[ -n ${TAXON_BIN:-} ]]; then
    TAXON_DESC="taxon: the prebuilt \`$TAXON_BIN\`"
else
    TAXON_DESC="taxon $(git rev-parse --short HEAD)"
fi

# --- the models ---------------------------------------------------------------------------------
TAXON_MODEL=$MODEL
PY_QUANTIZE=none
if [[ $INT8 == 1 ]]; then
    TAXON_MODEL=$W/int8
    rm -rf "$TAXON_MODEL"
    log "writing the int8 copy of $MODEL with taxon model optimize --int8"
    "$TAXON" -q model optimize "$MODEL" --output "$TAXON_MODEL" --int8 >&2
    PY_QUANTIZE=int8
fi

# --- the texts ----------------------------------------------------------------------------------
if [[ $TEXTS == sentences ]]; then
    python3 "$ROOT/bench/serve_texts.py" "$DATA" "$W/texts.txt" --count "$TEXTS_COUNT"
else
    python3 - "$DATA" "$W/texts.txt" <<'PY'
import json, random, sys
texts, seen = [], set()
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    if line.strip():
        t = " ".join(json.loads(line)["text"].split())
        if t and t not in seen:
            seen.add(t)
            texts.append(t)
random.Random(7).shuffle(texts)  # the split is sorted by label
open(sys.argv[2], "w", encoding="utf-8").write("".join(t + "\n" for t in texts))
words = sum(len(t.split()) for t in texts) / len(texts)
print(f"{len(texts)} distinct articles, {words:.0f} words on average -> {sys.argv[2]}", file=sys.stderr)
PY
fi

# --- the servers --------------------------------------------------------------------------------
# start NAME CMD...: starts CMD in the background, reads "listening on http://HOST:PORT" from its
# stderr, waits for GET /ready 200; sets PID_<NAME> and URL_<NAME>.
start() {
    local name=$1 pid base i
    shift
    : > "$W/$name.log"
    "$@" > "$W/$name.out" 2> "$W/$name.log" &
    pid=$!
    PIDS+=("$pid")
    base=
    for i in $(seq 1 1200); do
        base=$(grep -o -m1 'listening on http://[^ ",]*' "$W/$name.log" | sed 's/^listening on //' || true)
        [[ -n $base ]] && break
        kill -0 "$pid" 2>/dev/null || { cat "$W/$name.log" >&2; die "$name exited before listening (log: $W/$name.log)"; }
        sleep 0.1
    done
    [[ -n $base ]] || die "$name did not print 'listening on http://...' in 120 s (log: $W/$name.log)"
    for i in $(seq 1 600); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/ready") == 200 ]]; then
            log "$name: pid $pid ready at $base (cores $SERVER_CPUS, $THREADS thread(s))"
            printf -v "PID_$name" '%s' "$pid"
            printf -v "URL_$name" '%s' "$base"
            return
        fi
        sleep 0.1
    done
    die "$name at $base was not ready in 60 s (log: $W/$name.log)"
}

# candle also keeps a process-wide helper pool (threads candle-bp-N), sized once from
# CANDLE_NUM_THREADS, else RAYON_NUM_THREADS, else the CPU mask; it is left at its default
# (CANDLE_NUM_THREADS=1 measured 5-10% fewer req/s at c=32 on one core).
TAXON_ENV=(env)
PY_ENV=(env)
LEVEL_DESC="each side's best (no cap)"
if [[ -n $LEVEL ]]; then
    [[ $LEVEL == avx2 || $LEVEL == avx512 ]] || die "LEVEL=$LEVEL: use avx512 or avx2"
    read -r -a caps <<< "$(torch_caps "$LEVEL")"
    TAXON_ENV=(env "TAXON_KERNELS=$LEVEL")
    PY_ENV=(env "${caps[@]}")
    LEVEL_DESC="capped at \`$LEVEL\` (taxon \`TAXON_KERNELS=$LEVEL\`; PyTorch \`${caps[*]}\`)"
fi
start taxon "${TAXON_ENV[@]}" taskset -c "$SERVER_CPUS" "$TAXON" serve --model "$TAXON_MODEL" \
    --host 127.0.0.1 --port 0 --threads "$THREADS" --model-threads "$THREADS" --cache-size 0 \
    "${EXTRA[@]}"
KERNELS=$(curl -s -m 5 "$URL_taxon/metrics" | sed -n '/^taxon_kernel_info{/{s/^taxon_kernel_info{\(.*\)} 1$/\1/p;q}' || true)
start python "${PY_ENV[@]}" taskset -c "$SERVER_CPUS" "$PYTHON" "$ROOT/bench/bert_server.py" "$MODEL" \
    --host 127.0.0.1 --port 0 --threads "$THREADS" --endpoint "$PY_ENDPOINT" --quantize "$PY_QUANTIZE"

# --- the same function on both sides -------------------------------------------------------------
CHECK="(skipped: CHECK_TEXTS=0)"
if ((CHECK_TEXTS > 0)); then
    log "sending $CHECK_TEXTS texts to both servers to compare their answers"
    CHECK=$(python3 - "$W/texts.txt" "$CHECK_TEXTS" "$URL_taxon" "$URL_python" "$OUT/check.json" <<'PY'
import json, sys, urllib.request
path, n, a, b, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
texts = [l.rstrip("\n") for l in open(path, encoding="utf-8") if l.strip()][:n]
def ask(base, text):
    req = urllib.request.Request(base + "/v1/predict", json.dumps({"text": text}).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
same, gap, rows = 0, 0.0, []
for t in texts:
    x, y = ask(a, t), ask(b, t)
    same += x["label"] == y["label"]
    g = max(abs(x["scores"][k] - y["scores"][k]) for k in x["scores"])
    gap = max(gap, g)
    rows.append({"text": t[:80], "taxon": x["label"], "python": y["label"], "max_gap": g})
json.dump({"texts": len(texts), "same_label": same, "max_probability_gap": gap, "rows": rows},
          open(out, "w"), indent=1)
print(f"labels agree on {same} of {len(texts)} texts; largest probability gap {gap:.2e}")
PY
    )
    echo "$CHECK" >&2
fi

# Word pieces per text (the model's tokenizer.json, [CLS] and [SEP] included, no padding): the
# model's work per request is proportional to it.
PIECES=$("$PYTHON" - "$MODEL/tokenizer.json" "$W/texts.txt" <<'PY' 2>/dev/null || echo "?"
import sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
tok.no_padding()
tok.no_truncation()
texts = [l.rstrip("\n") for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
print(f"{sum(len(e.ids) for e in tok.encode_batch(texts)) / len(texts):.1f}")
PY
)

# --- closed loops ---------------------------------------------------------------------------------
metric_sum() {  # metric_sum URL NAME: a label-free sample of /metrics, or nothing
    local body
    body=$(curl -s -m 5 "$1/metrics" || true)
    awk -v n="$2" '$1 == n {print $2; exit}' <<< "$body"
}
for c in $CONCURRENCIES; do
    for side in taxon python; do
        pid_var=PID_$side url_var=URL_$side
        log "$side: closed loop, concurrency $c, $DURATION after a $WARMUP warmup (loadgen on cores $LOADGEN_CPUS)"
        if [[ $side == taxon ]]; then
            s0=$(metric_sum "${!url_var}" taxon_batch_size_sum)
            n0=$(metric_sum "${!url_var}" taxon_batch_size_count)
        fi
        taskset -c "$LOADGEN_CPUS" "$LOADGEN" --url "${!url_var}/v1/predict" --texts "$W/texts.txt" \
            --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" --timeout 60s \
            --server-pid "${!pid_var}" --json > "$OUT/${side}_c$c.json"
        if [[ $side == taxon ]]; then
            s1=$(metric_sum "${!url_var}" taxon_batch_size_sum)
            n1=$(metric_sum "${!url_var}" taxon_batch_size_count)
            python3 -c 'import sys; s0,n0,s1,n1=map(float,sys.argv[1:]); print(round((s1-s0)/(n1-n0),2) if n1>n0 else "")' \
                "${s0:-0}" "${n0:-0}" "${s1:-0}" "${n1:-0}" > "$OUT/taxon_c$c.batch"
        fi
    done
done

# --- summary ---------------------------------------------------------------------------------------
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
TORCH=$("$PYTHON" -W ignore -c 'import torch, transformers, fastapi, uvicorn; print(f"torch {torch.__version__}, transformers {transformers.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}")' 2>/dev/null)
TABLE=$(python3 - "$OUT" $CONCURRENCIES <<'PY'
import json, os, sys
out, cs = sys.argv[1], sys.argv[2:]
ms = lambda us: f"{us / 1000:.1f} ms"
def rss(r):
    k = ((r.get("server") or {}).get("rss") or {}).get("max_kib")
    return f"{k / 1024:.0f} MiB" if k else "-"
print("| concurrency | taxon req/s | python req/s | taxon/python | taxon p50 | python p50 | taxon p99 | python p99 "
      "| errors (taxon / python) | server RSS max (taxon / python) | taxon mean batch |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = []
for c in cs:
    t = json.load(open(os.path.join(out, f"taxon_c{c}.json")))
    p = json.load(open(os.path.join(out, f"python_c{c}.json")))
    batch = open(os.path.join(out, f"taxon_c{c}.batch")).read().strip() or "-"
    ratio = t["ok_rps"] / p["ok_rps"] if p["ok_rps"] else float("inf")
    err = lambda r: r["rejected"] + r["failed"]
    print(f"| {c} | {t['ok_rps']:,.1f} | {p['ok_rps']:,.1f} | {ratio:.2f}x "
          f"| {ms(t['latency_ok']['p50_us'])} | {ms(p['latency_ok']['p50_us'])} "
          f"| {ms(t['latency_ok']['p99_us'])} | {ms(p['latency_ok']['p99_us'])} "
          f"| {err(t)} / {err(p)} | {rss(t)} / {rss(p)} | {batch} |")
    summary.append({"concurrency": int(c), "taxon_rps": t["ok_rps"], "python_rps": p["ok_rps"],
                    "ratio": ratio, "taxon_p50_us": t["latency_ok"]["p50_us"],
                    "python_p50_us": p["latency_ok"]["p50_us"], "taxon_p99_us": t["latency_ok"]["p99_us"],
                    "python_p99_us": p["latency_ok"]["p99_us"], "taxon_errors": err(t),
                    "python_errors": err(p), "taxon_mean_batch": batch})
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
PY
)
SUMMARY=$(cat <<MD
### Serving MiniLM: \`taxon serve\` vs FastAPI + uvicorn + PyTorch (\`bench/serve_bert.sh\`)

Machine: ${CPU:-unknown CPU} ($(grep -m1 -o -w -E 'avx512_vnni|avx512f|avx2|fma' /proc/cpuinfo 2>/dev/null | sort -u | tr '\n' ' ' | sed 's/ $//')), $NCPU cores, $(uname -sr); $(date -u +%Y-%m-%d); $TAXON_DESC; $TORCH.
Kernel level: $LEVEL_DESC; taxon's kernel paths: ${KERNELS:-unknown}.
Model: \`$(basename "$MODEL")\` (all-MiniLM-L6-v2 fine-tuned on BBC by taxon: mean pooling,
max_len 128, head-tail truncation), the same folder on both sides; precision: $PRECISION$(
[[ $INT8 == 1 ]] && echo " (taxon: \`taxon model optimize --int8\`; python: quantize_dynamic on the Linear layers)"). Texts: $TEXTS from the BBC test
split ($(wc -l < "$W/texts.txt") distinct, $(awk '{w += NF} END {printf "%.0f", w / NR}' "$W/texts.txt") words and $PIECES word pieces on average, [CLS] and [SEP] included).
Servers pinned to cores $SERVER_CPUS with $THREADS thread(s) each: \`taxon serve --threads $THREADS
--model-threads $THREADS --cache-size 0${SERVE_ARGS:+ $SERVE_ARGS}\` (cache off so every request runs the model;
default batching) and \`bert_server.py --threads $THREADS --endpoint $PY_ENDPOINT --quantize $PY_QUANTIZE\` (one uvicorn worker,
torch.set_num_threads($THREADS), one forward pass per request under inference_mode). taxon-loadgen
closed loop on cores $LOADGEN_CPUS, 127.0.0.1, $DURATION per row after a $WARMUP warmup.
Same function: $CHECK

$TABLE

Reproduce: \`${REPRO}bench/serve_bert.sh\` (JSON reports in \`$OUT\`).
MD
)
echo "$SUMMARY" | tee "$OUT/summary.md"
