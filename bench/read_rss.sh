#!/usr/bin/env bash
# Peak memory and throughput of `taxon data stats` on a ~2 GB JSONL file.
#
# Generates a seeded JSONL file (default 2048 MB; SIZE_MB=... to change) in a temporary
# folder, runs `/usr/bin/time -v taxon data stats FILE` on a release build, prints peak RSS and
# MB/s, and deletes the file. Target: peak RSS under 200 MB.
#
# The data: realistic-looking text drawn from a limited vocabulary (5,000 words, Zipf-like),
# rows of 6-14 sentences (~700 chars), 5 labels, and ~5% exact repeats of earlier rows. Almost
# every row is distinct, which is the hard case for memory: the statistics keep one 64-bit hash
# per distinct normalized text in a hash set (about 10-20 bytes per distinct row, up to ~30 while
# the set grows), so ~3 M distinct rows cost ~35-90 MB; the vocabulary set (64-bit word hashes)
# and the text-length histogram stay small. The reader itself holds one line buffer and one batch.
#
# Usage: bench/read_rss.sh            (builds `taxon` in release mode first)
#        TAXON_BIN=path/to/taxon SIZE_MB=512 bench/read_rss.sh
set -euo pipefail

SIZE_MB="${SIZE_MB:-2048}"
SEED="${SEED:-42}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}"

if [[ -z "${TAXON_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release -q -p taxon-cli)
    TAXON_BIN="$CARGO_TARGET_DIR/release/taxon"
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "/usr/bin/time is missing: apt-get install -y time" >&2
    exit 2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
DATA="$WORK/data.jsonl"

echo "generating ${SIZE_MB} MB of JSONL (seed $SEED) in $WORK ..." >&2
python3 - "$DATA" "$SIZE_MB" "$SEED" <<'PY'
import json, random, sys

path, size_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(6000)})[:5000]
weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like word frequencies
words = rng.choices(vocab, weights=weights, k=400_000)
pool = []
pos = 0
for _ in range(40_000):
    n = rng.randint(8, 20)
    s = " ".join(words[pos:pos + n])
    pos = (pos + n) % (len(words) - 21)
    pool.append(s[:1].upper() + s[1:] + ".")
labels = ["business", "entertainment", "politics", "sport", "tech"]
target = size_mb * 1024 * 1024
written = 0
recent = []
with open(path, "w", buffering=1 << 20) as f:
    while written < target:
        if recent and rng.random() < 0.05:
            line = rng.choice(recent)
        else:
            text = " ".join(rng.choices(pool, k=rng.randint(6, 14)))
            line = json.dumps({"id": written, "text": text, "label": rng.choice(labels)}) + "\n"
            if len(recent) < 1000:
                recent.append(line)
            else:
                recent[rng.randrange(1000)] = line
        f.write(line)
        written += len(line)
PY

BYTES=$(stat -c %s "$DATA")
echo "file: $BYTES bytes; running: $TAXON_BIN -q --json data stats FILE" >&2
/usr/bin/time -v "$TAXON_BIN" -q --json data stats "$DATA" >"$WORK/stats.json" 2>"$WORK/time.txt" || {
    cat "$WORK/time.txt" >&2
    exit 1
}
RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$WORK/time.txt")
SECS=$(python3 -c 'import sys
p=sys.argv[1].split(":"); s=0.0
for x in p: s=s*60+float(x)
print(s)' "$WALL")
ROWS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows"])' "$WORK/stats.json")
DUP=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["duplicate_rate"], 4))' "$WORK/stats.json")
python3 - "$BYTES" "$SECS" "$RSS_KB" "$ROWS" "$DUP" "$CPU" <<'PY'
import sys
size, secs, rss_kb, rows, dup = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cpu = max(float(sys.argv[6]), 0.01)
mb = size / 1e6
rss_mb = rss_kb / 1024
print(f"file            {mb:,.0f} MB, {rows:,} rows, duplicate rate {dup}")
print(f"wall time       {secs:.2f} s")
print(f"throughput      {mb / secs:,.0f} MB/s (wall); {mb / cpu:,.0f} MB/s per CPU second ({cpu:.2f} s user+sys)")
print(f"peak RSS        {rss_mb:,.1f} MiB  (budget 200 MB: {'OK' if rss_kb * 1024 < 200e6 else 'OVER'})")
PY
