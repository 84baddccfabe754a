"""One Extractor called from several Python threads at once: correct results, and the GIL is released while
the engine computes."""

import sys
import threading
import time

import numpy as np

import w2vbert
from conftest import AUDIO, TINY, bits, read_wav_int16

ARCTIC = AUDIO / "arctic_a0007.wav"
ESPEAK = AUDIO / "espeak_22050.wav"


def run_together(fns):
    """Run every fn in its own thread, all released at once by a barrier; return their results."""
    barrier = threading.Barrier(len(fns))
    results, errors = [None] * len(fns), []

    def worker(i, fn):
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_two_threads_share_one_extractor():
    for ex in (w2vbert.Extractor(TINY), w2vbert.Extractor(TINY, threads=2)):
        x, rate = read_wav_int16(ESPEAK)
        want_a, want_b = ex.semantic(ARCTIC), ex.semantic(x[0], sample_rate=rate)
        for _ in range(3):
            a, b = run_together([lambda: ex.semantic(ARCTIC), lambda: ex.semantic(x[0], sample_rate=rate)])
            assert np.array_equal(bits(a), bits(want_a))
            assert np.array_equal(bits(b), bits(want_b))


def test_the_gil_is_released_while_computing(extractor):
    """With a long switch interval the main thread never hands the GIL over by itself: a spinning thread can
    only advance while the engine runs if the engine released the GIL."""
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1
            time.sleep(0)  # hands the GIL back, so the main thread never waits for the switch interval

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    t = threading.Thread(target=spin)
    try:
        t.start()
        before = count[0]
        extractor.semantic(ESPEAK)
        during = count[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        t.join()
    assert during > 0
