"""How a frozen-feature cache entry lies on disk, so that a killed caching run resumes.

An entry (one encoder's outputs for one table split) is a folder of chunk files, each holding
``CHUNK_ROWS`` consecutive rows (``chunk-00003.safetensors``: rows 3072-4095, the rows written in
its metadata), each written under a temporary name and renamed once complete, as soon as its rows
are computed; ``complete.json`` is written when every chunk is there. A restarted run keeps the
chunks that open and hold the rows they should, deletes the others, and computes only the rest.
Rows go through the backbones in batches of ``FEATURE_BATCH`` that never straddle a chunk, so a
resumed run computes exactly the batches an uninterrupted one would: the same bytes.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mmva_model.encoders.base import Batch

# Rows per backbone batch. Part of the layout: EfficientNet's features change in the last bits
# with the batch size (oneDNN picks other kernels), so every run batches rows the same way.
FEATURE_BATCH = 16
CHUNK_ROWS = 64 * FEATURE_BATCH  # what a killed run can lose; ~22 MB of log-mels and captions
MARKER = "complete.json"
LAYOUT = 1  # bump when the on-disk layout changes
HALF_ABOVE = 16384  # per-row float elements above which a tensor is stored as float16


@dataclass
class CacheEntry:
    """One cache entry: ``rows`` rows of one encoder's frozen outputs under ``folder``."""

    folder: Path
    rows: int

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.rows / CHUNK_ROWS)

    def chunk_rows(self, k: int) -> range:
        return range(k * CHUNK_ROWS, min(self.rows, (k + 1) * CHUNK_ROWS))

    def chunk_of(self, row: int) -> int:
        return row // CHUNK_ROWS

    def chunk_file(self, k: int) -> Path:
        return self.folder / f"chunk-{k:05d}.safetensors"

    def batches(self, chunks: list[int]) -> list[list[int]]:
        """The row batches of ``chunks``, each inside one chunk, in order."""
        out = []
        for k in chunks:
            rows = self.chunk_rows(k)
            out += [list(rows[i:i + FEATURE_BATCH]) for i in range(0, len(rows), FEATURE_BATCH)]
        return out

    def _marker(self) -> dict:
        return {"layout": LAYOUT, "rows": self.rows, "chunk_rows": CHUNK_ROWS, "batch": FEATURE_BATCH}

    def complete(self) -> bool:
        """The marker says this layout and row count, and every chunk file is there."""
        try:
            marker = json.loads((self.folder / MARKER).read_text())
        except (OSError, ValueError):
            return False
        return marker == self._marker() and all(self.chunk_file(k).is_file() for k in range(self.n_chunks))

    def valid_chunks(self) -> set[int]:
        """Chunks already stored and sound; unsound ones and leftover temporaries are deleted."""
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        good = set()
        for k in range(self.n_chunks):
            path = self.chunk_file(k)
            if path.is_file():
                if _holds(path, self.chunk_rows(k)):
                    good.add(k)
                else:
                    path.unlink()
        return good

    def write_chunk(self, k: int, tensors: Batch) -> None:
        """Store chunk ``k`` atomically: a reader sees the whole chunk or none of it."""
        rows = self.chunk_rows(k)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.chunk_file(k).with_suffix(".tmp")
        save_file({name: _storage(t) for name, t in tensors.items()}, str(tmp),
                  metadata={"rows": f"{rows.start}:{rows.stop}"})
        tmp.replace(self.chunk_file(k))

    def finish(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MARKER).write_text(json.dumps(self._marker()) + "\n")

    def load(self) -> Batch:
        """Every row's tensors, chunk by chunk into one preallocated tensor per name."""
        out: Batch = {}
        for k in range(self.n_chunks):
            rows = self.chunk_rows(k)
            for name, t in load_file(str(self.chunk_file(k))).items():
                if name not in out:
                    out[name] = torch.empty((self.rows, *t.shape[1:]), dtype=t.dtype)
                out[name][rows.start:rows.stop] = t
        return out


def _holds(path: Path, rows: range) -> bool:
    """The file opens as safetensors, names ``rows`` and holds that many rows in every tensor."""
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("rows") != f"{rows.start}:{rows.stop}":
                return False
            return all(f.get_slice(name).get_shape()[:1] == [len(rows)] for name in f.keys())
    except (SafetensorError, OSError):
        return False


def _storage(t: torch.Tensor) -> torch.Tensor:
    """Large float inputs (log-mel patches) are stored as float16: half the disk, same ranks."""
    if t.is_floating_point() and t[0].numel() > HALF_ABOVE:
        return t.half().contiguous()
    return t.contiguous()
