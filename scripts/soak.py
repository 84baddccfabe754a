#!/usr/bin/env python3
"""Soak test of a corpus run (issue 11, item 3). By hand, not CI.

N short WAV files (cuts of tests/fixtures/audio/arctic_a0007.wav, 0.5-2.5 s, in nested folders) go through
`--num-shards S` runs of the CLI one shard after another. Shard 1 is killed with SIGKILL halfway through its
outputs and rerun. Checks: every input has exactly one complete output at its mirrored path (nothing lost,
nothing duplicated, nothing extra), no temporary file is left anywhere, and the killed shard's rerun skips what
was complete. Each shard's RSS is sampled from /proc every 0.05 s and printed at start, middle and end; a
second-half peak above the first half's by more than 10% + 5 MB fails the run (a leak).

    python3 scripts/soak.py --bin target/release/w2vbert-infer [--checkpoint checkpoints/tiny-random]
                            [--files 2000] [--shards 4] [--threads 1] [--workdir DIR] [-- EXTRA CLI ARGS]

Needs the corpus CLI (issue 7: directories, --num-shards/--shard-index, resume, --json). Python stdlib only.
Exit code 0 when every check passed.
"""
import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMP_MARK = ".w2vbert-tmp."


def make_inputs(data: Path, n: int, seed: int = 11) -> list:
    with wave.open(str(ROOT / "tests/fixtures/audio/arctic_a0007.wav"), "rb") as w:
        rate, width, ch = w.getframerate(), w.getsampwidth(), w.getnchannels()
        pcm = w.readframes(w.getnframes())
    frame = width * ch
    total = len(pcm) // frame
    rng = random.Random(seed)
    rels = []
    for i in range(n):
        length = rng.randint(rate // 2, int(rate * 2.5))
        start = rng.randint(0, total - length)
        rel = Path(f"spk{i % 40:02d}") / f"ch{(i // 40) % 5}" / f"utt{i:05d}.wav"
        p = data / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(p), "wb") as o:
            o.setnchannels(ch)
            o.setsampwidth(width)
            o.setframerate(rate)
            o.writeframes(pcm[start * frame:(start + length) * frame])
        rels.append(rel.with_suffix(""))
    return sorted(rels)


def rss_kb(pid: int):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def npy_complete(p: Path) -> bool:
    b = p.read_bytes()
    if b[:6] != b"\x93NUMPY" or b[6] != 1:
        return False
    hlen = struct.unpack("<H", b[8:10])[0]
    header = b[10:10 + hlen].decode("latin1")
    shape = header.split("'shape': (")[1].split(")")[0]
    dims = [int(d) for d in shape.split(",") if d.strip()]
    n = 1
    for d in dims:
        n *= d
    return "'descr': '<f4'" in header and len(b) == 10 + hlen + 4 * n


