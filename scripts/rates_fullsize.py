"""Full-size check of every rate/format golden (issue 9): HF transformers 4.52.1 on the golden's HF fbank
(librosa.load → SeamlessM4TFeatureExtractor, committed in tests/fixtures/rates/<case>.safetensors) with the seeded
full-size checkpoint cut to 17 layers, against `w2vbert-infer --layers 17` end to end from the audio file (the
speaker-prompt cases with --indextts2-speaker-prompt). Prints rel L2 / max-abs / cosine of hidden_states[17] and of
the semantic features per case.

    cargo build --release
    python scripts/rates_fullsize.py [--checkpoint checkpoints/w2v-bert-2.0-random]
"""
import argparse
import json
import pathlib
import subprocess
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import Wav2Vec2BertModel

import fullsize_parity as fp
from parity_stats import stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATES = ROOT / "tests" / "fixtures" / "rates"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(fp.CK))
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "w2vbert-infer"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ck = pathlib.Path(args.checkpoint)
    cases = json.loads((RATES / "manifest.json").read_text())["cases"]
    model = Wav2Vec2BertModel.from_pretrained(ck).eval()
    model.encoder.layers = model.encoder.layers[:17]
    st = load_file(str(ck / "wav2vec2bert_stats.safetensors"))
    rows = []
    with tempfile.TemporaryDirectory() as out:
        # Every case through librosa.load(sr=16000); the cases marked "prompt" also through IndexTTS2's
        # speaker-prompt path (their goldens hold it under "prompt.*").
        for prompt in (False, True):
            names = [n for n, c in cases.items() if c["prompt"] or not prompt]
            files = [str(ROOT / "tests" / "fixtures" / cases[n]["file"]) for n in names]
            cmd = [args.bin, "--checkpoint", str(ck), "--layers", "17", "--threads", str(args.threads), "--quiet",
                   "--output-dir", f"{out}/{int(prompt)}", *files] + (["--indextts2-speaker-prompt"] if prompt else [])
            subprocess.run(cmd, check=True)
            key = "prompt." if prompt else ""
            for n in names:
                g = load_file(str(RATES / f"{n}.safetensors"))
                with torch.inference_mode():
                    hs = model(input_features=torch.from_numpy(g[key + "features"][None]),
                               attention_mask=torch.from_numpy(g[key + "mask"][None].astype(np.int32)),
                               output_hidden_states=True).hidden_states[17][0].numpy()
                sem = (hs - st["mean"]) / np.sqrt(st["var"])
                ours = load_file(f"{out}/{int(prompt)}/{pathlib.Path(cases[n]['file']).stem}.safetensors")
                rows.append((n + (" (speaker prompt)" if prompt else ""), stats(ours["hidden_states.17"], hs),
                             stats(ours["semantic"], sem)))
    print("| case | h17 rel L2 | h17 max-abs | semantic rel L2 | semantic cosine |")
    print("|---|---|---|---|---|")
    for n, h, s in rows:
        print(f"| {n} | {h['rel_l2']:.2e} | {h['max_abs']:.2e} | {s['rel_l2']:.2e} | {s['cosine']:.7f} |")


if __name__ == "__main__":
    main()
