"""Full-size check: a seeded random checkpoint at the real facebook/w2v-bert-2.0 config (580M parameters, f32,
written by transformers), HF vs `w2vbert-infer` on 13 s of real speech, in one run:
parity of hidden_states[17] and of the semantic features, and speed as a ratio.

    cargo build --release --examples
    python scripts/fullsize_parity.py [--runs 3] [--threads 2] [--seconds 60]

--seconds N repeats the speech up to N seconds (long inputs are where HF's [T, T, 64] bias tensor hurts). Peak
RSS is reported for both sides: HF's is this process's peak (model + activations), Rust's the CLI child's.

Writes checkpoints/w2v-bert-2.0-random/ (2.3 GB, git-ignored, reused when present) and out/fullsize/.
"""
import argparse
import json
import resource
import pathlib
import statistics
import subprocess
import time

import numpy as np
import soundfile as sf
import torch
from safetensors.numpy import load_file, save_file
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

import hf_reference as ref
from parity_stats import stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
CK = ROOT / "checkpoints" / "w2v-bert-2.0-random"
OUT = ROOT / "out" / "fullsize"
BIN = ROOT / "target" / "release" / "w2vbert-infer"


def make_checkpoint(ck=CK, cfg=None):
    """Seeded random weights at `cfg` (default: the real w2v-bert-2.0 config) + seeded stats, in `ck`; reused when
    present."""
    if (ck / "model.safetensors").exists() and (ck / "wav2vec2bert_stats.safetensors").exists():
        return
    t = time.time()
    cfg = cfg or Wav2Vec2BertConfig()
    model = ref.random_model(cfg, seed=2024)
    ref.save_checkpoint(model, ck)
    g = torch.Generator().manual_seed(2025)
    mean = (0.3 * torch.randn(cfg.hidden_size, generator=g)).numpy()
    var = (0.2 + torch.rand(cfg.hidden_size, generator=g)).numpy()
    save_file({"mean": mean, "var": var}, str(ck / "wav2vec2bert_stats.safetensors"))
    print(f"wrote {ck} in {time.time() - t:.1f} s")


