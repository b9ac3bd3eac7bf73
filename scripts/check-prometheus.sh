#!/usr/bin/env bash
# Offline checks of deploy/ (a few seconds, no service started):
#   promtool check config   deploy/prometheus/prometheus.yml (and the rule file it names)
#   promtool check rules    deploy/prometheus/rules/*.yml
#   promtool test rules     deploy/prometheus/tests/*.yml (every alert, firing and not firing)
#   a test that every alert of the rules has a firing and a quiet case in those tests
#   amtool check-config     deploy/alertmanager/alertmanager.yml, and which receiver each
#                           kind/severity reaches (amtool config routes test)
#   scripts/check-dashboard.py on deploy/grafana/dashboards/*.json (and that it refuses a
#                           broken one), and the provisioning files parse as YAML
# promtool comes with Debian's prometheus package, amtool with prometheus-alertmanager
# (scripts/setup-tools.sh installs both). scripts/alerts-e2e.sh runs the same files live.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python with PyYAML: the test venv's (scripts/setup-tools.sh), else the system's.
PY="${TAXON_VENV:-$HOME/.cache/taxon/venv}/bin/python"
[ -x "$PY" ] || PY=python3
"$PY" -c 'import yaml' 2>/dev/null || { echo "check-prometheus: $PY has no yaml module (run scripts/setup-tools.sh)" >&2; exit 1; }
for tool in promtool amtool python3; do
  command -v "$tool" >/dev/null || { echo "check-prometheus: $tool is missing (run scripts/setup-tools.sh)" >&2; exit 1; }
done

echo "== promtool check config"
promtool check config deploy/prometheus/prometheus.yml
echo "== promtool check rules"
promtool check rules deploy/prometheus/rules/*.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml

echo "== every alert has a firing and a quiet unit test"
python3 - deploy/prometheus/rules/taxon.rules.yml deploy/prometheus/tests/*.yml <<'PY'
import re, sys
# No YAML library needed: alert names and the test cases' alertname/exp_alerts lines.
rules = re.findall(r"^\s*- alert:\s*(\S+)", open(sys.argv[1]).read(), re.M)
firing, quiet = set(), set()
for path in sys.argv[2:]:
    text = open(path).read()
    for name, exp in re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\[\])?", text):
        (quiet if exp else firing).add(name)
missing = [f"{a}: no {w} test" for a in rules for w, s in (("firing", firing), ("quiet", quiet)) if a not in s]
unknown = sorted((firing | quiet) - set(rules))
if missing or unknown or not rules:
    print("\n".join(missing + [f"{u}: tested but not a rule" for u in unknown]) or "no alert rules found", file=sys.stderr)
    sys.exit(1)
print(f"{len(rules)} alerts, each tested firing and quiet")
PY

echo "== amtool check-config"
amtool check-config deploy/alertmanager/alertmanager.yml
echo "== routing: kind and severity reach the right receiver"
route() {
  local want="$1"; shift
  amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml --verify.receivers="$want" "$@" 2>/dev/null >/dev/null \
    || { echo "routing: $* does not reach $want: $(amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml "$@" 2>/dev/null)" >&2; exit 1; }
  echo "   $* -> $want"
}
route oncall-slack-email alertname=TaxonTargetDown kind=availability severity=critical
route oncall-slack alertname=TaxonLoadShedding kind=availability severity=warning
route ml-slack-email alertname=TaxonDriftDetected kind=drift severity=warning
route ml-slack-email alertname=TaxonLiveAccuracyLow kind=performance severity=critical
route ml-slack alertname=TaxonLatencyP99High kind=performance severity=warning
route security-slack-email alertname=TaxonFailedLoginBurst kind=security severity=warning
route platform-email alertname=SomethingElse

echo "== Grafana dashboards"
python3 scripts/check-dashboard.py deploy/grafana/dashboards/*.json
# The checker must refuse a panel without a datasource or an expr.
broken=$(mktemp)
trap 'rm -f "$broken"' EXIT
python3 - deploy/grafana/dashboards/taxon.json "$broken" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = next(p for p in d["panels"] if p["type"] != "row")
del p["datasource"]
p["targets"][0]["expr"] = ""
json.dump(d, open(sys.argv[2], "w"))
PY
if python3 scripts/check-dashboard.py "$broken" 2>/dev/null; then
  echo "check-dashboard.py accepted a panel with no datasource and an empty expr" >&2
  exit 1
fi
echo "== Grafana provisioning files"
"$PY" - deploy/grafana/provisioning/datasources/*.yml deploy/grafana/provisioning/dashboards/*.yml <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    doc = yaml.safe_load(open(path))
    assert doc.get("apiVersion") == 1, f"{path}: apiVersion is not 1"
    if "/datasources/" in path:
        for ds in doc["datasources"]:
            assert ds["type"] == "prometheus" and ds["url"] and ds["uid"], f"{path}: {ds}"
    else:
        for p in doc["providers"]:
            assert p["type"] == "file" and p["options"]["path"], f"{path}: {p}"
    print(f"   {path} OK")
PY
echo "== deploy/ checks passed"
