#!/usr/bin/env bash
# `cmake` for aarch64-unknown-linux-gnu builds (.cargo/config.toml's [env] names it as CMAKE_<target>, which the
# `cmake` crate runs in place of cmake): builds libsoxr with its SIMD engine, cr32s (NEON pffft), as x86-64
# builds get it (SSE pffft). Every call is passed to the real cmake ($CMAKE if set, else `cmake` on PATH); only
# the configure call of libsoxr's own source tree gets more arguments:
#   -DSIMD32_C_FLAGS=-ffp-contract=off   libsoxr 0.1.3's CMake test for 32-bit SIMD tries NEON flags only when the
#                                        processor name starts with "arm" (aarch64 gets the SSE test, which
#                                        fails): naming the flags skips the test. The sources themselves handle
#                                        __aarch64__ (dev32s.h, pffft.c: NEON intrinsics; NEON is baseline there).
#   -DWITH_CR32=OFF                      no scalar cr32 engine: libsoxr's run-time choice between cr32 and cr32s
#                                        misspells `__aarch64__` and would pick cr32. cr32s is then used for every
#                                        HQ float32 resampler, as on x86-64.
#   -ffp-contract=off in CMAKE_C_FLAGS   gcc (and clang) for aarch64 fuse a*b+c into one FMA by default, which
#                                        x86-64's build (no -mfma) never does; off, libsoxr computes what it
#                                        computes on x86-64, operation for operation (bit-identical output where
#                                        both run the same code: docs/platforms.md).
# and a stamp, -DW2VBERT_SOXR_WRAPPER=<cksum of this file>: media-soxr-sys' build script does not rerun when this
# file or .cargo/config.toml changes, so .ci/platforms.sh and scripts/release.sh compare the stamp in libsoxr's
# CMakeCache.txt with this file and clean a libsoxr configured otherwise.
# Not for Apple targets: macOS's libsoxr C build cannot be run here (docs/platforms.md).
set -euo pipefail
real=${CMAKE:-cmake}
case "${1:-}" in
    --build | --version | --install | -E | -P | "") exec "$real" "$@" ;;
esac
soxr=0
for a in "$@"; do
    case "$a" in -*) continue ;; esac
    [ -f "$a/src/soxr.h" ] && [ -f "$a/src/cr32s.c" ] && soxr=1
done
[ "$soxr" = 1 ] || exec "$real" "$@"
args=() flags=0
for a in "$@"; do
    case "$a" in
        -DCMAKE_C_FLAGS=*)
            a="$a -ffp-contract=off"
            flags=1
            ;;
    esac
    args+=("$a")
done
[ "$flags" = 1 ] || args+=("-DCMAKE_C_FLAGS=-ffp-contract=off")
stamp=$(cksum <"${BASH_SOURCE[0]}")
exec "$real" "${args[@]}" -DSIMD32_C_FLAGS=-ffp-contract=off -DWITH_CR32=OFF "-DW2VBERT_SOXR_WRAPPER=${stamp%% *}"
