"""Freed memory given back to the system while a run goes on, in every process that does its work.

glibc keeps the pages of freed blocks that lie between blocks still in use, and a run frees a lot
that way: a song's decoded audio and spectrogram chunks in a worker, every stage's share of the
elements in DirectRunner's launcher and workers. Each process's memory so climbed with the size of
the run (at IMEMNet-C's full size the launcher and each worker kept 0.1-0.2 GB more than at 10 %)
though what they held did not. ``malloc_trim`` returns those pages; asked every couple of seconds
by a daemon thread, it lowered the full-size rehearsal's peak by a tenth at no measurable cost in
time (docs/performance.md, "Rehearsal at real size"). Where the C library has no ``malloc_trim``
(macOS, musl) nothing is started.
"""
from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

TRIM_INTERVAL_S = 2.0

_lock = threading.Lock()
_thread: threading.Thread | None = None


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a function, or None where the C library has none."""
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: fn(0)


def keep_returning_freed_memory(interval_s: float = TRIM_INTERVAL_S) -> bool:
    """Start, once per process, a daemon thread that returns freed pages every ``interval_s``.

    Returns whether one runs. Cheap to call again (from every worker-side ``setup``): a process
    started by a runner the pipeline does not launch itself (Dataflow, Dask) starts it there.
    """
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return True
        trim = malloc_trim()
        if trim is None:
            log.debug("no malloc_trim in this C library: freed memory is left to the allocator")
            return False
        _thread = threading.Thread(target=_every, args=(trim, interval_s), name="return-freed-memory", daemon=True)
        _thread.start()
        return True


def _every(trim: Callable[[], int], interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        trim()