def make_audio(seconds, out=OUT):
    """espeak (librosa soxr HQ to 16 kHz) + arctic_a0007 (13.1 s of speech), repeated up to `seconds`, saved as
    float32 WAV in `out` so both sides read the very same samples."""
    audio = ROOT / "tests" / "fixtures" / "audio"
    wav = np.concatenate([ref.read_resampled_16k(audio / "espeak_22050.wav"), ref.read_wav_16k(audio / "arctic_a0007.wav")])
    if seconds:
        wav = np.tile(wav, int(np.ceil(seconds * 16000 / len(wav))))[: int(seconds * 16000)]
    out.mkdir(parents=True, exist_ok=True)
    p = out / f"speech_{round(len(wav) / 16000)}s.wav"
    sf.write(p, wav, 16000, subtype="FLOAT")
    return p, sf.read(p, dtype="float32")[0]



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=0, help="repeat the speech up to this length")
    ap.add_argument("--skip-hf-17", action="store_true", help="skip the 17-layer HF timing (long inputs)")
    ap.add_argument("--f64-reference", action="store_true",
                    help="also run HF in float64 (17 layers) and report how far HF-f32 and Rust each are from it")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    make_checkpoint()
    wav_path, wav = make_audio(args.seconds)
    print(f"audio: {wav_path} ({len(wav) / 16000:.2f} s)")

    # --- HF, as IndexTTS2 runs it (extractor + all 24 layers, output_hidden_states) ---
    t = time.time()
    model = Wav2Vec2BertModel.from_pretrained(CK).eval()
    hf_load = time.time() - t
    fe = ref.extractor()
    st = load_file(str(CK / "wav2vec2bert_stats.safetensors"))
    hf_times, hf17_times = [], []
    for _ in range(args.runs):
        t = time.time()
        f = fe(wav, sampling_rate=16000, return_tensors="np")
        hs = ref.hidden_states(model, f["input_features"], f["attention_mask"])
        hf_times.append(time.time() - t)
    h17 = hs[17][0]
    # Encoder alone: the Rust encoder on HF's own input features (examples/encode_features.rs), so that the
    # front end's share of the end-to-end difference is visible.
    np.save(OUT / "hf_input_features.npy", f["input_features"][0].astype(np.float32))
    np.save(OUT / "hf_attention_mask.npy", f["attention_mask"][0].astype(np.float32))
    subprocess.run([str(ROOT / "target" / "release" / "examples" / "encode_features"), str(CK),
                    str(OUT / "hf_input_features.npy"), str(OUT / "rust_h17_from_hf_features.npy"), "17",
                    str(OUT / "hf_attention_mask.npy")], check=True)
    encoder_only = stats(np.load(OUT / "rust_h17_from_hf_features.npy"), h17)
    semantic = ((torch.from_numpy(h17) - torch.from_numpy(st["mean"])) / torch.sqrt(torch.from_numpy(st["var"]))).numpy()
    # The same with the model cut to 17 layers (the fairest HF baseline for layer-17 features).
    hf_peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    model.encoder.layers = model.encoder.layers[:17]
    for _ in range(0 if args.skip_hf_17 else args.runs):
        t = time.time()
        f = fe(wav, sampling_rate=16000, return_tensors="np")
        hs17 = ref.hidden_states(model, f["input_features"], f["attention_mask"])
        hf17_times.append(time.time() - t)
    if not args.skip_hf_17:
        assert np.array_equal(hs17[17][0], h17)
    h17_f64 = None
    if args.f64_reference:
        model = model.double()
        with torch.inference_mode():
            out = model(input_features=torch.from_numpy(f["input_features"]).double(),
                        attention_mask=torch.from_numpy(f["attention_mask"]), output_hidden_states=True)
        h17_f64 = out.hidden_states[17][0].numpy()
    del model

    # --- Rust CLI: whole process (load + decode + fbank + 17 layers + write) ---
    rs_times = []
    for _ in range(args.runs):
        t = time.time()
        r = subprocess.run(
            [str(BIN), "--checkpoint", str(CK), "--layers", "17", "--threads", str(args.threads),
             "--output-dir", str(OUT), str(wav_path), "--verbose"],
            check=True, capture_output=True, text=True,
        )
        rs_times.append(time.time() - t)
        print(r.stderr, end="")
    # The CLI prints its own peak (VmHWM) with --verbose; RUSAGE_CHILDREN would count the forked Python image.
    rs_peak_gb = float(r.stderr.split("peak RSS ")[1].split()[0])
    rs = load_file(str(OUT / wav_path.with_suffix(".safetensors").name))

    report = {
        "audio_seconds": len(wav) / 16000,
        "frames": int(h17.shape[0]),
        "hidden_states_17": stats(rs["hidden_states.17"], h17),
        "hidden_states_17_encoder_only_same_features": encoder_only,
        "semantic": stats(rs["semantic"], semantic),
        "hf_load_s": hf_load,
        "hf_24_layers_s_median": statistics.median(hf_times),
        "hf_17_layers_s_median": statistics.median(hf17_times) if hf17_times else None,
        "hf_peak_rss_gb": hf_peak_gb,
        "rust_peak_rss_gb": rs_peak_gb,
        "rust_cli_total_s_median": statistics.median(rs_times),
        "speedup_vs_hf_24": statistics.median(hf_times) / statistics.median(rs_times),
        "speedup_vs_hf_17": statistics.median(hf17_times) / statistics.median(rs_times) if hf17_times else None,
        "threads": args.threads,
        "runs": args.runs,
        **ref.versions(),
    }
    if h17_f64 is not None:
        report["f64_reference"] = {
            "hf_f32_vs_f64": stats(h17, h17_f64),
            "rust_vs_f64": stats(rs["hidden_states.17"], h17_f64),
        }
    print(json.dumps(report, indent=2))
    (OUT / f"report_{round(len(wav) / 16000)}s.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
