#!/usr/bin/env python3
"""Goldens for every input rate and format: librosa 0.11 + python-soxr 1.1 + soundfile (libsndfile) +
transformers 4.52.1 (scripts/requirements.txt). Tests never run this; they read the committed outputs.

    nice -n 19 .venv/bin/python scripts/make_rate_goldens.py [--audio-dir ../shared/audio]
    nice -n 19 .venv/bin/python scripts/make_rate_goldens.py --dump DIR   # reference inputs for a full-size check

Needs lame, oggenc (vorbis-tools) and flac on PATH (Debian packages of those names) for the lossy/FLAC files.

Inputs (tests/fixtures/rates/*.{wav,flac,mp3,ogg}), all made here from speech in ../shared/audio:
  arctic_a0007.wav (CMU ARCTIC, 16 kHz; see tests/fixtures/audio/README.md) cut at 0.5 s, brought to each rate
  with python-soxr VHQ (float64), plus a seeded Gaussian noise floor at -60 dBFS RMS (independent per channel;
  the right channel is the speech at 0.7x delayed 3 ms, so the channel mean differs from either channel), then
  stored as 16-bit WAV (8, 11.025, 22.05, 24, 32, 44.1, 48 kHz), 24-bit / 8-bit WAV, FLAC (flac -8),
  MP3 (lame -b 128, with the LAME tag that carries encoder delay and padding; and once with -t, no tag) and
  Vorbis (oggenc -q 4).
  espeak_22050.wav (tests/fixtures/audio, espeak-ng, with digital silence) is used as it is.

Goldens (tests/fixtures/rates/<case>.safetensors):
  decoded   f32 [frames, channels]  soundfile.read(dtype="float32"), what librosa.load decodes (format cases)
  frames    i64 [1]                 decoded frame count (every case)
  wave16k   f32 [n]                 librosa.load(path, sr=16000)[0]: channel mean, soxr HQ, ceil length
  features  f32 [T, 160], mask u8 [T]   SeamlessM4TFeatureExtractor (w2v-bert-2.0 values) on wave16k
  semantic  f32 [T, 64]             checkpoints/tiny-random: (hidden_states[17] - mean) / sqrt(var), HF
  prompt.*  the same three for IndexTTS2's speaker-prompt path (librosa.load sr=22050, first 15 s,
            torchaudio.transforms.Resample(22050, 16000)), for the 44.1 / 48 kHz cases
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import librosa
import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio
from safetensors.numpy import load_file, save_file
from transformers import Wav2Vec2BertModel

import hf_reference as ref

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "rates"
CKPT = ROOT / "checkpoints" / "tiny-random"
AUDIO = ROOT / "tests" / "fixtures" / "audio"

START = 8000  # 0.5 s into arctic_a0007
RATE_SECONDS = 1.25
FORMAT_SECONDS = 0.75
NOISE_RMS = 1e-3  # -60 dBFS

# name, rate, channels, storage, seconds, keep the soundfile decode as a golden, speaker-prompt path too
CASES = [
    ("wav16_8000", 8000, 1, "PCM_16", RATE_SECONDS, False, False),
    ("wav16_11025", 11025, 1, "PCM_16", RATE_SECONDS, False, False),
    ("wav16_22050_stereo", 22050, 2, "PCM_16", RATE_SECONDS, False, False),
    ("wav16_24000", 24000, 1, "PCM_16", RATE_SECONDS, False, False),
    ("wav16_32000", 32000, 1, "PCM_16", RATE_SECONDS, False, False),
    ("wav16_44100_stereo", 44100, 2, "PCM_16", RATE_SECONDS, False, True),
    ("wav16_48000_stereo", 48000, 2, "PCM_16", RATE_SECONDS, False, True),
    ("wav24_48000", 48000, 1, "PCM_24", FORMAT_SECONDS, True, False),
    ("wav8_22050", 22050, 1, "PCM_U8", FORMAT_SECONDS, True, False),
    ("flac_44100_stereo", 44100, 2, "flac", FORMAT_SECONDS, True, False),
    ("mp3_44100_stereo", 44100, 2, "mp3", FORMAT_SECONDS, True, False),
    ("mp3_24000", 24000, 1, "mp3", FORMAT_SECONDS, True, False),
    ("mp3_notag_22050", 22050, 1, "mp3_notag", FORMAT_SECONDS, True, False),
    ("vorbis_48000_stereo", 48000, 2, "vorbis", FORMAT_SECONDS, True, False),
]
EXT = {"flac": "flac", "mp3": "mp3", "mp3_notag": "mp3", "vorbis": "ogg"}


def source_signal(arctic16, rate, channels, seconds, seed):
    """[frames, channels] float64: speech at `rate` plus the noise floor."""
    n16 = int(round(seconds * 16000))
    seg = arctic16[START : START + n16].astype(np.float64)
    x = seg if rate == 16000 else soxr.resample(seg, 16000, rate, quality="VHQ")
    rng = np.random.default_rng(seed)
    chans = [x + NOISE_RMS * rng.standard_normal(len(x))]
    if channels == 2:
        d = int(0.003 * rate)
        right = 0.7 * np.concatenate([np.zeros(d), x[: len(x) - d]])
        chans.append(right + NOISE_RMS * rng.standard_normal(len(x)))
    return np.clip(np.stack(chans, 1), -1.0, 1.0 - 2.0**-15)


def write_input(path, sig, rate, storage):
    if storage.startswith("PCM_"):
        sf.write(path, sig, rate, subtype=storage)
        return
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "in.wav")
        sf.write(wav, sig, rate, subtype="PCM_16")
        cmd = {
            "flac": ["flac", "-s", "-f", "-8", "-o", str(path), wav],
            "mp3": ["lame", "--quiet", "-b", "128", wav, str(path)],
            # No Xing/LAME tag, so no gapless info: decoder delay and padding stay in, for libsndfile and for us.
            "mp3_notag": ["lame", "--quiet", "-t", "-b", "128", wav, str(path)],
            "vorbis": ["oggenc", "-Q", "-q", "4", "--serial", "1", "-o", str(path), wav],
        }[storage]
        subprocess.run(cmd, check=True)


class Reference:
    """librosa.load + the HF extractor + the tiny checkpoint, as IndexTTS2 runs them."""

    def __init__(self, with_model=True):
        self.fe = ref.extractor()
        self.model = None
        if with_model:
            self.model = Wav2Vec2BertModel.from_pretrained(str(CKPT)).eval()
            stats = load_file(str(CKPT / "wav2vec2bert_stats.safetensors"))
            self.mean = torch.from_numpy(stats["mean"])
            self.std = torch.sqrt(torch.from_numpy(stats["var"]))

    def features(self, wave16k):
        f = self.fe(wave16k, sampling_rate=16000, return_tensors="np")
        return f["input_features"][0].astype(np.float32), f["attention_mask"][0].astype(np.uint8)

    @torch.inference_mode()
    def semantic(self, feats, mask):
        hs = ref.hidden_states(self.model, feats[None], mask[None].astype(np.int64))
        return ((torch.from_numpy(hs[17][0]) - self.mean) / self.std).numpy()


def direct16k(path):
    """librosa.load(path, sr=16000): what IndexTTS2's emotion prompt and MaskGCT read."""
    wav, _ = librosa.load(path, sr=16000)
    return wav


