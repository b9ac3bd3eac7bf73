#!/usr/bin/env bash
# `taxon ui` on a long history: a project with RUNS train runs, ALIAS_CHANGES rows of alias
# history and a prediction log of PREDICTIONS predictions over a day (crates/ui/examples/
# ui_fill.rs fills them; then a real model is trained, registered and promoted, and its
# reference profile is what /monitor measures the log's drift against), served by the release
# `taxon ui`; each page fetched ROUNDS times with curl
# over HTTP on 127.0.0.1. Prints the median and the slowest wall time per page, and the page
# size. The issue's goal: every page under 200 ms with 10,000 runs and 100,000 alias changes.
#
# usage: bench/ui.sh
#   env: RUNS=10000 ALIAS_CHANGES=100000 PREDICTIONS=50000 ROUNDS=7 WORK=/tmp/taxon-bench-ui
#        REUSE=1: keep the project a previous run filled in WORK (filling takes minutes)
#        TAXON_BIN, FILL_BIN (prebuilt binaries instead of release builds), CARGO_TARGET_DIR
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
RUNS=${RUNS:-10000}
ALIAS_CHANGES=${ALIAS_CHANGES:-100000}
PREDICTIONS=${PREDICTIONS:-50000}
ROUNDS=${ROUNDS:-7}
WORK=${WORK:-/tmp/taxon-bench-ui}
if [[ -z ${TAXON_BIN:-} || -z ${FILL_BIN:-} ]]; then
    echo "== building taxon and ui_fill (release)" >&2
    cargo build --release -q -p taxon-cli --bin taxon
    cargo build --release -q -p taxon-ui --example ui_fill
fi
TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
FILL=${FILL_BIN:-$CARGO_TARGET_DIR/release/examples/ui_fill}

export TAXON_USER=bench
unset TAXON_RUNS_DB TAXON_REGISTRY_DB TAXON_REGISTRY_ARTIFACTS MLFLOW_TRACKING_URI TAXON_JWT_SECRET
if [[ ${REUSE:-} == 1 && -f $WORK/.filled ]]; then
    echo "== reusing the project in $WORK" >&2
    cd "$WORK"
    [[ -d log ]] || "$FILL" . 0 0 "$PREDICTIONS"
else
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
python3 - <<'PY'
import json, random
random.seed(1)
words = {"sport": "goal match team score win league".split(), "tech": "phone chip software data cloud server".split()}
with open("train.jsonl", "w") as f:
    for i in range(200):
        label = ["sport", "tech"][i % 2]
        f.write(json.dumps({"text": " ".join(random.choice(words[label]) for _ in range(8)), "label": label}) + "\n")
PY
"$TAXON" -q data init >/dev/null
"$TAXON" -q data add train.jsonl >/dev/null
echo "== filling: $RUNS runs, $ALIAS_CHANGES alias changes" >&2
"$FILL" . "$RUNS" "$ALIAS_CHANGES" "$PREDICTIONS"
"$TAXON" -q train --model-type linear --data train.jsonl --output model --threads 1 >/dev/null
"$TAXON" -q registry register latest >/dev/null
"$TAXON" -q registry alias set production latest >/dev/null
touch .filled
fi

"$TAXON" ui --port 0 --project . --prediction-log log --model model 2> ui.log &
UI_PID=$!
trap 'kill $UI_PID 2>/dev/null; wait $UI_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    PORT=$(sed -n 's|^listening on http://127.0.0.1:||p' ui.log)
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n ${PORT:-} ]] || { cat ui.log >&2; exit 1; }
RUN=$("$TAXON" --json runs list --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
OTHER=$("$TAXON" --json runs list --limit 2 | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["id"])')
DATA=$(python3 -c 'import json; print(json.loads(open(".taxon/versions.jsonl").readline())["id"])')
PAGES=(
    "/"
    "/runs"
    "/runs?page=100"
    "/runs?sort=accuracy&order=desc"
    "/runs?model_type=bert&status=finished&sort=train_seconds&page=20"
    "/runs/$RUN"
    "/compare?run=$RUN&run=$OTHER"
    "/registry"
    "/registry/default"
    "/registry/default?page=900"
    "/registry/default?alias=production&at=2026-01-01"
    "/data"
    "/data/diff?a=$DATA&b=$DATA"
    "/monitor"
    "/monitor?window=600"
)
printf '\n%s runs, %s alias changes, %s logged predictions; %s rounds; CPU: %s (%s)\n\n' "$RUNS" "$ALIAS_CHANGES" "$PREDICTIONS" "$ROUNDS" \
    "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" \
    "$(grep -o -w -E 'avx512_vnni|avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')"
printf '| page | median ms | slowest ms | KiB |\n|---|---:|---:|---:|\n'
for p in "${PAGES[@]}"; do
    times=()
    for _ in $(seq "$ROUNDS"); do
        out=$(curl -s -o page.html -w '%{http_code} %{time_total}' "http://127.0.0.1:$PORT$p")
        [[ ${out%% *} == 200 ]] || { echo "$p: HTTP ${out%% *}" >&2; exit 1; }
        times+=("${out#* }")
    done
    printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys, os
t = [float(x) * 1000 for x in sys.stdin.read().split()]
kib = os.path.getsize(sys.argv[2]) / 1024
print(f"| `{sys.argv[1]}` | {statistics.median(t):.1f} | {max(t):.1f} | {kib:.0f} |")' "$p" page.html
done
