#!/usr/bin/env bash
# The aarch64 kernels, tested on an x86-64 machine: cross-compiles taxon-kernels' tests for
# aarch64-unknown-linux-gnu and runs them under QEMU's user-mode emulator on CPU models with and
# without the dot-product extension, so every aarch64 path (portable, neon, neon-dotprod) runs
# against the portable reference. QEMU checks results, not speed.
#
# Installs what it needs with apt, idempotently (Debian packages; rustup's toolchain here has no
# aarch64 standard library):
#   rustc-web + libstd-rust-web-dev:arm64   Debian's rustc and its aarch64 standard library
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross   the linker and the aarch64 C library
#   qemu-user                                qemu-aarch64
# Cargo is rustup's; only the compiler is Debian's (RUSTC). Builds into its own small target
# directory ($TAXON_AARCH64_TARGET, default ~/.cache/taxon/target-aarch64); only this one
# crate is built for aarch64. Exits non-zero when a step or a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
export CARGO_TARGET_DIR="${TAXON_AARCH64_TARGET:-$HOME/.cache/taxon/target-aarch64}"
rustc_deb=/usr/bin/rustc
sysroot_lib=/usr/lib/rustlib/$target/lib

have_all() {
  [ -x "$rustc_deb" ] && compgen -G "$sysroot_lib/libstd-*.rlib" >/dev/null \
    && command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null \
    && [ -d /usr/aarch64-linux-gnu/lib ]
}

if ! have_all; then
  echo "test-aarch64: installing rustc-web, libstd-rust-web-dev:arm64, the aarch64 gcc and qemu-user with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
  fi
  $SUDO apt-get update >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
    >/dev/null
fi
have_all || { echo "test-aarch64: the aarch64 toolchain is still incomplete after apt" >&2; exit 1; }
echo "test-aarch64: $("$rustc_deb" --version) for $target, $(qemu-aarch64 --version | head -1)"

export RUSTC="$rustc_deb"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Optimized, as the kernels run in production (and about 10x faster under QEMU than a debug
# build); overflow checks stay on so that a wrapping integer in a kernel's scalar code fails.
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
# -D warnings: the aarch64-only code must compile without warnings too (lints of dependencies
# stay capped by Cargo).
export RUSTFLAGS="-D warnings"
cargo_test() {
  cargo test --release --locked -p taxon-kernels --target "$target" --lib "$@"
}
echo "== aarch64 kernels: build ($CARGO_TARGET_DIR)"
cargo_test --no-run

status=0
# max: every extension QEMU emulates (dotprod, i8mm, SVE, ...); cortex-a57: Armv8.0, NEON
# without dotprod. The tests loop over every level and implementation the CPU model has.
for cpu in max cortex-a57; do
  echo "== aarch64 kernels under qemu-aarch64 -cpu $cpu"
  # A test checks that the model has sdot (max) or lacks it (cortex-a57), so both kernels ran.
  if [ "$cpu" = max ]; then export TAXON_EXPECT_DOTPROD=1; else export TAXON_EXPECT_DOTPROD=0; fi
  # The cross C library, also for the libraries the loader finds (a libc6:arm64 beside it, of
  # another build, hangs in pthread_create under QEMU when the two are mixed).
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib -cpu $cpu"
  if ! cargo_test -- --test-threads 2; then
    echo "test-aarch64: kernel tests failed under -cpu $cpu" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "test-aarch64: the kernel tests passed on -cpu max and -cpu cortex-a57"
exit "$status"
