"""Target similarity of item pairs from their VA labels, as a matrix over a batch.

One function for the whole project: ``dataset_card.schema.va_similarity``,
s(a, b) = 1 - ||va_a - va_b||_2 / sqrt(2), in [0, 1] (identical VA -> 1, opposite corners of the
VA square -> 0). Pairs scored from VA in the dataset use the same f.
"""
from __future__ import annotations

import torch

from dataset_card.schema import MAX_VA_DISTANCE


def va_similarity_matrix(va_a: torch.Tensor, va_b: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` target similarities between rows of ``va_a`` (N, 2) and ``va_b`` (M, 2)."""
    d = torch.cdist(va_a.float(), va_b.float(), p=2.0)
    return (1.0 - d / MAX_VA_DISTANCE).clamp(min=0.0)


def cosine_matrix(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` cosine similarities of L2-normalised embeddings (their dot products)."""
    return emb_a @ emb_b.T
