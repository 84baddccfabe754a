#!/usr/bin/env python3
"""Front end, Rust vs Hugging Face, as ratios (HF time / Rust time: > 1 means Rust is faster). One run prints:

(a) End to end, file -> features. HF: soundfile (16 kHz mono input) or librosa.load(sr=16000) (other rates:
    soxr HQ), then SeamlessM4TFeatureExtractor. Rust: the release CLI `w2vbert-infer --features-only` as a
    subprocess (process start, decode, resample, fbank, atomic .npy write). Files: arctic_a0007.wav (16 kHz),
    espeak_22050.wav (22.05 kHz) and a 10 s 16 kHz float WAV of the array used in (b).
(b) Compute only, on one in-memory 10 s array (arctic_a0007 then espeak_16k_soxr, looped to 160,000 samples,
    exactly as benches/fbank.rs builds it). HF: the extractor call. Rust, two numbers:
    - criterion `frontend/fbank_10s_16k` (rayon pool, all cores) and `fbank_10s_16k_1thread` from
      `cargo bench --bench fbank` (short settings), median read from target/criterion/.../new/estimates.json;
    - the time the CLI prints with --verbose for the 10 s WAV (in process: decode + fbank + .npy write,
      no process start).
Every timing is the median of --runs runs. For each file it also prints the parity of the CLI's output
against the extractor's (max-abs, rel L2; on espeak the two resamplers differ, see tests/fbank.rs).

    cargo build --release
    /opt/hfref/bin/python scripts/bench_frontend.py [--runs 11] [--no-criterion] [--bin PATH]
"""
import argparse
import json
import os
import re
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
AUDIO = os.path.join(ROOT, "tests", "fixtures", "audio")
CRITERION = os.path.join(ROOT, "target", "criterion", "frontend")


def read_input(path):
    info = sf.info(path)
    if info.samplerate == 16000 and info.channels == 1:
        x, _ = sf.read(path, dtype="float32")
    else:
        x, _ = librosa.load(path, sr=16000)
    return x


def hf_file(fe, path):
    return fe(read_input(path), sampling_rate=16000, return_tensors="np")["input_features"][0]


def median_time(fn, runs):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def cli(binary, path, out, verbose=False):
    cmd = [binary, "--features-only", path, "--output-dir", out] + (["--verbose"] if verbose else [])
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def ten_second_array():
    a, _ = sf.read(os.path.join(AUDIO, "arctic_a0007.wav"), dtype="float32")
    b, _ = sf.read(os.path.join(AUDIO, "espeak_16k_soxr.flac"), dtype="float32")
    speech = np.concatenate([a, b])
    return np.resize(speech, 160_000).astype(np.float32)  # np.resize repeats the array (cycle)


def criterion_medians():
    """Runs the two fbank_10s_16k benches with short settings; returns {name: median seconds}."""
    subprocess.run(
        ["cargo", "bench", "--bench", "fbank", "--", "fbank_10s_16k", "--warm-up-time", "1",
         "--measurement-time", "3", "--noplot"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = {}
    for name in ["fbank_10s_16k", "fbank_10s_16k_1thread"]:
        with open(os.path.join(CRITERION, name, "new", "estimates.json")) as f:
            res[name] = json.load(f)["median"]["point_estimate"] * 1e-9
    return res


def parity(ours, ref):
    if ours.shape != ref.shape:
        return f"parity: shapes differ, T {ours.shape[0]} vs {ref.shape[0]}"
    rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    return f"parity T {ours.shape[0]}: max-abs {np.abs(ours - ref).max():.2e}, rel L2 {rel:.2e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--no-criterion", action="store_true", help="skip the cargo bench part of (b)")
    ap.add_argument("--bin", default=BIN, help="CLI binary to time (e.g. a copy of an older build)")
    args = ap.parse_args()
    fe = extractor()
    out = tempfile.mkdtemp()
    x10 = ten_second_array()
    wav10 = os.path.join(out, "array_10s_16k.wav")
    sf.write(wav10, x10, 16000, subtype="FLOAT")

    print(f"(a) end to end, file -> features; median of {args.runs}; ratio = HF / Rust CLI")
    for path in [os.path.join(AUDIO, "arctic_a0007.wav"), os.path.join(AUDIO, "espeak_22050.wav"), wav10]:
        dur = sf.info(path).duration
        ref = hf_file(fe, path)
        hf = median_time(lambda: hf_file(fe, path), args.runs)
        rs = median_time(lambda: cli(args.bin, path, out), args.runs)
        ours = np.load(os.path.join(out, os.path.splitext(os.path.basename(path))[0] + ".npy"))
        print(f"  {os.path.basename(path)} ({sf.info(path).samplerate} Hz, {dur:.2f} s): "
              f"HF {hf * 1e3:.1f} ms ({dur / hf:.0f} audio-s/s), Rust CLI {rs * 1e3:.1f} ms "
              f"({dur / rs:.0f} audio-s/s), ratio {hf / rs:.2f}x; {parity(ours, ref)}")

    print(f"(b) compute only, 10 s in-memory array at 16 kHz; median of {args.runs}; ratio = HF / Rust")
    hf = median_time(lambda: fe(x10, sampling_rate=16000, return_tensors="np"), args.runs)
    print(f"  HF SeamlessM4TFeatureExtractor: {hf * 1e3:.2f} ms ({10 / hf:.0f} audio-s/s)")
    verbose = []
    for _ in range(args.runs):
        m = re.search(r"([0-9.]+) ms", cli(args.bin, wav10, out, verbose=True).stderr)
        verbose.append(float(m.group(1)) * 1e-3)
    v = statistics.median(verbose)
    print(f"  Rust CLI --verbose (in process: decode + fbank + .npy write): {v * 1e3:.2f} ms "
          f"({10 / v:.0f} audio-s/s), ratio {hf / v:.2f}x")
    if not args.no_criterion:
        for name, t in criterion_medians().items():
            print(f"  Rust criterion frontend/{name} (fbank only): {t * 1e3:.2f} ms ({10 / t:.0f} audio-s/s), "
                  f"ratio {hf / t:.2f}x")


if __name__ == "__main__":
    main()
