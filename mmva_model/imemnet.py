"""IMEMNet matching files, and how well a model's embeddings agree with them.

A matching file (IMEMNet's ``test_matching.txt``, ``val_matching.txt``) holds one
``music_clip_id image_id matching_score`` per line: space separated, no header, score in [0, 1].
:func:`read_matching` keeps the good lines and lists the bad ones with their line numbers;
:func:`matching_spearman` ranks a model's clip-image cosine similarities against the scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd

from mmva_model.metrics import spearman

COLUMNS = ("music_clip_id", "image_id", "matching_score")
MIN_PAIRS = 3  # fewer present pairs than this give no Spearman

# Embeddings by id: a mapping id -> vector, or (ids, (N, d) matrix) as Predictions holds them.
Embeddings = Union[dict[str, np.ndarray], tuple[list[str], np.ndarray]]


class MatchingError(ValueError):
    """A matching file that cannot be read at all (missing, not UTF-8)."""


@dataclass
class MatchingFile:
    """The good pairs of one matching file, and the lines that were left out with why."""

    path: Path
    pairs: pd.DataFrame  # music_clip_id str, image_id str, matching_score float64; file order
    lines: int  # non-blank lines read
    problems: list[tuple[int, str]] = field(default_factory=list)  # (1-based line number, reason)


def read_matching(path: str | Path) -> MatchingFile:
    """Read a matching file; malformed lines, bad scores and repeated pairs go to ``problems``.

    A line is a problem when it has not exactly 3 fields, when its score is not a finite number
    in [0, 1], or when its (clip, image) pair appeared on an earlier line (the first is kept).
    Blank lines are skipped and not counted.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM is not part of the first clip id
    except (OSError, UnicodeDecodeError) as e:
        raise MatchingError(f"{path}: cannot read matching file ({e})") from e
    rows: list[tuple[str, str, float]] = []
    problems: list[tuple[int, str]] = []
    seen: dict[tuple[str, str], int] = {}
    lines = 0
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        lines += 1
        row, reason = _parse(line)
        if reason is None and (row[0], row[1]) in seen:
            reason = f"duplicate pair {row[0]} {row[1]} (first on line {seen[row[0], row[1]]})"
        if reason is not None:
            problems.append((n, reason))
            continue
        seen[row[0], row[1]] = n
        rows.append(row)
    pairs = pd.DataFrame(rows, columns=list(COLUMNS)).astype(
        {"music_clip_id": str, "image_id": str, "matching_score": "float64"})
    return MatchingFile(path, pairs, lines, problems)


def _parse(line: str) -> tuple[tuple[str, str, float] | None, str | None]:
    """``((clip, image, score), None)`` for a good line, ``(None, reason)`` otherwise."""
    fields = line.split()
    if len(fields) != 3:
        return None, f"{len(fields)} fields, expected 'music_clip_id image_id matching_score'"
    clip, image, raw = fields
    try:
        score = float(raw)
    except ValueError:
        return None, f"matching_score {raw!r} is not a number"
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        return None, f"matching_score {raw!r} is not a finite number in [0, 1]"
    return (clip, image, score), None


def _by_id(emb: Embeddings) -> tuple[dict[str, int], np.ndarray]:
    """``(id -> row, (N, d) unit-norm matrix)`` from either form of :data:`Embeddings`."""
    if isinstance(emb, dict):
        ids = list(emb)
        matrix = np.stack([np.asarray(emb[i], dtype=np.float64) for i in ids]) if ids else np.zeros((0, 1))
    else:
        ids, matrix = list(emb[0]), np.asarray(emb[1], dtype=np.float64)
        if matrix.ndim != 2 or len(ids) != matrix.shape[0]:
            raise ValueError(f"embeddings: {len(ids)} ids for a matrix of shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # Predictions are unit norm already; normalising again makes any input's dot a cosine.
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return {k: i for i, k in enumerate(ids)}, matrix


def matching_spearman(matching: MatchingFile, clip_emb: Embeddings, image_emb: Embeddings) -> dict:
    """Spearman between predicted cosine similarity and ``matching_score`` over the pairs whose
    clip and image both have embeddings.

    Returns ``{"spearman", "pairs_present", "pairs_total"}``; ``spearman`` is None with fewer
    than 3 present pairs or when it is undefined (constant scores or similarities).
    """
    clip_index, clips = _by_id(clip_emb)
    image_index, images = _by_id(image_emb)
    pairs = matching.pairs
    ci = pairs["music_clip_id"].map(clip_index)
    ii = pairs["image_id"].map(image_index)
    present = (ci.notna() & ii.notna()).to_numpy()
    out = {"spearman": None, "pairs_present": int(present.sum()), "pairs_total": len(pairs)}
    if out["pairs_present"] < MIN_PAIRS:
        return out
    a = ci[present].to_numpy(dtype=np.int64)
    b = ii[present].to_numpy(dtype=np.int64)
    cosine = np.einsum("ij,ij->i", clips[a], images[b])
    rho = spearman(cosine, pairs["matching_score"].to_numpy()[present])
    out["spearman"] = rho if math.isfinite(rho) else None
    return out