def speaker_prompt16k(path):
    """IndexTTS2 infer_v2.py: librosa.load(path) (22.05 kHz), first 15 s, torchaudio Resample to 16 kHz."""
    audio, sr = librosa.load(path)
    audio = torch.tensor(audio).unsqueeze(0)[:, : int(15 * sr)]
    return torchaudio.transforms.Resample(sr, 16000)(audio)[0].numpy()


def goldens_for(path, r, decoded_golden, prompt):
    t = {}
    dec, _ = sf.read(path, dtype="float32", always_2d=True)
    t["frames"] = np.array([dec.shape[0]], dtype=np.int64)
    if decoded_golden:
        t["decoded"] = dec
    paths = [("", direct16k)] + ([("prompt.", speaker_prompt16k)] if prompt else [])
    for prefix, load in paths:
        w = load(str(path))
        feats, mask = r.features(w)
        t[prefix + "wave16k"] = w
        t[prefix + "features"] = feats
        t[prefix + "mask"] = mask
        if r.model is not None:
            t[prefix + "semantic"] = r.semantic(feats, mask)
    return {k: np.ascontiguousarray(v) for k, v in t.items()}


def all_inputs():
    """(case name, input path, keep decoded, speaker-prompt path) for every committed input."""
    out = [(c[0], OUT / f"{c[0]}.{EXT.get(c[3], 'wav')}", c[5], c[6]) for c in CASES]
    out.append(("espeak_22050", AUDIO / "espeak_22050.wav", False, False))
    return out


