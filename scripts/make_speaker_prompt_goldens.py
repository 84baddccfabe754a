#!/usr/bin/env python3
"""Make the IndexTTS2 speaker-prompt fixtures (tests/fixtures/speaker_prompt/).

IndexTTS2 (index-tts/index-tts, indextts/infer_v2.py) reads the speaker prompt as

    audio, sr = librosa.load(path)                   # sr = 22050: mean of channels, soxr "HQ" resample
    audio = torch.tensor(audio).unsqueeze(0)[:, :int(15 * sr)]          # first 15 s at 22.05 kHz
    audio_16k = torchaudio.transforms.Resample(sr, 16000)(audio)        # sinc_interp_hann, width 6, rolloff 0.99
    inputs = extract_features(audio_16k, sampling_rate=16000, return_tensors="pt")

and `indextts2_speaker_prompt` below does exactly that. Both inputs are already 22.05 kHz, so librosa's soxr step
is the identity (librosa skips resampling when the rates are equal): the goldens isolate the cut and the
torchaudio resampler, which is what `w2vbert::audio::load_indextts2_speaker_prompt` must reproduce exactly.

Pinned reference: torch 2.7.1, torchaudio 2.7.1, transformers 4.52.1, librosa 0.11.0 (scripts/requirements.txt).
Run from the repository root:  /opt/hfref/bin/python scripts/make_speaker_prompt_goldens.py

Writes (fixtures stay small: the full 16 kHz waveforms would be ~1.5 MB, so they are summarized)
  resample_cases.safetensors  torchaudio Resample outputs on short cuts, compared sample by sample:
      `espeak_22050_to_16000` [24000] from espeak_22050.wav[:33075] (1.5 s, the speaker-prompt ratio),
      `arctic_16000_to_22050` [11025] from arctic_a0007.wav[:8000] (upsampling),
      `arctic_48000_to_16000` [8000]  from arctic_a0007.wav[:24000] labelled 48 kHz (orig 3 : new 1).
  espeak_22050.safetensors    espeak_22050.wav (9.09 s, no cut) through the whole path:
      `features_head` / `features_tail` f32 [64, 160] (first and last rows of the [T, 160] features),
      `features_t` i64 [1] (T), `row_sum` / `row_sumsq` f64 [T] (every row), `mask` u8 [T],
      `fbank_frames` i64 [1], `wave_len` i64 [1], `wave_head` / `wave_mid` / `wave_tail` f32 [2048] (16 kHz
      samples from 0, `wave_mid_start`, len - 2048), `wave_sum` / `wave_sumsq` f64 [1].
  concat_18s.safetensors      the same entries for espeak ‖ reversed(espeak) (18.2 s at 22.05 kHz, 16-bit PCM; the
      tests rebuild the file the same way), which the path cuts to 330750 samples (15 s) -> 240000 at 16 kHz.
Tests never run this script.
"""
import os
import tempfile

import librosa
import numpy as np
import soundfile as sf
import torch
import torchaudio
from safetensors.numpy import save_file

from hf_reference import extractor

assert torchaudio.__version__.startswith("2.7.1"), torchaudio.__version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUDIO = os.path.join(ROOT, "tests", "fixtures", "audio")
OUT = os.path.join(ROOT, "tests", "fixtures", "speaker_prompt")
WIN = 2048
ROWS = 64


def indextts2_speaker_prompt(path, fe):
    """The speaker-prompt audio path of infer_v2.py, step by step."""
    audio, sr = librosa.load(path)
    assert sr == 22050
    audio = torch.tensor(audio).unsqueeze(0)
    max_audio_samples = int(15 * sr)
    if audio.shape[1] > max_audio_samples:
        audio = audio[:, :max_audio_samples]
    audio_16k = torchaudio.transforms.Resample(sr, 16000)(audio)
    inputs = fe(audio_16k, sampling_rate=16000, return_tensors="pt")
    # The [1, N] tensor is one utterance (the extractor keeps channel 0): same as the plain 1-D array.
    alt = fe(audio_16k[0].numpy(), sampling_rate=16000, return_tensors="np")
    assert np.array_equal(alt["input_features"], inputs["input_features"].numpy())
    return audio.shape[1], audio_16k[0].numpy(), inputs["input_features"][0].numpy(), inputs["attention_mask"][0].numpy()


def wave_entries(w):
    mid = len(w) // 2
    return {
        "wave_len": np.array([len(w)], dtype=np.int64),
        "wave_head": np.ascontiguousarray(w[:WIN]),
        "wave_mid": np.ascontiguousarray(w[mid : mid + WIN]),
        "wave_mid_start": np.array([mid], dtype=np.int64),
        "wave_tail": np.ascontiguousarray(w[-WIN:]),
        "wave_sum": np.array([w.astype(np.float64).sum()]),
        "wave_sumsq": np.array([(w.astype(np.float64) ** 2).sum()]),
    }


def path_entries(w, feats, mask):
    """What the tests compare for one file: waveform summary, first/last feature rows, per-row sums."""
    rows = feats.astype(np.float64)
    return {
        "features_head": np.ascontiguousarray(feats[:ROWS].astype(np.float32)),
        "features_tail": np.ascontiguousarray(feats[-ROWS:].astype(np.float32)),
        "features_t": np.array([feats.shape[0]], dtype=np.int64),
        "row_sum": rows.sum(1),
        "row_sumsq": (rows**2).sum(1),
        "mask": mask.astype(np.uint8),
        "fbank_frames": np.array([1 + (len(w) - 400) // 160], dtype=np.int64),
        **wave_entries(w),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    fe = extractor()
    esp_path = os.path.join(AUDIO, "espeak_22050.wav")
    esp, sr = sf.read(esp_path, dtype="float32")
    assert sr == 22050
    arctic, sr = sf.read(os.path.join(AUDIO, "arctic_a0007.wav"), dtype="float32")
    assert sr == 16000

    def ta(x, a, b):
        return torchaudio.transforms.Resample(a, b)(torch.tensor(x).unsqueeze(0))[0].numpy()

    cases = {
        "espeak_22050_to_16000": ta(esp[:33075], 22050, 16000),
        "arctic_16000_to_22050": ta(arctic[:8000], 16000, 22050),
        "arctic_48000_to_16000": ta(arctic[:24000], 48000, 16000),
    }
    save_file(cases, os.path.join(OUT, "resample_cases.safetensors"))
    for k, v in cases.items():
        print(f"{k}: {v.shape}")

    n22, w, feats, mask = indextts2_speaker_prompt(esp_path, fe)
    assert n22 == len(esp)
    save_file(path_entries(w, feats, mask), os.path.join(OUT, "espeak_22050.safetensors"))
    print(f"espeak_22050: 22.05 kHz {n22} -> 16 kHz {len(w)}, features {feats.shape}")

    pcm, _ = sf.read(esp_path, dtype="int16")
    long = np.concatenate([pcm, pcm[::-1]])
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "concat_18s.wav")
        sf.write(p, long, 22050, subtype="PCM_16")
        n22, w, feats, mask = indextts2_speaker_prompt(p, fe)
    assert n22 == int(15 * 22050) < len(long)
    save_file(path_entries(w, feats, mask), os.path.join(OUT, "concat_18s.safetensors"))
    print(f"concat_18s: {len(long)} samples at 22.05 kHz, cut to {n22} -> 16 kHz {len(w)}, features {feats.shape}")


if __name__ == "__main__":
    main()
