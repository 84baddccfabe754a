#!/usr/bin/env bash
# Checks the artifacts of scripts/release.sh as a user without a compiler would use them (docs/install.md):
#   - the x86_64 wheel, installed into a fresh venv and run with a PATH that has no cargo/rustc/cc/gcc, runs
#     python/README.md's IndexTTS2 snippet (and a resampled file) and gives the source-built CLI's bits;
#   - the x86_64 CLI archive, unpacked into an empty directory, runs the README's command with the same PATH and
#     gives the source build's bits and takes the same kernels (--verbose), fp32 and bf16;
#   - the aarch64 CLI (if its archive is in dist/) runs the same command under qemu-aarch64 and matches the x86
#     output within the aarch64 tolerance (rel L2 <= 1e-5; max abs and rel L2 printed);
#   - the aarch64 wheel imports and runs one call under qemu when an aarch64 CPython is given
#     (W2VBERT_AARCH64_PYTHON=/path/to/sysroot containing usr/bin/python3), else it is reported as skipped.
# Needs: dist/ from scripts/release.sh, target/release/w2vbert-infer (cargo build --release: the reference),
# python3 with venv, and network to PyPI for numpy (a binary wheel: --only-binary).
# Last line: "release: N passed, M failed"; exits non-zero when anything failed.
#
# Usage: scripts/check_release.sh [DIST_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dist=$(cd "${1:-dist}" && pwd) || { echo "release: 0 passed, 1 failed"; exit 1; }

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS: $*"; }
ko() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { echo "SKIP: $*"; }
finish() {
    echo "release: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

version=$(awk '/^\[workspace.package\]/ { s = 1; next } /^\[/ { s = 0 } s && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' Cargo.toml)
ref_bin=$root/target/release/w2vbert-infer
tiny=$root/checkpoints/tiny-random
arctic=$root/tests/fixtures/audio/arctic_a0007.wav # 16 kHz: IndexTTS2's audio_16k
espeak=$root/tests/fixtures/audio/espeak_22050.wav # 22.05 kHz: libsoxr resamples

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the reference: the CLI built from source -------------------------------------------------------------
if [ ! -x "$ref_bin" ]; then
    ko "no $ref_bin (cargo build --release --bin w2vbert-infer)"
    finish
fi
for p in fp32 bf16; do
    "$ref_bin" --checkpoint "$tiny" "$arctic" "$espeak" --precision "$p" --verbose --output-dir "$work/ref-$p" \
        2>"$work/ref-$p.log" >/dev/null || { ko "source CLI --precision $p: $(tail -3 "$work/ref-$p.log")"; finish; }
done

# --- SHA256SUMS ------------------------------------------------------------------------------------------------
if (cd "$dist" && sha256sum --quiet -c SHA256SUMS); then ok "SHA256SUMS"; else ko "SHA256SUMS"; fi

# --- a PATH without a compiler -----------------------------------------------------------------------------------
# A scratch dir of symlinks to the few tools the steps below use, plus the venv's bin: nothing else.
bare=$work/bin
mkdir -p "$bare"
for t in bash sh env tar gzip cmp mkdir cp ls cat rm grep head sed; do
    p=$(command -v "$t") && ln -s "$p" "$bare/$t"
done
venv=$work/venv
python3 -m venv "$venv" || { ko "python3 -m venv"; finish; }
bare_path="$venv/bin:$bare"
# The environment stays (pip's certificate settings), less anything naming a compiler.
in_bare() { env -u CC -u CXX -u RUSTC -u CARGO -u RUSTUP_TOOLCHAIN -u CARGO_HOME -u RUSTUP_HOME PATH="$bare_path" "$@"; }
if in_bare bash -c '! command -v cc && ! command -v gcc && ! command -v cargo && ! command -v rustc && ! command -v ld' >/dev/null; then
    ok "no cc/gcc/cargo/rustc/ld on the check's PATH ($bare_path)"
else
    ko "the check's PATH has a compiler: $(in_bare bash -c 'command -v cc gcc cargo rustc ld')"
fi

# --- x86_64 wheel: install and run without a compiler -----------------------------------------------------------
whl=$(ls "$dist"/w2vbert-"$version"-cp39-abi3-manylinux_2_17_x86_64*.whl 2>/dev/null | head -1)
if [ -z "$whl" ]; then
    ko "no x86_64 wheel in $dist"
elif in_bare "$venv/bin/pip" install --quiet --only-binary :all: --no-cache-dir "$whl" numpy==1.26.4 2>&1 | tail -5; [ "${PIPESTATUS[0]}" -eq 0 ]; then
    ok "pip install $(basename "$whl") (binary only, no compiler)"
    # python/README.md's IndexTTS2 drop-in (without torch: the snippet's `.semantic(...)[None]`), from an empty
    # directory so that only the installed package can be imported.
    mkdir -p "$work/py"
    cat >"$work/py/snippet.py" <<'EOF'
import sys, wave
import numpy as np
import w2vbert

version, tiny, arctic, espeak, out = sys.argv[1:6]
assert w2vbert.__version__ == version, (w2vbert.__version__, version)
assert "site-packages" in w2vbert.__file__, w2vbert.__file__
print("w2vbert", w2vbert.__version__, "from", w2vbert.__file__, "baseline", w2vbert._w2vbert.BUILD_BASELINE)
assert w2vbert._w2vbert.BUILD_BASELINE == "x86-64-v3", w2vbert._w2vbert.BUILD_BASELINE

with wave.open(arctic) as w:
    assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
    x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
audio_16k = (x.astype(np.float32) / np.float32(32768))[None, :]  # [1, N], as IndexTTS2 holds it

# --- python/README.md, "Drop-in for IndexTTS2" ---
ex = w2vbert.Extractor(tiny)
spk_cond_emb = ex.semantic(audio_16k.squeeze(0), sample_rate=16000)[None]  # [1, T, C]
# ---
assert spk_cond_emb.shape[0] == 1 and spk_cond_emb.dtype == np.float32
np.save(f"{out}/arctic_a0007.npy", spk_cond_emb[0])
np.save(f"{out}/espeak_22050.npy", ex.semantic(espeak))  # a path: decoded and resampled (libsoxr)
bf = w2vbert.Extractor(tiny, precision="bf16")
np.save(f"{out}/arctic_a0007.bf16.npy", bf.semantic(audio_16k[0], sample_rate=16000))
print("precision", bf.precision, "shape", spk_cond_emb.shape)
EOF
    mkdir -p "$work/py/out"
    if (cd "$work/py" && in_bare python snippet.py "$version" "$tiny" "$arctic" "$espeak" "$work/py/out"); then
        ok "wheel: import, version $version, x86-64-v3 build, IndexTTS2 snippet runs"
        for pair in "arctic_a0007.npy ref-fp32/arctic_a0007.npy" "espeak_22050.npy ref-fp32/espeak_22050.npy" \
            "arctic_a0007.bf16.npy ref-bf16/arctic_a0007.npy"; do
            set -- $pair
            if in_bare python -c '
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32)) else 1)' \
                "$work/py/out/$1" "$work/$2"; then
                ok "wheel $1 == source CLI $2, bit for bit"
            else
                ko "wheel $1 != source CLI $2"
            fi
        done
    else
        ko "wheel: the IndexTTS2 snippet failed"
    fi
