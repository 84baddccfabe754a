#!/usr/bin/env bash
# Makes a release into dist/ (see docs/install.md):
#   w2vbert-<V>-cp39-abi3-manylinux_2_17_<arch>.whl          Python wheel, glibc >= 2.17, one per arch
#   w2vbert-infer-<V>-<arch>-unknown-linux-gnu.tar.gz         CLI binary + README + licences (glibc >= 2.17)
#   w2vbert-<V>.tar.gz                                        sdist: `pip install` builds it from source
#   SHA256SUMS
# Wheels and binaries are cross-built against glibc 2.17 with zig (maturin --zig, cargo-zigbuild), libsoxr
# statically linked. Every artifact is checked before the script succeeds: `auditwheel show` gives each wheel
# its manylinux_2_17 tag with no external library beyond the manylinux allow-list, and the version of
# Cargo.toml ([workspace.package] version) is the wheel's, the CLI's `--version` and the archive names'.
#
#   scripts/release.sh                  x86_64 and aarch64
#   scripts/release.sh x86_64           one architecture (CI: .ci/release.sh)
#
# Needs: the Rust toolchain (+ `rustup target add aarch64-unknown-linux-gnu` for aarch64), cmake and libclang
# (scripts/setup.sh), python3 with venv. The build tools (maturin, ziglang, cargo-zigbuild, auditwheel) are
# installed, pinned, into target/release-tools. Honors CARGO_BUILD_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# All of it in one function, read whole before it runs (editing this file during a release is then harmless).
main() {

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
for a in "${arches[@]}"; do
    case $a in x86_64 | aarch64) ;; *) echo "release: unknown architecture '$a' (x86_64 or aarch64)" >&2; exit 2 ;; esac
done

t0=$(date +%s)
step() { echo "== [$(($(date +%s) - t0)) s] $*"; }
die() { echo "release: FAILED: $*" >&2; exit 1; }

