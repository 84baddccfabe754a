"""Corpus throughput vs Hugging Face, in one run (issue 7, item 5): N utterances of 2–6 s cut (seeded) from real
speech, HF transformers 4.52.1 one file at a time with the model cut to 17 layers (what IndexTTS2 needs; HF gains
nothing from padded batches here), against `w2vbert-infer` on the whole directory (packed batches, reader and
writer threads). Also: the Rust CLI one file per encoder call (--batch-frames 1) to show what packing buys, one
10 s file for the per-audio-second cost of a long input, and the parity of every output with HF.

    cargo build --release
    python scripts/bench_corpus.py                  # full size: seeded random checkpoint (fullsize_parity.py's)
    python scripts/bench_corpus.py --tiny --runs 1  # checkpoints/tiny-random: checks the script works
    python scripts/bench_corpus.py --bf16           # also HF bf16 autocast and `--precision bf16` (f32 and
                                                    # `convert --dtype bf16` checkpoints), parity vs HF fp32

Times are whole-job wall times: HF = reading each file + feature extractor + 17 layers + normalization (model
load excluded); Rust = the CLI process (model load, decode, fbank, encoder, writing .npy files included).
Writes out/bench_corpus/ (utterances, outputs, report.json).
"""
import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import time

import numpy as np
import soundfile as sf
import torch
from safetensors.numpy import load_file
from transformers import Wav2Vec2BertModel

import hf_reference as ref

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench_corpus"
BIN = ROOT / "target" / "release" / "w2vbert-infer"
SPEECH = [ROOT / "tests" / "fixtures" / "audio" / "arctic_a0007.wav", ROOT / "tests" / "fixtures" / "audio" / "espeak_22050.wav"]


def speech_16k():
    """The shared speech recordings at 16 kHz (librosa.load(sr=16000) for the 22.05 kHz one), concatenated."""
    parts = []
    for p in SPEECH:
        if not p.exists():  # same recordings as the test fixtures
            p = ROOT / "tests" / "fixtures" / "audio" / p.name
        parts.append(ref.read_wav_16k(p) if sf.info(p).samplerate == 16000 else ref.read_resampled_16k(p))
    return np.concatenate(parts).astype(np.float32)


def make_utterances(n, lo, hi, seed):
    """n segments of U(lo, hi) seconds at seeded offsets into the (tiled) speech, as float32 WAVs, so both sides
    read exactly the same samples."""
    rng = np.random.default_rng(seed)
    speech = speech_16k()
    speech = np.tile(speech, 4)
    d = OUT / "utts"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    paths = []
    for i in range(n):
        length = int(rng.uniform(lo, hi) * 16000)
        start = int(rng.integers(0, len(speech) - length))
        p = d / f"utt{i:03d}.wav"
        sf.write(p, speech[start:start + length], 16000, subtype="FLOAT")
        paths.append(p)
    long = OUT / "long" / "ten_seconds.wav"
    long.parent.mkdir(parents=True, exist_ok=True)
    sf.write(long, speech[:160000], 16000, subtype="FLOAT")
    return paths, long


