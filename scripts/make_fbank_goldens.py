#!/usr/bin/env python3
"""Make the audio-front-end fixtures: decoder test files and SeamlessM4T fbank goldens.

Pinned reference: transformers 4.52.1, numpy 1.26.4, librosa 0.11.0, soxr 1.1.0, soundfile 0.14 (libsndfile
1.2.2), see scripts/requirements.txt. Run from the repository root:

    /opt/hfref/bin/python scripts/make_fbank_goldens.py [--audio-dir ../shared/audio]

Writes
  tests/fixtures/audio/  arctic_a0007.wav, espeak_22050.wav (copies of the sources),
                         espeak_16k_soxr.flac (librosa.load(sr=16000), i.e. soxr HQ, stored as 24-bit FLAC),
                         dec_*.wav / dec.flac / dec.mp3 / dec.ogg (decoder tests, cut from arctic_a0007)
  tests/fixtures/fbank/  <name>.safetensors: `features` f32 [T, 160] (batch: [B, T, 160]), `mask` u8 [T]
                         ([B, T]), `fbank_frames` i64 [1] ([B]); metadata names the input (file, start, len).

The goldens come from the extractor exactly as IndexTTS2 uses it (the facebook/w2v-bert-2.0 preprocessor
values; `from_pretrained` is impossible offline), on float32 arrays. Tests never run this script.
"""
import argparse
import json
import os
import shutil

import numpy as np
import soundfile as sf
import torch
from safetensors.numpy import save_file

import librosa

from hf_reference import extractor  # the w2v-bert-2.0 preprocessor values, shared with the encoder goldens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUDIO_OUT = os.path.join(ROOT, "tests", "fixtures", "audio")
FBANK_OUT = os.path.join(ROOT, "tests", "fixtures", "fbank")

# Clips cut from arctic_a0007 (16 kHz): F = 1 + (len - 400) // 160.
ODD = dict(start=8000, len=400 + 150 * 160)  # F = 151 -> T = 76, last row masked
EVEN = dict(start=20000, len=400 + 99 * 160 + 37)  # F = 100 -> T = 50 (37 leftover samples ignored)
DEC = dict(start=16000, len=4800)  # 0.3 s for the lossless decoder fixtures
LOSSY = dict(start=8000, len=16000)  # 1 s for MP3 / Vorbis (compared by correlation)


def read_f32(path):
    x, sr = sf.read(path, dtype="float32", always_2d=False)
    return x, sr


def golden(fe, name, waves, meta):
    """Run the extractor on float32 `waves` (list: one utterance, or a padded batch) and save it."""
    out = fe(waves if len(waves) > 1 else waves[0], sampling_rate=16000, return_tensors="np")
    feats = out["input_features"].astype(np.float32)  # [B, T, 160]
    mask = out["attention_mask"].astype(np.uint8)  # [B, T]
    frames = np.array([1 + (len(w) - 400) // 160 for w in waves], dtype=np.int64)
    if len(waves) == 1:
        feats, mask = feats[0], mask[0]
    tensors = {"features": np.ascontiguousarray(feats), "mask": np.ascontiguousarray(mask), "fbank_frames": frames}
    save_file(tensors, os.path.join(FBANK_OUT, f"{name}.safetensors"), metadata={"inputs": json.dumps(meta)})
    print(f"{name}: features {feats.shape}, F {frames.tolist()}, valid rows {mask.sum(-1).tolist()}")
    return feats, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio-dir", default=os.path.join(ROOT, "..", "shared", "audio"))
    args = ap.parse_args()
    os.makedirs(AUDIO_OUT, exist_ok=True)
    os.makedirs(FBANK_OUT, exist_ok=True)
    torch.set_num_threads(1)

    for f in ["arctic_a0007.wav", "espeak_22050.wav"]:
        shutil.copyfile(os.path.join(args.audio_dir, f), os.path.join(AUDIO_OUT, f))
    arctic_path = os.path.join(AUDIO_OUT, "arctic_a0007.wav")
    arctic, sr = read_f32(arctic_path)
    assert sr == 16000 and arctic.ndim == 1

    # librosa's load(sr=16000) path: soundfile float32 -> to_mono -> soxr HQ -> ceil length. Stored as 24-bit
    # FLAC (what the decoder reads back is then exactly the extractor's input below). 16-bit storage is too
    # coarse: its quantization noise swamps the top mel bins, where resampled espeak has almost no energy.
    esp16, _ = librosa.load(os.path.join(AUDIO_OUT, "espeak_22050.wav"), sr=16000)
    esp_path = os.path.join(AUDIO_OUT, "espeak_16k_soxr.flac")
    sf.write(esp_path, esp16, 16000, format="FLAC", subtype="PCM_24")
    esp16_q, _ = read_f32(esp_path)
    q = np.linalg.norm(esp16_q - esp16) / np.linalg.norm(esp16)
    print(f"espeak_16k_soxr.flac: {len(esp16)} samples, 24-bit storage rel L2 {q:.2e}")

    # Decoder fixtures, all cut from arctic (16-bit source, so 24/32-bit and float hold it exactly).
    seg = arctic[DEC["start"] : DEC["start"] + DEC["len"]]
    for name, fmt, sub in [
        ("dec_u8.wav", "WAV", "PCM_U8"),
        ("dec_s24.wav", "WAV", "PCM_24"),
        ("dec_s32.wav", "WAV", "PCM_32"),
        ("dec_f32.wav", "WAV", "FLOAT"),
        ("dec_f64.wav", "WAV", "DOUBLE"),
        ("dec_wavex.wav", "WAVEX", "PCM_16"),
        ("dec.flac", "FLAC", "PCM_16"),
    ]:
        sf.write(os.path.join(AUDIO_OUT, name), seg, 16000, format=fmt, subtype=sub)
    # Stereo: left = the segment, right = a later stretch of the utterance, so averaging is visible.
    right = arctic[DEC["start"] + 20000 : DEC["start"] + 20000 + DEC["len"]]
    sf.write(os.path.join(AUDIO_OUT, "dec_stereo.wav"), np.stack([seg, right], 1), 16000, subtype="PCM_16")
    lossy = arctic[LOSSY["start"] : LOSSY["start"] + LOSSY["len"]]
    sf.write(os.path.join(AUDIO_OUT, "dec.mp3"), lossy, 16000, format="MP3", subtype="MPEG_LAYER_III")
    sf.write(os.path.join(AUDIO_OUT, "dec.ogg"), lossy, 16000, format="OGG", subtype="VORBIS")
    with open(os.path.join(AUDIO_OUT, "decoder_fixtures.json"), "w") as f:
        json.dump({"source": "arctic_a0007.wav", "lossless": DEC, "stereo_right_start": DEC["start"] + 20000,
                   "lossy": LOSSY}, f, indent=1)
        f.write("\n")

    fe = extractor()
    golden(fe, "arctic_a0007", [arctic], [{"file": "arctic_a0007.wav"}])
    golden(fe, "espeak_16k_soxr", [esp16_q], [{"file": "espeak_16k_soxr.flac"}])
    odd = arctic[ODD["start"] : ODD["start"] + ODD["len"]]
    even = arctic[EVEN["start"] : EVEN["start"] + EVEN["len"]]
    golden(fe, "arctic_odd", [odd], [dict(file="arctic_a0007.wav", **ODD)])
    golden(fe, "arctic_even", [even], [dict(file="arctic_a0007.wav", **EVEN)])
    golden(fe, "batch_odd_even", [odd, even], [dict(file="arctic_a0007.wav", **ODD), dict(file="arctic_a0007.wav", **EVEN)])


if __name__ == "__main__":
    main()