fi

# --- x86_64 CLI archive: unpack into an empty dir, run the README's command --------------------------------------
archive=$dist/w2vbert-infer-$version-x86_64-unknown-linux-gnu.tar.gz
if [ ! -f "$archive" ]; then
    ko "no $archive"
else
    cli=$work/cli
    mkdir -p "$cli"
    if in_bare tar -C "$cli" -xzf "$archive"; then
        pkg=$cli/w2vbert-infer-$version-x86_64-unknown-linux-gnu
        missing=""
        for f in w2vbert-infer README.md LICENSE-MIT LICENSE-APACHE LICENSE-libsoxr-LGPL-2.1.txt NOTICE-libsoxr.md THIRD-PARTY.txt; do
            [ -f "$pkg/$f" ] || missing="$missing $f"
        done
        if [ -z "$missing" ]; then ok "archive holds the binary, README and licences"; else ko "archive lacks:$missing"; fi
        # The README's run command, from a directory holding the shipped checkpoint and audio.
        run=$work/run
        mkdir -p "$run/checkpoints" "$run/tests/fixtures/audio"
        cp -r "$tiny" "$run/checkpoints/"
        cp "$arctic" "$espeak" "$run/tests/fixtures/audio/"
        got=$(in_bare env PATH="$pkg:$bare_path" w2vbert-infer --version)
        if [ "$got" = "w2vbert-infer $version" ]; then ok "archive CLI --version: $got"; else ko "archive CLI --version: '$got'"; fi
        if (cd "$run" && in_bare env PATH="$pkg:$bare_path" \
            w2vbert-infer --checkpoint checkpoints/tiny-random tests/fixtures/audio/arctic_a0007.wav --output-dir out); then
            if cmp -s "$run/out/arctic_a0007.npy" "$work/ref-fp32/arctic_a0007.npy"; then
                ok "archive CLI (README command) == source CLI, bit for bit"
            else
                ko "archive CLI output differs from the source CLI's"
            fi
        else
            ko "archive CLI: the README command failed"
        fi
        for p in fp32 bf16; do
            if (cd "$run" && in_bare env PATH="$pkg:$bare_path" w2vbert-infer --checkpoint checkpoints/tiny-random \
                tests/fixtures/audio/arctic_a0007.wav tests/fixtures/audio/espeak_22050.wav --precision "$p" --verbose \
                --output-dir "out-$p" 2>"$work/arch-$p.log" >/dev/null); then
                kernels_ref=$(grep -E '^(simd:|precision )' "$work/ref-$p.log")
                kernels_got=$(grep -E '^(simd:|precision )' "$work/arch-$p.log")
                echo "$p kernels (archive): $kernels_got"
                if [ -n "$kernels_got" ] && [ "$kernels_got" = "$kernels_ref" ]; then
                    ok "archive CLI $p: same kernels as the source build (--verbose)"
                else
                    ko "archive CLI $p kernels differ: archive '$kernels_got' vs source '$kernels_ref'"
                fi
                if cmp -s "$run/out-$p/arctic_a0007.npy" "$work/ref-$p/arctic_a0007.npy" &&
                    cmp -s "$run/out-$p/espeak_22050.npy" "$work/ref-$p/espeak_22050.npy"; then
                    ok "archive CLI $p: arctic + espeak (resampled) == source CLI, bit for bit"
                else
                    ko "archive CLI $p: output differs from the source CLI's"
                fi
            else
                ko "archive CLI --precision $p failed: $(tail -3 "$work/arch-$p.log")"
            fi
        done
    else
        ko "tar -xzf $archive"
    fi
