"""Progress across worker processes: workers drop one marker file per finished item, the
launcher counts them. Works wherever workers share the launcher's disk (DirectRunner, local
Dask, Portable LOOPBACK); remote runners show progress in their own UI instead."""
from __future__ import annotations

import logging
import os
import sys
import threading

from tqdm import tqdm

from pipeline.ids import safe_name

log = logging.getLogger(__name__)


def mark(progress_dir: str | None, kind: str, item_id: str) -> None:
    """Record that ``item_id`` of ``kind`` is done (idempotent)."""
    if not progress_dir:
        return
    folder = os.path.join(progress_dir, kind)
    try:
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, safe_name(item_id)), "wb").close()
    except OSError as e:  # a remote worker without the launcher's disk: progress is cosmetic
        log.debug("progress marker not written: %s", e)


def span_s(progress_dir: str | None, kind: str) -> float | None:
    """Seconds from the first to the last finished item of ``kind`` (None without markers)."""
    folder = os.path.join(progress_dir or "", kind)
    if not progress_dir or not os.path.isdir(folder):
        return None
    times = [e.stat().st_mtime for e in os.scandir(folder)]
    return round(max(times) - min(times), 3) if times else None


class ProgressBars:
    """Background thread showing one bar per kind of item until :meth:`close`."""

    def __init__(self, progress_dir: str, totals: dict[str, int], interval_s: float = 1.0):
        self.dir, self.interval = progress_dir, interval_s
        self.bars = {
            k: tqdm(total=n, desc=k, unit=k.rstrip("s"), position=i, leave=True, file=sys.stderr, dynamic_ncols=True)
            for i, (k, n) in enumerate(totals.items()) if n
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProgressBars":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._refresh()
        for bar in self.bars.values():
            bar.close()

    def _refresh(self) -> None:
        for kind, bar in self.bars.items():
            folder = os.path.join(self.dir, kind)
            done = len(os.listdir(folder)) if os.path.isdir(folder) else 0
            bar.update(min(done, bar.total) - bar.n)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._refresh()