def run_rust(ck, inputs, out, threads, extra=()):
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    r = subprocess.run([str(BIN), "--checkpoint", str(ck), "--threads", str(threads), "--json", "--quiet",
                        "--output-dir", str(out), *map(str, inputs), *extra],
                       check=True, capture_output=True, text=True)
    return time.time() - t, json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="checkpoints/tiny-random instead of the full-size one")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--max-seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bf16", action="store_true",
                    help="also time HF under torch.autocast(bfloat16) and the CLI with --precision bf16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.tiny:
        ck = ROOT / "checkpoints" / "tiny-random"
    else:
        import fullsize_parity
        fullsize_parity.make_checkpoint()
        ck = fullsize_parity.CK
    paths, long = make_utterances(args.n, args.min_seconds, args.max_seconds, args.seed)
    audio_s = sum(sf.info(p).frames for p in paths) / 16000
    print(f"{len(paths)} utterances, {audio_s:.1f} s of audio; checkpoint {ck}")

    # --- HF: one file at a time, model cut to 17 layers ---
    model = Wav2Vec2BertModel.from_pretrained(ck, torch_dtype=torch.float32).eval()
    model.encoder.layers = model.encoder.layers[:17]
    fe = ref.extractor()
    st = load_file(str(ck / "wav2vec2bert_stats.safetensors"))
    mean, std = torch.from_numpy(st["mean"]).float(), torch.sqrt(torch.from_numpy(st["var"]).float())

    def hf_pass(dtype):
        sem, times = {}, []
        for _ in range(args.runs):
            t = time.time()
            for p in paths:
                wav, _ = sf.read(p, dtype="float32")
                f = fe(wav, sampling_rate=16000, return_tensors="np")
                h17 = ref.hidden_states(model, f["input_features"], f["attention_mask"], dtype)[17][0]
                sem[p.stem] = ((torch.from_numpy(h17) - mean) / std).numpy()
            times.append(time.time() - t)
        return times, sem

    hf_times, hf_sem = hf_pass(None)
    hf_bf16_times, hf_bf16_sem = hf_pass(torch.bfloat16) if args.bf16 else ([], {})
    del model

    def worst_vs_hf(sems):
        return max(float(np.linalg.norm(sems[p.stem] - hf_sem[p.stem]) / np.linalg.norm(hf_sem[p.stem]))
                   for p in paths)

    def rust_sems(out):
        return {p.stem: np.load(out / f"{p.stem}.npy") for p in paths}

    # --- Rust: the directory (packed), one file per encoder call, and one 10 s file ---
    rs_times, rs1_times, long_times = [], [], []
    for _ in range(args.runs):
        dt, summary = run_rust(ck, [OUT / "utts"], OUT / "rust", args.threads)
        rs_times.append(dt)
        dt1, _ = run_rust(ck, [OUT / "utts"], OUT / "rust_one_at_a_time", args.threads, ["--batch-frames", "1"])
        rs1_times.append(dt1)
        dtl, long_summary = run_rust(ck, [long], OUT / "rust_long", args.threads)
        long_times.append(dtl)
    worst = worst_vs_hf(rust_sems(OUT / "rust"))
    bf16 = {}
    if args.bf16:
        # The same directory with --precision bf16: from the f32 checkpoint, and from a `convert --dtype bf16` one.
        ck16 = OUT / "ck_bf16"
        subprocess.run([str(BIN), "convert", "--checkpoint", str(ck), "--dtype", "bf16", "--output-dir", str(ck16),
                        "--force"], check=True, capture_output=True)
        b32, b16 = [], []
        for _ in range(args.runs):
            b32.append(run_rust(ck, [OUT / "utts"], OUT / "rust_bf16", args.threads, ["--precision", "bf16"]))
            b16.append(run_rust(ck16, [OUT / "utts"], OUT / "rust_bf16ck", args.threads, ["--precision", "bf16"]))
        hfb = statistics.median(hf_bf16_times)
        bf16 = {
            "hf_bf16_autocast_17_layers_one_at_a_time_s_median": hfb,
            "rust_bf16_packed_s_median": statistics.median(d for d, _ in b32),
            "rust_bf16_ck_packed_s_median": statistics.median(d for d, _ in b16),
            "rust_bf16_peak_rss_bytes": b32[-1][1]["peak_rss_bytes"],
            "rust_bf16_ck_peak_rss_bytes": b16[-1][1]["peak_rss_bytes"],
            "rust_bf16_speedup_vs_hf_bf16": hfb / statistics.median(d for d, _ in b32),
            "rust_bf16_ck_speedup_vs_hf_bf16": hfb / statistics.median(d for d, _ in b16),
            "worst_semantic_rel_l2_vs_hf_fp32": {
                "hf_bf16_autocast": worst_vs_hf(hf_bf16_sem),
                "rust_bf16": worst_vs_hf(rust_sems(OUT / "rust_bf16")),
                "rust_bf16_ck": worst_vs_hf(rust_sems(OUT / "rust_bf16ck")),
            },
        }
    hf, rs, rs1, lg = (statistics.median(x) for x in (hf_times, rs_times, rs1_times, long_times))
    report = {
        "checkpoint": str(ck),
        "utterances": len(paths),
        "audio_seconds": audio_s,
        "threads": args.threads,
        "runs": args.runs,
        "hf_17_layers_one_at_a_time_s_median": hf,
        "rust_packed_s_median": rs,
        "rust_one_per_call_s_median": rs1,
        "speedup_vs_hf": hf / rs,
        "packing_gain": rs1 / rs,
        "rust_stages_last_run": summary["stages"],
        "rust_peak_rss_bytes": summary["peak_rss_bytes"],
        "rust_s_per_audio_s_short": rs / audio_s,
        "rust_s_per_audio_s_one_10s_file": lg / long_summary["audio_seconds"],
        # Encoder seconds per audio second, model load and I/O excluded: short packed files vs one 10 s file.
        "rust_encoder_s_per_audio_s_short": summary["stages"]["encoder"] / summary["audio_seconds"],
        "rust_encoder_s_per_audio_s_one_10s_file": long_summary["stages"]["encoder"] / long_summary["audio_seconds"],
        "worst_semantic_rel_l2_vs_hf": worst,
        **bf16,
        **ref.versions(),
    }
    print(json.dumps(report, indent=2))
    (OUT / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
