"""Statistics of a dataset folder for the card: counts, VA, captions, descriptors, failures."""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from captioner.fallback import parse_captioner
from dataset_card import schema
from dataset_card.tables import Shard, read_table, rows_per_split


@dataclass(frozen=True)
class Summary:
    """count/mean/std/min/max of one numeric column (NaN-free values only)."""

    count: int
    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, values) -> "Summary":
        v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
        if v.size == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(int(v.size), float(v.mean()), float(v.std()), float(v.min()), float(v.max()))


@dataclass(frozen=True)
class CaptionSources:
    """Who wrote the captions: the chosen captioner, the fallback template after a rejection (by the
    rejection's reason, from the failures table), the source; and caption failures with no row."""

    chosen: int
    fallback: int
    fallback_by_reason: dict[str, int]
    source: int
    missing: int  # caption-stage failure rows whose clip is not in the music table


@dataclass
class DatasetStats:
    """Everything the card reports about the data."""

    rows: dict[str, dict[str, int]]
    songs: int
    clips_per_song: Summary
    va: dict[str, dict[str, Summary]]  # table -> valence/arousal -> summary
    va_points: dict[str, tuple[list[float], list[float]]]  # table -> (valence, arousal), for plots
    caption_words: Summary
    caption_lengths: list[int]
    descriptors: dict[str, Summary]
    key_counts: dict[str, int]
    mode_counts: dict[str, int]
    sources: list[dict[str, object]]  # {table, source, license, rows}
    captioners: dict[str, int]
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    captions: CaptionSources | None = None
    tag_counts: dict[str, int] = field(default_factory=dict)  # content tag -> clips carrying it
    tagged_clips: int = 0  # clips with tag probabilities (0: a run with --tagger none)


def compute(shards: list[Shard], failures_path: Path | None) -> DatasetStats:
    """Statistics over every shard (media columns are not read)."""
    music = read_table(shards, schema.MUSIC).to_pylist()
    images = read_table(shards, schema.IMAGES).to_pylist()
    per_song = collections.Counter(r["song_id"] for r in music)
    captions = [len((r["caption"] or "").split()) for r in music]
    descs = [r["descriptors"] or {} for r in music]
    numeric = [k for k, t in schema.DESCRIPTOR_FIELDS.items() if t != "string"]
    return DatasetStats(
        rows=rows_per_split(shards),
        songs=len(per_song),
        clips_per_song=Summary.of(per_song.values()),
        va={t: {c: Summary.of(r[c] for r in rows) for c in ("valence", "arousal")}
            for t, rows in ((schema.MUSIC, music), (schema.IMAGES, images))},
        va_points={t: ([r["valence"] for r in rows], [r["arousal"] for r in rows])
                   for t, rows in ((schema.MUSIC, music), (schema.IMAGES, images))},
        caption_words=Summary.of(captions),
        caption_lengths=captions,
        descriptors={k: Summary.of(d.get(k) for d in descs) for k in numeric},
        key_counts=dict(sorted(collections.Counter(d.get("key") for d in descs if d.get("key")).items())),
        mode_counts=dict(sorted(collections.Counter(d.get("mode") for d in descs if d.get("mode")).items())),
        sources=_sources(music, images),
        captioners=dict(collections.Counter(r["captioner"] for r in music).most_common()),
        failures_by_reason=failure_reasons(failures_path),
        captions=caption_sources(music, failures_path),
        tag_counts=dict(collections.Counter(t for r in music for t in r.get("tags") or ()).most_common()),
        tagged_clips=sum(1 for r in music if r.get("tag_probs")),
    )


def caption_sources(music: list[dict], failures_path: Path | None) -> CaptionSources:
    """:class:`CaptionSources` of the music rows (reasons and missing clips need the failures table)."""
    rejected: dict[str, str] = {}
    if failures_path is not None and failures_path.exists():
        rows = pq.read_table(failures_path, columns=["item_id", "stage", "error_type"]).to_pylist()
        rejected = {r["item_id"]: r["error_type"] for r in rows if r["stage"] == "caption"}
    parsed = [(r["clip_id"], parse_captioner(r["captioner"] or "")) for r in music]
    fell = [clip_id for clip_id, p in parsed if p.fell_back]
    reasons = collections.Counter(rejected.get(c, "unknown (no failures table)") for c in fell)
    ids = {clip_id for clip_id, _ in parsed}
    return CaptionSources(
        chosen=sum(not p.fell_back and p.wrote != "source" for _, p in parsed), fallback=len(fell),
        fallback_by_reason=dict(sorted(reasons.items())), source=sum(p.wrote == "source" for _, p in parsed),
        missing=sum(c not in ids for c in rejected))


def _sources(music: list[dict], images: list[dict]) -> list[dict[str, object]]:
    counts = collections.Counter((schema.MUSIC, r["source"], r["license"]) for r in music)
    counts.update((schema.IMAGES, r["source"], None) for r in images)
    return [{"table": t, "source": s, "license": lic, "rows": n} for (t, s, lic), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))]


def failure_reasons(path: Path | None) -> dict[str, int]:
    """{"kind/stage/error_type": count} from a run's failures.parquet (empty when absent)."""
    if path is None or not path.exists():
        return {}
    rows = pq.read_table(path, columns=["kind", "stage", "error_type"]).to_pylist()
    c = collections.Counter(f"{r['kind']}/{r['stage']}/{r['error_type']}" for r in rows)
    return dict(sorted(c.items()))
