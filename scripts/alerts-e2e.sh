#!/usr/bin/env bash
# End-to-end check of deploy/ with the real components, all on 127.0.0.1 (free ports), in a
# temporary folder, each started in a process group of its own and stopped by its group at exit:
#   taxon serve      a linear model trained here on synthetic texts (scripts/alerts-e2e/e2e.py
#                    data), monitoring on, a 40-prediction online drift window, auth on (one
#                    user; the driver also tries bad passwords until the login limit answers 429)
#   Prometheus       scrape and rule evaluation every second, the rules of
#                    deploy/prometheus/rules/taxon.rules.yml with every `for:` cut to 2s
#   Alertmanager     deploy/alertmanager/alertmanager.yml with the Slack webhook and the SMTP
#                    smarthost pointed at the two sinks below, and 1 s group waits
#   a webhook sink   scripts/alerts-e2e/webhook_sink.py (Slack's payloads, via slack_configs)
#   an SMTP sink     aiosmtpd's Mailbox handler
# then scripts/alerts-e2e/e2e.py run: drifted traffic until TaxonDriftDetected fires and both
# sinks got it, every PromQL expression of the rules and the dashboard evaluated live, normal
# traffic until the RESOLVED notices arrive; and that the drift alert reached taxon's
# retraining webhook (Alertmanager's webhook_configs, an admin token), which recorded a
# retraining caused by it. Each wait is bounded (ALERTS_E2E_TIMEOUT, 120 s).
#
# Why a derived rule file: the real `for:` durations (2 to 15 minutes) would make this test
# take a quarter of an hour; the expressions, labels and annotations are the real ones, only
# `for:` changes (the unit tests in deploy/prometheus/tests/ check the real durations).
#
#   TAXON_BIN      the taxon binary (default: `cargo build -p taxon-cli`, debug)
#   TAXON_VENV     the venv with PyYAML and aiosmtpd (scripts/setup-tools.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}"
VENV="${TAXON_VENV:-$HOME/.cache/taxon/venv}"
PY="$VENV/bin/python"
TIMEOUT="${ALERTS_E2E_TIMEOUT:-120}"
# Processes started here carry the test run's id (scripts/check-leftovers.sh); run alone, this
# script makes one and checks for leftovers itself at exit.
OWN_RUN=""
if [ -z "${TAXON_TEST_RUN:-}" ]; then
  export TAXON_TEST_RUN="alerts-e2e-$$-$(date +%s)"
  OWN_RUN=1
fi

for tool in prometheus prometheus-alertmanager; do
  command -v "$tool" >/dev/null || { echo "alerts-e2e: $tool is missing (scripts/setup-tools.sh installs it with apt)" >&2; exit 1; }
done
"$PY" -c 'import yaml, aiosmtpd' 2>/dev/null \
  || { echo "alerts-e2e: $PY lacks PyYAML or aiosmtpd (run scripts/setup-tools.sh)" >&2; exit 1; }

if [ -n "${TAXON_BIN:-}" ]; then
  TAXON="$TAXON_BIN"
else
  cargo build -q -p taxon-cli
  TAXON="$CARGO_TARGET_DIR/debug/taxon"
fi

WORK=$(mktemp -d)
PIDS=()
stop_all() {
  local status=$?
  # Each service leads its own process group (setsid): TERM the group, then KILL what is left.
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $(basename "$log") (last 30 lines)" >&2
      tail -n 30 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  if [ -n "$OWN_RUN" ]; then
    scripts/check-leftovers.sh "$TAXON_TEST_RUN" || status=1
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: in a new process group (setsid), output to $WORK/NAME.log.
start() {
  local name="$1"; shift
  : >"$WORK/$name.log"  # exists before anyone reads it
  setsid "$@" >>"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http NAME URL: until URL answers 200, at most $TIMEOUT s.
wait_http() {
  local name="$1" url="$2" deadline=$((SECONDS + TIMEOUT))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "alerts-e2e: $name did not answer $url within $TIMEOUT s" >&2; exit 1; }
    sleep 0.2
  done
}

echo "== alerts-e2e: training a linear model on synthetic texts"
"$PY" scripts/alerts-e2e/e2e.py data "$WORK/data"
"$TAXON" -q train --model-type linear --data "$WORK/data/train.jsonl" --validation "$WORK/data/validation.jsonl" \
  --output "$WORK/model" --threads 1 >"$WORK/train.log" 2>&1

# The retraining loop's project: the standard pipeline over the same data; the server logs
# texts and feedback into it, and Alertmanager's drift route calls its retraining webhook.
mkdir -p "$WORK/project/data"
cp "$WORK/data/train.jsonl" "$WORK/project/data/train.jsonl"
cp "$WORK/data/validation.jsonl" "$WORK/project/data/test.jsonl"
(cd "$WORK/project" && "$TAXON" -q pipeline init --data data >/dev/null)

echo "== alerts-e2e: starting taxon serve, the sinks, Alertmanager, Prometheus"
export TAXON_USERS_DB="$WORK/users.db"
PASSWORD="alerts-e2e-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TAXON_PASSWORD="$PASSWORD" "$TAXON" -q users add alerts --scope predict >/dev/null
TAXON_PASSWORD="$PASSWORD" "$TAXON" -q users add alertmanager --scope admin >/dev/null
TAXON_JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  start taxon "$TAXON" serve --model "$WORK/model" --host 127.0.0.1 --port 0 --threads 2 --drift-window 40 \
  --prediction-log "$WORK/project/log" --prediction-log-text --retrain-on-alert \
  --retrain-pipeline "$WORK/project/dvc.yaml"
TAXON_URL=""
deadline=$((SECONDS + TIMEOUT))
until [ -n "$TAXON_URL" ]; do
  TAXON_URL=$(sed -n 's/^listening on //p' "$WORK/taxon.log" | head -n 1)
  [ -n "$TAXON_URL" ] && break
  [ "$SECONDS" -lt "$deadline" ] || { echo "alerts-e2e: taxon serve did not start within $TIMEOUT s" >&2; exit 1; }
  sleep 0.1
done
wait_http "taxon serve" "$TAXON_URL/ready"
# Alertmanager's credentials for the retraining webhook: an admin-scoped token, in a file.
curl -fsS -d "username=alertmanager" --data-urlencode "password=$PASSWORD" "$TAXON_URL/token" \
  | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["access_token"], end="")' >"$WORK/admin-token"

