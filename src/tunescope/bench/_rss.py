"""Peak resident memory of this process over a block, sampled every millisecond by a background thread (shared by
the benchmarks that report a peak-RSS ratio)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """`with peak_rss() as peak:` ... `peak[0]` is the largest RSS in bytes seen from entry to exit (the entry RSS
    included)."""
    import psutil

    proc = psutil.Process()
    peak, stop = [proc.memory_info().rss], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
