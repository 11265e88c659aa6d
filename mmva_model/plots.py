"""Evaluation plots: predicted vs true valence and arousal, one row per modality."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmva_model.config import MODALITIES
from mmva_model.evaluation import Predictions
from mmva_model.metrics import VA_DIMS, r2

# No date or version in the PNG metadata: the same predictions give byte-identical files.
_PNG_META = {"Software": None}


def va_scatter(preds: dict[str, Predictions], path: str | Path) -> Path:
    """Write a PNG grid (modality rows x valence/arousal columns) of predicted vs true VA with the
    identity line and R^2 in each title; returns ``path``."""
    path = Path(path)
    rows = [m for m in MODALITIES if m in preds] + sorted(set(preds) - set(MODALITIES))
    # A bare Figure on an Agg canvas: no pyplot, so no global backend switch and no open figures.
    fig = Figure(figsize=(3.2 * len(VA_DIMS), 3.0 * max(len(rows), 1)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(len(rows), 1), len(VA_DIMS), squeeze=False)
    for r, modality in enumerate(rows):
        for c, dim in enumerate(VA_DIMS):
            _panel(axes[r][c], modality, dim, preds[modality].va_true[:, c], preds[modality].va_pred[:, c])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, metadata=_PNG_META)
    return path


def _panel(ax, modality: str, dim: str, true: np.ndarray, pred: np.ndarray) -> None:
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
    ax.scatter(true, pred, s=8, alpha=0.6)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"true {dim}", ylabel=f"predicted {dim}",
           title=f"{modality} {dim}: R² {_fmt(true, pred)}")
    ax.set_aspect("equal")


def _fmt(true: np.ndarray, pred: np.ndarray) -> str:
    """R^2 to 3 decimals; "n/a" when undefined (no rows, or a constant target)."""
    if len(true) == 0:
        return "n/a"
    value = r2(true, pred)
    return f"{value:.3f}" if math.isfinite(value) else "n/a"
