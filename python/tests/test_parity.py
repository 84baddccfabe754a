"""The package gives the CLI's arrays and HF's: path vs array bit for bit, the CLI's .npy / .safetensors bit for
bit, HF transformers 4.52.1 + IndexTTS2 stats (committed goldens) within rel L2 1e-5."""

import os
import pathlib

import numpy as np
import pytest

import w2vbert
from conftest import AUDIO, GOLDEN, TINY, bits, read_safetensors, read_wav_int16, rel_l2

ARCTIC = AUDIO / "arctic_a0007.wav"  # 16 kHz mono int16
ESPEAK = AUDIO / "espeak_22050.wav"  # 22.05 kHz mono int16: the resampler runs
STEREO = AUDIO / "dec_stereo.wav"  # 16 kHz stereo int16: channels are averaged


class FsPath:
    """A minimal os.PathLike that is not a pathlib.Path."""

    def __init__(self, p):
        self.p = str(p)

    def __fspath__(self):
        return self.p


@pytest.mark.parametrize("wav", [ARCTIC, ESPEAK, STEREO], ids=lambda p: p.name)
def test_path_and_arrays_give_the_same_bits(extractor, wav):
    from_path = extractor.semantic(str(wav))
    assert from_path.dtype == np.float32 and from_path.shape[1] == extractor.hidden_size
    assert np.abs(from_path).max() > 0
    x, rate = read_wav_int16(wav)
    arrays = {
        "int16": x,
        "float32": x.astype(np.float32) / np.float32(32768),
        "float64": x.astype(np.float64) / 32768,
        # A strided view (every channel of [samples, channels] transposed): any strides are accepted.
        "strided": np.ascontiguousarray(x.T).T,
    }
    if x.shape[0] == 1:
        arrays["1-D"] = x[0]
    for what, a in arrays.items():
        got = extractor.semantic(a, sample_rate=rate)
        assert got.shape == from_path.shape, what
        assert np.array_equal(bits(got), bits(from_path)), what
    for p in (pathlib.Path(wav), FsPath(wav)):
        assert np.array_equal(bits(extractor.semantic(p)), bits(from_path))


def test_semantic_equals_the_cli_npy(extractor, run_cli):
    out = run_cli("--checkpoint", TINY, ARCTIC, ESPEAK)
    for wav in (ARCTIC, ESPEAK):
        cli = np.load(out / (wav.stem + ".npy"))
        assert np.array_equal(bits(extractor.semantic(wav)), bits(cli)), wav.name


def test_hidden_states_equal_the_cli_safetensors(run_cli):
    ex = w2vbert.Extractor(TINY, layers=[0, 17, 24, 17])
    assert ex.layers == [0, 17, 24]
    got = ex.hidden_states(ESPEAK)
    assert sorted(got) == [0, 17, 24]
    cli = read_safetensors(run_cli("--checkpoint", TINY, "--layers", "0,17,24", ESPEAK) / "espeak_22050.safetensors")
    for k in (0, 17, 24):
        assert np.array_equal(bits(got[k]), bits(cli[f"hidden_states.{k}"])), k
    assert np.array_equal(bits(ex.semantic(ESPEAK)), bits(cli["semantic"]))


def test_fbank_equals_the_cli_features(run_cli):
    feats, mask = w2vbert.fbank(ESPEAK)
    cli = np.load(run_cli("--features-only", ESPEAK) / "espeak_22050.npy")
    assert feats.shape == cli.shape and feats.shape[1] == 160
    assert np.array_equal(bits(feats), bits(cli))
    assert mask.dtype == np.int32 and mask.shape == (feats.shape[0],)
    x, rate = read_wav_int16(ESPEAK)
    f2, m2 = w2vbert.fbank(x[0], sample_rate=rate)
    assert np.array_equal(bits(f2), bits(feats)) and np.array_equal(m2, mask)


