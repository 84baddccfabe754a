#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (fuzz/seeds/<target>/), from tests/fixtures and the
shipped tiny checkpoint. Small on purpose (a few hundred KB in all): libFuzzer grows its own corpus from these.

    .venv/bin/python scripts/make_fuzz_seeds.py      # pinned versions: scripts/requirements.txt
"""
import json
import shutil
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file, save

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
FIX = ROOT / "tests" / "fixtures"


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def raw_safetensors(header, data=b""):
    """A safetensors file from a header dict as given (lets a seed carry odd but valid layouts)."""
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def weights_seeds():
    tiny = load_file(ROOT / "checkpoints/tiny-random/model.safetensors")
    # A few real tensor names and shapes of the tiny checkpoint (LayerNorms, a small linear, the conv).
    keep = [n for n in sorted(tiny) if tiny[n].numel() <= 2048][:12]
    sub = {n: tiny[n].contiguous() for n in keep}
    put("weights", "tiny_f32.safetensors", save(sub, metadata={"format": "pt"}))
    put("weights", "tiny_f16.safetensors", save({n: t.half() for n, t in sub.items()}))
    put("weights", "tiny_bf16.safetensors", save({n: t.bfloat16() for n, t in sub.items()}))
    mixed = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(3, dtype=torch.float16),
             "c": torch.zeros(0, 4), "d": torch.tensor([1, 2], dtype=torch.int64)}
    put("weights", "mixed_dtypes_empty.safetensors", save(mixed))
    # Unaligned f32 (odd header length): the copy path instead of the zero-copy view.
    h = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode() + b" "
    put("weights", "unaligned_f32.safetensors", struct.pack("<Q", len(h)) + h + struct.pack("<2f", 1.5, -2.0))
    put("weights", "empty_header.safetensors", raw_safetensors({}))


def config_seeds():
    put("config", "w2v-bert-2.0.json", (FIX / "io/w2v-bert-2.0.config.json").read_bytes())
    put("config", "tiny-random.json", (ROOT / "checkpoints/tiny-random/config.json").read_bytes())
    put("config", "h24.json", (FIX / "encoder/h24/config.json").read_bytes())
    put("config", "empty_object.json", b"{}")


def stats_seeds():
    put("stats", "tiny_mean_var.safetensors", (ROOT / "checkpoints/tiny-random/wav2vec2bert_stats.safetensors").read_bytes())
    g = torch.Generator().manual_seed(0)
    m, s = torch.randn(8, generator=g), torch.rand(8, generator=g) + 0.5
    put("stats", "mean_std_f32.safetensors", save({"mean": m, "std": s}))
    put("stats", "mean_var_bf16.safetensors", save({"mean": m.bfloat16(), "var": s.bfloat16()}))
    put("stats", "mean_var_f16_meta.safetensors", save({"mean": m.half(), "var": s.half()}, metadata={"layer": "17"}))


def wav_header(rate, channels, bits, fmt, data_len, claimed_len=None):
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    claimed = data_len if claimed_len is None else claimed_len
    return (b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk
            + b"data" + struct.pack("<I", claimed))


def audio_seeds():
    # First byte: bits 0-1 pick the name's extension (wav, flac, mp3, ogg), bit 2 the speaker-prompt path.
    a = FIX / "audio"
    for sel, name in [(0, "dec_u8.wav"), (0, "dec_s24.wav"), (4, "dec_wavex.wav"), (0, "dec_stereo.wav"),
                      (0, "dec_f32.wav"), (1, "dec.flac"), (2, "dec.mp3"), (6, "dec.mp3"), (3, "dec.ogg")]:
        put("audio", f"{sel}_{name}", bytes([sel]) + a.joinpath(name).read_bytes())
    # A WAV header claiming ~6.2 hours of 16-bit 16 kHz audio in front of 0.1 s of samples.
    pcm = struct.pack("<1600h", *[(i * 37) % 2000 - 1000 for i in range(1600)])
    put("audio", "0_lying_length.wav", bytes([0]) + wav_header(16000, 1, 16, 1, len(pcm), 0x2A000000) + pcm)
    # A 8 kHz file (upsampled to 16 kHz), 0.2 s.
    pcm8 = struct.pack("<1600h", *[(i * 53) % 3000 - 1500 for i in range(1600)])
    put("audio", "0_8k.wav", bytes([0]) + wav_header(8000, 1, 16, 1, len(pcm8)) + pcm8)


def corpus_seeds():
    """Seeds of the corpus runner's readers: .npy and .safetensors outputs, manifests."""
    import io
    import numpy as np
    from numpy.lib import format as npf

    x = np.arange(12, dtype="<f4").reshape(3, 4) / 7
    for name, arr, version in [("t3x4_v1.npy", x, (1, 0)), ("t3x4_v2.npy", x, (2, 0)),
                               ("vec5_v1.npy", np.ones(5, "<f4"), (1, 0)), ("empty_0x4.npy", np.zeros((0, 4), "<f4"), (1, 0))]:
        b = io.BytesIO()
        npf.write_array(b, arr, version=version)
        put("npy", name, b.getvalue())
    put("safetensors_check", "hidden_states.safetensors",
        save({"hidden_states.17": torch.arange(8.0).reshape(2, 4), "mask": torch.ones(2)}))
    put("safetensors_check", "one.safetensors", save({"semantic": torch.zeros(3, 2)}))
    put("manifest", "list.txt", b"a.wav\nsub/b.flac\n# comment\n\n../c.mp3\n/abs/d.ogg\n")
    put("manifest", "fairseq.tsv", b"/data/LibriSpeech/dev-clean\n84/121123/84-121123-0000.flac\t46720\n"
                                   b"84/121123/84-121123-0001.flac\t32000\n")
    put("manifest", "fairseq_rel_root.tsv", b"audio\r\nx/y.wav\t16000\r\n./z.wav\t8000\r\n")


if __name__ == "__main__":
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    weights_seeds()
    config_seeds()
    stats_seeds()
    audio_seeds()
    corpus_seeds()
    total = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    print(f"{sum(1 for p in SEEDS.rglob('*') if p.is_file())} seeds, {total} bytes under {SEEDS}")
