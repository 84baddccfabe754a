"""`w2vbert-infer convert` at full size: for f32, f16 and bf16, convert a checkpoint to N layers (time, peak RSS,
size), run the release CLI on one wav with each converted checkpoint and with the source (`--layers N`, raw
hidden_states.N and, for N = 17, the semantic features), and compare with numpy: the f32 conversion must be
bit-identical to the source; f16 / bf16 are reported against f32 (rel L2, max-abs, cosine, worst per-frame cosine).

    cargo build --release
    python scripts/convert_accuracy.py --checkpoint checkpoints/w2v-bert-2.0-random \
        --wav out/fullsize/speech_10s.wav [--layers 17] [--out out/convert] [--keep]

Converted checkpoints go to OUT/ck-<dtype> and are deleted at the end unless --keep.
"""
import argparse
import pathlib
import shutil
import subprocess
import time

import numpy as np
from safetensors.numpy import load_file

from fullsize_parity import stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "w2vbert-infer"


def run(args):
    """Runs BIN under /usr/bin/time; returns (wall s, user + sys CPU s, peak RSS MB) of that process alone.
    (os.wait4's ru_maxrss would include this Python process's size, inherited at fork.)"""
    res = ROOT / "out" / ".convert_accuracy.time"
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(res), str(BIN), *map(str, args)]
    p = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    wall, user, sys_, kb = res.read_text().split()[-4:]
    return float(wall), float(user) + float(sys_), int(kb) / 1024


def worst_frame_cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=pathlib.Path, required=True)
    ap.add_argument("--wav", type=pathlib.Path, required=True)
    ap.add_argument("--layers", type=int, default=17)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "out" / "convert")
    ap.add_argument("--keep", action="store_true", help="keep the converted checkpoints")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)

    outputs = {}
    wall, cpu, rss = run(["--checkpoint", a.checkpoint, "--layers", a.layers, "--output-dir", a.out / "run-source", a.wav])
    print(f"source checkpoint: CLI {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB")
    outputs["source"] = load_file(a.out / "run-source" / f"{a.wav.stem}.safetensors")
    for dtype in ["f32", "f16", "bf16"]:
        ck = a.out / f"ck-{dtype}"
        wall, cpu, rss = run(["convert", "--checkpoint", a.checkpoint, "--layers", a.layers, "--dtype", dtype,
                         "--output-dir", ck, "--force"])
        size = (ck / "model.safetensors").stat().st_size
        print(f"convert {dtype}: {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB, "
              f"model.safetensors {size / 1e6:.1f} MB")
        wall, cpu, rss = run(["--checkpoint", ck, "--layers", a.layers, "--output-dir", a.out / f"run-{dtype}", a.wav])
        print(f"  CLI with it: {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB")
        outputs[dtype] = load_file(a.out / f"run-{dtype}" / f"{a.wav.stem}.safetensors")
        if not a.keep:
            shutil.rmtree(ck)

    for key in [k for k in outputs["f32"] if k != "mask"]:
        same = np.array_equal(outputs["f32"][key].view(np.uint32), outputs["source"][key].view(np.uint32))
        print(f"{key} {outputs['f32'][key].shape}: f32 conversion bit-identical to the source: {same}")
        for dtype in ["f16", "bf16"]:
            s = stats(outputs[dtype][key], outputs["f32"][key])
            w = worst_frame_cosine(outputs[dtype][key], outputs["f32"][key])
            print(f"  {dtype} vs f32: rel L2 {s['rel_l2']:.2e}, max-abs {s['max_abs']:.2e}, "
                  f"cosine {s['cosine']:.7f}, worst frame {w:.7f}")


if __name__ == "__main__":
    main()
