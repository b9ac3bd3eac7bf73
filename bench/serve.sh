#!/usr/bin/env bash
# The serving benchmark: `taxon serve` with the BBC `linear` model under taxon-loadgen on
# 127.0.0.1, on the machine's cores shared by server and load generator.
#
# usage: bench/serve.sh
#   env: DURATION=30s (each closed-loop run and the overload/swap runs), TEXTS_COUNT=200000,
#        WORK=/tmp/taxon-bench-serve (every file it writes), BENCH_DIR (where bench/linear.sh
#        keeps the BBC split: reused when present, else `taxon quickstart` runs in WORK),
#        CARGO_TARGET_DIR, SERVER_THREADS=2, CONCURRENCIES="1 8 32", OVERLOAD_QUEUE=256,
#        OVERLOAD_CONCURRENCY=512, OVERLOAD_FACTOR=2, SKIP_OVERLOAD=1, SKIP_SWAP=1,
#        SWAP_AFTER=10 (seconds into the swap run's window), SERVE_ARGS (extra flags for every
#        `taxon serve`), OVERLOAD_SERVE_ARGS (extra flags for the overload server only),
#        TAXON_BIN / LOADGEN_BIN (prebuilt binaries instead of a release build).
# Exits 1 after the summary when a request failed under overload or during the swap, or the
# swap step could not run to the end.
#
# Steps: 1. train a linear model on the BBC train split; 2. write short distinct texts from
# the test split's sentences; 3. serve it (cache off, so every request runs the model);
# 4. closed loop at each concurrency; 5. 2x overload: server on core 0 with a small queue,
# loadgen on core 1, capacity measured closed-loop, then an open loop at twice that rate;
# 6. hot swap of a registry alias under load; 7. a Markdown summary for the README.
# Each loadgen run's JSON is kept in $WORK/*.json.
set -euo pipefail
# The settings given in the environment, for the summary's "reproduce" line.
REPRO=
for v in DURATION TEXTS_COUNT SERVER_THREADS CONCURRENCIES OVERLOAD_QUEUE OVERLOAD_CONCURRENCY \
    OVERLOAD_FACTOR SWAP_AFTER SERVE_ARGS OVERLOAD_SERVE_ARGS SKIP_OVERLOAD SKIP_SWAP; do
    if [[ -n ${!v:-} ]]; then
        REPRO+="$v=$(printf '%q' "${!v}") "
    fi
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}
W=${WORK:-/tmp/taxon-bench-serve}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/taxon/bench-linear}
DURATION=${DURATION:-30s}
TEXTS_COUNT=${TEXTS_COUNT:-200000}
SERVER_THREADS=${SERVER_THREADS:-2}
CONCURRENCIES=${CONCURRENCIES:-1 8 32}
OVERLOAD_QUEUE=${OVERLOAD_QUEUE:-256}
# More connections than queue slots, so a full queue answers 503 instead of every connection
# waiting its turn.
OVERLOAD_CONCURRENCY=${OVERLOAD_CONCURRENCY:-512}
OVERLOAD_FACTOR=${OVERLOAD_FACTOR:-2}
read -r -a EXTRA <<< "${SERVE_ARGS:-}"
read -r -a OVERLOAD_EXTRA <<< "${OVERLOAD_SERVE_ARGS:-}"
SWAP_AFTER=${SWAP_AFTER:-10}
mkdir -p "$W"
W=$(cd "$W" && pwd)
ulimit -n 8192 2>/dev/null || true

log() { echo "== $*" >&2; }

PIDS=()
SERVER_PID=
FAILED_STEPS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

if [[ -z ${TAXON_BIN:-} || -z ${LOADGEN_BIN:-} ]]; then
    log "building taxon and taxon-loadgen (release)"
    cargo build --release -q -p taxon-cli -p taxon-loadgen
fi
TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
LOADGEN=${LOADGEN_BIN:-$CARGO_TARGET_DIR/release/taxon-loadgen}

# --- data: the BBC split, as bench/linear.sh makes it ------------------------------------
DATA=$BENCH_DIR/data/bbc
if [[ ! -s $DATA/train.jsonl || ! -s $DATA/test.jsonl ]]; then
    DATA=$W/quickstart/data/bbc
    if [[ ! -s $DATA/train.jsonl || ! -s $DATA/test.jsonl ]]; then
        log "making the BBC split with taxon quickstart in $W/quickstart"
        mkdir -p "$W/quickstart"
        "$TAXON" -q quickstart --dir "$W/quickstart" >&2
    fi
fi

