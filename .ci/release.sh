#!/usr/bin/env bash
# CI: builds the release artifacts (scripts/release.sh) and checks them as a user without a compiler would
# (scripts/check_release.sh; its last line is "release: N passed, M failed"). See docs/install.md.
#   W2VBERT_RELEASE_ARCHES="x86_64 aarch64"   architectures (default: x86_64 aarch64)
#   W2VBERT_CHECK_SDIST=1                      also build a wheel from the sdist in a fresh venv (+ ~6 min)
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install a Rust toolchain (rustup)"; exit 1; }
bash scripts/setup.sh
read -r -a arches <<<"${W2VBERT_RELEASE_ARCHES:-x86_64 aarch64}"

# aarch64: gcc-aarch64-linux-gnu compiles libsoxr (as gcc does for x86_64), libc6-dev-arm64-cross gives bindgen
# the target's headers, qemu-user + libc6-arm64-cross run the binary and the wheel.
for a in "${arches[@]}"; do
    if [ "$a" = aarch64 ] && ! { command -v qemu-aarch64 && command -v aarch64-linux-gnu-gcc &&
        [ -d /usr/aarch64-linux-gnu/include ]; } >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-arm64-cross libc6-dev-arm64-cross
    fi
done
command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc; }

# The reference the artifacts are compared with: the CLI built from source as the README says.
cargo build --release --locked --bin w2vbert-infer
t_ref=$(date +%s)

bash scripts/release.sh "${arches[@]}"
t_rel=$(date +%s)

for a in "${arches[@]}"; do
    if [ "$a" = aarch64 ]; then
        # An aarch64 CPython (Debian's arm64 packages, unpacked) to run the aarch64 wheel under qemu.
        bash scripts/aarch64_python.sh target/aarch64-python && export W2VBERT_AARCH64_PYTHON=$PWD/target/aarch64-python
    fi
done

set +e
bash scripts/check_release.sh dist
rc=$?
set -e
t_end=$(date +%s)
echo "release timings: source build $((t_ref - t0)) s, scripts/release.sh ${arches[*]} $((t_rel - t_ref)) s, checks $((t_end - t_rel)) s, total $((t_end - t0)) s"
exit "$rc"
