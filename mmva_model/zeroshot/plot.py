"""The VA trajectory of a video as a PNG: valence and arousal per frame, chosen segments shaded."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend, safe in any process

from mmva_model.zeroshot.segments import Segment


def plot_trajectory(path: str | Path, times: np.ndarray, frame_va: np.ndarray, segments: list[Segment],
                    target: np.ndarray | None = None, title: str = "") -> Path:
    """Write the plot to ``path`` (PNG, written atomically) and return it."""
    path = Path(path)
    fig = Figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    for s in segments:
        if s.selected:
            ax.axvspan(s.start_s, s.end_s, color="tab:green", alpha=0.18, lw=0)
        ax.axvline(s.start_s, color="0.85", lw=0.6, zorder=0)
    ax.plot(times, frame_va[:, 0], "-o", ms=2.5, color="tab:blue", label="valence")
    ax.plot(times, frame_va[:, 1], "-o", ms=2.5, color="tab:red", label="arousal")
    if target is not None:
        ax.axhline(float(target[0]), color="tab:blue", ls="--", lw=1, label="target valence")
        ax.axhline(float(target[1]), color="tab:red", ls="--", lw=1, label="target arousal")
    ax.set(xlabel="time (s)", ylabel="predicted VA", ylim=(0, 1), title=title or "VA trajectory")
    ax.legend(loc="upper right", fontsize=8, ncols=2, title="shaded: summary", title_fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path
