"""Deterministic batch draws, a pure function of (seed, stream, step, rank).

Random VA matching draws clips and images *independently*: two streams with their own seeds,
so no clip is ever tied to an image. Each stream walks through a fresh permutation of its
table every epoch; step ``t`` takes the global slice ``[t*B*W, (t+1)*B*W)`` of that endless
sequence and rank ``r`` its ``r``-th part of ``B``. Because a draw depends on nothing but
these numbers, a run resumed at step ``t`` sees exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

STREAMS = {"music": 1, "images": 2, "pairs": 3}


def _perm(n: int, seed: int, stream: str, epoch: int) -> np.ndarray:
    digest = hashlib.sha256(f"{seed}:{STREAMS[stream]}:{epoch}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(n)


class StepSampler:
    """Batch sampler: index lists for steps ``start_step, start_step + 1, ...`` (endless)."""

    def __init__(self, n: int, batch_size: int, seed: int, stream: str, *, rank: int = 0,
                 world_size: int = 1, start_step: int = 0):
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"need rows and a batch size > 0, got n={n}, batch_size={batch_size}")
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; known: {sorted(STREAMS)}")
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self._cache: tuple[int, np.ndarray] | None = None

    def _at(self, positions: np.ndarray) -> np.ndarray:
        epochs, offsets = np.divmod(positions, self.n)
        out = np.empty_like(positions)
        for e in np.unique(epochs):
            if self._cache is None or self._cache[0] != e:
                self._cache = (int(e), _perm(self.n, self.seed, self.stream, int(e)))
            sel = epochs == e
            out[sel] = self._cache[1][offsets[sel]]
        return out

    def indices(self, step: int) -> list[int]:
        """This rank's row indices at ``step``."""
        start = (step * self.world_size + self.rank) * self.batch_size
        return self._at(np.arange(start, start + self.batch_size, dtype=np.int64)).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.indices(step)
            step += 1