fi

# --- aarch64 CLI under qemu ---------------------------------------------------------------------------------------
archive=$dist/w2vbert-infer-$version-aarch64-unknown-linux-gnu.tar.gz
if [ ! -f "$archive" ]; then
    skip "no aarch64 archive in $dist (scripts/release.sh aarch64)"
elif ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    ko "aarch64 archive present but no qemu-aarch64 + /usr/aarch64-linux-gnu (apt-get install qemu-user libc6-arm64-cross)"
else
    a64=$work/a64
    mkdir -p "$a64"
    tar -C "$a64" -xzf "$archive"
    bin=$a64/w2vbert-infer-$version-aarch64-unknown-linux-gnu/w2vbert-infer
    q=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
    got=$("${q[@]}" "$bin" --version 2>&1)
    if [ "$got" = "w2vbert-infer $version" ]; then ok "aarch64 CLI --version under qemu: $got"; else ko "aarch64 CLI --version: '$got'"; fi
    if (cd "$root" && "${q[@]}" "$bin" --checkpoint checkpoints/tiny-random tests/fixtures/audio/arctic_a0007.wav \
        tests/fixtures/audio/espeak_22050.wav --output-dir "$a64/out" >/dev/null 2>"$a64/log"); then
        # The README's tiny-checkpoint command (arctic_a0007.wav, 16 kHz) and espeak_22050.wav, which goes through
        # libsoxr: the aarch64 build runs the x86_64 build's engine (cr32s, scripts/cmake-libsoxr-neon.sh) and gives
        # its waveform bit for bit, so both are judged alike (the encoder's own aarch64 rounding remains).
        for f in arctic_a0007 espeak_22050; do
            if cmp -s "$a64/out/$f.npy" "$work/ref-fp32/$f.npy"; then
                ok "aarch64 CLI $f (qemu) == x86_64, bit for bit"
            elif stats=$(in_bare python -c '
import sys, numpy as np
a, b = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
assert a.shape == b.shape, (a.shape, b.shape)
rel = np.linalg.norm(a - b) / np.linalg.norm(b)
print(f"max abs {np.abs(a - b).max():.3e}, rel L2 {rel:.3e}")
sys.exit(0 if rel <= 1e-5 else 1)' "$a64/out/$f.npy" "$work/ref-fp32/$f.npy"); then
                ok "aarch64 CLI $f (qemu) vs x86_64: $stats (tolerance rel L2 1e-5)"
            else
                ko "aarch64 CLI $f (qemu) vs x86_64: $stats"
            fi
        done
    else
        ko "aarch64 CLI under qemu failed: $(tail -3 "$a64/log")"
    fi
fi

# --- aarch64 wheel under qemu ---------------------------------------------------------------------------------------
whl=$(ls "$dist"/w2vbert-"$version"-cp39-abi3-manylinux_2_17_aarch64*.whl 2>/dev/null | head -1)
sysroot=${W2VBERT_AARCH64_PYTHON:-}
if [ -z "$whl" ]; then
    skip "no aarch64 wheel in $dist"
elif [ -z "$sysroot" ] || [ ! -x "$sysroot/usr/bin/python3" ]; then
    skip "aarch64 wheel: no aarch64 CPython (set W2VBERT_AARCH64_PYTHON to a sysroot, see scripts/aarch64_python.sh)"
else
    site=$work/a64-site
    mkdir -p "$site"
    # Unpack the wheel and a numpy aarch64 wheel (pip downloads it for that platform: no install, no build).
    "$venv/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$site"
    pyver=$(qemu-aarch64 -L "$sysroot" "$sysroot/usr/bin/python3" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
    if "$venv/bin/pip" download --quiet --only-binary :all: --no-deps --platform manylinux2014_aarch64 \
        --python-version "$pyver" -d "$work/a64-np" numpy==1.26.4 >/dev/null 2>&1; then
        "$venv/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$work"/a64-np/numpy-*.whl "$site"
        if (cd "$root" && PYTHONPATH="$site" qemu-aarch64 -L "$sysroot" "$sysroot/usr/bin/python3" -c '
import sys, numpy as np, w2vbert
ex = w2vbert.Extractor("checkpoints/tiny-random")
a = ex.semantic("tests/fixtures/audio/arctic_a0007.wav")
b = np.load(sys.argv[1])
rel = np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64))
print(f"aarch64 wheel: w2vbert {w2vbert.__version__}, {a.shape}, max abs {np.abs(a - b).max():.3e}, rel L2 {rel:.3e} vs x86_64")
sys.exit(0 if rel <= 1e-5 else 1)' "$work/ref-fp32/arctic_a0007.npy"); then
            ok "aarch64 wheel imports and runs under qemu"
        else
            ko "aarch64 wheel under qemu"
        fi
    else
        ko "aarch64 wheel: could not download numpy for aarch64 cp$pyver"
    fi
fi

# --- the sdist builds from source (opt-in: a full compile) --------------------------------------------------------
sdist=$dist/w2vbert-$version.tar.gz
if [ "${W2VBERT_CHECK_SDIST:-0}" != 1 ]; then
    skip "sdist build (W2VBERT_CHECK_SDIST=1 builds a wheel from $(basename "$sdist") in a fresh venv)"
elif [ ! -f "$sdist" ]; then
    ko "no $sdist"
else
    sv=$work/sdist-venv
    python3 -m venv "$sv"
    mkdir -p "$work/sdist-cwd"
    # As a user would: `pip install w2vbert-<V>.tar.gz` (maturin from PyPI in pip's build isolation), in a
    # directory outside the repository, with the compiler on PATH; its own target dir.
    if (cd "$work/sdist-cwd" && env -u CARGO_TARGET_DIR "$sv/bin/pip" install --quiet --no-cache-dir numpy==1.26.4 "$sdist" \
        >"$work/sdist.log" 2>&1); then
        ok "pip install $(basename "$sdist") builds from source"
        if (cd "$work/sdist-cwd" && "$sv/bin/python" -c '
import sys, numpy as np, w2vbert
tiny, arctic, espeak, ref = sys.argv[1:5]
print("sdist build: baseline", w2vbert._w2vbert.BUILD_BASELINE)
ex = w2vbert.Extractor(tiny)
ok = w2vbert._w2vbert.BUILD_BASELINE == "x86-64-v3" or __import__("platform").machine() != "x86_64"
for name, p in (("arctic_a0007", arctic), ("espeak_22050", espeak)):
    a, b = ex.semantic(p), np.load(f"{ref}/{name}.npy")
    ok &= a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
sys.exit(0 if ok else 1)' "$tiny" "$arctic" "$espeak" "$work/ref-fp32"); then
            ok "sdist-built wheel: x86-64-v3, == source CLI bit for bit"
        else
            ko "sdist-built wheel differs from the source CLI (or lost the x86-64-v3 baseline)"
        fi
    else
        ko "pip install $(basename "$sdist"): $(tail -5 "$work/sdist.log")"
    fi
fi

finish
