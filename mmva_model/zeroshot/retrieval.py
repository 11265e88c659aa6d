"""Ranking library clips for a query: by distance in VA space (the default) or embedding cosine.

Both orders are total and reproducible: ties are broken by clip id, so two runs (or a test's
brute-force ranking) always agree on the order.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.library import MusicLibrary


@dataclass
class ClipMatch:
    """One ranked clip: its predicted VA, distance and cosine to the query, caption."""

    rank: int  # 1 = best
    clip_id: str
    valence: float  # predicted by the checkpoint's music encoder
    arousal: float
    va_distance: float  # Euclidean, in VA space, to the query's predicted VA
    cosine: float  # between the query's and the clip's embeddings
    caption: str
    annotated_valence: float | None  # the dataset's label, when the library has one
    annotated_arousal: float | None


def va_distances(library: MusicLibrary, va: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distances from ``va`` (2,) to every clip's predicted VA (float64)."""
    return np.sqrt(((library.va.astype(np.float64) - np.asarray(va, dtype=np.float64)) ** 2).sum(axis=1))


def cosines(library: MusicLibrary, embedding: np.ndarray) -> np.ndarray:
    """(N,) cosine similarities (embeddings are unit norm, so dot products)."""
    return library.embedding.astype(np.float64) @ np.asarray(embedding, dtype=np.float64)


# name -> sort key from (va distances, cosines): smaller key ranks first
RANKINGS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "va": lambda dist, cos: dist,
    "embedding": lambda dist, cos: -cos,
}


def _label(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def rank_clips(library: MusicLibrary, va: np.ndarray, embedding: np.ndarray, k: int = 10,
               by: str = "va") -> list[ClipMatch]:
    """The ``k`` best clips for a query with predicted ``va`` and ``embedding``."""
    if by not in RANKINGS:
        raise ZeroShotError(f"unknown ranking {by!r}; known: {sorted(RANKINGS)}")
    if k < 1:
        raise ZeroShotError(f"k must be at least 1 (got {k})")
    dist, cos = va_distances(library, va), cosines(library, embedding)
    key = RANKINGS[by](dist, cos)
    order = sorted(range(len(library)), key=lambda i: (key[i], library.ids[i]))[:k]
    return [ClipMatch(r, library.ids[i], float(library.va[i, 0]), float(library.va[i, 1]), float(dist[i]),
                      float(cos[i]), library.captions[i], _label(library.annotated_va[i, 0]),
                      _label(library.annotated_va[i, 1]))
            for r, i in enumerate(order, start=1)]


def nearest_clip(library: MusicLibrary, va: np.ndarray) -> int:
    """Row of the clip closest to ``va`` in VA space (ties: smallest clip id)."""
    dist = va_distances(library, va)
    return min(range(len(library)), key=lambda i: (dist[i], library.ids[i]))
