"""Encoder goldens from HF transformers 4.52.1 (CPU, fp32), committed under tests/fixtures/encoder/ and
checkpoints/tiny-random/. Tests and CI never run this.

    /path/to/venv/bin/python scripts/make_encoder_goldens.py     # pip install -r scripts/requirements.txt

Configs (seeded random weights, scripts/hf_reference.py::perturb_):
  h64    hidden 128, 2 heads x 64 (the real head size), 3 layers, FFN 256, kernel 31, clamp [-64, 8]; f32 weights
  h24    hidden 96, 4 heads x 24, 3 layers, FFN 192, kernel 15, clamp [-16, 4]; bf16 weights
  tiny-random (shipped in checkpoints/, used by the README's run command): hidden 64, 1 head x 64, 24 layers,
         FFN 128, kernel 31, clamp [-64, 8], f16 weights, plus random IndexTTS2-style stats (mean, var)

Each golden.safetensors holds, for cases single_even (arctic_a0007, F even), single_odd (a cut with F odd: its last
row is masked) and batch (two utterances padded by the extractor):
  <case>.input_features [.., T, 160], <case>.mask [.., T] (1.0 / 0.0), <case>.hidden_states.<k> [.., T, hidden]
The tiny-random golden also holds single_even.semantic = (hidden_states[17] - mean) / sqrt(var), and the
features the HF extractor gives for the shipped wav (for the CLI end-to-end test).
"""
import json
import pathlib

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import Wav2Vec2BertConfig

import hf_reference as ref

ROOT = pathlib.Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "fixtures" / "audio"
SHARED = ROOT.parent / "shared" / "audio"


def audio_path(name):
    p = AUDIO / name
    return p if p.exists() else SHARED / name


def cases():
    arctic = ref.read_wav_16k(audio_path("arctic_a0007.wav"))
    espeak = ref.read_resampled_16k(audio_path("espeak_22050.wav"))
    odd = arctic[:40160]  # F = 1 + (40160 - 400) // 160 = 249 (odd)
    fe = ref.extractor()
    out = {}
    for name, wav in [("single_even", arctic), ("single_odd", odd)]:
        f = fe(wav, sampling_rate=16000, return_tensors="np")
        out[name] = (f["input_features"], f["attention_mask"])
    f = fe([arctic, espeak[: 16000 * 5 // 2]], sampling_rate=16000, return_tensors="np", padding=True)
    out["batch"] = (f["input_features"], f["attention_mask"])
    return out


def run(model, the_cases, extra=None):
    tensors = {}
    for name, (feats, mask) in the_cases.items():
        hs = ref.hidden_states(model, feats, mask)
        squeeze = name != "batch"
        sq = (lambda a: a[0]) if squeeze else (lambda a: a)
        tensors[f"{name}.input_features"] = sq(feats).astype(np.float32)
        tensors[f"{name}.mask"] = sq(mask).astype(np.float32)
        for k, h in enumerate(hs):
            tensors[f"{name}.hidden_states.{k}"] = sq(h).astype(np.float32)
    tensors.update(extra or {})
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


def main():
    the_cases = cases()
    meta = {k: str(v) for k, v in ref.versions().items()}
    for (_, (f, m)) in the_cases.items():
        print("case", f.shape, "masked rows", int((m == 0).sum()))

    configs = {
        "h64": (
            dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=2, intermediate_size=256),
            torch.float32,
            11,
        ),
        "h24": (
            dict(
                hidden_size=96,
                num_hidden_layers=3,
                num_attention_heads=4,
                intermediate_size=192,
                conv_depthwise_kernel_size=15,
                left_max_position_embeddings=16,
                right_max_position_embeddings=4,
            ),
            torch.bfloat16,
            22,
        ),
    }
    for name, (kw, dtype, seed) in configs.items():
        cfg = Wav2Vec2BertConfig(**kw)
        model = ref.random_model(cfg, seed, dtype)
        d = ROOT / "tests" / "fixtures" / "encoder" / name
        ref.save_checkpoint(model, d, dtype)
        save_file(run(model, the_cases), str(d / "golden.safetensors"), metadata=meta)
        print("wrote", d)

    # The shipped checkpoint: deep enough for the default --layer 17, small enough to commit.
    cfg = Wav2Vec2BertConfig(hidden_size=64, num_hidden_layers=24, num_attention_heads=1, intermediate_size=128)
    model = ref.random_model(cfg, 33, torch.float16)
    ck = ROOT / "checkpoints" / "tiny-random"
    ref.save_checkpoint(model, ck, torch.float16)
    g = torch.Generator().manual_seed(44)
    mean = (0.5 * torch.randn(64, generator=g)).numpy()
    var = (0.5 + 1.5 * torch.rand(64, generator=g)).numpy()
    save_file({"mean": mean, "var": var}, str(ck / "wav2vec2bert_stats.safetensors"), metadata=meta)
    one = {"single_even": the_cases["single_even"], "single_odd": the_cases["single_odd"]}
    feats, mask = one["single_even"]
    h17 = ref.hidden_states(model, feats, mask)[17][0]
    semantic = ((torch.from_numpy(h17) - torch.from_numpy(mean)) / torch.sqrt(torch.from_numpy(var))).numpy()
    extra = {"single_even.semantic": semantic}
    d = ROOT / "tests" / "fixtures" / "encoder" / "tiny-random"
    d.mkdir(parents=True, exist_ok=True)
    tensors = run(model, one, extra)
    keep = {k: v for k, v in tensors.items() if not k.split(".")[-1].isdigit() or k.endswith((".0", ".1", ".17", ".24"))}
    save_file(keep, str(d / "golden.safetensors"), metadata=meta)
    print("wrote", ck, d, json.dumps(meta))


if __name__ == "__main__":
    main()
