#!/usr/bin/env bash
# Platform CI (docs/platforms.md): the targets this machine cannot run natively.
#   1. aarch64-unknown-linux-gnu: cross-built (libsoxr included), and under qemu-aarch64 the kernel crate's tests,
#      the lib tests and every test binary with arithmetic whose bits could depend on the instruction set (the
#      subset below; the whole suite, ~48 min under emulation on this 2-core machine, with W2VBERT_QEMU_FULL=1).
#   2. AVX2-only x86-64 (no AVX-512): the kernel tests and encoder goldens of the f32 and bf16 paths under
#      `qemu-x86_64 -cpu EPYC-Milan` (AVX2 + FMA, no AVX-512), where gemm and our kernels must take their AVX2
#      paths and --precision bf16 the WidenF32 kernel (a subset, below; the kernel crate, encoder_parity and
#      encoder_bf16 whole with W2VBERT_QEMU_FULL=1).
#   3. aarch64-apple-darwin and x86_64-apple-darwin: `cargo check` of the whole workspace's Rust code, every
#      target (lib, bin, tests, benches), with libsoxr's C build skipped (.ci/cmake-skip-c-build.sh).
# W2VBERT_PLATFORM_STEPS picks steps (default, and what .ci/run runs: "aarch64 avx2 macos").
# Installs what it needs (apt packages, rustup targets) where missing; a tool or target that cannot be had stops
# the run with a line that cannot be missed. Prints cargo's `test result:` lines, so a caller can count them.
set -euo pipefail
cd "$(dirname "$0")/.."

loud() {
    echo "################################################################################"
    echo "### PLATFORMS: $*"
    echo "################################################################################"
}
fail() {
    loud "FAILED: $*"
    exit 1
}
trap 'rc=$?; [ $rc -ne 0 ] && loud "FAILED (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || fail "cargo not found: install a Rust toolchain (rustup)"
start=$(date +%s)

