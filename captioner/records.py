"""Per-rank caption records: append-only JSON lines under ``RUN_DIR/captions/``.

Each process appends to its own file (no cross-process locking needed) and fsyncs after every
batch, so a killed job loses at most the batch in flight; a torn last line is cut off before the
next append and ignored by readers. A rerun reads every rank's file (whatever world size wrote
them) and skips the clips already recorded *by the same captioner id* (backend/model/prompt
version): records of another backend, model or prompt version neither count as done nor get merged.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from captioner.base import CaptionResult

CAPTIONS_DIR = "captions"


def rank_file(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / CAPTIONS_DIR / f"rank-{rank:05d}.jsonl"


def read_all(run_dir: Path, captioner: str) -> dict[str, CaptionResult]:
    """``captioner``'s record of every clip it has seen, by clip id; other captioners' are ignored.

    An accepted record beats rejections of the same clip whatever the file order: a retried
    reject may be appended to a lower-numbered rank file than the reject, since each run splits
    the remaining clips afresh. Among rejections the last one read wins.
    """
    out: dict[str, CaptionResult] = {}
    for path in sorted((Path(run_dir) / CAPTIONS_DIR).glob("rank-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = CaptionResult(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # the torn tail of a killed writer
            if rec.captioner != captioner:
                continue
            seen = out.get(rec.clip_id)
            if seen is None or seen.text is None:
                out[rec.clip_id] = rec
    return out


class RankWriter:
    """Appends one rank's results durably."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self.fh = open(self.path, "a", encoding="utf-8")

    def write(self, results: Iterable[CaptionResult]) -> None:
        for r in results:
            self.fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line, so the next append does not glue onto it."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
