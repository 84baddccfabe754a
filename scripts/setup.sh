#!/usr/bin/env bash
# Build prerequisites beyond the Rust toolchain: libsoxr (crate media-soxr-sys) is built from source with CMake,
# its bindings with bindgen, which needs libclang. Installs them with apt where missing (Debian/Ubuntu, as root
# or with sudo); does nothing when they are present.
set -euo pipefail
if command -v cmake >/dev/null 2>&1 && ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1; then
    exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq cmake libclang-dev
