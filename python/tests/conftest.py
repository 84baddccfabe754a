"""Shared fixtures: paths in the repository, a WAV reader (stdlib `wave`), a safetensors reader (the golden
files; no extra package), and the CLI (`target/release/w2vbert-infer`, else `cargo run --release`)."""

import json
import os
import pathlib
import shutil
import struct
import subprocess
import wave

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = REPO / "checkpoints" / "tiny-random"
AUDIO = REPO / "tests" / "fixtures" / "audio"
GOLDEN = REPO / "tests" / "fixtures" / "encoder" / "tiny-random" / "golden.safetensors"


def read_wav_int16(path):
    """(int16 array [channels, samples], sample rate) of a 16-bit PCM WAV."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2, path
        ch, rate, n = w.getnchannels(), w.getframerate(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.int16)
    return x.reshape(n, ch).T.copy(), rate


def read_safetensors(path):
    """{name: float32 array} of a safetensors file with F32 tensors."""
    b = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(b[8 + n + lo : 8 + n + hi], dtype="<f4").reshape(info["shape"]).copy()
    return out


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def bits(a):
    """The array's float32 bit patterns, for bit-for-bit comparisons."""
    a = np.ascontiguousarray(a)
    assert a.dtype == np.float32
    return a.view(np.uint32)


def cli_command():
    """How to run the CLI: $W2VBERT_INFER, the release binary, or `cargo run --release`."""
    if os.environ.get("W2VBERT_INFER"):
        return [os.environ["W2VBERT_INFER"]]
    binary = REPO / "target" / "release" / "w2vbert-infer"
    if binary.is_file():
        return [str(binary)]
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("neither target/release/w2vbert-infer nor cargo is available")
    return [cargo, "run", "--release", "--quiet", "--manifest-path", str(REPO / "Cargo.toml"), "--"]


@pytest.fixture
def run_cli(tmp_path):
    def run(*args):
        out = tmp_path / "cli-out"
        cmd = cli_command() + [str(a) for a in args] + ["--output-dir", str(out)]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        assert p.returncode == 0, p.stderr
        return out

    return run


@pytest.fixture(scope="session")
def extractor():
    import w2vbert

    return w2vbert.Extractor(TINY)
