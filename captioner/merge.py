"""Write new captions into a run's `music` shards, shard by shard, without changing their layout,
and the captioner's rejections into its failures table.

Rows keep their order (the pipeline sorts them by id), shard files keep their names, row-group
size and per-column compression; only `caption` and `captioner` change. A clip the captioner
rejected gets the fallback template's caption from its row's descriptors and VA (as in the
pipeline, :mod:`captioner.fallback`); without a fallback it keeps the caption it had. All new
shards are written to temporary files first and then renamed over the old ones: a crash before
the renames leaves the previous table untouched, and every rename is atomic per file.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from captioner.base import CaptionResult, ClipForCaption
from captioner.content import from_row
from captioner.fallback import Fallback

MUSIC_GLOB = "data/music/*.parquet"
FAILURES = "failures/failures.parquet"
TMP_SUFFIX = ".captioner-tmp"
CAPTION_STAGE = "caption"


@dataclass(frozen=True)
class MergeStats:
    shards: int
    rows: int
    replaced: int  # rows whose caption changed hands: accepted captions and fallbacks
    fallback: int = 0  # of which the template's, after a rejection
    fallback_by_reason: dict[str, int] = field(default_factory=dict)


def music_shards(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob(MUSIC_GLOB))


def merge(run_dir: Path, results: dict[str, CaptionResult], fallback: Fallback | None = None) -> MergeStats:
    """Rewrite every music shard with the accepted captions in ``results``, and the ``fallback``'s
    for the rejected ones."""
    shards = music_shards(run_dir)
    staged, rows, replaced, reasons = [], 0, 0, Counter()
    try:
        for path in shards:
            table, n = _with_captions(pq.read_table(path), results, fallback, reasons)
            tmp = path.with_name(path.name + TMP_SUFFIX)
            _write_like(path, table, tmp)
            staged.append((tmp, path))
            rows, replaced = rows + table.num_rows, replaced + n
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    return MergeStats(len(shards), rows, replaced, sum(reasons.values()), dict(sorted(reasons.items())))


def _with_captions(table: pa.Table, results: dict[str, CaptionResult], fallback: Fallback | None,
                   reasons: Counter) -> tuple[pa.Table, int]:
    """``table`` with new captions; counts the fallbacks by reason into ``reasons``."""
    ids = table.column("clip_id").to_pylist()
    captions = table.column("caption").to_pylist()
    captioners = table.column("captioner").to_pylist()
    n = 0
    for i, clip_id in enumerate(ids):
        r = results.get(clip_id)
        if r is not None and r.text is None and fallback is not None:
            r = fallback.rescue(_clip_of(table, i), r)
            reasons[r.error_type] += r.fell_back
        if r is not None and r.text is not None:
            captions[i], captioners[i], n = r.text, r.captioner, n + 1
    for name, values in (("caption", captions), ("captioner", captioners)):
        idx = table.schema.get_field_index(name)
        table = table.set_column(idx, table.schema.field(idx), pa.array(values, type=table.schema.field(idx).type))
    return table, n


def _clip_of(table: pa.Table, i: int) -> ClipForCaption:
    """What the fallback template reads of row ``i``: descriptors and VA, no audio."""
    columns = [c for c in ("clip_id", "descriptors", "valence", "arousal", "tag_probs") if c in table.schema.names]
    row = table.slice(i, 1).select(columns).to_pylist()[0]
    return ClipForCaption(row["clip_id"], None, 0, row["descriptors"], row["valence"], row["arousal"],
                          from_row(row.get("tag_probs")))


def record_rejections(run_dir: Path, results: dict[str, CaptionResult]) -> int | None:
    """Make the failures table's caption rows those of ``results`` (one per clip it rejected) for
    the clips ``results`` covers; others' rows stay. Written atomically; returns the rows written
    for these clips, or None when the run has no failures table."""
    path = Path(run_dir) / FAILURES
    if not path.exists():
        return None
    table = pq.read_table(path)
    keep = [not (stage == CAPTION_STAGE and item in results)
            for item, stage in zip(table.column("item_id").to_pylist(), table.column("stage").to_pylist())]
    new = [{"item_id": r.clip_id, "kind": "clip", "stage": CAPTION_STAGE, "error_type": r.error_type,
            "message": r.message or "", "attempts": r.attempts} for r in results.values() if r.rejected]
    rows = table.filter(pa.array(keep, type=pa.bool_())).to_pylist() + new
    rows.sort(key=lambda r: (r["kind"], r["item_id"], r["stage"]))  # the pipeline's order
    tmp = path.with_name(path.name + TMP_SUFFIX)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp, compression="zstd")
    os.replace(tmp, path)
    return len(new)


def _write_like(original: Path, table: pa.Table, target: Path) -> None:
    """Write ``table`` with the original file's row-group size and per-column compression."""
    meta = pq.ParquetFile(original).metadata
    row_group = meta.row_group(0).num_rows if meta.num_row_groups else max(1, table.num_rows)
    compression: dict[str, str] = {}
    if meta.num_row_groups:
        rg = meta.row_group(0)
        for j in range(rg.num_columns):
            col = rg.column(j)
            codec = col.compression.lower()
            compression[col.path_in_schema] = "none" if codec == "uncompressed" else codec
    # The pipeline stores media bytes (already FLAC) uncompressed, without dictionary or
    # statistics; keep that for every column the original left uncompressed.
    plain = {c for c, codec in compression.items() if codec == "none"}
    packed = [c for c in compression if c not in plain]
    with open(target, "wb") as fh:
        pq.write_table(table, fh, row_group_size=max(1, row_group), compression=compression or "zstd",
                       use_dictionary=packed if plain else True, write_statistics=packed if plain else True)
        fh.flush()
        os.fsync(fh.fileno())