# --- 1. the model -------------------------------------------------------------------------
log "1. training the linear model"
rm -rf "$W/model"
"$TAXON" -q train --model-type linear --data "$DATA/train.jsonl" --output "$W/model" \
    --threads 2 --validation-ratio 0 --checkpoint-every 0 --no-track >&2

# --- 2. the texts -------------------------------------------------------------------------
log "2. writing $TEXTS_COUNT distinct short texts"
python3 "$ROOT/bench/serve_texts.py" "$DATA/test.jsonl" "$W/texts.txt" --count "$TEXTS_COUNT"

# --- the server -----------------------------------------------------------------------------
# start_server NAME CMD...: starts CMD (which execs `taxon serve`) in the background, reads
# "listening on http://HOST:PORT" from its stderr, waits for GET /ready 200; sets SERVER_PID
# and BASE. Returns 1 (server stopped) when it does not come up.
start_server() {
    local name=$1
    shift
    local errlog=$W/$name.server.log
    "$@" > "$W/$name.server.out" 2> "$errlog" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    BASE=
    local i
    for i in $(seq 1 600); do
        BASE=$(grep -o -m1 'listening on http://[^ ",]*' "$errlog" | sed 's/^listening on //' || true)
        [[ -n $BASE ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "taxon serve ($name) exited before listening:" >&2
            cat "$errlog" >&2
            forget "$SERVER_PID"
            SERVER_PID=
            return 1
        fi
        sleep 0.1
    done
    if [[ -z $BASE ]]; then
        echo "taxon serve ($name) did not print 'listening on http://...' in 60 s; see $errlog" >&2
        stop_server
        return 1
    fi
    for i in $(seq 1 600); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/ready") == 200 ]]; then
            log "$name: taxon serve pid $SERVER_PID ready at $BASE"
            return
        fi
        sleep 0.1
    done
    echo "taxon serve ($name) at $BASE was not ready in 60 s; see $errlog" >&2
    stop_server
    return 1
}

# forget PID: drops PID from the processes the EXIT trap kills (it has been waited for).
forget() {
    local kept=() pid
    for pid in "${PIDS[@]}"; do
        [[ $pid == "$1" ]] || kept+=("$pid")
    done
    PIDS=("${kept[@]}")
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    forget "$SERVER_PID"
    SERVER_PID=
}

# row FILE...: one Markdown row per loadgen JSON report.
rows() {
    python3 - "$@" <<'PY'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    rss = ((r.get("server") or {}).get("rss") or {}).get("max_kib")
    rss = f"{rss / 1024:.0f} MiB" if rss else "-"
    l = r["latency_ok"]
    print(f"| {r['concurrency']} | {r['ok_rps']:,.0f} | {l['p50_us'] / 1000:.2f} ms | {l['p99_us'] / 1000:.2f} ms "
          f"| {r['ok']:,} | {r['rejected']:,} | {r['failed']:,} | {rss} |")
PY
}

# --- 3-4. closed loop at each concurrency ---------------------------------------------------
start_server closed "$TAXON" serve --model "$W/model" --port 0 --threads "$SERVER_THREADS" \
    --cache-size 0 "${EXTRA[@]}" || exit 1
CLOSED=()
for c in $CONCURRENCIES; do
    log "4. closed loop, concurrency $c, $DURATION"
    "$LOADGEN" --url "$BASE/v1/predict" --texts "$W/texts.txt" --concurrency "$c" \
        --duration "$DURATION" --warmup 2s --server-pid "$SERVER_PID" --json > "$W/closed_c$c.json"
    CLOSED+=("$W/closed_c$c.json")
    rows "$W/closed_c$c.json" >&2
done
stop_server
CLOSED_TABLE=$(
    echo "| concurrency | req/s (2xx) | p50 | p99 | ok | 503 | failed | server RSS max |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    rows "${CLOSED[@]}"
)
echo "$CLOSED_TABLE"

# --- 5. 2x overload -------------------------------------------------------------------------
OVERLOAD_TEXT="(skipped: SKIP_OVERLOAD=1)"
if [[ ${SKIP_OVERLOAD:-0} != 1 && $(nproc) -lt 2 ]]; then
    OVERLOAD_TEXT="(skipped: the overload step pins server and loadgen to cores 0 and 1; this machine has $(nproc))"
elif [[ ${SKIP_OVERLOAD:-0} != 1 ]]; then
    start_server overload taskset -c 0 "$TAXON" serve --model "$W/model" --port 0 --threads 1 \
        --cache-size 0 --queue-size "$OVERLOAD_QUEUE" "${EXTRA[@]}" "${OVERLOAD_EXTRA[@]}" || exit 1
    log "5. capacity: closed loop, concurrency 32, 10 s (server on core 0, loadgen on core 1)"
    taskset -c 1 "$LOADGEN" --url "$BASE/v1/predict" --texts "$W/texts.txt" --concurrency 32 \
        --duration 10s --warmup 2s --json > "$W/capacity.json"
    CAPACITY=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["ok_rps"]))' "$W/capacity.json")
    RATE=$(python3 -c 'import sys; print(round(float(sys.argv[1]) * float(sys.argv[2])))' "$CAPACITY" "$OVERLOAD_FACTOR")
    log "5. overload: open loop at $RATE req/s ($OVERLOAD_FACTOR x $CAPACITY), $OVERLOAD_CONCURRENCY connections, $DURATION"
    taskset -c 1 "$LOADGEN" --url "$BASE/v1/predict" --texts "$W/texts.txt" \
        --concurrency "$OVERLOAD_CONCURRENCY" --rate "$RATE" --duration "$DURATION" --warmup 2s \
        --server-pid "$SERVER_PID" --timeline --json > "$W/overload.json"
    stop_server
    OVERLOAD_TEXT=$(python3 - "$W/overload.json" "$CAPACITY" "$OVERLOAD_QUEUE" <<'PY'
import json, sys
r, cap, queue = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
rss = (r.get("server") or {}).get("rss") or {}
mib = lambda k: f"{rss.get(k, 0) / 1024:.1f} MiB"
share = r["rejected"] / r["requests"] * 100 if r["requests"] else 0
print(f"capacity (closed loop, C=32, server on 1 core): {cap:,} req/s; queue {queue}")
print(f"offered {r['offered_rps']:,.0f} req/s, achieved {r['achieved_rps']:,.0f} req/s "
      f"(2xx {r['ok_rps']:,.0f} req/s), unsent {r['unsent']:,}")
print(f"503: {r['rejected']:,} ({share:.1f}%, {r['rejected_without_retry_after']} without Retry-After); "
      f"failed: {r['failed']}")
l, sv = r["latency_ok"], r["latency_ok_service"]
print(f"admitted (2xx) latency from scheduled time: p50 {l['p50_us'] / 1000:.2f} ms, "
      f"p99 {l['p99_us'] / 1000:.2f} ms, max {l['max_us'] / 1000:.2f} ms; "
      f"from send: p99 {sv['p99_us'] / 1000:.2f} ms")
print(f"server RSS: first {mib('first_kib')}, max {mib('max_kib')}, last {mib('last_kib')} "
      f"(max first half {mib('max_first_half_kib')}, second half {mib('max_second_half_kib')})")
p99s = [row["ok_p99_us"] for row in r.get("timeline") or [] if row["ok"]]
if p99s:
    print(f"per-second 2xx p99: {min(p99s) / 1000:.2f} .. {max(p99s) / 1000:.2f} ms")
PY
)
    echo "$OVERLOAD_TEXT"
    if python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["failed"] > 0)' "$W/overload.json"; then
        :
    else
        FAILED_STEPS+=("overload: requests failed (see $W/overload.json)")
    fi
