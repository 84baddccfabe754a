#!/usr/bin/env python3
"""The Python binding's overhead: `Extractor.semantic` next to the CLI on the same 10 s of speech.

The input is arctic_a0007.wav (16 kHz, 16-bit) looped to 160,000 samples, written as a 16-bit WAV. Printed
(medians of --runs):
  CLI process      `w2vbert-infer --checkpoint CK in.wav --output-dir D` wall time: start, load, decode, fbank,
                   encoder, .npy write
  CLI per file     the per-file time the CLI prints with --verbose (in process: decode .. .npy write, no load)
  Python load      `w2vbert.Extractor(CK)`
  Python path      `ex.semantic("in.wav")`: decode .. encoder, array returned
  Python array     `ex.semantic(int16 array, sample_rate=16000)`
and checks that the Python array equals the CLI's .npy bit for bit.

    cargo build --release && pip install ./python
    python scripts/bench_python.py [--checkpoint checkpoints/tiny-random] [--runs 7] [--threads N]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

import w2vbert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "w2vbert-infer")
ARCTIC = os.path.join(ROOT, "tests", "fixtures", "audio", "arctic_a0007.wav")


def ten_seconds(path):
    with wave.open(ARCTIC) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    x = np.tile(x, 160_000 // len(x) + 1)[:160_000].astype(np.int16)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(x.astype("<i2").tobytes())
    return x


def median_time(fn, runs):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "checkpoints", "tiny-random"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bin", default=BIN)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "speech10s.wav")
        x = ten_seconds(wav)
        cmd = [a.bin, "--checkpoint", a.checkpoint, wav, "--output-dir", d]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        per_file = []

        def cli():
            p = subprocess.run(cmd + ["--verbose"], capture_output=True, text=True, check=True)
            per_file.append(float(re.search(r"speech10s\.npy: \[\d+, \d+\], ([\d.]+) ms", p.stderr).group(1)))

        t_cli = median_time(cli, a.runs)
        t_load = median_time(lambda: w2vbert.Extractor(a.checkpoint, threads=a.threads), max(1, a.runs // 2))
        ex = w2vbert.Extractor(a.checkpoint, threads=a.threads)
        ex.semantic(wav)  # warm-up (page cache, thread pool)
        t_path = median_time(lambda: ex.semantic(wav), a.runs)
        t_arr = median_time(lambda: ex.semantic(x, sample_rate=16000), a.runs)
        same = np.array_equal(ex.semantic(wav).view(np.uint32), np.load(os.path.join(d, "speech10s.npy")).view(np.uint32))
    print(f"checkpoint {a.checkpoint}, 10 s of speech, threads {a.threads or 'all'}, medians of {a.runs}")
    print(f"CLI process      {t_cli * 1e3:8.1f} ms")
    print(f"CLI per file     {statistics.median(per_file):8.1f} ms  (in process, --verbose)")
    print(f"Python load      {t_load * 1e3:8.1f} ms")
    print(f"Python path      {t_path * 1e3:8.1f} ms  (ratio to CLI per file: {t_path * 1e3 / statistics.median(per_file):.2f})")
    print(f"Python array     {t_arr * 1e3:8.1f} ms")
    print(f"Python == CLI .npy bit for bit: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
