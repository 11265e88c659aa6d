"""Deterministic parquet shards with the Hugging Face features, written through Beam's filesystems.

Rows of one (table, split) are spread over ``n`` shards by a hash of their id, where ``n`` keeps each
shard under ``max_shard_bytes``; inside a shard rows are sorted by id. The same rows therefore give
the same bytes whatever the runner, the worker count or the order the rows arrived in.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import logging
import os
import pickle
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO, Callable, Iterable

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from dataset_card import schema
from pipeline.memory import keep_returning_freed_memory
from pipeline.types import Failure

log = logging.getLogger(__name__)

# datasets 5.2 bounds shards at 500 MB and row groups at 100 MB (datasets.config.MAX_SHARD_SIZE /
# MAX_ROW_GROUP_SIZE): the Hub's viewer and streaming readers expect nothing larger. Row groups are
# kept to a third of that: a writer holds about three times its row group (the media buffer, Arrow's
# encoded pages, the file's buffers; `tests/benchmarks/bench_writer.py`), and every worker writes
# at once at the end of a run; readers of a few rows (the viewer, the re-captioning job) read less too.
MAX_SHARD_BYTES = 500 << 20
MAX_ROW_GROUP_BYTES = 32 << 20
_FIXED_ROW_BYTES = 256  # ids, floats, descriptors and caption: a rough constant per row


@dataclass(frozen=True)
class ShardInfo:
    """One written shard file."""

    table: str
    split: str
    index: int
    count: int
    rows: int
    path: str  # relative to the output folder, posix style

    @property
    def key(self) -> tuple[str, str]:
        return self.table, self.split


def row_id(table: str, row: dict[str, Any]) -> str:
    """The sort/shard key of a row."""
    col = schema.ID_COLUMN[table]
    return "\x00".join(row[c] for c in col) if isinstance(col, tuple) else row[col]


STAGED = "_staged"  # row key: {column: (uri, size)} of media bytes kept out of the shuffles
STAGING_DIR = "_staging"
MEDIA_COLUMNS = ("audio", "image")


def stage_media(output: str, table: str, row: dict[str, Any], column: str, data: bytes) -> dict[str, Any]:
    """Write a row's media bytes to the staging area and leave only their address in the row.

    Media are most of the bytes; moving them through Beam's shuffles (twice, to plan and to fill
    shards) cost more than the work itself. The shard writer reads them back.
    """
    from pipeline.ids import safe_name

    uri = join(output, f"{STAGING_DIR}/{table}/{safe_name(row_id(table, row), '.bin')}")
    write_atomic(uri, data)
    row[STAGED] = {**row.get(STAGED, {}), column: (uri, len(data))}
    return row


def unstage(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of the row with its staged media bytes read back in (``row`` itself stays light)."""
    row = dict(row)
    staged = row.pop(STAGED, None) or {}
    for column, (uri, _) in staged.items():
        with FileSystems.open(uri) as fh:
            row[column] = {**row[column], "bytes": fh.read()}
    return row


def row_bytes(row: dict[str, Any]) -> int:
    """Approximate uncompressed size of a row: media bytes dominate."""
    size = _FIXED_ROW_BYTES + len(row.get("caption") or "")
    for column in MEDIA_COLUMNS:
        if column in row.get(STAGED, {}):
            size += row[STAGED][column][1]
        elif row.get(column) and row[column].get("bytes"):
            size += len(row[column]["bytes"])
    return size


def shard_count(total_bytes: int, max_shard_bytes: int) -> int:
    """How many shards keep each under ``max_shard_bytes`` (at least one)."""
    return max(1, math.ceil(total_bytes / max_shard_bytes))


