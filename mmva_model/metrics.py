"""Evaluation metrics for the MMVA model: VA regression, graded-relevance retrieval, similarity agreement.

All functions are pure, take numpy array-likes and return plain Python floats (or dicts of them),
so results serialise straight to JSON. Undefined statistics (a correlation against a constant
series, R^2 of a constant target) are ``float('nan')`` rather than an exception: one degenerate
evaluation split should show up in a report, not abort a training run.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

__all__ = [
    "rmse",
    "mae",
    "r2",
    "pearson",
    "ccc",
    "spearman",
    "REGRESSION_METRICS",
    "VA_DIMS",
    "va_metrics",
    "retrieval_metrics",
    "similarity_spearman",
]

VA_DIMS: tuple[str, str] = ("valence", "arousal")


def _pair(a: ArrayLike, b: ArrayLike, names: tuple[str, str] = ("y_true", "y_pred")) -> tuple[np.ndarray, np.ndarray]:
    """Validate two 1-D, equal-length, non-empty, finite series and return them as float64 arrays."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError(f"{names[0]} and {names[1]} must be non-empty, got lengths 0 and 0")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{names[0]} and {names[1]} must be finite (no NaN/inf), lengths {x.shape[0]} and {y.shape[0]}")
    return x, y


def _is_constant(x: np.ndarray) -> bool:
    """True when every element is identical (exact test; a variance test would be fooled by rounding)."""
    return bool(np.ptp(x) == 0.0)


def _deviations(x: np.ndarray) -> np.ndarray:
    """Deviations from the mean, exactly zero for a constant series so covariances with it are exactly 0."""
    # x.mean() of e.g. [0.1]*3 is not exactly 0.1, which would leave ~1e-17 residues.
    return np.zeros_like(x) if _is_constant(x) else x - x.mean()


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination 1 - SS_res/SS_tot; nan when y_true is constant (SS_tot == 0)."""
    t, p = _pair(y_true, y_pred)
    if _is_constant(t):
        return float("nan")
    ss_res = np.sum((t - p) ** 2)
    ss_tot = np.sum((t - t.mean()) ** 2)
    return float(1.0 - ss_res / ss_tot)


def pearson(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Pearson correlation coefficient; nan when either series is constant."""
    t, p = _pair(y_true, y_pred)
    return _pearson(t, p)


def _pearson(t: np.ndarray, p: np.ndarray) -> float:
    """Pearson on already-validated arrays (shared with spearman, which feeds it ranks)."""
    if _is_constant(t) or _is_constant(p):
        return float("nan")
    dt, dp = t - t.mean(), p - p.mean()
    r = np.sum(dt * dp) / np.sqrt(np.sum(dt**2) * np.sum(dp**2))
    # Rounding can push |r| a hair past 1 for perfectly (anti)correlated inputs.
    return float(np.clip(r, -1.0, 1.0))


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Lin's concordance correlation 2*cov / (var_t + var_p + (mean_t - mean_p)^2), population moments.

    nan only when both series are the same constant (0/0); two different constants give 0.
    """
    t, p = _pair(y_true, y_pred)
    dt, dp = _deviations(t), _deviations(p)
    cov = np.mean(dt * dp)
    denom = np.mean(dt**2) + np.mean(dp**2) + (t.mean() - p.mean()) ** 2
    if denom == 0.0:
        return float("nan")
    return float(2.0 * cov / denom)


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation (Pearson on average ranks, so ties share their mean rank); nan if either is constant."""
    x, y = _pair(a, b, names=("a", "b"))
    return _pearson(rankdata(x, method="average"), rankdata(y, method="average"))


# Order matters: reports and tables list the metrics in this order.
REGRESSION_METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
    "ccc": ccc,
    "pearson": pearson,
}


