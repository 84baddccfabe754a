#!/usr/bin/env python3
"""Front-end throughput: HF's SeamlessM4TFeatureExtractor vs `w2vbert-infer --features-only`, same file.

Both sides include reading the file: Python reads with soundfile (16 kHz input) or librosa.load(sr=16000)
(other rates: soxr HQ), then runs the extractor; Rust runs the release CLI as a subprocess (process start,
decode, resample, fbank, .npy write). Median of N runs each; prints audio seconds per second and the ratio.
For each file it also prints the parity of the CLI's output against the extractor's (max-abs, rel L2).

    cargo build --release
    /opt/hfref/bin/python scripts/bench_frontend.py [--runs 10] [FILE ...]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

import librosa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fbank_goldens import extractor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "w2vbert-infer")


def hf_features(fe, path):
    info = sf.info(path)
    if info.samplerate == 16000 and info.channels == 1:
        x, _ = sf.read(path, dtype="float32")
    else:
        x, _ = librosa.load(path, sr=16000)
    return fe(x, sampling_rate=16000, return_tensors="np")["input_features"][0], info.duration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("files", nargs="*", default=[
        os.path.join(ROOT, "tests/fixtures/audio/arctic_a0007.wav"),
        os.path.join(ROOT, "tests/fixtures/audio/espeak_22050.wav"),
    ])
    args = ap.parse_args()
    fe = extractor()
    out = tempfile.mkdtemp()
    for path in args.files:
        ref, dur = hf_features(fe, path)
        hf_t = []
        for _ in range(args.runs):
            t = time.perf_counter()
            hf_features(fe, path)
            hf_t.append(time.perf_counter() - t)
        rs_t = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([BIN, "--features-only", path, "--output-dir", out], check=True)
            rs_t.append(time.perf_counter() - t)
        ours = np.load(os.path.join(out, os.path.splitext(os.path.basename(path))[0] + ".npy"))
        hf_m, rs_m = statistics.median(hf_t), statistics.median(rs_t)
        rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref) if ours.shape == ref.shape else float("nan")
        mx = np.abs(ours - ref).max() if ours.shape == ref.shape else float("nan")
        print(f"{os.path.basename(path)} ({dur:.2f} s): HF {hf_m * 1e3:.1f} ms ({dur / hf_m:.0f} audio-s/s), "
              f"Rust CLI {rs_m * 1e3:.1f} ms ({dur / rs_m:.0f} audio-s/s), ratio {hf_m / rs_m:.1f}x; "
              f"parity T {ours.shape[0]} vs {ref.shape[0]}, max-abs {mx:.2e}, rel L2 {rel:.2e}")


if __name__ == "__main__":
    main()
