#!/usr/bin/env bash
# The test command: installs the tools the tests use, then runs formatting, lint and every test.
# Tests that need dvc, moto_server or Python's cryptography find them in $TAXON_VENV, and with
# TAXON_REQUIRE_TOOLS=1 (set here) they fail instead of skipping when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}"
export TAXON_VENV="${TAXON_VENV:-$HOME/.cache/taxon/venv}"
export TAXON_REQUIRE_TOOLS=1
export TAXON_CORPUS_CACHE="${TAXON_CORPUS_CACHE:-$HOME/.cache/taxon/corpus}"

command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true

scripts/setup-tools.sh

echo "== deploy/: Prometheus rules and their unit tests, Alertmanager, Grafana (offline)"
scripts/check-prometheus.sh
echo "== deploy/: Helm chart, ArgoCD, Dockerfile (offline), then the image built FROM scratch and run with podman"
scripts/check-deploy.sh target/deploy-check
scripts/check-image.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# The stores' tests also run against a real PostgreSQL on 127.0.0.1, stopped by its PID on exit.
pg_dir=$(mktemp -d)
trap 'scripts/postgres.sh stop "$pg_dir" >/dev/null 2>&1; rm -rf "$pg_dir"' EXIT
TAXON_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir")
export TAXON_TEST_POSTGRES_URL
# Every process the tests start inherits this id; afterwards none may be left running.
export TAXON_TEST_RUN="test-$$-$(date +%s)"
status=0
# The UI browser test writes a screenshot of each page here; kept below as CI artifacts.
shots="$CARGO_TARGET_DIR/ui-screenshots"
rm -rf "$shots"
cargo test --workspace --locked || status=$?
if compgen -G "$shots/*.png" >/dev/null; then
    rm -rf ci-artifacts/ui-screenshots
    mkdir -p ci-artifacts/ui-screenshots
    cp "$shots"/*.png ci-artifacts/ui-screenshots/
    echo "== UI screenshots (CI artifacts): ci-artifacts/ui-screenshots/"
fi
echo "== aarch64 kernels: cross-compiled, run under qemu-aarch64 with and without sdot (scripts/test-aarch64.sh)"
scripts/test-aarch64.sh || status=$?
echo "== schemathesis against a live server"
scripts/schemathesis.sh || status=$?
echo "== alerts end to end: taxon, Prometheus, Alertmanager, Slack and SMTP sinks"
scripts/alerts-e2e.sh || status=$?
echo "== leftover processes"
scripts/check-leftovers.sh "$TAXON_TEST_RUN" || status=1
[ "$status" -eq 0 ] || exit "$status"
echo "== all checks passed"
