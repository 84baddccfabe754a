"""Shared helpers for the golden/parity scripts: the HF reference exactly as IndexTTS2 runs it.

Pinned versions: scripts/requirements.txt (transformers 4.52.1, torch 2.7.1, CPU, fp32).
Nothing here is used by tests or CI; the scripts write small committed fixtures.
"""
import math

import numpy as np
import soundfile as sf
import torch
import transformers
from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

assert transformers.__version__ == "4.52.1", f"need transformers 4.52.1, have {transformers.__version__}"


def extractor():
    """facebook/w2v-bert-2.0's preprocessor_config.json values (from_pretrained needs the hub)."""
    return SeamlessM4TFeatureExtractor(
        feature_size=80,
        num_mel_bins=80,
        sampling_rate=16000,
        padding_value=1.0,
        stride=2,
        return_attention_mask=True,
    )


def read_wav_16k(path):
    """A 16 kHz file as float32 in [-1, 1) (int16 / 32768, as soundfile and our decoder do)."""
    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 16000, f"{path}: {sr} Hz"
    return wav.mean(axis=1).astype(np.float32)


def read_resampled_16k(path):
    """Any file through librosa.load(sr=16000) (soxr HQ), the way IndexTTS2 / MaskGCT read prompts."""
    import librosa

    wav, _ = librosa.load(path, sr=16000)
    return wav.astype(np.float32)


def perturb_(model: torch.nn.Module, seed: int):
    """Seeded random weights that make every op visible in the output: LayerNorm weights 1 + 0.2·N and biases
    0.2·N, distance embeddings N(0, 1) (so the relative bias matters), matrices N(0, 1/fan_in), biases 0.1·N."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "layer_norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * r)
            elif "layer_norm" in name and name.endswith(".bias"):
                p.copy_(0.2 * r)
            elif "distance_embedding" in name:
                p.copy_(r)
            elif p.dim() >= 2:
                p.copy_(r / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.1 * r)


def random_model(cfg: Wav2Vec2BertConfig, seed: int, storage_dtype=torch.float32):
    """A Wav2Vec2BertModel with perturb_ weights, rounded to storage_dtype (so the f32 reference runs on exactly
    the values the saved file holds), in eval mode, fp32."""
    torch.manual_seed(seed)
    model = Wav2Vec2BertModel(cfg)
    perturb_(model, seed)
    if storage_dtype != torch.float32:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(storage_dtype).to(torch.float32))
    return model.eval()


def save_checkpoint(model, out_dir, storage_dtype=torch.float32):
    """config.json + model.safetensors in the HF layout (save_pretrained), weights in storage_dtype."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out_dir)
    sd = {k: v.detach().to(storage_dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})


@torch.inference_mode()
def hidden_states(model, feats, mask, autocast_dtype=None):
    """All hidden states as IndexTTS2's get_emb computes them (output_hidden_states=True, with the mask), as
    float32 arrays. `autocast_dtype` (e.g. torch.bfloat16) runs the model under torch.autocast("cpu", dtype)."""
    with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = model(
            input_features=torch.from_numpy(feats),
            attention_mask=torch.from_numpy(mask),
            output_hidden_states=True,
        )
    return [h.float().numpy() for h in out.hidden_states]


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__}
