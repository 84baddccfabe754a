"""Parity figures shared by the comparison scripts (numpy only, so a light orchestrator can import it without
torch)."""
import numpy as np


def stats(a, b):
    """`a` against the reference `b` (same shape): relative L2, max-abs, cosine of the flattened arrays and, for
    2-D `[T, hidden]` outputs, the worst per-frame cosine."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} vs reference {b.shape}")
    fa, fb = a.ravel(), b.ravel()
    out = {
        "rel_l2": float(np.linalg.norm(fa - fb) / np.linalg.norm(fb)),
        "max_abs": float(np.abs(fa - fb).max()),
        "cosine": float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb))),
    }
    if a.ndim == 2:
        frame = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out["worst_frame_cosine"] = float(frame.min())
    return out
