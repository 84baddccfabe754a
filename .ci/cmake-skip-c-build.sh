#!/usr/bin/env bash
# A stand-in for `cmake`, used ONLY to `cargo check` the Rust code for macOS targets on a Linux machine, where
# libsoxr's C build cannot run (it needs the macOS SDK). media-soxr-sys' build script configures and builds
# libsoxr through the `cmake` crate, which runs the program named by $CMAKE_<target> instead of cmake; this one
# builds nothing and only installs libsoxr's header into the install prefix, so that the build script's bindgen
# step (the Rust declarations of libsoxr's API, which our code is checked against) runs as usual.
# What it does NOT check: libsoxr's C code for macOS, and the final link. See docs/platforms.md.
set -euo pipefail
if [ "${1:-}" = "--version" ]; then
    echo "cmake version 3.25.1 (stand-in: .ci/cmake-skip-c-build.sh, no C build)"
    exit 0
fi
if [ "${1:-}" = "--build" ]; then
    exit 0 # nothing was configured to build
fi
prefix="" src=""
for a in "$@"; do
    case "$a" in
        -DCMAKE_INSTALL_PREFIX=*) prefix="${a#-DCMAKE_INSTALL_PREFIX=}" ;;
        -*) ;;
        *) [ -z "$src" ] && src="$a" ;;
    esac
done
[ -n "$prefix" ] && [ -f "$src/src/soxr.h" ] || { echo "cmake stand-in: no install prefix or $src/src/soxr.h" >&2; exit 1; }
mkdir -p "$prefix/lib" "$prefix/include"
cp "$src/src/soxr.h" "$prefix/include/soxr.h"
echo "cmake stand-in: libsoxr NOT built (Rust check only); installed soxr.h into $prefix/include"
