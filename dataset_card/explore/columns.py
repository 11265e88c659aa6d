"""The page's data as Bokeh column dicts: one row per clip, image, pair and failure.

Numbers go in numpy arrays (Bokeh ships them as compact binary), text in lists; everything a
callback needs is precomputed here so the browser only filters and formats.
"""
from __future__ import annotations

import math

import numpy as np

from dataset_card import schema
from dataset_card.explore.flags import ClipFlags

SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"
CAPTIONER_COLOURS = ("#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                     "#ff7f0e", "#2ca02c")  # then grey: more captioners than this are rare
QUADRANTS = {  # value -> label; high = at least 0.5 on the [0, 1] scale
    "V+A+": "V+A+ (high valence, high arousal: happy, excited)",
    "V+A-": "V+A- (high valence, low arousal: calm, content)",
    "V-A+": "V-A+ (low valence, high arousal: tense, angry)",
    "V-A-": "V-A- (low valence, low arousal: sad, tired)",
}
_NUMERIC_DESCRIPTORS = [k for k, t in schema.DESCRIPTOR_FIELDS.items() if t != "string"]


def quadrant(valence: float | None, arousal: float | None) -> str:
    if not _finite(valence) or not _finite(arousal):
        return ""
    return f"V{'+' if valence >= 0.5 else '-'}A{'+' if arousal >= 0.5 else '-'}"


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _floats(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r.get(key) if _finite(r.get(key)) else np.nan for r in rows], dtype=np.float32)


def captioner_colours(captioners: list[str]) -> dict[str, str]:
    return {c: CAPTIONER_COLOURS[i] if i < len(CAPTIONER_COLOURS) else OTHER_COLOUR
            for i, c in enumerate(captioners)}


def clip_columns(clips: list[dict], audio_urls: dict[str, str], flags: list[ClipFlags],
                 pair_offsets: tuple[np.ndarray, np.ndarray]) -> dict:
    """One entry per clip: ids, VA, caption, descriptors (``d_<name>``), flags, media URL."""
    cols: dict = {k: [r.get(k) or "" for r in clips]
                  for k in ("clip_id", "song_id", "source", "caption", "captioner", "license", "split")}
    for k in ("valence", "arousal", "valence_std", "arousal_std", "start_s", "end_s"):
        cols[k] = _floats(clips, k)
    descs = [r.get("descriptors") or {} for r in clips]
    for k, t in schema.DESCRIPTOR_FIELDS.items():
        cols[f"d_{k}"] = _floats(descs, k) if t != "string" else [d.get(k) or "" for d in descs]
    for k in ("flag_repeated", "flag_contradiction", "flag_grounding", "grounding"):
        cols[k] = [f.columns()[k] for f in flags]
    cols["flags"] = [_flag_text(f) for f in flags]
    cols["quadrant"] = [quadrant(r.get("valence"), r.get("arousal")) for r in clips]
    cols["audio_url"] = [audio_urls.get(r["clip_id"], "") for r in clips]
    cols["pair_start"], cols["pair_count"] = pair_offsets
    return cols


def _flag_text(f: ClipFlags) -> str:
    parts = (["repeat"] if f.repeated else []) + (["contradiction"] if f.contradiction else [])
    return ", ".join(parts + ([f"ungrounded: {', '.join(f.grounding)}"] if f.grounding else []))


def image_columns(images: list[dict], image_urls: dict[str, str],
                  pair_offsets: tuple[np.ndarray, np.ndarray]) -> dict:
    cols: dict = {k: [r.get(k) or "" for r in images] for k in ("image_id", "source", "split")}
    cols["valence"], cols["arousal"] = _floats(images, "valence"), _floats(images, "arousal")
    cols["image_url"] = [image_urls.get(r["image_id"], "") for r in images]
    cols["pair_start"], cols["pair_count"] = pair_offsets
    return cols


def pair_columns(pairs: list[dict], clips: list[dict], images: list[dict]):
    """(pairs columns, clip offsets, image offsets).

    Pairs are ordered by clip, best score first, so a clip's pairs are one slice
    ``[pair_start, pair_start + pair_count)``; ``by_image`` orders the same pairs by image.
    Pairs whose clip or image is not on the page are left out.
    """
    clip_index = {r["clip_id"]: i for i, r in enumerate(clips)}
    image_index = {r["image_id"]: i for i, r in enumerate(images)}
    kept = [(clip_index[p["music_clip_id"]], image_index[p["image_id"]], p["score"]) for p in pairs
            if p["music_clip_id"] in clip_index and p["image_id"] in image_index]
    kept.sort(key=lambda t: (t[0], -(t[2] if _finite(t[2]) else -1.0), t[1]))
    clip_idx = np.array([t[0] for t in kept], dtype=np.int32)
    image_idx = np.array([t[1] for t in kept], dtype=np.int32)
    score = np.array([t[2] if _finite(t[2]) else np.nan for t in kept], dtype=np.float32)
    by_image = np.lexsort((-np.nan_to_num(score, nan=-1.0), image_idx)).astype(np.int32)  # image, best first
    cols = {"clip_idx": clip_idx, "image_idx": image_idx, "score": score, "by_image": by_image}
    return cols, _offsets(clip_idx, len(clips)), _offsets(image_idx[by_image], len(images))


def _offsets(sorted_owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, count) per owner of a sorted owner-index array."""
    counts = np.bincount(sorted_owner, minlength=n).astype(np.int32) if len(sorted_owner) else np.zeros(n, np.int32)
    starts = (np.cumsum(counts) - counts).astype(np.int32)
    return starts, counts


def failure_columns(failures: list[dict]) -> dict:
    keys = [f.name for f in schema.FAILURE_SCHEMA]
    return {k: [("" if r.get(k) is None else r.get(k)) for r in failures] for k in keys}