# --- the version, from one place -------------------------------------------------------------------------
version=$(awk '/^\[workspace.package\]/ { s = 1; next } /^\[/ { s = 0 } s && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' Cargo.toml)
[ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
# python/ is its own Cargo workspace (it cannot inherit the root one's version): it must say the same.
pyversion=$(awk '/^\[package\]/ { s = 1; next } /^\[/ { s = 0 } s && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' python/Cargo.toml)
[ "$pyversion" = "$version" ] || die "python/Cargo.toml version $pyversion != Cargo.toml [workspace.package] version $version"
step "w2vbert $version: ${arches[*]}"

# --- tools -------------------------------------------------------------------------------------------------
bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || { [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"; }
tools=${W2VBERT_RELEASE_TOOLS:-$root/target/release-tools}
if ! "$tools/bin/python" -c 'import sys' 2>/dev/null || [ "$(cat "$tools/.pins" 2>/dev/null)" != "v1" ]; then
    rm -rf "$tools"
    python3 -m venv "$tools" || { apt-get update -q && apt-get install -y -q python3-venv && python3 -m venv "$tools"; }
    "$tools/bin/pip" install --quiet maturin==1.15.0 ziglang==0.17.1 cargo-zigbuild==0.24.1 auditwheel==6.8.2
    echo v1 >"$tools/.pins"
fi
export PATH="$tools/bin:$PATH"
for a in "${arches[@]}"; do
    grep -qx "$a-unknown-linux-gnu" <<<"$(rustup target list --installed 2>/dev/null)" || rustup target add "$a-unknown-linux-gnu"
done

# The CLI and the wheel each have their own target dir: maturin's zig linker wrapper is not cargo-zigbuild's,
# and cargo (whose fingerprint holds the linker) would rebuild every dependency each time it switches.
cli_target=$root/target/zig-cli
wheel_target=$root/target/zig-wheel
dist="$root/dist"
rm -rf "$dist"
mkdir -p "$dist"

# Licence notices (libsoxr's LGPL-2.1 text, where its source is and how to relink, the crates' licences): into
# every CLI archive, and into the wheels as package data (w2vbert/licenses/, generated, not in git).
notices=$(mktemp -d)
trap 'rm -rf "$notices"' EXIT
cp LICENSE-MIT LICENSE-APACHE "$notices/"
bash scripts/release_notices.sh "$version" "$notices"
rm -rf python/w2vbert/licenses
cp -r "$notices" python/w2vbert/licenses

# --- build ---------------------------------------------------------------------------------------------------
for a in "${arches[@]}"; do
    triple=$a-unknown-linux-gnu
    # bindgen (media-soxr-sys) parses soxr.h, which needs only <stddef.h>. The clang arguments cargo-zigbuild
    # derives from `zig cc` leave libclang without its own built-in headers ("'stddef.h' file not found"):
    # bindgen takes the most target-specific variable, BINDGEN_EXTRA_CLANG_ARGS_<triple with dashes>, and
    # cargo-zigbuild appends its own arguments to the value it finds there: put the libclang's built-in headers
    # (those of the libclang bindgen loads) first.
    clang_inc=$(ls -d /usr/lib/llvm-*/lib/clang/*/include 2>/dev/null | sort -V | tail -1)
    [ -n "$clang_inc" ] || die "no libclang built-in headers (/usr/lib/llvm-*/lib/clang/*/include): scripts/setup.sh"
    bindgen_args="-isystem $clang_inc"
    [ "$a" = aarch64 ] && [ -d /usr/aarch64-linux-gnu/include ] && bindgen_args="$bindgen_args --sysroot=/usr/aarch64-linux-gnu"
    # libsoxr (C) is compiled by gcc, as a source build compiles it (`cc`), not by `zig cc`: clang's code for it
    # resamples differently in the last bits (x86_64 features of espeak_22050.wav: rel L2 5.7e-4 from the
    # source build's), and the CLI and the wheel are to give a source build's bits. zig still links everything
    # against glibc 2.17; the glibc symbol check below catches any newer symbol gcc's objects would pull in.
    if [ "$a" = "$(uname -m)" ]; then gcc=$(command -v gcc || true); else gcc=$(command -v "$a-linux-gnu-gcc" || true); fi
    [ -n "$gcc" ] || die "no gcc for $a (apt-get install gcc$([ "$a" = "$(uname -m)" ] || echo "-$a-linux-gnu"))"
    toolchain=$root/target/gcc-$a.cmake
    mkdir -p "$root/target"
    printf 'set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR %s)\nset(CMAKE_C_COMPILER %s)\nset(CMAKE_AR %s)\nset(CMAKE_RANLIB %s)\n' \
        "$a" "$gcc" "${gcc%gcc}ar" "${gcc%gcc}ranlib" >"$toolchain"
    zenv=(env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS "BINDGEN_EXTRA_CLANG_ARGS_$triple=$bindgen_args"
        "CC_${triple//-/_}=$gcc" "CMAKE_TOOLCHAIN_FILE_${triple//-/_}=$toolchain")
    # media-soxr-sys's build script does not rerun when the C compiler changes: clean a libsoxr that an
    # earlier run built with another compiler (zig cc). Nor when its configuration does: on aarch64 libsoxr is
    # configured through scripts/cmake-libsoxr-neon.sh (.cargo/config.toml; its NEON engine), whose stamp its
    # CMakeCache.txt must carry.
    stamp=$(cksum <scripts/cmake-libsoxr-neon.sh)
    for t in "$cli_target" "$wheel_target"; do
        for b in "$t/$triple"/release/build/media-soxr-sys-*/out/build; do
            [ -d "$b" ] || continue
            if ! grep -qs "set(CMAKE_C_COMPILER \"$gcc\")" "$b"/CMakeFiles/*/CMakeCCompiler.cmake ||
                { [ "$a" = aarch64 ] && ! grep -qx "W2VBERT_SOXR_WRAPPER:UNINITIALIZED=${stamp%% *}" "$b/CMakeCache.txt"; }; then
                CARGO_TARGET_DIR=$t cargo clean --release --target "$triple" -p media-soxr-sys
                break
            fi
        done
    done

    step "$a: CLI (cargo zigbuild --target $triple.2.17)"
    export CARGO_TARGET_DIR=$cli_target
    # .cargo/config.toml's [target.'cfg(target_arch = "x86_64")'] rustflags (target-cpu=x86-64-v3) apply:
    # nothing here sets RUSTFLAGS, which would replace them.
    "${zenv[@]}" cargo zigbuild --release --locked --target "$triple.2.17" --bin w2vbert-infer
    bin="$CARGO_TARGET_DIR/$triple/release/w2vbert-infer"
    [ -x "$bin" ] || die "no binary at $bin"

    step "$a: wheel (maturin build --zig --compatibility manylinux2014 --target $triple)"
    export CARGO_TARGET_DIR=$wheel_target
    "${zenv[@]}" maturin build --release --locked --zig --compatibility manylinux2014 --target "$triple" \
        -m python/Cargo.toml --out "$dist"

    for f in "$cli_target/$triple" "$wheel_target/$triple"; do
        for c in "$f"/release/build/media-soxr-sys-*/out/build/CMakeFiles/*/CMakeCCompiler.cmake; do
            grep -q "set(CMAKE_C_COMPILER \"$gcc\")" "$c" || die "libsoxr in $f was not compiled by $gcc ($c)"
        done
        # Its SIMD engine (cr32s: pffft) is in, on both architectures (src/audio/soxr.rs, "Engines").
        for b in "$f"/release/build/media-soxr-sys-*/out/build; do
            [ -f "$b/src/CMakeFiles/soxr.dir/pffft32s.c.o" ] || die "libsoxr in $b was built without its SIMD engine (cr32s)"
        done
    done

    step "$a: CLI archive"
    name=w2vbert-infer-$version-$triple
    stage=$(mktemp -d)
    mkdir "$stage/$name"
    cp "$bin" "$stage/$name/w2vbert-infer"
    # Debug line tables stay (panics name file:line); the symbol table is kept too. Strip nothing.
    cp README.md "$notices"/* "$stage/$name/"
    tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$dist/$name.tar.gz" "$name"
    rm -rf "$stage"
done

step "sdist (maturin sdist)"
maturin sdist -m python/Cargo.toml --out "$dist"
# maturin writes every file with mode 0644. scripts/cmake-libsoxr-neon.sh must stay executable: an aarch64 build
# from the sdist runs it as cmake (.cargo/config.toml). Give back the mode git has for each file (pip keeps a
# member's executable bit when it unpacks an sdist).
python3 - "$dist/w2vbert-$version.tar.gz" "w2vbert-$version/" $(git ls-files -s | awk '$1 == "100755" { print $4 }') <<'PY'
import gzip, io, sys, tarfile
path, prefix, executable = sys.argv[1], sys.argv[2], set(sys.argv[3:])
with tarfile.open(path, "r:gz") as src:
    members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()]
buf = io.BytesIO()
with gzip.GzipFile(filename="", fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst:
    for m, data in members:
        if m.isfile() and m.name.startswith(prefix) and m.name[len(prefix):] in executable:
            m.mode |= 0o111
        dst.addfile(m, io.BytesIO(data) if data is not None else None)
open(path, "wb").write(buf.getvalue())
PY

# --- checks --------------------------------------------------------------------------------------------------
step "checks"
sdist="$dist/w2vbert-$version.tar.gz"
[ -f "$sdist" ] || die "no sdist $sdist"
# The sdist must carry the root crate and the kernels crate (python/ depends on them by path).
# .cargo/config.toml too: a build from the sdist keeps the x86-64-v3 baseline.
listing=$(tar -tzf "$sdist")
tar -tvzf "$sdist" "w2vbert-$version/scripts/cmake-libsoxr-neon.sh" | grep -q '^-rwxr-xr-x' ||
    die "sdist: scripts/cmake-libsoxr-neon.sh is not executable (an aarch64 build from it would fail)"
for f in Cargo.toml Cargo.lock .cargo/config.toml src/lib.rs src/bin/w2vbert-infer/main.rs kernels/Cargo.toml \
    kernels/src/lib.rs python/Cargo.toml python/Cargo.lock python/src/lib.rs pyproject.toml; do
    grep -qx "w2vbert-$version/$f" <<<"$listing" || die "sdist lacks $f"
done
for a in "${arches[@]}"; do
    triple=$a-unknown-linux-gnu
    # maturin names it with both spellings of the tag: manylinux_2_17_<arch>.manylinux2014_<arch>.
    whl=$(ls "$dist"/w2vbert-"$version"-cp39-abi3-manylinux_2_17_"$a"*.whl 2>/dev/null | head -1)
    [ -n "$whl" ] || die "no wheel w2vbert-$version-cp39-abi3-manylinux_2_17_$a*.whl (have: $(ls "$dist"))"
    report=$(auditwheel show "$whl" 2>&1) || die "auditwheel show $whl: $report"
    echo "$report"
    grep -q "consistent with the following platform tag: \"manylinux_2_17_$a\"" <<<"$(tr '\n' ' ' <<<"$report")" ||
        die "auditwheel: $(basename "$whl") is not manylinux_2_17_$a"
    # The libraries it needs must all be in the allow-list ("system-provided" for the policy); auditwheel
    # lists any other one under "... on the following external shared libraries".
    if grep -qi "following external shared libraries" <<<"$report"; then
        die "auditwheel: $(basename "$whl") needs libraries outside the manylinux allow-list"
    fi
    # Version inside the wheel (dist-info) and of the extension.
    files=$(python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$whl")
    for f in "w2vbert-$version.dist-info/METADATA" w2vbert/licenses/NOTICE-libsoxr.md w2vbert/_w2vbert.abi3.so; do
        grep -qx "$f" <<<"$files" || die "$(basename "$whl") lacks $f"
    done

    archive="$dist/w2vbert-infer-$version-$triple.tar.gz"
    [ -f "$archive" ] || die "no archive $archive"
    bin="$cli_target/$triple/release/w2vbert-infer"
    run=()
    if [ "$a" != "$(uname -m)" ]; then
        if command -v "qemu-$a" >/dev/null 2>&1 && [ -d "/usr/$a-linux-gnu" ]; then
            run=("qemu-$a" -L "/usr/$a-linux-gnu")
        else
            run=()
            echo "release: qemu-$a (apt qemu-user, libc6-$([ "$a" = aarch64 ] && echo arm64)-cross) not found: $a --version not run"
        fi
    fi
    if [ "$a" = "$(uname -m)" ] || [ ${#run[@]} -gt 0 ]; then
        got=$("${run[@]}" "$bin" --version)
        [ "$got" = "w2vbert-infer $version" ] || die "$a: --version says '$got', want 'w2vbert-infer $version'"
        echo "$a: $got"
    fi
    # The binary's libraries (glibc only) and its glibc symbol versions (<= 2.17).
    needed=$(readelf -d "$bin" | awk '/NEEDED/ { gsub(/[\[\]]/, "", $NF); print $NF }' | tr '\n' ' ')
    echo "$a: CLI needs: $needed"
    for lib in $needed; do
        case $lib in libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | libgcc_s.so.1 | ld-linux*) ;;
        *) die "$a: the CLI needs $lib (not part of glibc)" ;;
        esac
    done
    maxglibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k1,1 -k2,2n -k3,3n -u -V | tail -1)
    echo "$a: CLI's newest glibc symbol: $maxglibc"
    [ "$(printf '%s\nGLIBC_2.17\n' "$maxglibc" | sort -V | tail -1)" = GLIBC_2.17 ] || die "$a: the CLI needs $maxglibc > 2.17"
done

(cd "$dist" && sha256sum -- *.whl *.tar.gz >SHA256SUMS)
step "done: dist/"
ls -l "$dist"
cat "$dist/SHA256SUMS"
}

main "$@"
