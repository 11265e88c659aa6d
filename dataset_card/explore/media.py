"""Media of the page's rows, extracted once from the shards into ``media/`` next to the page.

Shards hold media as bytes inside parquet, which a browser cannot read from a ``file://`` page.
The page therefore never embeds media (no base64): each clip and image is written once as a file
named by a hash of its id (whatever the id holds, the name is safe), and the page refers to it by
a relative URL and loads it only when played or scrolled into view. Re-running keeps files
already there (same size) and removes files no row refers to any more.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from dataset_card import schema
from dataset_card.tables import Shard, shards_of

MEDIA_DIR = "media"
SUBDIR = {schema.MUSIC: "audio", schema.IMAGES: "images"}
_BATCH_ROWS = 64  # rows of media bytes held at once: memory stays bounded by this, not the data
_OURS = re.compile(r"^[0-9a-f]{24}\.[a-z0-9]+$")

# Magic bytes first: the stored path is a name, not a promise about the format.
_MAGIC = ((b"fLaC", ".flac"), (b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"),
          (b"OggS", ".ogg"), (b"ID3", ".mp3"))
_RIFF = {b"WAVE": ".wav", b"WEBP": ".webp"}


@dataclass
class MediaResult:
    """Where each row's media ended up (relative URLs from the page), and what was missing."""

    urls: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> id -> "media/audio/<h>.flac"
    written: int = 0
    reused: int = 0
    removed: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # table -> rows whose media bytes are empty
    bytes: int = 0  # size of every referenced file


def file_stem(item_id: str) -> str:
    """A file name stem for ``item_id`` that is safe whatever the id holds."""
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:24]


def suffix_of(data: bytes, stored_path: str | None) -> str:
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] in _RIFF:
        return _RIFF[data[8:12]]
    suffix = Path(stored_path or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"


def extract(shards: list[Shard], wanted: dict[str, set[str]], out_dir: Path) -> MediaResult:
    """Write the media of the ``wanted`` ids ({table: ids}) under ``out_dir/media``."""
    result = MediaResult()
    keep: set[Path] = set()
    for table, ids in wanted.items():
        column = schema.MEDIA_COLUMN[table]
        folder = out_dir / MEDIA_DIR / SUBDIR[table]
        urls = result.urls.setdefault(table, {})
        for item_id, value in _media_values(shards_of(shards, table), schema.ID_COLUMN[table], column, ids):
            data = (value or {}).get("bytes")
            if not data:
                result.missing[table] = result.missing.get(table, 0) + 1
                continue
            path = folder / (file_stem(item_id) + suffix_of(data, (value or {}).get("path")))
            _write_once(path, data, result)
            keep.add(path)
            urls[item_id] = path.relative_to(out_dir).as_posix()
            result.bytes += len(data)
    result.removed = _prune(out_dir / MEDIA_DIR, keep)
    return result


def _media_values(shards: list[Shard], id_column: str, column: str, ids: set[str]):
    """(id, media struct) of the wanted ids, streamed shard by shard in small batches."""
    for s in shards:
        f = pq.ParquetFile(s.path)
        if column not in f.schema_arrow.names:
            continue
        for batch in f.iter_batches(batch_size=_BATCH_ROWS, columns=[id_column, column]):
            for item_id, value in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                if item_id in ids:
                    yield item_id, value


def _write_once(path: Path, data: bytes, result: MediaResult) -> None:
    if path.exists() and path.stat().st_size == len(data):
        result.reused += 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a killed run leaves the old file or the new one, never half of one
    result.written += 1


def _prune(media_dir: Path, keep: set[Path]) -> int:
    """Remove files of an earlier export that no row of this page refers to."""
    removed = 0
    for sub in SUBDIR.values():
        folder = media_dir / sub
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.is_file() and (_OURS.match(p.name) or p.name.endswith(".tmp")) and p not in keep:
                p.unlink()
                removed += 1
    return removed