# --- Tools -------------------------------------------------------------------------------------------------
bash scripts/setup.sh # cmake, libclang (libsoxr's build, bindgen)
pkgs=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || pkgs+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || pkgs+=(libc6-dev-arm64-cross)
{ command -v qemu-aarch64 >/dev/null 2>&1 && command -v qemu-x86_64 >/dev/null 2>&1; } || pkgs+=(qemu-user)
if [ ${#pkgs[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || fail "apt-get update failed: cannot install ${pkgs[*]}"
    $sudo apt-get install -y -qq "${pkgs[@]}" || fail "cannot install ${pkgs[*]} with apt"
fi
for t in aarch64-linux-gnu-gcc qemu-aarch64 qemu-x86_64; do
    command -v "$t" >/dev/null 2>&1 || fail "$t is missing after the install step"
done
targets=(aarch64-unknown-linux-gnu aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}" || fail "rustup cannot add the targets ${targets[*]}"
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || fail "Rust target $t is not installed"
done
# (Listed first, then searched: `-cpu help` exits 1 after listing, which pipefail would count.)
cpu_models=$(qemu-x86_64 -cpu help || true) # it exits 1 after listing
grep -q EPYC-Milan <<<"$cpu_models" || fail "this qemu-x86_64 has no EPYC-Milan CPU model"

steps=" ${W2VBERT_PLATFORM_STEPS:-aarch64 avx2 macos} "
want() { [[ "$steps" == *" $1 "* ]]; }

# --- 1. aarch64 Linux under qemu-aarch64 -------------------------------------------------------------------------
if want aarch64; then
loud "aarch64-unknown-linux-gnu: build, then the test suite under qemu-aarch64"
a64_runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
(
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$a64_runner"
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu"
    # The CLI tests start the binary themselves: through the emulator (tests/common/mod.rs, `cli`).
    export W2VBERT_CLI_RUNNER="$a64_runner"
    a64=(--release --locked --target aarch64-unknown-linux-gnu)
    # libsoxr is configured through scripts/cmake-libsoxr-neon.sh (.cargo/config.toml), but media-soxr-sys' build
    # script does not rerun when that changes: a libsoxr configured otherwise (e.g. before it, without its NEON
    # engine) would stay. Its CMakeCache.txt carries the wrapper's stamp: clean it where the stamp differs.
    stamp=$(cksum <scripts/cmake-libsoxr-neon.sh)
    for c in "${CARGO_TARGET_DIR:-target}"/aarch64-unknown-linux-gnu/release/build/media-soxr-sys-*/out/build/CMakeCache.txt; do
        [ -f "$c" ] || continue
        if ! grep -qx "W2VBERT_SOXR_WRAPPER:UNINITIALIZED=${stamp%% *}" "$c"; then
            echo "libsoxr in ${c%/CMakeCache.txt} was not configured by this scripts/cmake-libsoxr-neon.sh: rebuilding it"
            cargo clean --release --target aarch64-unknown-linux-gnu -p media-soxr-sys
            break
        fi
    done
    if [ "${W2VBERT_QEMU_FULL:-0}" = 1 ]; then
        cargo test "${a64[@]}" --workspace
    else
        # CI's subset (the full suite took ~48 min under emulation here): everything with arithmetic whose bits
        # could depend on the instruction set. Left out, by W2VBERT_QEMU_FULL=1 only: the parsers and the CLI's
        # bookkeeping (weights, config, stats, convert, convert_errors, cli_corpus, cli_conventions, cli_encoder, audio_errors,
        # pipeline_samples, inventory, fuzz_corpus), which compute nothing arch-dependent.
        subset=(encoder_parity encoder_bf16 packed fbank rate_goldens speaker_prompt soxr_threads cli_features)
        tests=()
        for name in "${subset[@]}"; do tests+=(--test "$name"); done
        echo "qemu-aarch64: CI subset: the kernel crate, the lib tests and ${subset[*]} (W2VBERT_QEMU_FULL=1: all)"
        cargo test "${a64[@]}" -p w2vbert-kernels
        cargo test "${a64[@]}" --lib "${tests[@]}"
    fi
) || fail "aarch64 (qemu-aarch64) tests"
fi

# --- 2. AVX2-only x86-64 under qemu-x86_64 -cpu EPYC-Milan -----------------------------------------------------
if want avx2; then
loud "x86-64 without AVX-512: kernel, encoder parity and bf16 encoder tests under qemu-x86_64 -cpu EPYC-Milan"
milan_log=$(mktemp)
trap 'rm -f "$milan_log"' EXIT
(
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu EPYC-Milan"
    if [ "${W2VBERT_QEMU_FULL:-0}" = 1 ]; then
        cargo test --release --locked -p w2vbert-kernels -- --nocapture
        cargo test --release --locked --test encoder_parity --test encoder_bf16 -- --nocapture
    else
        # CI's subset. qemu's TCG runs AVX2 code one helper call per instruction, ~100x slower than natively
        # (on one core: attention_fused 585 s, gemm_shapes > 600 s, bf16_gemm's WidenF32-at-model-size test
        # > 430 s), so: every kernel test binary with 8 cases per property (48-256 natively;
        # kernels/tests/common::cases), less the cases at the model's full sizes: attention at T = 700 and over
        # all named shapes, gemm at the projection shapes, and bf16_gemm's three model-size tests (their tile
        # kernels do not run without AVX-512 anyway; WidenF32 and gemm's AVX2 kernels still run in the other
        # cases and in the encoder goldens); and one golden per encoder path: f32 (gemm AVX2), bf16 (WidenF32)
        # against HF fp32, and a bf16 checkpoint under WidenF32 = the f32 path bit for bit.
        # W2VBERT_QEMU_FULL=1 runs both suites whole.
        PROPTEST_CASES=8 cargo test --release --locked -p w2vbert-kernels -- --nocapture \
            --skip fused_matches_naive_long_sequence_default_blocks --skip fused_matches_naive_named_cases \
            --skip matmul_model_shapes_sampled_rows --skip widen_kernel_is_the_f32_linear_bit_for_bit \
            --skip model_shapes_and_awkward_sizes --skip model_shaped_weights_are_read_in_place
        cargo test --release --locked --test encoder_parity --test encoder_bf16 -- --nocapture \
            head_size_64_three_layers_f32_matches_hf bf16_hidden_states_stay_close_to_hf_fp32 \
            bf16_checkpoint_under_widen_kernel_is_the_f32_path_bit_for_bit
    fi
) 2>&1 | tee "$milan_log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "x86-64 AVX2-only (qemu-x86_64 -cpu EPYC-Milan) tests"
# The emulated CPU must really have steered the run-time dispatch: gemm on its AVX2 kernels, bf16 on WidenF32.
grep -q "gemm f32 AVX2/FMA" "$milan_log" || fail "under EPYC-Milan the CPU check did not report gemm's AVX2 path"
grep -q "bf16 kernel: bf16 weights widened to f32" "$milan_log" ||
    fail "under EPYC-Milan --precision bf16 did not run the WidenF32 kernel"
fi

# --- 3. macOS: cargo check of the Rust code (no SDK here: libsoxr's C build is skipped) --------------------------
# bindgen parses soxr.h for the macOS target without an SDK: clang's own headers (stddef.h) must be named.
clang_inc=$(ls -d /usr/lib/llvm-*/lib/clang/*/include 2>/dev/null | sort -V | tail -n 1)
[ -n "$clang_inc" ] || fail "no clang resource headers (libclang-dev) for bindgen"
for t in aarch64-apple-darwin x86_64-apple-darwin; do
    want macos || break
    loud "$t: cargo check (Rust code only; libsoxr's C code and the link are not checked)"
    v="CMAKE_${t//-/_}"
    env "$v=$PWD/.ci/cmake-skip-c-build.sh" "BINDGEN_EXTRA_CLANG_ARGS_${t//-/_}=-isystem $clang_inc" cargo check --workspace --all-targets --locked --target "$t" ||
        fail "cargo check --target $t"
    echo "macOS check: $t ok"
done

loud "all platform steps passed in $(($(date +%s) - start)) s"