fi

# --- 6. hot swap under load -------------------------------------------------------------------
# hot_swap: every command checked, so a missing piece (registry, `serve --alias`) ends only this
# step, with a message, and the summary still prints.
hot_swap() {
    local P=$W/proj run_ids
    rm -rf "$P"
    mkdir -p "$P"
    cd "$P" || return 1
    log "6. hot swap: two tracked runs, registered as versions 1 and 2 of 'bench' (SKIP_SWAP=1 skips this step)"
    "$TAXON" -q train --model-type linear --data "$DATA/train.jsonl" --output "$P/model_v1" \
        --threads 2 --validation-ratio 0 --checkpoint-every 0 >&2 || return 1
    "$TAXON" -q train --model-type linear --data "$DATA/train.jsonl" --output "$P/model_v2" \
        --threads 2 --validation-ratio 0 --checkpoint-every 0 --epochs 10 --seed 1 >&2 || return 1
    "$TAXON" --json runs list > "$W/runs.json" || return 1
    run_ids=$(python3 - "$W/runs.json" <<'PY'
import json, sys
runs = [r for r in json.load(open(sys.argv[1])) if r.get("kind") == "train"]
runs.sort(key=lambda r: r["start_time"])
if len(runs) < 2:
    sys.exit(f"expected two train runs in {sys.argv[1]}, found {len(runs)}")
print(" ".join(r["id"] for r in runs[-2:]))
PY
    ) || return 1
    read -r RUN_V1 RUN_V2 <<< "$run_ids"
    "$TAXON" registry register "$RUN_V1" --name bench >&2 || return 1
    "$TAXON" registry register "$RUN_V2" --name bench >&2 || return 1
    "$TAXON" registry alias set production 1 --name bench >&2 || return 1
    start_server swap "$TAXON" serve --alias production --name bench --poll-interval 1 --port 0 \
        --threads "$SERVER_THREADS" --cache-size 0 "${EXTRA[@]}" || return 1
    log "6. loadgen: concurrency 32, $DURATION; production -> version 2 after $SWAP_AFTER s"
    "$LOADGEN" --url "$BASE/v1/predict" --texts "$W/texts.txt" --concurrency 32 \
        --duration "$DURATION" --warmup 2s --server-pid "$SERVER_PID" --track-field model.version \
        --max-failures 0 --timeline --json > "$W/swap.json" &
    local lg=$!
    PIDS+=("$lg")
    sleep $((2 + SWAP_AFTER))
    local moved=0
    "$TAXON" registry alias set production 2 --name bench --force >&2 || moved=$?
    SWAP_RC=0
    wait "$lg" || SWAP_RC=$?
    forget "$lg"
    stop_server
    cd "$ROOT" || return 1
    [[ $moved == 0 ]] || { echo "moving the production alias failed" >&2; return 1; }
    # Exit 1 is the loadgen's "failed > --max-failures"; anything else means no report.
    [[ $SWAP_RC == 0 || $SWAP_RC == 1 ]] || return 1
}

