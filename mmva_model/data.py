"""IMEMNet-C for training: tables of a pipeline run, a built dataset folder or a Hub id.

A local folder's shards (``data/<table>/<split>-*.parquet``, the layout both the pipeline and
``dataset_card build`` write) are read in place (:mod:`mmva_model.shards`): the small columns
in memory, the media column a row group at a time, with nothing copied into the Hugging Face
datasets cache. A Hub id loads with ``datasets.load_dataset(<repo id>, <table>, split=...)``,
which downloads the shards and keeps an Arrow copy in the datasets cache (``--hf_cache_dir``),
memory-mapped. Media stay undecoded (bytes) so encoders decode what they need at their own rate.

Bad data stops the run before training with a :class:`DataError` that names the rows: missing
columns, NaN or out-of-range VA, duplicate ids (and, when preparing inputs, undecodable media).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import datasets
import numpy as np

from dataset_card.schema import ID_COLUMN, IMAGES, MEDIA_COLUMN, MUSIC, PAIRS
from mmva_model.shards import ParquetMedia, column_names, read_columns, shards_fingerprint

DEFAULT_DATA = "runs/demo"
# Columns each table must have for training (media included: the encoders read them).
REQUIRED = {
    MUSIC: ("clip_id", "song_id", "valence", "arousal", "caption", "descriptors", "audio"),
    IMAGES: ("image_id", "valence", "arousal", "image"),
}
UNDECODED = {"audio": datasets.Audio(decode=False), "image": datasets.Image(decode=False)}
MAX_NAMED = 10  # ids listed in an error message


class DataError(ValueError):
    """Training data that cannot be used; the message names the offending rows."""


def _name_rows(ids: list[str]) -> str:
    more = f" (+{len(ids) - MAX_NAMED} more)" if len(ids) > MAX_NAMED else ""
    return ", ".join(map(str, ids[:MAX_NAMED])) + more


class MediaColumn(Protocol):
    """Where a table's media cells come from, by row."""

    def cell(self, i: int) -> Any: ...


@dataclass
class DatasetMedia:
    """The undecoded media column of a ``datasets.Dataset`` (a Hub id's Arrow copy)."""

    dataset: datasets.Dataset
    column: str

    def cell(self, i: int) -> Any:
        return self.dataset[int(i)][self.column]


