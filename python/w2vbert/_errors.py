"""Exceptions raised by w2vbert. Every message is the engine's, naming the file and the tensor or field.

All derive from :class:`Error`; each also derives from the built-in exception a caller would catch for it
(``ValueError`` for bad input, ``FileNotFoundError`` for a missing file), so ``except ValueError`` keeps working.
"""


class Error(Exception):
    """Base class of every error raised by w2vbert."""


class AudioError(Error, ValueError):
    """Audio that cannot be used: undecodable or empty file, too short, NaN/Inf samples, an array of the wrong
    dtype or shape, a missing or impossible sample rate."""


class CheckpointError(Error, ValueError):
    """A malformed config.json, weights or stats file (the message names the file and the field or tensor)."""


class RequestError(Error, ValueError):
    """A request that cannot be served: a layer the checkpoint does not have, semantic() without layer 17,
    an unknown precision, threads=0."""


class FileError(Error, OSError):
    """A file that cannot be opened or read."""


class MissingFileError(FileError, FileNotFoundError):
    """A file (audio, config.json, weights, stats) that does not exist."""


class InternalError(Error, RuntimeError):
    """A bug: the engine panicked. The panic was caught and did not cross into Python; please report it."""