SWAP_TEXT="(skipped: SKIP_SWAP=1)"
if [[ ${SKIP_SWAP:-0} != 1 ]]; then
    if hot_swap; then
        SWAP_TEXT=$(python3 - "$W/swap.json" "$SWAP_RC" <<'PY'
import json, sys
r, rc = json.load(open(sys.argv[1])), int(sys.argv[2])
print(f"{r['requests']:,} requests at C=32 ({r['ok_rps']:,.0f} req/s 2xx), 503: {r['rejected']}, "
      f"failed: {r['failed']} (loadgen exit {rc}; --max-failures 0)")
for v in r["tracked"]:
    print(f"model.version {v['value']}: {v['count']:,} responses, seen {v['first_s']:.1f} s .. {v['last_s']:.1f} s")
l = r["latency_ok"]
print(f"2xx latency: p50 {l['p50_us'] / 1000:.2f} ms, p99 {l['p99_us'] / 1000:.2f} ms, max {l['max_us'] / 1000:.2f} ms")
PY
        )
        if [[ $SWAP_RC != 0 ]]; then
            FAILED_STEPS+=("hot swap: requests failed (see $W/swap.json)")
        fi
    else
        cd "$ROOT"
        if [[ -n ${SERVER_PID:-} ]]; then
            stop_server
        fi
        SWAP_TEXT="(did not run to the end; see the messages above and $W/swap.server.log)"
        FAILED_STEPS+=("hot swap: the step stopped before its report")
    fi
    echo "$SWAP_TEXT"
fi

# --- 7. summary ---------------------------------------------------------------------------------
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
cat <<MD

### Serving benchmark (\`bench/serve.sh\`)

Machine: ${CPU:-unknown CPU}, $(nproc) cores, $(uname -sr); $(date -u +%Y-%m-%d); taxon $(git rev-parse --short HEAD).
Model: \`linear\` trained on the BBC train split; texts: $TEXTS_COUNT distinct 5-30 word spans
of the test split's sentences; \`taxon serve --threads $SERVER_THREADS --cache-size 0\` and
\`taxon-loadgen\` (one thread, keep-alive HTTP/1.1) on 127.0.0.1, $DURATION per row after a 2 s
warmup.

$CLOSED_TABLE

${OVERLOAD_FACTOR}x overload (server \`taskset -c 0\`, \`--threads 1 --queue-size $OVERLOAD_QUEUE${OVERLOAD_SERVE_ARGS:+ $OVERLOAD_SERVE_ARGS}\`; loadgen \`taskset -c 1\`,
open loop, $OVERLOAD_CONCURRENCY connections, latency from each request's scheduled time):

\`\`\`
$OVERLOAD_TEXT
\`\`\`

Hot swap (\`taxon serve --alias production --name bench --poll-interval 1\`; after $SWAP_AFTER s,
\`taxon registry alias set production 2 --name bench --force\`):

\`\`\`
$SWAP_TEXT
\`\`\`

Reproduce: \`${REPRO}bench/serve.sh\` (JSON reports in \`$W\`).
MD
if ((${#FAILED_STEPS[@]})); then
    printf 'failed: %s\n' "${FAILED_STEPS[@]}" >&2
    exit 1
fi
