"""w2vbert: Wav2Vec2-BERT 2.0 on CPU, a drop-in for IndexTTS2's / MaskGCT's semantic model.

    import w2vbert
    ex = w2vbert.Extractor("checkpoints/w2v-bert-2.0")   # stats: <checkpoint>/wav2vec2bert_stats.safetensors
    feat = ex.semantic("prompt.wav")                     # numpy float32 [T, 1024], (h17 - mean) / sqrt(var)

See python/README.md for the API, the accepted audio and the IndexTTS2 snippet.
"""

from ._errors import (
    AudioError,
    CheckpointError,
    Error,
    FileError,
    InternalError,
    MissingFileError,
    RequestError,
)
from ._w2vbert import MAX_CHANNELS, SEMANTIC_LAYER, Extractor, __version__, fbank

__all__ = [
    "Extractor",
    "fbank",
    "SEMANTIC_LAYER",
    "MAX_CHANNELS",
    "Error",
    "AudioError",
    "CheckpointError",
    "RequestError",
    "FileError",
    "MissingFileError",
    "InternalError",
    "__version__",
]