def test_against_hf_goldens(extractor):
    """HF SeamlessM4TFeatureExtractor + Wav2Vec2BertModel hidden_states[17] + (h - mean) / sqrt(var) on
    arctic_a0007.wav (scripts/make_encoder_goldens.py, transformers 4.52.1): what IndexTTS2's get_emb returns."""
    g = read_safetensors(GOLDEN)
    feats, mask = w2vbert.fbank(ARCTIC)
    assert rel_l2(feats, g["single_even.input_features"]) <= 1e-5
    assert np.array_equal(mask, g["single_even.mask"].astype(np.int32))
    sem = extractor.semantic(ARCTIC)
    want = g["single_even.semantic"]
    assert sem.shape == want.shape
    rel = rel_l2(sem, want)
    print(f"semantic vs HF: rel L2 {rel:.2e}")
    assert rel <= 1e-5
    # Normalization really happened: the raw layer is far from it.
    assert rel_l2(sem, g["single_even.hidden_states.17"]) > 0.1
    ex = w2vbert.Extractor(TINY, layers=[1, 17, 24])
    hs = ex.hidden_states(ARCTIC)
    for k in (1, 17, 24):
        assert rel_l2(hs[k], g[f"single_even.hidden_states.{k}"]) <= 1e-5, k


def test_indextts2_snippet_matches_hf(extractor):
    """The README's drop-in: IndexTTS2 holds the 16 kHz prompt as a [1, N] float32 tensor (audio_16k);
    semantic(audio_16k[0]) replaces extract_features(...) + get_emb(...) (which returns [1, T, 1024])."""
    g = read_safetensors(GOLDEN)
    x, rate = read_wav_int16(ARCTIC)
    assert rate == 16000
    audio_16k = x.astype(np.float32) / np.float32(32768)  # [1, N], as librosa / torchaudio give it
    spk_cond_emb = extractor.semantic(audio_16k[0], sample_rate=16000)[None]  # [1, T, C]
    assert rel_l2(spk_cond_emb[0], g["single_even.semantic"]) <= 1e-5
    # And given as the [1, N] 2-D array itself (one channel).
    assert np.array_equal(bits(extractor.semantic(audio_16k, sample_rate=16000)), bits(spk_cond_emb[0]))


def test_semantic_batch_equals_single_calls(extractor):
    x, rate = read_wav_int16(ESPEAK)
    items = [ARCTIC, x[0], str(STEREO)]
    got = extractor.semantic_batch(items, sample_rate=rate)
    assert len(got) == 3
    want = [extractor.semantic(ARCTIC), extractor.semantic(x[0], sample_rate=rate), extractor.semantic(STEREO)]
    for i, (a, b) in enumerate(zip(got, want)):
        assert np.array_equal(bits(a), bits(b)), i
    assert extractor.semantic_batch([]) == []


def test_threads_option_gives_the_same_bits(extractor):
    ex1 = w2vbert.Extractor(TINY, threads=1)
    assert "threads=1" in repr(ex1)
    assert np.array_equal(bits(ex1.semantic(ESPEAK)), bits(extractor.semantic(ESPEAK)))


def test_defaults(extractor):
    assert extractor.layers == [w2vbert.SEMANTIC_LAYER] == [17]
    assert extractor.precision == "fp32"
    assert extractor.hidden_size == 64
    assert pathlib.Path(extractor.stats) == TINY / "wav2vec2bert_stats.safetensors"
    explicit = w2vbert.Extractor(os.fspath(TINY), stats=TINY / "wav2vec2bert_stats.safetensors")
    assert np.array_equal(bits(explicit.semantic(ARCTIC)), bits(extractor.semantic(ARCTIC)))


def test_bf16_is_close_to_fp32_and_packed_batches_match(extractor):
    """precision="bf16": within the engine's bf16 bound of fp32 (the Rust tests bound it against HF), the same
    bits for an item alone and inside semantic_batch's packed call; on a CPU without a bf16 matmul it says so."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ex = w2vbert.Extractor(TINY, precision="bf16")
    if ex.precision == "fp32":
        assert any("bf16" in str(w.message) for w in caught), "bf16 fell back to fp32 without a warning"
        return
    assert ex.precision == "bf16"
    a = ex.semantic(ARCTIC)
    ref = extractor.semantic(ARCTIC)
    rel = np.linalg.norm(a.astype(np.float64) - ref) / np.linalg.norm(ref)
    assert 0 < rel < 3e-2, rel
    batch = ex.semantic_batch([ESPEAK, ARCTIC])
    assert np.array_equal(bits(batch[1]), bits(a))
