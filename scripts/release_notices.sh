#!/usr/bin/env bash
# Writes the licence notices that ship next to a release binary (CLI archive) into DIR:
#   LICENSE-libsoxr-LGPL-2.1.txt   the LGPL-2.1 text (libsoxr's own COPYING.LGPL)
#   NOTICE-libsoxr.md              what is statically linked, where its source is, how to relink
#   THIRD-PARTY.txt                every Rust crate linked into the binary, with its licence
# Usage: scripts/release_notices.sh VERSION DIR
set -euo pipefail
cd "$(dirname "$0")/.."
version=$1
dir=$2

soxr_crate=$(cargo tree -q --locked -e normal -p w2vbert --prefix none --format '{p}' | awk '$1 == "media-soxr-sys" { print $2; exit }')
soxr_crate=${soxr_crate#v}
[ -n "$soxr_crate" ] || { echo "release_notices: media-soxr-sys not in the dependency tree" >&2; exit 1; }
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/media-soxr-sys-"$soxr_crate" 2>/dev/null | head -1)
[ -f "$src/soxr/COPYING.LGPL" ] || { echo "release_notices: no libsoxr source at $src (run cargo fetch)" >&2; exit 1; }
soxr_version=$(awk '/^set *\(PROJECT_VERSION_(MAJOR|MINOR|PATCH) / { gsub(/\)/, "", $3); v = v (v == "" ? "" : ".") $3 } END { print v }' "$src/soxr/CMakeLists.txt")

cp "$src/soxr/COPYING.LGPL" "$dir/LICENSE-libsoxr-LGPL-2.1.txt"

cat >"$dir/NOTICE-libsoxr.md" <<EOF
# libsoxr (LGPL-2.1) in this binary

\`w2vbert-infer\` (and the Python extension \`w2vbert/_w2vbert.abi3.so\` of the w2vbert wheels) contains
**libsoxr $soxr_version**, the SoX Resampler library, Copyright (c) 2007-18 robs@users.sourceforge.net,
statically linked. libsoxr is free software under the GNU Lesser General Public License version 2.1 or later:
the full text is in \`LICENSE-libsoxr-LGPL-2.1.txt\` beside this file. It is used unmodified, as the crate
\`media-soxr-sys $soxr_crate\` (crates.io) bundles it, built with CMake (WITH_PFFFT on, OpenMP off, static).
The rest of w2vbert is MIT OR Apache-2.0 (\`LICENSE-MIT\`, \`LICENSE-APACHE\`).

## Source

- libsoxr: inside \`media-soxr-sys-$soxr_crate.crate\` on crates.io (directory \`soxr/\`); \`cargo fetch\` in
  the w2vbert source unpacks it to \`~/.cargo/registry/src/*/media-soxr-sys-$soxr_crate/soxr/\`.
- w2vbert $version: the source distribution \`w2vbert-$version.tar.gz\` released with this binary (same
  \`Cargo.lock\`, so the same versions of every crate).

## Relinking with a modified libsoxr (LGPL-2.1 section 6)

The whole program is available as source, so relinking is rebuilding. With a Rust toolchain (>= 1.89),
cmake and libclang:

\`\`\`
tar xzf w2vbert-$version.tar.gz && cd w2vbert-$version
cargo fetch --locked
cp -r ~/.cargo/registry/src/*/media-soxr-sys-$soxr_crate ../media-soxr-sys   # then modify ../media-soxr-sys/soxr/
cat >>Cargo.toml <<'TOML'
[patch.crates-io]
media-soxr-sys = { path = "../media-soxr-sys" }
TOML
cargo build --release --bin w2vbert-infer        # -> target/release/w2vbert-infer, linked with your libsoxr
\`\`\`

(For the Python package: the same \`[patch.crates-io]\` lines in \`python/Cargo.toml\`, then
\`pip install ./python\`.) To link libsoxr dynamically instead (a system or modified \`libsoxr.so\`), enable the
crate's \`dynamic\` feature: add \`media-soxr-sys = { version = "$soxr_crate", features = ["dynamic"] }\` to
\`[dependencies]\` in \`Cargo.toml\` and rebuild.
EOF

{
    echo "Rust crates linked into w2vbert $version (name version | licence), from Cargo.lock."
    echo "Their licence texts are in each crate's source on crates.io."
    echo
    echo "## w2vbert-infer (CLI)"
    cargo tree -q --locked -e normal -p w2vbert --prefix none --format '{p} | {l}' |
        sed 's/ (\*)$//; s/ (\/[^)]*)//' | sort -u
    echo
    echo "## w2vbert/_w2vbert.abi3.so (Python wheel)"
    cargo tree -q --locked -e normal --manifest-path python/Cargo.toml --prefix none --format '{p} | {l}' |
        sed 's/ (\*)$//; s/ (\/[^)]*)//' | sort -u
} >"$dir/THIRD-PARTY.txt"