def run_shard(cmd, out_dir: Path, expected: int, kill_at=None):
    """Runs one shard, sampling RSS; with kill_at, SIGKILLs it once that many of its outputs exist."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (outputs so far, rss KB)
    killed = False
    t0 = time.time()
    while proc.poll() is None:
        r = rss_kb(proc.pid)
        done = sum(1 for _ in out_dir.rglob("*.npy")) if out_dir.exists() else 0
        if r is not None:
            samples.append((done, r))
        if kill_at is not None and done >= kill_at:
            proc.send_signal(signal.SIGKILL)
            killed = True
            proc.wait()
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    return proc.returncode, out, err, samples, killed, time.time() - t0


def rss_growth(samples, failures, what):
    """Flat = the peak of the second half of the run within 10% + 5 MB of the peak of the first half (the
    first half includes the warm-up: queues and packs filling). A leak shows as a second half above the first."""
    if len(samples) < 4:
        return
    lo, hi = samples[0][0], samples[-1][0]
    mid = lo + (hi - lo) / 2
    first = max(r for d, r in samples if d < mid) if any(d < mid for d, _ in samples) else samples[0][1]
    second = max(r for d, r in samples if d >= mid)
    if second > first * 1.1 + 5 * 1024:
        failures.append(f"{what}: RSS peak grew from {first / 1024:.1f} MB (first half) to {second / 1024:.1f} MB")


def rss_profile(samples):
    """RSS (MB) at start (first sample past 5% of the outputs), middle, end, and the peak."""
    if not samples:
        return "no samples"
    lo, hi = samples[0][0], samples[-1][0]
    def at(frac):
        target = lo + (hi - lo) * frac
        return next((r for d, r in samples if d >= target), samples[-1][1]) / 1024
    return (f"start {at(0.05):.1f} MB, middle {at(0.5):.1f} MB, end {samples[-1][1] / 1024:.1f} MB, "
            f"peak {max(r for _, r in samples) / 1024:.1f} MB ({len(samples)} samples)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, type=Path)
    ap.add_argument("--checkpoint", default=ROOT / "checkpoints/tiny-random", type=Path)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kill-shard", type=int, default=1)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("extra", nargs="*", help="more CLI arguments (after --), e.g. --no-normalize")
    a = ap.parse_args()

    work = a.workdir or Path(tempfile.mkdtemp(prefix="w2vbert-soak-"))
    data, out = work / "data", work / "out"
    print(f"workdir {work}")
    rels = make_inputs(data, a.files)
    print(f"{len(rels)} inputs under {data}")
    base = [str(a.bin), "--checkpoint", str(a.checkpoint), "--threads", str(a.threads), "--json", "--quiet",
            str(data), "--output-dir", str(out), "--num-shards", str(a.shards)] + a.extra
    failures = []
    per_shard = -(-a.files // a.shards)
    for s in range(a.shards):
        cmd = base + ["--shard-index", str(s)]
        if s == a.kill_shard:
            before = sum(1 for _ in out.rglob("*.npy")) if out.exists() else 0
            rc, _, err, samples, killed, secs = run_shard(cmd, out, per_shard, kill_at=before + per_shard // 2)
            after_kill = sum(1 for _ in out.rglob("*.npy"))
            temps = [p for p in out.rglob("*") if TEMP_MARK in p.name]
            print(f"shard {s}: SIGKILL after {after_kill - before} outputs ({secs:.1f} s, killed={killed}, "
                  f"rc {rc}); temporary files left by the kill: {len(temps)}; RSS {rss_profile(samples)}")
            if not killed:
                failures.append(f"shard {s} finished before the kill")
            rc, so, err, samples, _, secs = run_shard(cmd, out, per_shard)
            summary = json.loads(so.strip().splitlines()[-1]) if so.strip() else {}
            print(f"shard {s} rerun: rc {rc}, {secs:.1f} s, done {summary.get('done')}, skipped "
                  f"{summary.get('skipped')}, failed {len(summary.get('failed', []))}; RSS {rss_profile(samples)}")
            rss_growth(samples, failures, f"shard {s} rerun")
            if summary.get("skipped") != after_kill - before:
                failures.append(f"rerun skipped {summary.get('skipped')}, expected {after_kill - before}")
        else:
            rc, so, err, samples, _, secs = run_shard(cmd, out, per_shard)
            summary = json.loads(so.strip().splitlines()[-1]) if so.strip() else {}
            print(f"shard {s}: rc {rc}, {secs:.1f} s, done {summary.get('done')}, skipped {summary.get('skipped')}, "
                  f"audio {summary.get('audio_seconds', 0):.0f} s; RSS {rss_profile(samples)}")
            rss_growth(samples, failures, f"shard {s}")
        if rc != 0:
            failures.append(f"shard {s} exit code {rc}: {err[-500:]}")

    outputs = sorted(p.relative_to(out).with_suffix("") for p in out.rglob("*.npy"))
    temps = [p for p in out.rglob("*") if TEMP_MARK in p.name or p.name.endswith(".tmp")]
    lost = sorted(set(rels) - set(outputs))
    extra = sorted(set(outputs) - set(rels))
    dup = len(outputs) - len(set(outputs))
    incomplete = [p for p in out.rglob("*.npy") if not npy_complete(p)]
    print(f"inputs {len(rels)}, outputs {len(outputs)}: lost {len(lost)}, extra {len(extra)}, duplicated {dup}, "
          f"incomplete {len(incomplete)}, temporary files left {len(temps)}")
    for name, bad in [("lost", lost), ("extra", extra), ("incomplete", incomplete), ("temporary", temps)]:
        if bad:
            failures.append(f"{len(bad)} {name}: {[str(x) for x in bad[:5]]}")
    if dup:
        failures.append(f"{dup} duplicated outputs")
    print("SOAK OK" if not failures else "SOAK FAILED:\n  " + "\n  ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
