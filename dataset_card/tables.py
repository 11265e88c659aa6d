"""Find and read the parquet shards of a run folder or a built dataset folder.

Both share the layout ``data/<table>/<split>-NNNNN-of-NNNNN.parquet`` (pipeline.writer.shard_path).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dataset_card import schema

_SHARD = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")


@dataclass(frozen=True)
class Shard:
    """One parquet shard file of a dataset folder."""

    table: str
    split: str
    path: Path  # absolute
    rel: str  # relative to the dataset folder, posix style


def find_shards(root: Path) -> list[Shard]:
    """Every shard under ``root/data``, ordered by table, split and index."""
    out = []
    for table in schema.TABLES:
        for p in sorted((root / "data" / table).glob("*.parquet")):
            m = _SHARD.match(p.name)
            if m and m["split"] in schema.SPLITS:
                out.append(Shard(table, m["split"], p, p.relative_to(root).as_posix()))
    order = {s: i for i, s in enumerate(schema.SPLITS)}
    return sorted(out, key=lambda s: (schema.TABLES.index(s.table), order[s.split], s.rel))


def shards_of(shards: list[Shard], table: str) -> list[Shard]:
    return [s for s in shards if s.table == table]


def read_table(shards: list[Shard], table: str, drop_media: bool = True) -> pa.Table:
    """All rows of ``table`` (media columns left out unless asked: they are most of the bytes)."""
    parts = []
    for s in shards_of(shards, table):
        cols = pq.read_schema(s.path).names
        if drop_media:
            cols = [c for c in cols if c not in schema.MEDIA_COLUMN.values()]
        parts.append(pq.read_table(s.path, columns=cols))
    if not parts:
        feats = schema.metadata_only_features(table) if drop_media else schema.FEATURES[table]
        return feats.arrow_schema.empty_table()
    return pa.concat_tables(parts, promote_options="permissive")


def rows_per_split(shards: list[Shard]) -> dict[str, dict[str, int]]:
    """{table: {split: rows}} from the parquet footers (no data read)."""
    out: dict[str, dict[str, int]] = {}
    for s in shards:
        split_rows = out.setdefault(s.table, {})
        split_rows[s.split] = split_rows.get(s.split, 0) + pq.ParquetFile(s.path).metadata.num_rows
    return out