def dump(dir_):
    """Per case: <case>.wave16k.npy (librosa.load sr=16000) and <case>.features.npy / .mask.npy (HF fbank), the
    reference inputs of a full-size semantic check (run the full-size model on features.npy)."""
    d = pathlib.Path(dir_)
    d.mkdir(parents=True, exist_ok=True)
    r = Reference(with_model=False)
    for name, path, _, prompt in all_inputs():
        g = goldens_for(path, r, False, prompt)
        for k in ["wave16k", "features", "mask"] + (["prompt.wave16k", "prompt.features", "prompt.mask"] if prompt else []):
            np.save(d / f"{name}.{k}.npy", g[k])
        print(name, path.name, g["wave16k"].shape, g["features"].shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio-dir", default=str(ROOT.parent / "shared" / "audio"))
    ap.add_argument("--dump", help="only write reference inputs (.npy) for every case into this directory")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.dump:
        dump(args.dump)
        return
    for tool in ["lame", "oggenc", "flac"]:
        assert shutil.which(tool), f"{tool} not found (apt-get install lame vorbis-tools flac)"
    OUT.mkdir(parents=True, exist_ok=True)
    arctic, sr = sf.read(os.path.join(args.audio_dir, "arctic_a0007.wav"), dtype="float32")
    assert sr == 16000
    for i, (name, rate, ch, storage, secs, _, _) in enumerate(CASES):
        write_input(OUT / f"{name}.{EXT.get(storage, 'wav')}", source_signal(arctic, rate, ch, secs, 1000 + i), rate, storage)
    r = Reference()
    meta = {
        "librosa": librosa.__version__,
        "soxr": soxr.__version__,
        "libsoxr": soxr.__libsoxr_version__,
        "soundfile": sf.__version__,
        "libsndfile": sf.__libsndfile_version__,
        "numpy": np.__version__,
        **{k: str(v) for k, v in ref.versions().items()},
    }
    manifest = {}
    for name, path, keep, prompt in all_inputs():
        g = goldens_for(path, r, keep, prompt)
        info = sf.info(str(path))
        m = dict(meta, file=path.name, rate=str(info.samplerate), channels=str(info.channels), format=info.format,
                 subtype=info.subtype)
        save_file(g, str(OUT / f"{name}.safetensors"), metadata=m)
        manifest[name] = {"file": str(path.relative_to(ROOT / "tests" / "fixtures")), "rate": info.samplerate,
                          "channels": info.channels, "format": f"{info.format}/{info.subtype}", "prompt": prompt}
        print(f"{name}: {info.samplerate} Hz x{info.channels} {info.format}/{info.subtype}, frames "
              f"{g['frames'][0]}, 16 kHz {len(g['wave16k'])}, T {g['features'].shape[0]}")
    with open(OUT / "manifest.json", "w") as f:
        json.dump({"versions": meta, "cases": manifest}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
