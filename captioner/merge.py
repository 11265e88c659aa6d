"""Write new captions into a run's `music` shards, shard by shard, without changing their layout.

Rows keep their order (the pipeline sorts them by id), shard files keep their names, row-group
size and per-column compression; only `caption` and `captioner` change, and only for clips with
an accepted caption (rejected clips keep the caption the pipeline wrote). All new shards are
written to temporary files first and then renamed over the old ones: a crash before the renames
leaves the previous table untouched, and every rename is atomic per file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from captioner.base import CaptionResult

MUSIC_GLOB = "data/music/*.parquet"
TMP_SUFFIX = ".captioner-tmp"


@dataclass(frozen=True)
class MergeStats:
    shards: int
    rows: int
    replaced: int


def music_shards(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob(MUSIC_GLOB))


def merge(run_dir: Path, results: dict[str, CaptionResult]) -> MergeStats:
    """Rewrite every music shard with the accepted captions in ``results``."""
    shards = music_shards(run_dir)
    staged, rows, replaced = [], 0, 0
    try:
        for path in shards:
            table, n = _with_captions(pq.read_table(path), results)
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
    return MergeStats(len(shards), rows, replaced)


def _with_captions(table: pa.Table, results: dict[str, CaptionResult]) -> tuple[pa.Table, int]:
    ids = table.column("clip_id").to_pylist()
    captions = table.column("caption").to_pylist()
    captioners = table.column("captioner").to_pylist()
    n = 0
    for i, clip_id in enumerate(ids):
        r = results.get(clip_id)
        if r is not None and r.text is not None:
            captions[i], captioners[i], n = r.text, r.captioner, n + 1
    for name, values in (("caption", captions), ("captioner", captioners)):
        idx = table.schema.get_field_index(name)
        table = table.set_column(idx, table.schema.field(idx), pa.array(values, type=table.schema.field(idx).type))
    return table, n


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
