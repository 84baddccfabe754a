"""Interleaved A/B of two `w2vbert-infer` builds (or two environments of one build) on the same wav: whole-process
wall time, the encoder stage (`--json` stages.encoder) and CPU time (user + system), runs alternating A, B, A, B…
so that a shared host's drift hits both alike. Prints the medians and, what to quote, the median of the per-pair
ratios B/A with how many pairs B won. Standard library only; no Python in the engine's path.

    cargo build --release && cp target/release/w2vbert-infer /tmp/w_old      # on the base commit
    cargo build --release                                                    # on the change
    python scripts/ab_cli.py --a /tmp/w_old --b target/release/w2vbert-infer --pairs 20
    python scripts/ab_cli.py --b-env W2VBERT_BF16_KERNEL=avx512 --pairs 8 -- --precision bf16

The wav defaults to bench_vs_hf.py's 10 s one (out/bench_vs_hf/speech_10s.wav, made by that script), the
checkpoint to its seeded full-size one. Arguments after `--` go to both runs.
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def parse_env(items):
    env = {}
    for kv in items:
        k, sep, v = kv.partition("=")
        if not sep:
            sys.exit(f"--a-env/--b-env take NAME=VALUE, got {kv!r}")
        env[k] = v
    return env


def run_once(binary, env, wav, checkpoint, extra, out_dir):
    shutil.rmtree(out_dir, ignore_errors=True)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = ru.ru_utime + ru.ru_stime
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(binary), "--checkpoint", str(checkpoint), "--output-dir", str(out_dir), "--json", *extra, str(wav)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime - cpu0
    if r.returncode != 0:
        sys.exit(f"{binary} failed (exit {r.returncode}):\n{r.stderr}")
    encoder = json.loads(r.stdout)["stages"]["encoder"]
    return wall, encoder, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bin = ROOT / "target" / "release" / "w2vbert-infer"
    ap.add_argument("--a", type=pathlib.Path, default=default_bin, help="binary A (default: the release build)")
    ap.add_argument("--b", type=pathlib.Path, default=default_bin, help="binary B (default: the release build)")
    ap.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE", help="environment for A only")
    ap.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE", help="environment for B only")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--wav", type=pathlib.Path, default=ROOT / "out" / "bench_vs_hf" / "speech_10s.wav")
    ap.add_argument("--checkpoint", type=pathlib.Path, default=ROOT / "checkpoints" / "w2v-bert-2.0-random")
    ap.add_argument("extra", nargs="*", help="arguments for both runs (after --)")
    args = ap.parse_args()
    for p, what in [(args.a, "binary A"), (args.b, "binary B"), (args.wav, "wav"), (args.checkpoint, "checkpoint")]:
        if not p.exists():
            sys.exit(f"{what} {p} not found (bench_vs_hf.py makes the default wav and checkpoint)")
    sides = [(args.a, parse_env(args.a_env)), (args.b, parse_env(args.b_env))]
    res = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for side, (binary, env) in enumerate(sides):
                res[side].append(run_once(binary, env, args.wav, args.checkpoint, args.extra, pathlib.Path(tmp) / "o"))
            print(f"pair {i + 1}/{args.pairs}: A {res[0][-1][0]:.3f} s, B {res[1][-1][0]:.3f} s", file=sys.stderr)
    for side, name in enumerate("AB"):
        med = [statistics.median(r[j] for r in res[side]) for j in range(3)]
        print(f"{name}: wall median {med[0]:.3f} s, encoder stage {med[1]:.3f} s, CPU {med[2]:.3f} s")
    for j, what in [(0, "wall"), (1, "encoder stage"), (2, "CPU")]:
        ratios = [b[j] / a[j] for a, b in zip(res[0], res[1])]
        print(f"B/A {what}: median of pair ratios {statistics.median(ratios):.3f}, "
              f"B lower in {sum(r < 1 for r in ratios)} of {len(ratios)} pairs")


if __name__ == "__main__":
    main()
