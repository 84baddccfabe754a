"""Bad input raises a Python exception carrying the engine's message (file / tensor / field named); a panic
inside the engine becomes w2vbert.InternalError."""

import shutil

import numpy as np
import pytest

import w2vbert
from conftest import AUDIO, TINY, read_wav_int16

ARCTIC = AUDIO / "arctic_a0007.wav"


@pytest.fixture(scope="module")
def arctic():
    x, rate = read_wav_int16(ARCTIC)
    return x[0].astype(np.float32) / np.float32(32768), rate


def test_missing_audio_file(extractor, tmp_path):
    p = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav") as e:
        extractor.semantic(p)
    assert isinstance(e.value, w2vbert.MissingFileError) and isinstance(e.value, w2vbert.Error)
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        w2vbert.fbank(str(p))
    with pytest.raises(w2vbert.AudioError, match="not a regular file"):
        extractor.semantic(tmp_path)


def test_undecodable_audio_file(extractor, tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"RIFF this is not audio at all" * 10)
    with pytest.raises(w2vbert.AudioError, match="junk.wav"):
        extractor.semantic(p)


def test_a_wav_declaring_0_hz_is_an_audio_error_for_that_item(extractor, tmp_path):
    """The pinned fuzz input that made symphonia panic: refused as AudioError naming the file and the field,
    alone and as one item of a batch; the extractor keeps working."""
    pinned = AUDIO.parents[2] / "fuzz" / "regressions" / "audio" / "wav_fmt_sample_rate_0hz_timebase_panic"
    zero = tmp_path / "zero.wav"
    zero.write_bytes(pinned.read_bytes()[1:])
    with pytest.raises(w2vbert.AudioError, match="zero.wav.*sample rate is 0 Hz"):
        extractor.semantic(zero)
    with pytest.raises(w2vbert.AudioError, match="zero.wav.*sample rate is 0 Hz"):
        w2vbert.fbank(str(zero))
    with pytest.raises(w2vbert.AudioError, match="audios\\[1\\].*zero.wav.*0 Hz"):
        extractor.semantic_batch([ARCTIC, zero, ARCTIC])
    assert extractor.semantic(ARCTIC).shape[1] == extractor.hidden_size


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        w2vbert.Extractor(tmp_path / "no-such-checkpoint")


def test_malformed_checkpoint_names_the_file_and_field(tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(TINY, ck)
    (ck / "config.json").write_text('{"hidden_size": "big"}')
    with pytest.raises(w2vbert.CheckpointError, match="config.json") as e:
        w2vbert.Extractor(ck)
    assert isinstance(e.value, ValueError)


def test_missing_stats(tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(TINY, ck)
    (ck / "wav2vec2bert_stats.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="wav2vec2bert_stats.safetensors"):
        w2vbert.Extractor(ck)
    with pytest.raises(FileNotFoundError, match="elsewhere.safetensors"):
        w2vbert.Extractor(TINY, stats=tmp_path / "elsewhere.safetensors")
    # Raw hidden states need no stats; semantic() then says why it cannot run.
    ex = w2vbert.Extractor(ck, layers=[8, 24])
    assert ex.stats is None
    assert sorted(ex.hidden_states(ARCTIC)) == [8, 24]
    with pytest.raises(w2vbert.RequestError, match="layers=\\[8, 24\\]"):
        ex.semantic(ARCTIC)


def test_malformed_stats_names_the_tensor(tmp_path):
    bad = tmp_path / "stats.safetensors"
    shutil.copy(TINY / "model.safetensors", bad)  # a valid safetensors file without `mean` / `var`
    with pytest.raises(w2vbert.CheckpointError, match="mean"):
        w2vbert.Extractor(TINY, stats=bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(precision="fp16"), "precision 'fp16'|precision \"fp16\""),
        (dict(threads=0), "threads must be 1 to 1024.*got 0"),
        (dict(threads=-3), "threads must be 1 to 1024.*got -3"),
        (dict(threads=100000), "threads must be 1 to 1024.*got 100000"),
        (dict(layers=[99]), "hidden_states\\[99\\].*config.json"),
        (dict(layers=[-1]), "negative"),
        (dict(layers=[]), "at least one"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        w2vbert.Extractor(TINY, **kwargs)
    assert isinstance(e.value, w2vbert.Error)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x: x.astype(np.int32), "dtype.*int32"),
        (lambda x: x.astype(np.float16), "dtype.*float16"),
        (lambda x: x.astype(np.complex64), "dtype.*complex64"),
        (lambda x: x.reshape(1, 1, -1), "3-D"),
        (lambda x: np.array(0.5, np.float32), "0-D"),
        (lambda x: np.stack([x, x], axis=1), "\\[channels, samples\\].*\\.T"),  # [samples, 2]: transposed
        (lambda x: np.zeros((17, 16000), np.float32), "1..=16 channels"),
        (lambda x: np.zeros((0, 16000), np.float32), "1..=16 channels"),
        (lambda x: x[:100], "too short"),
        (lambda x: np.zeros(0, np.float32), "too short"),
        (lambda x: x.tolist(), "numpy.ndarray.*list"),
    ],
)
def test_bad_arrays(extractor, arctic, make, match):
    x, rate = arctic
    with pytest.raises(w2vbert.AudioError, match=match) as e:
        extractor.semantic(make(x), sample_rate=rate)
    assert isinstance(e.value, ValueError)


def test_non_finite_samples(extractor, arctic):
    x = arctic[0].copy()
    x[1234] = np.nan
    with pytest.raises(w2vbert.AudioError, match="input sample 1234 is NaN"):
        extractor.semantic(x, sample_rate=16000)


def test_sample_rate_rules(extractor, arctic):
    x, _ = arctic
    with pytest.raises(w2vbert.AudioError, match="sample_rate is required"):
        extractor.semantic(x)
    for bad in (0, -16000, 16000.5, "16000"):
        with pytest.raises(w2vbert.AudioError, match="sample_rate"):
            extractor.semantic(x, sample_rate=bad)
    with pytest.raises(w2vbert.AudioError, match="1..=.*Hz"):
        extractor.semantic(x, sample_rate=10**9)
    with pytest.raises(w2vbert.AudioError, match="file path"):
        extractor.semantic(ARCTIC, sample_rate=16000)


def test_batch_errors_name_the_item(extractor, arctic, tmp_path):
    x, rate = arctic
    with pytest.raises(FileNotFoundError, match="audios\\[1\\].*gone.wav"):
        extractor.semantic_batch([ARCTIC, tmp_path / "gone.wav"])
    with pytest.raises(w2vbert.AudioError, match="audios\\[2\\].*dtype"):
        extractor.semantic_batch([x, x, x.astype(np.int32)], sample_rate=rate)
    with pytest.raises(w2vbert.AudioError, match="audios\\[0\\].*too short"):
        extractor.semantic_batch([x[:10]], sample_rate=rate)


def test_a_panic_becomes_internal_error(extractor):
    with pytest.raises(w2vbert.InternalError, match="deliberate test panic") as e:
        w2vbert._w2vbert._panic_for_test("deliberate test panic")
    # An ordinary Exception (PyO3's own PanicException is a BaseException that `except Exception` misses).
    assert isinstance(e.value, Exception) and isinstance(e.value, w2vbert.Error)
    # The extractor still works afterwards.
    assert extractor.semantic(ARCTIC).shape[1] == 64
