"""Video summarisation logic on a per-frame VA trajectory: fixed segments, scores, selection.

Pure numpy, no video: the command feeds it the VA the image encoder predicts per frame, and
tests feed it trajectories whose right answer is known.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmva_model.zeroshot.errors import ZeroShotError

EPS = 1e-9


@dataclass
class Segment:
    """Consecutive frames ``[first_frame, first_frame + n_frames)`` and their mean VA."""

    index: int
    first_frame: int
    n_frames: int
    start_s: float
    end_s: float
    valence: float
    arousal: float
    score: float = float("nan")
    selected: bool = False

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Selector:
    description: str
    needs_target: bool
    score: Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # (segment VA (S, 2), target) -> (S,)


# mode -> how segments are scored (higher is better)
SELECTORS: dict[str, Selector] = {
    "match": Selector("mean VA closest to the target VA (score: minus the VA distance)", True,
                      lambda va, target: -np.sqrt(((va - target) ** 2).sum(axis=1))),
    "arousal": Selector("highest mean arousal (score: the mean arousal)", False, lambda va, target: va[:, 1].copy()),
}


def frames_per_segment(fps: float, segment_seconds: float) -> int:
    n = int(round(fps * segment_seconds))
    if n < 1:
        raise ZeroShotError(f"a {segment_seconds:g} s segment at {fps:g} frames/s holds no frame: "
                            "raise --fps or --segment_seconds")
    return n


def make_segments(frame_va: np.ndarray, fps: float, segment_seconds: float,
                  duration_s: float | None = None) -> list[Segment]:
    """Windows of ``round(fps * segment_seconds)`` frames (the last may be shorter) with mean VA.

    Frame k stands for ``[k / fps, (k + 1) / fps)``; segment ends are clipped to ``duration_s``.
    """
    n = frames_per_segment(fps, segment_seconds)
    total = len(frame_va)
    end_of_video = duration_s if duration_s is not None else total / fps
    out = []
    for index, first in enumerate(range(0, total, n)):
        count = min(n, total - first)
        start, end = first / fps, (first + count) / fps
        if end_of_video > start:
            end = min(end, end_of_video)
        mean = frame_va[first:first + count].astype(np.float64).mean(axis=0)
        out.append(Segment(index, first, count, start, end, float(mean[0]), float(mean[1])))
    return out


def score_segments(segments: list[Segment], mode: str, target: np.ndarray | None) -> np.ndarray:
    """Set and return each segment's score under ``mode``."""
    if mode not in SELECTORS:
        raise ZeroShotError(f"unknown mode {mode!r}; known: {sorted(SELECTORS)}")
    selector = SELECTORS[mode]
    if selector.needs_target and target is None:
        raise ZeroShotError(f"mode {mode!r} needs a target: --target_va V A or --match_clip ID")
    va = np.array([[s.valence, s.arousal] for s in segments], dtype=np.float64).reshape(-1, 2)
    t = None if target is None else np.asarray(target, dtype=np.float64)
    scores = selector.score(va, t)
    for s, score in zip(segments, scores):
        s.score = float(score)
    return scores


def select_segments(seconds: np.ndarray, scores: np.ndarray, budget_seconds: float) -> list[int]:
    """Greedy: best score first (ties: earlier segment), each taken if it still fits the budget.

    Returns the chosen indices in time order; their total length never exceeds the budget.
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    chosen, total = [], 0.0
    for i in order:
        if total + seconds[i] <= budget_seconds + EPS:
            chosen.append(i)
            total += float(seconds[i])
    return sorted(chosen)