@dataclass
class TableSplit:
    """One table's rows of one split: every column but the media one as a ``datasets.Dataset``,
    the media column read by row, and ids and VA in memory."""

    table: str
    split: str
    dataset: datasets.Dataset  # without the media column
    ids: list[str]
    va: np.ndarray  # (N, 2) float32
    fingerprint: str
    media: MediaColumn

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` with its undecoded media cell (``{"bytes": ..., "path": ...}``)."""
        row = self.dataset[int(i)]
        row[MEDIA_COLUMN[self.table]] = self.media.cell(int(i))
        return row

    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.ids)}


@dataclass
class SplitData:
    """Music (with captions) and images of one split, plus its clip-image pairs as row indices."""

    split: str
    music: TableSplit
    images: TableSplit
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # (P, 2)
    # pairs of this split's pairs table left out, by reason ("clip_not_in_split", "image_not_in_split",
    # "clip_and_image_not_in_split"): a pairs table may name rows another split or a failure holds
    dropped_pairs: dict[str, int] = field(default_factory=dict)

    def dropped_message(self) -> str:
        """One line naming the dropped pairs and why ('' when none were dropped)."""
        if not self.dropped_pairs:
            return ""
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped_pairs.items()))
        return (f"{self.split} split: {sum(self.dropped_pairs.values())} of "
                f"{sum(self.dropped_pairs.values()) + len(self.pairs)} pairs dropped ({why})")


def describe_source(data: str) -> str:
    """How ``data`` will be read (for logs and error messages)."""
    p = Path(data)
    if p.is_dir():
        return f"local folder {p}"
    return f"Hugging Face dataset {data!r}"


def _missing_data_message(data: str) -> str:
    hint = ""
    if data == DEFAULT_DATA:
        hint = ("\nMake it first with the pipeline's demo: `make run` (or, faster, "
                "`.venv/bin/python -m pipeline.run --captioner descriptor`).")
    return f"no IMEMNet-C data at {data!r}: give a pipeline run folder, a built dataset folder or a Hub id.{hint}"


def load_table(data: str, table: str, split: str, cache_dir: str | None = None) -> TableSplit:
    """One table split, validated; media columns undecoded."""
    if not Path(data).exists() and (data.startswith((".", "/", "runs")) or data == DEFAULT_DATA):
        raise DataError(_missing_data_message(data))
    parts = _local_parts if Path(data).is_dir() else _hub_parts
    rest, reader, fingerprint = parts(data, table, split, cache_dir)
    meta = rest.select_columns([ID_COLUMN[table], "valence", "arousal"]).to_pandas()
    ids = meta[ID_COLUMN[table]].astype(str).tolist()
    va = meta[["valence", "arousal"]].to_numpy(dtype=np.float32)
    _check_rows(table, split, ids, va)
    return TableSplit(table, split, rest, ids, va, fingerprint, reader)


def _local_parts(data: str, table: str, split: str, _cache_dir) -> tuple[datasets.Dataset, MediaColumn, str]:
    """A local folder's shards in place: the other columns in memory, the media column by row group."""
    files = _shard_files(data, table, split)
    names, media = column_names(files), MEDIA_COLUMN[table]
    _require_columns(data, table, split, names)
    rest = datasets.Dataset(read_columns(files, [n for n in names if n != media]))
    return rest, ParquetMedia(files, media), shards_fingerprint(table, split, files)


def _hub_parts(data: str, table: str, split: str, cache_dir: str | None) -> tuple[datasets.Dataset, MediaColumn, str]:
    """A Hub id through ``load_dataset`` (its Arrow copy in the datasets cache, memory-mapped)."""
    ds, media = _load_hub(data, table, split, cache_dir), MEDIA_COLUMN[table]
    _require_columns(data, table, split, ds.column_names)
    ds = ds.cast_column(media, UNDECODED[media])
    return ds.remove_columns(media), DatasetMedia(ds.select_columns([media]), media), ds._fingerprint


def _require_columns(data: str, table: str, split: str, names: list[str]) -> None:
    missing = [c for c in REQUIRED[table] if c not in names]
    if missing:
        raise DataError(f"{describe_source(data)}: table {table!r} ({split}) lacks columns {missing}; "
                        f"it has {names}")


def _shard_files(data: str, table: str, split: str) -> list[str]:
    files = sorted(str(p.resolve()) for p in (Path(data) / "data" / table).glob(f"{split}-*.parquet"))
    if not files:
        raise DataError(f"{describe_source(data)}: cannot load table {table!r} split {split!r}: "
                        f"no data/{table}/{split}-*.parquet shards")
    return files


def _load_hub(data: str, table: str, split: str, cache_dir: str | None) -> datasets.Dataset:
    try:
        return datasets.load_dataset(data, table, split=split, cache_dir=cache_dir)
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{describe_source(data)}: cannot load table {table!r} split {split!r}: {e}") from e


def _small_table(data: str, table: str, split: str, columns: list[str], cache_dir: str | None):
    """Some columns of a table split without media (the pairs table) as a pandas frame."""
    if Path(data).is_dir():
        return read_columns(_shard_files(data, table, split), columns).to_pandas()
    return _load_hub(data, table, split, cache_dir).select_columns(columns).to_pandas()


def _check_rows(table: str, split: str, ids: list[str], va: np.ndarray) -> None:
    """DataError naming rows with non-finite or out-of-range VA, or duplicate ids."""
    bad = [ids[i] for i in np.flatnonzero(~np.isfinite(va).all(axis=1) | (va < 0).any(axis=1) | (va > 1).any(axis=1))]
    if bad:
        raise DataError(f"table {table!r} ({split}): {len(bad)} rows with NaN or out-of-[0, 1] "
                        f"valence/arousal: {_name_rows(bad)}")
    seen: set[str] = set()
    dupes = [i for i in ids if i in seen or seen.add(i)]
    if dupes:
        raise DataError(f"table {table!r} ({split}): duplicate ids {_name_rows(sorted(set(dupes)))}")


def load_split(data: str, split: str, cache_dir: str | None = None, with_pairs: bool = False) -> SplitData:
    """Music and images of ``split`` (and its pairs table when ``with_pairs``)."""
    music = load_table(data, MUSIC, split, cache_dir)
    images = load_table(data, IMAGES, split, cache_dir)
    if not len(music) or not len(images):
        raise DataError(f"{describe_source(data)}: split {split!r} has {len(music)} clips and "
                        f"{len(images)} images; training and evaluation need both")
    out = SplitData(split, music, images)
    if with_pairs:
        out.pairs, out.dropped_pairs = _pair_indices(data, split, music, images, cache_dir)
    return out


def _pair_indices(data: str, split: str, music: TableSplit, images: TableSplit,
                  cache_dir: str | None) -> tuple[np.ndarray, dict[str, int]]:
    """Row indices of the pairs whose clip and image are in the split, and the others counted by reason."""
    return pair_rows(_small_table(data, PAIRS, split, ["music_clip_id", "image_id"], cache_dir), music, images)


def pair_rows(pairs, music: TableSplit, images: TableSplit) -> tuple[np.ndarray, dict[str, int]]:
    """``(kept (P, 2) row indices, {reason: dropped count})`` of a frame with music_clip_id, image_id."""
    clip_index, image_index = music.index(), images.index()
    kept, dropped = [], {}
    for c, i in zip(pairs.music_clip_id, pairs.image_id):
        row = (clip_index.get(c), image_index.get(i))
        if None not in row:
            kept.append(row)
            continue
        reason = {(True, False): "clip_not_in_split", (False, True): "image_not_in_split"}.get(
            (row[0] is None, row[1] is None), "clip_and_image_not_in_split")
        dropped[reason] = dropped.get(reason, 0) + 1
    return np.asarray(kept, dtype=np.int64).reshape(-1, 2), dropped


def load_pairs(data: str, split: str, cache_dir: str | None = None):
    """The split's pairs table as a frame (music_clip_id, image_id, score); None when a local folder
    has no pairs shard for the split (a run without pairs)."""
    if Path(data).is_dir() and not any((Path(data) / "data" / PAIRS).glob(f"{split}-*.parquet")):
        return None
    return _small_table(data, PAIRS, split, ["music_clip_id", "image_id", "score"], cache_dir)
