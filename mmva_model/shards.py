"""A table split's parquet shards read in place: no copy into the Hugging Face datasets cache.

``datasets.load_dataset("parquet", ...)`` converts every shard into an Arrow file under the
datasets cache before the first row can be read (7.6 GB for the full-size IMEMNet-C run), and
datasets 5.2 has no way to read parquet by random access without that copy. Here the small
columns (ids, VA, captions, descriptors) are read into memory once, and the media column is read
one row group at a time, when a row of it is asked for: the reader keeps the last row group's
media (at most the writer's row-group bound, ~32 MB) so rows read in order cost one read per
row group, while rows read at random cost one row-group read each.
"""
from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class ParquetMedia:
    """The media column of parquet shards, read a row group at a time (see the module docstring)."""

    files: list[str]
    column: str
    starts: list[int] = field(default_factory=list)  # first row of each (file, row group), plus the total
    groups: list[tuple[int, int]] = field(default_factory=list)  # (file index, row group index)

    def __post_init__(self):
        self._pid, self._handles, self._held = -1, {}, (-1, None)
        if not self.groups:
            row = 0
            for f, path in enumerate(self.files):
                meta = pq.ParquetFile(path).metadata
                for g in range(meta.num_row_groups):
                    self.groups.append((f, g))
                    self.starts.append(row)
                    row += meta.row_group(g).num_rows
            self.starts.append(row)

    def __len__(self) -> int:
        return self.starts[-1] if self.starts else 0

    def cell(self, i: int) -> Any:
        """Row ``i``'s media cell (``{"bytes": ..., "path": ...}``)."""
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        g = bisect.bisect_right(self.starts, i) - 1
        return self._group(g)[i - self.starts[g]].as_py()

    def _group(self, g: int) -> pa.ChunkedArray:
        if self._held[0] != g:
            self._held = (-1, None)  # let the previous row group go before reading the next
            f, rg = self.groups[g]
            table = self._file(f).read_row_group(rg, columns=[self.column])
            self._held = (g, table.column(0))
        return self._held[1]

    def _file(self, f: int) -> pq.ParquetFile:
        if self._pid != os.getpid():  # a forked DataLoader worker opens its own handles
            self._pid, self._handles, self._held = os.getpid(), {}, (-1, None)
        if f not in self._handles:
            # Plain reads, not a memory map: mapped pages of the file stay in this process's RSS
            # (411 MB after reading a 340 MB shard once, against a steady ~100 MB read this way).
            self._handles[f] = pq.ParquetFile(self.files[f], memory_map=False, pre_buffer=False)
        return self._handles[f]

    def __getstate__(self) -> dict:
        return {"files": self.files, "column": self.column, "starts": self.starts, "groups": self.groups}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()


def read_columns(files: list[str], columns: list[str]) -> pa.Table:
    """``columns`` of the shards, rows in order (the Hugging Face features metadata stays:
    ``datasets.Dataset`` reads the columns' features from it)."""
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)


def column_names(files: list[str]) -> list[str]:
    """Top-level columns of the shards (the first shard's schema: the writer gives all one schema)."""
    return list(pq.read_schema(files[0]).names)


def shards_fingerprint(table: str, split: str, files: list[str]) -> str:
    """Identifies the shards' content for the feature cache: their paths, sizes and modification
    times (what datasets keys its own cache on; rewriting a shard changes the key)."""
    h = hashlib.sha256(f"{table}/{split}".encode())
    for f in files:
        st = Path(f).stat()
        h.update(f"\0{Path(f).resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
