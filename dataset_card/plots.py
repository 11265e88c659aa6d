"""PNG plots next to the card: VA scatter per modality, VA histograms, caption lengths, content tags."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from dataset_card.stats import DatasetStats  # noqa: E402

PLOT_DIR = "plots"
# PNG metadata without a date or version so the same data gives byte-identical files (and a
# re-publish of unchanged data uploads nothing).
_PNG_META = {"Software": None}


def write_plots(stats: DatasetStats, out_dir: Path) -> list[str]:
    """Write the plots under ``out_dir/plots``; returns their paths relative to ``out_dir``."""
    (out_dir / PLOT_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for table, (val, aro) in stats.va_points.items():
        written.append(_save(_va_scatter(table, val, aro), out_dir, f"va_scatter_{table}.png"))
        written.append(_save(_va_hist(table, val, aro), out_dir, f"va_hist_{table}.png"))
    written.append(_save(_caption_hist(stats.caption_lengths), out_dir, "caption_length_hist.png"))
    if stats.tag_counts:
        written.append(_save(_tag_bars(stats.tag_counts, stats.tagged_clips), out_dir, "content_tags.png"))
    return written


def _save(fig, out_dir: Path, name: str) -> str:
    rel = f"{PLOT_DIR}/{name}"
    fig.savefig(out_dir / rel, dpi=80, metadata=_PNG_META)
    plt.close(fig)
    return rel


def _va_scatter(table: str, val: list[float], aro: list[float]):
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(val, aro, s=6, alpha=0.6)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="valence", ylabel="arousal", title=f"{table}: valence–arousal")
    fig.tight_layout()
    return fig


def _va_hist(table: str, val: list[float], aro: list[float]):
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = [i / 20 for i in range(21)]
    ax.hist([val, aro], bins=bins, label=["valence", "arousal"])
    ax.set(xlabel="value", ylabel="rows", title=f"{table}: VA histograms")
    ax.legend()
    fig.tight_layout()
    return fig


def _caption_hist(lengths: list[int]):
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(lengths, bins=20)
    ax.set(xlabel="words per caption", ylabel="clips", title="caption length")
    fig.tight_layout()
    return fig


def _tag_bars(counts: dict[str, int], clips: int):
    """Share of clips carrying each content tag (genre, instrument, voice), most frequent on top."""
    names = list(counts)[:30][::-1]
    fig, ax = plt.subplots(figsize=(5, 0.5 + 0.22 * len(names)))
    ax.barh(names, [counts[n] / max(clips, 1) for n in names])
    ax.set(xlabel="share of tagged clips", xlim=(0, 1), title="content tags (musicnn)")
    fig.tight_layout()
    return fig
