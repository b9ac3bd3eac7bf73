#!/usr/bin/env bash
# Checks that the OpenAPI document describes the server: schemathesis (`--checks all`) against
# a live `taxon serve` with auth on (a linear model, one user with both scopes), on 127.0.0.1,
# bounded in examples and time. schemathesis lives in its own venv (pip's own client), apart
# from the test venv's pins. Exit 0 when every check passes.
#   SCHEMATHESIS_EXAMPLES (default 30 per operation), SCHEMATHESIS_TIMEOUT (default 300 s)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}"
VENV="${TAXON_SCHEMATHESIS_VENV:-$HOME/.cache/taxon/venv-schemathesis}"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-30}"
LIMIT="${SCHEMATHESIS_TIMEOUT:-300}"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "== installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi

cargo build -q -p taxon-cli
TAXON="$CARGO_TARGET_DIR/debug/taxon"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  # Stopped by its PID (one process; SIGTERM drains it).
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
for i in $(seq 1 30); do
  echo "{\"text\": \"the striker scored a goal in the league match $i\", \"label\": \"sport\"}"
  echo "{\"text\": \"the bank said shares and profit rose on the market $i\", \"label\": \"business\"}"
done > train.jsonl
"$TAXON" -q train --model-type linear --data train.jsonl --output model --epochs 2 --threads 1 >/dev/null
PASSWORD="schema-check-password"
TAXON_PASSWORD="$PASSWORD" "$TAXON" -q users add tester --scope predict --scope admin >/dev/null

: >serve.log
TAXON_JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$TAXON" serve --model model --port 0 --threads 2 >/dev/null 2>serve.log &
SERVER_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL=$(sed -n 's/^listening on //p' serve.log | head -n 1 || true)
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || { cat serve.log >&2; echo "the server did not start" >&2; exit 1; }

TOKEN=$(python3 - "$URL" "$PASSWORD" <<'PY'
import json, sys, urllib.parse, urllib.request
url, password = sys.argv[1], sys.argv[2]
body = urllib.parse.urlencode({"username": "tester", "password": password}).encode()
with urllib.request.urlopen(urllib.request.Request(url + "/token", data=body)) as r:
    print(json.load(r)["access_token"])
PY
)

echo "== schemathesis --checks all against $URL (at most $EXAMPLES examples per operation, $LIMIT s)"
timeout "$LIMIT" "$VENV/bin/schemathesis" run "$URL/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $TOKEN" \
  --max-examples "$EXAMPLES" \
  --request-timeout 10 \
  --workers 2
