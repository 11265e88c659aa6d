"""Progress across worker processes: workers drop one marker file per finished item, the
launcher counts them. Works wherever workers share the launcher's disk (DirectRunner, local
Dask, Portable LOOPBACK); remote runners show progress in their own UI instead."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Iterator

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


# Each library's own switch for its progress bars. tqdm reads TQDM_* variables when it is imported
# (so worker processes started later inherit them); Hugging Face's libraries follow
# huggingface_hub's switch, and transformers' GGUF loader uses plain tqdm ("Converting and
# de-quantizing GGUF tensors..."), which only TQDM_DISABLE reaches.
QUIET_ENVIRONMENT = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@contextlib.contextmanager
def library_bars_off() -> Iterator[None]:
    """No third-party progress bars inside (``--no_progress``), in this process and in the worker
    processes it starts; everything is restored on exit.

    tqdm has no switch once imported (``datasets`` imports it before our flags are parsed), so in
    this process its constructor gets the ``disable=True`` default that ``TQDM_DISABLE=1`` would
    have given it at import.
    """
    import functools

    import huggingface_hub.utils as hub_utils
    import tqdm.std

    saved_env = {k: os.environ.get(k) for k in QUIET_ENVIRONMENT}
    hub_was_off = hub_utils.are_progress_bars_disabled()
    transformers_was_on = _transformers_bars(None)  # None when transformers is not imported yet
    init = tqdm.std.tqdm.__dict__["__init__"]
    os.environ.update(QUIET_ENVIRONMENT)
    hub_utils.disable_progress_bars()  # transformers imported from now on follows it
    _transformers_bars(False)
    tqdm.std.tqdm.__init__ = functools.partialmethod(getattr(init, "func", init),
                                                     **{**getattr(init, "keywords", {}), "disable": True})
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = init
        if not hub_was_off:
            hub_utils.enable_progress_bars()
        _transformers_bars(not hub_was_off if transformers_was_on is None else transformers_was_on)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _transformers_bars(on: bool | None) -> bool | None:
    """transformers' own progress-bar switch, when transformers is imported: set it (``on`` not
    None) and return what it was; None when transformers is not imported (never imported here)."""
    logging_mod = sys.modules.get("transformers.utils.logging")
    if logging_mod is None:
        return None
    was = logging_mod.is_progress_bar_enabled()
    if on is not None:
        (logging_mod.enable_progress_bar if on else logging_mod.disable_progress_bar)()
    return was
