# Shared by the serving and inference benches (bench/serve.sh, bench/serve_bert.sh,
# bench/bert_infer.sh); sourced, not run.
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

# PyTorch's own switches that cap it at a taxon kernel level (TAXON_KERNELS=LEVEL), as
# VAR=VALUE words for env: ATen's vectorized ops, fbgemm (dynamic int8), oneDNN and MKL (fp32
# Linear). Empty for `best` and `portable` (PyTorch has no x86-64 baseline switch).
torch_caps() {
    case $1 in
        avx2) echo "ATEN_CPU_CAPABILITY=avx2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2" ;;
        avx512) echo "ATEN_CPU_CAPABILITY=avx512" ;;
        *) echo "" ;;
    esac
}
