"""pipeline.memory: freed pages go back to the system, from one thread per process."""
from __future__ import annotations

import gc
import subprocess
import sys
import threading

import pytest

from pipeline import memory
from tests.benchmarks.procmon import self_status_mb


@pytest.mark.skipif(memory.malloc_trim() is None, reason="no malloc_trim in this C library")
def test_trimming_returns_pages_freed_between_blocks_still_in_use():
    """What the thread asks for: blocks freed between live ones stay resident until trimmed."""
    blocks = [bytes(2048) for _ in range(60_000)]  # above Python's small-object size: glibc's
    keep = blocks[::50]  # one block in 50 stays in use, so the heap's top cannot simply shrink
    del blocks
    gc.collect()
    before = self_status_mb("VmRSS")
    memory.malloc_trim()()
    assert before - self_status_mb("VmRSS") >= 60, "about 120 MB were freed; trimming gave back too little"
    assert len(keep) == 1200


def test_one_daemon_thread_per_process_however_often_it_is_asked():
    code = ("import threading; from pipeline import memory\n"
            "ok = [memory.keep_returning_freed_memory(0.01) for _ in range(5)]\n"
            "t = [t for t in threading.enumerate() if t.name == 'return-freed-memory']\n"
            "print(ok[0], all(x == ok[0] for x in ok), len(t), all(x.daemon for x in t))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    available = memory.malloc_trim() is not None
    assert out == [str(available), "True", str(int(available)), "True"]


def test_without_malloc_trim_nothing_starts(monkeypatch):
    monkeypatch.setattr(memory, "_thread", None)
    monkeypatch.setattr(memory, "malloc_trim", lambda: None)
    before = threading.active_count()
    assert memory.keep_returning_freed_memory() is False
    assert threading.active_count() == before
