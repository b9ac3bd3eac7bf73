# Shared by the serving benches (bench/serve.sh, bench/serve_bert.sh); sourced, not run.
# Needs CARGO_TARGET_DIR exported by the caller.

log() { echo "== $*" >&2; }

# Background processes the bench started (servers, load generators): killed and reaped on exit.
PIDS=()
bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap bench_cleanup EXIT

# Sets TAXON and LOADGEN: TAXON_BIN / LOADGEN_BIN when both are given, else the release builds.
bench_binaries() {
    if [[ -z ${TAXON_BIN:-} || -z ${LOADGEN_BIN:-} ]]; then
        log "building taxon and taxon-loadgen (release)"
        cargo build --release -q -p taxon-cli -p taxon-loadgen
    fi
    TAXON=${TAXON_BIN:-$CARGO_TARGET_DIR/release/taxon}
    LOADGEN=${LOADGEN_BIN:-$CARGO_TARGET_DIR/release/taxon-loadgen}
}