def shard_of(key: str, count: int) -> int:
    """Stable shard index of ``key`` among ``count`` shards."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % count


def shard_path(table: str, split: str, index: int, count: int) -> str:
    """Relative path of a shard, in the Hugging Face naming scheme."""
    return f"data/{table}/{split}-{index:05d}-of-{count:05d}.parquet"


def write_parquet(path: str, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows sorted by id, as parquet with the table's HF schema and bounded row groups, to ``path``.

    Rows arrive light (media staged); the media of one row group at a time are read back and
    written, so a writer holds about one row group (<= 32 MB of media), not the shard. The bytes
    are those of one ``pq.write_table`` of the whole sorted table with the same ``row_group_size``.
    """
    rows = sorted(rows, key=lambda r: row_id(table, r))
    arrow_schema = schema.arrow_schema(table)
    avg = max(1, sum(row_bytes(r) for r in rows) // max(1, len(rows)))
    row_group = max(1, MAX_ROW_GROUP_BYTES // avg)

    def write(sink: BinaryIO | str) -> None:
        with pq.ParquetWriter(sink, arrow_schema, **_encoding(arrow_schema)) as out:
            for start in range(0, max(1, len(rows)), row_group):  # an empty shard still gets its row group
                group = row_group_table(rows[start:start + row_group], arrow_schema)
                out.write_table(group, row_group_size=row_group)
                del group  # before the next one is read: one row group in memory, not two

    write_atomic(path, write, local_path=True)


def row_group_table(rows: list[dict[str, Any]], arrow_schema: pa.Schema) -> pa.Table:
    """One row group as an Arrow table, staged media read straight into one exact-size buffer per column.

    ``pa.Table.from_pylist`` of rows holding their media keeps every file's bytes as a Python
    object and again in Arrow builders that grow by doubling: writing four 99 MB row groups so took
    a process 700 MB above its start, 315 MB this way (with the native write of ``write_parquet``).
    Same values, so same bytes.
    """
    staged = [c for c in MEDIA_COLUMNS if c in arrow_schema.names and rows and all(c in r.get(STAGED, {}) for r in rows)]
    table = pa.Table.from_pylist([_without_staged(r, staged) for r in rows], schema=arrow_schema)
    for column in staged:
        i = arrow_schema.get_field_index(column)
        light = table.column(i).combine_chunks()
        media = pa.StructArray.from_arrays([_read_staged(rows, column), light.field("path")],
                                           fields=list(arrow_schema.field(i).type))
        table = table.set_column(i, arrow_schema.field(i), media)
    return table


def _without_staged(row: dict[str, Any], staged: list[str]) -> dict[str, Any]:
    """The row without its staging addresses; media not staged are read back as before."""
    if not staged:
        return unstage(row)
    row = {k: v for k, v in row.items() if k != STAGED}
    for column in staged:
        row[column] = {**row[column], "bytes": None}
    return row


def _read_staged(rows: list[dict[str, Any]], column: str) -> pa.Array:
    """A binary array of the rows' staged ``column`` files, read into one buffer of their summed size."""
    sizes = [r[STAGED][column][1] for r in rows]
    ends = np.cumsum(sizes, dtype=np.int64)
    if len(ends) and ends[-1] >= 2**31:  # Arrow's binary type has 32-bit offsets
        raise ValueError(f"{len(rows)} {column} files of {int(ends[-1])} bytes do not fit one row group "
                         "of the binary type (2 GiB); lower MAX_ROW_GROUP_BYTES")
    offsets = np.concatenate([[0], ends]).astype(np.int32)
    data = bytearray(int(offsets[-1]))
    view = memoryview(data)
    for row, start, size in zip(rows, offsets[:-1], sizes):
        uri = row[STAGED][column][0]
        with FileSystems.open(uri) as fh:
            got = fh.read(size + 1)
        if len(got) != size:
            raise IOError(f"staged file {uri} holds {len(got)} bytes, {size} expected (changed since staging?)")
        view[start:start + size] = got
    return pa.BinaryArray.from_buffers(pa.binary(), len(rows), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _encoding(arrow_schema: pa.Schema) -> dict[str, Any]:
    """Parquet settings: media bytes (FLAC/JPEG/PNG already) get no compression, dictionary or
    statistics, which would only cost time; every other column is zstd-compressed."""
    def leaves(field: pa.Field, prefix: str = ""):
        name = prefix + field.name
        if pa.types.is_struct(field.type):
            for child in field.type:
                yield from leaves(child, name + ".")
        else:
            yield name

    media = {f"{m}.bytes" for m in MEDIA_COLUMNS}
    paths = [p for f in arrow_schema for p in leaves(f)]
    plain = [p for p in paths if p not in media]
    return {"compression": {p: "NONE" if p in media else "ZSTD" for p in paths},
            "use_dictionary": plain, "write_statistics": plain}


def write_atomic(path: str, payload: bytes | Callable[[BinaryIO | str], object], *, local_path: bool = False) -> None:
    """Write ``payload`` (bytes, or a function writing to a file) to ``path`` on any Beam
    filesystem, via a temporary name and a rename.

    A killed run therefore leaves either the previous file or the new one, never half of one.
    With ``local_path``, a function given a local ``path`` gets the temporary file's name instead
    of a file object, so that a native writer (pyarrow) writes it without Python in between: that
    saves a copy of every buffer it writes.
    """
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    local = _make_folder_for(path)
    if local and local_path and callable(payload):
        payload(tmp)
    else:
        with FileSystems.create(tmp) as fh:
            payload(fh) if callable(payload) else fh.write(payload)
    FileSystems.rename([tmp], [path])


def _make_folder_for(path: str) -> bool:
    """Make the folder of a local ``path``; True when it is local (object stores have no folders)."""
    local = FileSystems.get_scheme(path) is None
    if local:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return local


def join(base: str, rel: str) -> str:
    """Join a relative posix path onto a local or remote base."""
    return FileSystems.join(base, *rel.split("/"))


def pack_row(table: str, row: dict[str, Any]) -> bytes:
    """A light row of ``table`` as bytes, as :class:`StageRows` stages it for the shard writer.

    The values go in the table's column order (struct columns as tuples of their fields), so no
    column or descriptor name is repeated in every row: a music row packs into about a third less
    than the pickle of its dict. Lossless: :func:`unpack_row` gives back an equal dict.
    """
    names, structs = _layout(table)
    values = tuple(_ABSENT if n not in row else _pack_struct(row[n], structs.get(n)) for n in names)
    extras = {k: v for k, v in row.items() if k not in structs and k not in names} or None
    return pickle.dumps((values, extras), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_row(table: str, data: bytes) -> dict[str, Any]:
    """The row :func:`pack_row` packed (written by this pipeline's own stages)."""
    names, structs = _layout(table)
    values, extras = pickle.loads(data)
    row = {n: _unpack_struct(v, structs.get(n)) for n, v in zip(names, values) if v is not _ABSENT}
    return {**row, **extras} if extras else row


_ABSENT = Ellipsis  # a column the row does not have (pickles as a short global reference)


@functools.lru_cache(maxsize=None)
def _layout(table: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(column names, {struct column: its field names}) of ``table``'s schema."""
    arrow_schema = schema.arrow_schema(table)
    structs = {f.name: tuple(c.name for c in f.type) for f in arrow_schema if pa.types.is_struct(f.type)}
    return tuple(arrow_schema.names), structs


def _pack_struct(value: Any, fields: tuple[str, ...] | None) -> Any:
    # A dict with exactly the struct's fields becomes the tuple of its values; anything else stays.
    if fields and isinstance(value, dict) and tuple(value) == fields:
        return tuple(value.values())
    return value


def _unpack_struct(value: Any, fields: tuple[str, ...] | None) -> Any:
    return dict(zip(fields, value)) if fields and isinstance(value, tuple) else value


ROWS_DIR = "rows"  # under STAGING_DIR: the light rows, one file per bundle that made them


# Where a packed row was staged: (file, offset, length) in ``_staging/rows/{file}.bin``. A plain
# tuple: Beam's coder writes it in 51 bytes with its tag, where a dataclass is pickled in 126.
RowRef = tuple[str, int, int]


class StageRows(beam.DoFn):
    """``(table, row)`` → ``((table, row id), ("row", RowRef))``: each light row is packed and
    appended to one staging file per bundle, and only its address goes on.

    DirectRunner holds every shuffled element in the launcher and hands each worker its whole share
    of a stage at once; an address instead of the row (a music row packs into ~0.5 KB) keeps both
    small at any size. A file is closed when its bundle finishes, before any later stage reads it;
    a retried bundle writes a new file, and ``finalize`` removes them all.
    """

    def __init__(self, output: str):
        super().__init__()
        self.output = output
        self._fh = None

    def start_bundle(self):
        self._fh, self._file, self._offset = None, None, 0

    def process(self, element):
        table, row = element
        data = pack_row(table, row)
        if self._fh is None:
            self._file = uuid.uuid4().hex
            uri = _rows_uri(self.output, self._file)
            _make_folder_for(uri)
            self._fh, self._offset = FileSystems.create(uri), 0
        self._fh.write(data)
        yield (table, row_id(table, row)), ("row", (self._file, self._offset, len(data)))
        self._offset += len(data)

    def finish_bundle(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def teardown(self):
        self.finish_bundle()


def _rows_uri(output: str, file: str) -> str:
    return join(output, f"{STAGING_DIR}/{ROWS_DIR}/{file}.bin")


def read_rows(output: str, table: str, refs: list[RowRef]) -> list[dict[str, Any]]:
    """The rows ``refs`` address, in their order; each staging file is opened once."""
    by_file: dict[str, list[tuple[int, int, int]]] = {}
    for i, (file, offset, length) in enumerate(refs):
        by_file.setdefault(file, []).append((offset, length, i))
    rows: list[dict[str, Any] | None] = [None] * len(refs)
    for file, parts in by_file.items():
        uri = _rows_uri(output, file)
        with FileSystems.open(uri) as fh:
            for offset, length, i in sorted(parts):
                fh.seek(offset)
                data = fh.read(length)
                if len(data) != length:
                    raise IOError(f"staged rows {uri}: {len(data)} bytes at {offset}, {length} expected "
                                  "(removed or cut short since staging?)")
                rows[i] = unpack_row(table, data)
    return rows


def write_shard(output: str, key: tuple[str, str, int, int], refs: Iterable[RowRef | None]) -> ShardInfo:
    """Write one shard from its staged rows (possibly none: every index of a planned split is written)."""
    keep_returning_freed_memory()  # a runner's worker that writes but made no rows starts it here
    table, split, index, count = key
    t0 = time.perf_counter()
    real = read_rows(output, table, [r for r in refs if r is not None])
    rel = shard_path(table, split, index, count)
    write_parquet(join(output, rel), table, real)
    log.info("wrote %s: %d rows in %.1f s", rel, len(real), time.perf_counter() - t0)
    return ShardInfo(table, split, index, count, len(real), rel)


def failures_bytes(failures: Iterable[Failure]) -> bytes:
    """All failures as one sorted parquet file."""
    rows = sorted((asdict(f) for f in failures), key=lambda r: (r["kind"], r["item_id"], r["stage"]))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.FAILURE_SCHEMA), buf, compression="zstd")
    return buf.getvalue()


def gather(pcoll, label: str):
    """All elements of ``pcoll`` as one list element, also when there are none.

    A GroupByKey on one key, plus a sentinel so an empty input still yields ``[]``; unlike side
    inputs and global combines it behaves the same on every runner (Dask included).
    """
    sentinel = pcoll.pipeline | f"{label}Sentinel" >> beam.Create([(None, _NOTHING)])
    return (
        (pcoll | f"{label}Key" >> beam.Map(lambda x: (None, x)), sentinel)
        | f"{label}Flatten" >> beam.Flatten()
        | f"{label}Group" >> beam.GroupByKey()
        | f"{label}List" >> beam.MapTuple(lambda _, xs: [x for x in xs if not _is_nothing(x)])
    )


def split_by(pcoll, predicate, label: str):
    """(elements where ``predicate`` holds, the others), with two filters.

    Used instead of tagged outputs and Partition: DaskRunner (Beam 2.77) sends every element
    of a multi-output ParDo to one of its outputs.
    """
    yes = pcoll | f"{label}Yes" >> beam.Filter(predicate)
    no = pcoll | f"{label}No" >> beam.Filter(lambda x: not predicate(x))
    return yes, no


_NOTHING = "__imemnet_c_nothing__"


def _is_nothing(x) -> bool:
    return isinstance(x, str) and x == _NOTHING


def plan_split(key: tuple[str, str], sizes: Iterable[tuple[str, int]], max_shard_bytes: int):
    """Shard assignment of every row id of one (table, split), plus one marker per shard."""
    sizes = list(sizes)
    table, split = key
    count = shard_count(sum(b for _, b in sizes), max_shard_bytes)
    for i in range(count):
        yield "shard", ((table, split, i, count), None)
    for rid, _ in sizes:
        yield "row", ((table, rid), (split, shard_of(rid, count), count))


class WriteTables(beam.PTransform):
    """``(table, row)`` elements (one PCollection, or a tuple of them) → shard files; outputs one
    :class:`ShardInfo` per shard.

    Only row ids and sizes travel to the planning step, and only rows' addresses to their shard:
    media and light rows are staged (:class:`StageRows`) and read back by the shard writer. No side
    inputs, so the same graph runs on Direct, Dask, Portable and Dataflow. Each input is keyed
    where it is made and the keyed collections are flattened straight into the groupings: a
    Flatten with any other consumer is a stage of its own, which on DirectRunner holds every
    element once more.
    """

    def __init__(self, output: str, max_shard_bytes: int = MAX_SHARD_BYTES):
        super().__init__()
        self.output = output
        self.max_shard_bytes = max_shard_bytes

    def expand(self, tables):
        tables = tables if isinstance(tables, (tuple, list)) else (tables,)
        by_id = [t | f"StageRows{i}" >> beam.ParDo(StageRows(self.output)) for i, t in enumerate(tables)]
        sizes = [t | f"Sizes{i}" >> beam.MapTuple(lambda t, r: ((t, r["split"]), (row_id(t, r), row_bytes(r))))
                 for i, t in enumerate(tables)]
        plan = (
            sizes
            | "AllSizes" >> beam.Flatten()
            | "GroupSizes" >> beam.GroupByKey()
            | "Plan" >> beam.FlatMap(lambda kv, m: plan_split(kv[0], kv[1], m), self.max_shard_bytes)
        )
        shard_plan, row_plan = split_by(plan, lambda kv: kv[0] == "shard", "SplitPlan")
        assignments = row_plan | "RowPlan" >> beam.MapTuple(lambda _, kv: (kv[0], ("where", kv[1])))
        every_shard = shard_plan | "ShardPlan" >> beam.Map(lambda kv: kv[1])
        placed = (
            (*by_id, assignments)
            | "RowsAndPlan" >> beam.Flatten()
            | "Join" >> beam.GroupByKey()
            | "ToShard" >> beam.FlatMap(_to_shard)
        )
        out = self.output
        return (
            (placed, every_shard)
            | "Merge" >> beam.Flatten()
            | "GroupShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.MapTuple(lambda key, rs: write_shard(out, key, rs))
        )


def _to_shard(joined):
    """A row id's staged row and its planned place → ``((table, split, index, count), RowRef)``."""
    (table, _), tagged = joined
    rows = [v for tag, v in tagged if tag == "row"]
    (split, index, count), = {v for tag, v in tagged if tag == "where"}
    for row in rows:
        yield (table, split, index, count), row


class WriteFailures(beam.PTransform):
    """All :class:`Failure` elements → ``failures/failures.parquet``; outputs the count."""

    def __init__(self, output: str):
        super().__init__()
        self.output = output

    def expand(self, failures):
        out = self.output

        def write(all_failures):
            write_atomic(join(out, "failures/failures.parquet"), failures_bytes(all_failures))
            return len(all_failures)

        return gather(failures, "Failures") | "Write" >> beam.Map(write)


def dataset_readme(shards: Iterable[ShardInfo]) -> str:
    """A minimal dataset README whose YAML lets ``load_dataset(dir, config)`` find every split.

    ``python -m dataset_card build`` replaces it with the full card; this stub only declares files.
    """
    splits: dict[str, dict[str, list[str]]] = {}
    for s in sorted(shards, key=lambda s: (s.table, schema.SPLITS.index(s.split), s.index)):
        splits.setdefault(s.table, {}).setdefault(s.split, []).append(s.path)
    lines = ["---", "configs:"]
    for table in (t for t in schema.TABLES if t in splits):
        lines.append(f"- config_name: {table}")
        lines.append("  data_files:")
        for split in splits[table]:
            lines.append(f"  - split: {split}")
            lines.append(f"    path: {json.dumps(f'data/{table}/{split}-*.parquet')}")
    lines += ["---", "", "# IMEMNet-C (pipeline output)", "",
              "Written by `python -m pipeline.run`; see `run.json` for options, versions and counts,",
              "and `failures/failures.parquet` for every input that did not make it, with the reason.", ""]
    return "\n".join(lines)
