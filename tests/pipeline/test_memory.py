"""pipeline.memory: freed pages go back to the system, from one thread per process."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from pipeline import memory


@pytest.mark.skipif(memory.malloc_trim() is None, reason="no malloc_trim in this C library")
def test_trimming_returns_pages_freed_between_blocks_still_in_use():
    """What the thread asks for: blocks freed between live ones stay resident until trimmed.

    In a fresh process: in the test session another test may have started this process's trimming
    thread, which can trim between the blocks' release and the measurement (seen in a full run)."""
    code = ("import gc\nfrom pipeline import memory\nfrom tests.benchmarks.procmon import self_status_mb\n"
            "blocks = [bytes(2048) for _ in range(60_000)]\n"  # above Python's small-object size: glibc's
            "keep = blocks[::50]\n"  # one block in 50 stays in use, so the heap's top cannot simply shrink
            "del blocks\ngc.collect()\nbefore = self_status_mb('VmRSS')\nmemory.malloc_trim()()\n"
            "print(before - self_status_mb('VmRSS'), len(keep))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) >= 60, f"about 120 MB were freed; trimming gave back {out[0]} MB"
    assert out[1] == "1200"


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