def va_metrics(va_true: ArrayLike, va_pred: ArrayLike) -> dict[str, dict[str, float]]:
    """Every REGRESSION_METRICS entry per VA dimension: {"valence": {...}, "arousal": {...}} for (N, 2) inputs."""
    t = np.asarray(va_true, dtype=np.float64)
    p = np.asarray(va_pred, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != len(VA_DIMS) or t.shape != p.shape:
        raise ValueError(f"va_true and va_pred must both have shape (N, 2), got {t.shape} and {p.shape}")
    return {
        dim: {name: fn(t[:, j], p[:, j]) for name, fn in REGRESSION_METRICS.items()}
        for j, dim in enumerate(VA_DIMS)
    }


def _matrix_pair(scores: ArrayLike, relevance: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate (Q, N) score and relevance matrices (same shape, Q, N >= 1, finite, relevance in [0, 1])."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    if s.ndim != 2 or s.shape != r.shape:
        raise ValueError(f"scores and relevance must be 2-D with the same (Q, N) shape, got {s.shape} and {r.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores and relevance need Q >= 1 queries and N >= 1 candidates, got shape {s.shape}")
    if not (np.isfinite(s).all() and np.isfinite(r).all()):
        raise ValueError("scores and relevance must be finite (no NaN/inf)")
    if r.min() < 0.0 or r.max() > 1.0:
        raise ValueError(f"relevance must lie in [0, 1], got range [{r.min()}, {r.max()}]")
    return s, r


def _check_cutoff(name: str, k: int) -> int:
    """A rank cutoff must be a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def _descending_order(x: np.ndarray) -> np.ndarray:
    """Per-row indices from highest to lowest, ties kept in candidate-index order."""
    # Stable sort of the negation, not a reversed ascending sort, which would reverse tied indices.
    return np.argsort(-x, axis=1, kind="stable")


def retrieval_metrics(
    scores: ArrayLike,
    relevance: ArrayLike,
    ks: Sequence[int] = (1, 5, 10),
    n_relevant: int = 10,
    ndcg_k: int = 10,
) -> dict[str, float]:
    """Recall@k, MRR and nDCG for (Q, N) predicted scores against (Q, N) graded relevance in [0, 1].

    Definitions (each averaged over the Q queries):

    - Predicted ranking: candidates by descending ``scores``; ties go to the lower candidate index.
    - Relevant set of a query: its top ``min(n_relevant, N)`` candidates by descending ``relevance``,
      ties again to the lower index. The set always has that size, whatever the relevance values.
    - ``R@k`` = |top-k predicted ∩ relevant set| / |relevant set|. With ``k < n_relevant`` even a
      perfect ranking scores only ``k / n_relevant``; ``k >= N`` always scores 1.
    - ``MRR`` = 1 / (1-based rank of the first relevant-set member in the predicted ranking).
    - ``nDCG@ndcg_k`` = DCG / IDCG with gain = the graded relevance itself and
      DCG = sum_{i < k} rel_{(i)} / log2(i + 2) over the predicted top k, IDCG the same over the
      top k by true relevance. A query whose relevances are all 0 scores 0 (as sklearn's ndcg_score).

    Returns keys ``"R@{k}"`` for each k in ``ks``, then ``"MRR"``, then ``"nDCG@{ndcg_k}"``.
    """
    s, r = _matrix_pair(scores, relevance)
    ks = [_check_cutoff("ks entry", k) for k in ks]
    n_rel = min(_check_cutoff("n_relevant", n_relevant), s.shape[1])
    ndcg_k = _check_cutoff("ndcg_k", ndcg_k)

    pred_order = _descending_order(s)
    true_order = _descending_order(r)
    rows = np.arange(s.shape[0])[:, None]

    is_relevant = np.zeros(s.shape, dtype=bool)
    is_relevant[rows, true_order[:, :n_rel]] = True
    # Relevance flags laid out in predicted-rank order: column i = the candidate ranked i+1.
    hits_by_rank = is_relevant[rows, pred_order]

    out: dict[str, float] = {}
    for k in ks:
        out[f"R@{k}"] = float(np.mean(hits_by_rank[:, :k].sum(axis=1) / n_rel))
    # argmax finds the first True; every row has n_rel >= 1 relevant candidates, so one exists.
    out["MRR"] = float(np.mean(1.0 / (np.argmax(hits_by_rank, axis=1) + 1)))

    k = min(ndcg_k, s.shape[1])
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = (r[rows, pred_order[:, :k]] * discounts).sum(axis=1)
    idcg = (r[rows, true_order[:, :k]] * discounts).sum(axis=1)
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    out[f"nDCG@{ndcg_k}"] = float(np.mean(ndcg))
    return out


def similarity_spearman(pred_sim: ArrayLike, target_sim: ArrayLike) -> float:
    """Spearman correlation between two same-shape similarity matrices, flattened."""
    p = np.asarray(pred_sim, dtype=np.float64)
    t = np.asarray(target_sim, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred_sim and target_sim must have the same shape, got {p.shape} and {t.shape}")
    return spearman(p.ravel(), t.ravel())
