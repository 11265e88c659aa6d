"""What the explorer page shows, read from a run folder or a built dataset folder.

Media bytes stay in the shards here: only ids, VA, captions, descriptors, pairs, failures and the
run's summary are read (a few MB at full IMEMNet-C size); :mod:`dataset_card.explore.media`
extracts the media of the rows that end on the page.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from dataset_card import schema
from dataset_card.tables import Shard, find_shards, read_table, rows_per_split

FAILURES = Path("failures") / "failures.parquet"


class ExploreError(RuntimeError):
    """The folder holds nothing the explorer can show."""


@dataclass
class ExploreData:
    """Rows of the page, media left in the shards."""

    root: Path
    kind: str  # "run" (has run.json) or "dataset"
    shards: list[Shard]
    clips: list[dict]  # music rows without audio
    images: list[dict]  # image rows without pixels
    pairs: list[dict]
    failures: list[dict]
    has_audio: bool  # the music shards carry an audio column (False: metadata-only build)
    has_image_pixels: bool
    rows: dict[str, dict[str, int]]  # {table: {split: rows}} of the whole folder (before sampling)
    run: dict = field(default_factory=dict)  # run.json, when the folder is a run
    sampled_from: dict[str, int] | None = None  # {table: rows before --sample}


def load(root: Path | str) -> ExploreData:
    """Everything but the media of a run or dataset folder."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ExploreError(f"{root} is not a folder: give a run folder (python -m pipeline.run --output) "
                           "or a dataset folder (python -m dataset_card build --out)")
    shards = find_shards(root)
    failures_path = root / FAILURES
    if not shards and not failures_path.exists():
        raise ExploreError(f"{root} holds neither data/<table>/<split>-NNNNN-of-NNNNN.parquet shards nor "
                           f"{FAILURES.as_posix()}: is it a run or dataset folder?")
    run_json = root / "run.json"
    return ExploreData(
        root=root,
        kind="run" if run_json.exists() else "dataset",
        shards=shards,
        clips=_rows(shards, schema.MUSIC),
        images=_rows(shards, schema.IMAGES),
        pairs=_rows(shards, schema.PAIRS),
        failures=pq.read_table(failures_path).to_pylist() if failures_path.exists() else [],
        has_audio=_has_column(shards, schema.MUSIC, "audio"),
        has_image_pixels=_has_column(shards, schema.IMAGES, "image"),
        rows=rows_per_split(shards),
        run=json.loads(run_json.read_text(encoding="utf-8")) if run_json.exists() else {},
    )


def _rows(shards: list[Shard], table: str) -> list[dict]:
    """Rows with every contract column present (None where a shard lacks it, e.g. no descriptors)."""
    rows = read_table(shards, table).to_pylist()
    columns = [c for c in schema.FEATURES[table] if c not in schema.MEDIA_COLUMN.values()]
    return [{c: r.get(c) for c in columns} for r in rows]


def _has_column(shards: list[Shard], table: str, column: str) -> bool:
    return any(column in pq.read_schema(s.path).names for s in shards if s.table == table)


def sample(data: ExploreData, n: int, seed: int = 0) -> ExploreData:
    """``n`` clips drawn at random (seeded), their paired images first, then images up to ``n``.

    Pairs are kept where both ends were drawn, so a sampled clip still shows its images.
    """
    if n < 1:
        raise ExploreError(f"--sample must be at least 1 (got {n})")
    rng = random.Random(seed)
    clips = _draw(data.clips, n, rng)
    clip_ids = {c["clip_id"] for c in clips}
    paired = [p["image_id"] for p in data.pairs if p["music_clip_id"] in clip_ids]
    by_id = {r["image_id"]: r for r in data.images}
    chosen: dict[str, dict] = {}
    for image_id in paired:
        if len(chosen) >= n:
            break
        if image_id in by_id:
            chosen.setdefault(image_id, by_id[image_id])
    rest = [r for r in data.images if r["image_id"] not in chosen]
    for r in _draw(rest, n - len(chosen), rng):
        chosen[r["image_id"]] = r
    images = sorted(chosen.values(), key=lambda r: r["image_id"])
    pairs = [p for p in data.pairs if p["music_clip_id"] in clip_ids and p["image_id"] in chosen]
    return ExploreData(
        root=data.root, kind=data.kind, shards=data.shards, clips=clips, images=images, pairs=pairs,
        failures=data.failures, has_audio=data.has_audio, has_image_pixels=data.has_image_pixels,
        rows=data.rows, run=data.run,
        sampled_from={schema.MUSIC: len(data.clips), schema.IMAGES: len(data.images)})


def _draw(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    """Up to ``n`` rows, in their original order."""
    if n >= len(rows):
        return list(rows)
    keep = sorted(rng.sample(range(len(rows)), max(0, n)))
    return [rows[i] for i in keep]