WEBHOOK_PORT=$(free_port)
start webhook "$PY" scripts/alerts-e2e/webhook_sink.py "$WEBHOOK_PORT" "$WORK/slack"
SMTP_PORT=$(free_port)
# aiosmtpd's Mailbox wants a folder that does not exist yet.
start smtp "$PY" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$WORK/mail"

# Alertmanager: the real routing, the sinks instead of Slack and a mail server, 1 s waits.
AM_PORT=$(free_port)
"$PY" - deploy/alertmanager/alertmanager.yml "$WORK/alertmanager.yml" "$WEBHOOK_PORT" "$SMTP_PORT" \
  "$TAXON_URL" "$WORK/admin-token" <<'PY'
import sys, yaml
src, dst, webhook, smtp, taxon, token = sys.argv[1:]
cfg = yaml.safe_load(open(src))
g = cfg["global"]
g.pop("slack_api_url_file", None)
g["slack_api_url"] = f"http://127.0.0.1:{webhook}/slack"
g["smtp_smarthost"] = f"127.0.0.1:{smtp}"
g["smtp_require_tls"] = False
for key in ("smtp_auth_username", "smtp_auth_password_file"):
    g.pop(key, None)
SHORT = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
def shorten(route, root=False):
    for key, value in SHORT.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []):
        shorten(child)
shorten(cfg["route"], root=True)
# The retraining webhook: this taxon, with the token fetched above.
for receiver in cfg["receivers"]:
    for hook in receiver.get("webhook_configs", []):
        if hook["url"].endswith("/v1/admin/retrain"):
            hook["url"] = f"{taxon}/v1/admin/retrain"
            hook["http_config"]["authorization"]["credentials_file"] = token
yaml.safe_dump(cfg, open(dst, "w"), sort_keys=False)
PY
amtool check-config "$WORK/alertmanager.yml" >/dev/null
start alertmanager prometheus-alertmanager --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/am-data" \
  --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address=
wait_http Alertmanager "http://127.0.0.1:$AM_PORT/-/ready"

# Prometheus: the real rules with `for:` cut to 2s (see the top of this file).
PROM_PORT=$(free_port)
mkdir -p "$WORK/rules"
sed -E 's/^( *)for: .*/\1for: 2s/' deploy/prometheus/rules/taxon.rules.yml >"$WORK/rules/taxon.rules.yml"
grep -q 'for: 2s' "$WORK/rules/taxon.rules.yml" || { echo "alerts-e2e: no for: to shorten in the rules" >&2; exit 1; }
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules/taxon.rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$AM_PORT"]
scrape_configs:
  - job_name: taxon
    static_configs:
      - targets: ["${TAXON_URL#http://}"]
YAML
promtool check config "$WORK/prometheus.yml" >/dev/null
start prometheus prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --rules.alert.resend-delay=1s
wait_http Prometheus "http://127.0.0.1:$PROM_PORT/-/ready"

echo "== alerts-e2e: drift, notices, PromQL, recovery (each wait at most $TIMEOUT s)"
"$PY" scripts/alerts-e2e/e2e.py run --taxon "$TAXON_URL" --prometheus "http://127.0.0.1:$PROM_PORT" \
  --alertmanager "http://127.0.0.1:$AM_PORT" --webhook-dir "$WORK/slack" --mail-dir "$WORK/mail" \
  --rules deploy/prometheus/rules/taxon.rules.yml --dashboard deploy/grafana/dashboards/taxon.json \
  --model "$WORK/model" --user alerts --password "$PASSWORD" --timeout "$TIMEOUT"

# The drift alert also reached the retraining webhook: Alertmanager called it with the admin
# token, taxon started `taxon pipeline retrain --cause alert:TaxonDriftDetected`, which
# recorded its decision (here: too few fresh labels, 40 feedback rows against the 50 needed).
deadline=$((SECONDS + TIMEOUT))
until grep -q '"cause":"alert:[^"]*TaxonDriftDetected' "$WORK/project/.taxon/retrains.jsonl" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "alerts-e2e: no retraining recorded for TaxonDriftDetected within $TIMEOUT s" >&2; exit 1; }
  sleep 0.2
done
echo "   retraining webhook: $("$PY" -c 'import json, sys; r = [json.loads(l) for l in open(sys.argv[1])][-1]; print(r["cause"], "->", r["outcome"], "(%d labelled predictions in the log)" % r["feedback_rows"])' "$WORK/project/.taxon/retrains.jsonl")"
