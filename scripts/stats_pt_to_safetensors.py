#!/usr/bin/env python3
"""Convert IndexTTS2's `wav2vec2bert_stats.pt` to safetensors for `w2vbert --stats`.

The .pt is a torch-saved dict `{"mean": Tensor[1024], "var": Tensor[1024]}` (f32; `var` is the variance,
IndexTTS2 divides by `torch.sqrt(var)`). The output holds the same two tensors under the same keys, f32,
bit-identical. Anything else is refused rather than guessed: other or extra keys, non-tensors, a dtype other
than float32, a shape other than [dim], NaN/Inf, or a variance <= 0.

    python scripts/stats_pt_to_safetensors.py wav2vec2bert_stats.pt wav2vec2bert_stats.safetensors

`--selftest DIR` checks the converter on a stats .pt made here with torch.save (and on broken ones), and
writes the Rust test fixtures into DIR: `stats_1024.safetensors` (converted) and
`stats_parity.safetensors` (`h` [4, 1024] and torch's `semantic = (h - mean) / torch.sqrt(var)`).
    python scripts/stats_pt_to_safetensors.py --selftest tests/fixtures/io
"""

import argparse
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

KEYS = ("mean", "var")


class ConversionError(Exception):
    pass


def load_stats(src, dim):
    """Loads and checks the .pt; returns {"mean", "var"} as contiguous f32 CPU tensors."""
    # weights_only: a stats file has no business running code on load.
    obj = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise ConversionError(f"{src}: expected a dict with keys mean/var, found {type(obj).__name__}")
    keys = sorted(str(k) for k in obj.keys())
    if keys != sorted(KEYS):
        raise ConversionError(f"{src}: expected exactly the keys ['mean', 'var'], found {keys}")
    out = {}
    for k in KEYS:
        t = obj[k]
        if not isinstance(t, torch.Tensor):
            raise ConversionError(f"{src}: `{k}` is a {type(t).__name__}, not a tensor")
        if t.dtype != torch.float32:
            raise ConversionError(f"{src}: `{k}` has dtype {t.dtype}, expected torch.float32")
        if tuple(t.shape) != (dim,):
            raise ConversionError(f"{src}: `{k}` has shape {list(t.shape)}, expected [{dim}]")
        if not bool(torch.isfinite(t).all()):
            raise ConversionError(f"{src}: `{k}` contains NaN or Inf")
        out[k] = t.detach().contiguous().clone()
    if bool((out["var"] <= 0).any()):
        raise ConversionError(f"{src}: `var` has values <= 0 (a variance must be > 0 to divide by its sqrt)")
    return out


def save_atomic(tensors, dst, metadata=None):
    """Writes next to `dst` and renames, so a failed run never leaves a half-written file."""
    d = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".stats-", suffix=".safetensors")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp (or the writer) made it 0600; give the usual permissions
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise


def convert(src, dst, dim=1024):
    stats = load_stats(src, dim)
    # One metadata key only: the writer orders keys by hash, so more would make the bytes vary run to run.
    save_atomic(stats, dst, metadata={"var": "variance; IndexTTS2 divides by sqrt(var)"})
    back = load_file(dst)
    for k in KEYS:
        if not torch.equal(back[k].view(torch.int32), stats[k].view(torch.int32)):
            raise ConversionError(f"{dst}: `{k}` did not round-trip bit-exactly")
    return stats


def selftest(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(20240917)
    mean = torch.randn(1024, generator=g) * 0.5
    # Variances spread over ~4 decades, as real per-channel stats are.
    var = torch.exp(torch.randn(1024, generator=g) * 1.5) * 0.3
    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "wav2vec2bert_stats.pt")
        torch.save({"mean": mean, "var": var}, good)
        dst = os.path.join(out_dir, "stats_1024.safetensors")
        convert(good, dst)
        back = load_file(dst)
        assert torch.equal(back["mean"], mean) and torch.equal(back["var"], var)

        bad_inputs = {
            "extra key": {"mean": mean, "var": var, "std": var.sqrt()},
            "missing var": {"mean": mean},
            "std instead of var": {"mean": mean, "std": var.sqrt()},
            "float64": {"mean": mean.double(), "var": var.double()},
            "shape [1, 1024]": {"mean": mean[None], "var": var[None]},
            "shape [512]": {"mean": mean[:512], "var": var[:512]},
            "nan": {"mean": torch.where(torch.arange(1024) == 3, float("nan"), mean), "var": var},
            "negative var": {"mean": mean, "var": -var},
            "zero var": {"mean": mean, "var": torch.zeros(1024)},
            "not a tensor": {"mean": mean.tolist(), "var": var},
            "not a dict": [mean, var],
        }
        for what, obj in bad_inputs.items():
            p = os.path.join(tmp, "bad.pt")
            torch.save(obj, p)
            try:
                convert(p, os.path.join(tmp, "bad.safetensors"))
            except ConversionError as e:
                print(f"refused ({what}): {e}")
            else:
                raise AssertionError(f"selftest: {what} was not refused")
            assert not os.path.exists(os.path.join(tmp, "bad.safetensors"))

    # Parity fixture: what IndexTTS2 computes, in f32 on CPU. Row 3 equals the mean exactly (→ 0).
    # torch.sqrt on CPU is not correctly rounded (up to ~0.75 ulp, on every CPU capability level), so its
    # std is stored too: the Rust test checks sub-then-div bit-exactly from this std, and its own IEEE
    # sqrt(var) against it within 1 ulp.
    h = torch.randn(4, 1024, generator=g) * 2.0 + mean
    h[3] = mean
    std = torch.sqrt(var)
    semantic = (h - mean) / std
    save_atomic({"h": h.contiguous(), "std_torch": std.contiguous(), "semantic": semantic.contiguous()},
                os.path.join(out_dir, "stats_parity.safetensors"))
    recip = (h - mean) * (1.0 / std)
    ieee = torch.sqrt(var.double()).float()  # f64 sqrt rounded once to f32 = the correctly rounded f32 sqrt
    print(f"selftest ok: wrote {out_dir}/stats_1024.safetensors and stats_parity.safetensors; "
          f"{int((recip != semantic).sum())} of {semantic.numel()} values differ if 1/std is precomputed; "
          f"torch.sqrt differs from the correctly rounded sqrt on {int((ieee != std).sum())} of {std.numel()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", help="wav2vec2bert_stats.pt")
    ap.add_argument("dst", nargs="?", help="output .safetensors")
    ap.add_argument("--dim", type=int, default=1024, help="expected length of mean/var (default 1024)")
    ap.add_argument("--selftest", metavar="DIR", help="test the converter and write Rust fixtures into DIR")
    args = ap.parse_args()
    if args.selftest:
        selftest(args.selftest)
        return 0
    if not (args.src and args.dst):
        ap.error("give SRC and DST (or --selftest DIR)")
    try:
        convert(args.src, args.dst, args.dim)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
