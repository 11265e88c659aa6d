"""Shared CSV reading and row validation for the metadata sources.

Sources read small metadata tables on the launcher. Everything here follows one rule: a bad
*file* (unreadable, missing columns) raises ``ValueError`` naming the file; a bad *row* becomes a
:class:`~pipeline.types.Failure` (via :class:`RowError`) and never disappears silently.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar
from urllib.parse import urlsplit

from pipeline.ids import check_id
from pipeline.types import Failure, ItemError

T = TypeVar("T")

# Rating scales that VA values arrive in, as (low, high); ``to_unit`` maps them onto [0, 1].
# IAPS/NAPS use 1-9 SAM ratings, EMOTIC 1-10, DEAM's dynamic annotations [-1, 1].
VA_SCALES: dict[str, tuple[float, float]] = {
    "unit": (0.0, 1.0),
    "deam": (-1.0, 1.0),
    "iaps": (1.0, 9.0),
    "naps": (1.0, 9.0),
    "likert9": (1.0, 9.0),
    "emotic": (1.0, 10.0),
}
# Values a hair outside the scale are float noise from averaging (0.9999999999 + 1e-16), not errors.
_SCALE_EPS = 1e-9


def check_scale(scale: str) -> str:
    """Return ``scale`` if it names a :data:`VA_SCALES` entry, else raise ValueError listing them."""
    if scale not in VA_SCALES:
        raise ValueError(f"unknown VA scale {scale!r}; expected one of {sorted(VA_SCALES)}")
    return scale


def to_unit(value: float, scale: str) -> float:
    """Map ``value`` from ``scale`` onto [0, 1]; raise ValueError if it is non-finite or outside."""
    lo, hi = VA_SCALES[check_scale(scale)]
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"value {value!r} is not a finite number")
    if v < lo - _SCALE_EPS or v > hi + _SCALE_EPS:
        raise ValueError(f"value {v!r} is outside [{lo:g}, {hi:g}] (scale {scale!r})")
    return min(1.0, max(0.0, (v - lo) / (hi - lo)))


class RowError(ItemError, ValueError):
    """A row-level problem; converted into a :class:`Failure` with ``error_type``."""


@dataclass(frozen=True)
class Row:
    """One CSV record: stripped cells aligned with the header, plus where it came from."""

    file: str  # basename of the CSV, for messages and fallback ids
    line: int  # 1-based physical line where the record ends
    cells: tuple[str, ...]
    columns: dict[str, int] = field(repr=False, compare=False, hash=False)

    @property
    def ref(self) -> str:
        """Id for failures of rows that have no usable id: ``file:lineN``."""
        return f"{self.file}:line{self.line}"

    def get(self, column: str) -> str:
        """The stripped cell of ``column`` ('' when the column or the cell is absent)."""
        i = self.columns.get(column)
        return self.cells[i] if i is not None and i < len(self.cells) else ""


@dataclass
class Table:
    """A parsed CSV: header, well-formed rows, and failures for malformed ones."""

    path: Path
    header: list[str]
    rows: list[Row]
    failures: list[Failure]

    def has(self, column: str) -> bool:
        return column in self.header


def read_table(
    path: str | os.PathLike,
    *,
    required: Sequence[str],
    expected_header: str,
    stage: str,
    kind: str,
    ragged: bool = False,
) -> Table:
    """Read a CSV with the csv module; rows with the wrong field count become failures.

    Header cells are stripped (DEAM writes ``song_id, sample_15000ms``); a missing required
    column raises ValueError naming the file, the missing columns and ``expected_header``.
    Extra empty cells at the end of a row (a trailing comma) are tolerated. With ``ragged``,
    rows may also be *shorter* than the header (DEAM's curves of different lengths).
    """
    path = Path(path)
    name = path.name
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return _parse(fh, path, required, expected_header, stage, kind, ragged)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found (expected a CSV with header {expected_header!r})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ValueError(f"{name}: unreadable CSV: {e}") from None


def _parse(fh, path: Path, required, expected_header, stage, kind, ragged) -> Table:
    """Body of :func:`read_table` once the file is open."""
    reader = csv.reader(fh, skipinitialspace=True)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file; expected header {expected_header!r}")
    header = [h.strip() for h in header]
    _check_header(path, header, required, expected_header)
    columns = {h: i for i, h in enumerate(header) if h}
    width, rows, failures = len(header), [], []
    for cells in reader:
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line is not a record
        cells = [c.strip() for c in cells]
        while len(cells) > width and not cells[-1]:
            cells.pop()
        row = Row(path.name, reader.line_num, tuple(cells), columns)
        if len(cells) > width or (len(cells) < width and not ragged):
            failures.append(
                Failure(row.ref, stage, "malformed_row",
                        f"{len(cells)} fields where the header has {width} ({expected_header!r})",
                        kind=kind))
            continue
        rows.append(row)
    return Table(path, header, rows, failures)


def _check_header(path: Path, header: list[str], required: Sequence[str], expected: str) -> None:
    """Raise ValueError if required columns are missing or a named column appears twice."""
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {header[:12]}"
            f"{' ...' if len(header) > 12 else ''}; expected header {expected!r}")
    named = [h for h in header if h]
    dupes = sorted({h for h in named if named.count(h) > 1})
    if dupes:
        raise ValueError(f"{path}: column(s) {dupes} appear more than once; expected header {expected!r}")


def parse_float(text: str, what: str, error_type: str = "bad_va") -> float:
    """Parse a finite float or raise RowError(error_type) saying which value was wrong."""
    try:
        v = float(text)
    except ValueError:
        raise RowError(error_type, f"{what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise RowError(error_type, f"{what} {text!r} is not a finite number")
    return v


def parse_va(row: Row, scale: str, v_col: str = "valence", a_col: str = "arousal") -> tuple[float, float]:
    """(valence, arousal) of ``row`` mapped from ``scale`` to [0, 1]; RowError("bad_va") if not valid."""
    out = []
    for col in (v_col, a_col):
        v = parse_float(row.get(col), col)
        try:
            out.append(to_unit(v, scale))
        except ValueError as e:
            raise RowError("bad_va", f"{col}: {e}") from None
    return out[0], out[1]


def parse_id(raw: str, what: str = "id") -> str:
    """A clean id (pipeline.ids.check_id) or RowError("bad_id")."""
    try:
        return check_id(raw)
    except ValueError as e:
        raise RowError("bad_id", f"{what}: {e}"[:300]) from None


def collect_rows(
    rows: Iterable[Row],
    parse: Callable[[Row, str], T],
    *,
    id_column: str,
    stage: str,
    kind: str,
) -> tuple[list[T], list[Failure], dict[str, int]]:
    """Run ``parse(row, id)`` over rows with a clean, first-seen id; failures for the others.

    Returns (results, failures, first_line_of_each_id). Duplicates keep the first row (whatever
    became of it) and fail the rest with "duplicate_id"; RowError from ``parse`` becomes a
    Failure under the row's id.
    """
    results: list[T] = []
    failures: list[Failure] = []
    seen: dict[str, int] = {}
    for row in rows:
        try:
            item_id = parse_id(row.get(id_column), id_column)
        except RowError as e:
            failures.append(Failure(row.ref, stage, e.error_type, str(e), kind=kind))
            continue
        if item_id in seen:
            failures.append(Failure(item_id, stage, "duplicate_id",
                                    f"{row.ref}: {id_column} {item_id!r} already on line {seen[item_id]}",
                                    kind=kind))
            continue
        seen[item_id] = row.line
        try:
            results.append(parse(row, item_id))
        except RowError as e:
            failures.append(Failure(item_id, stage, e.error_type, f"{row.ref}: {e}", kind=kind))
    return results, failures, seen


def is_url(text: str) -> bool:
    """True for ``scheme://...`` strings (http, https, file, ...), False for local paths."""
    parts = urlsplit(text)
    # one-letter schemes are Windows drive letters ("C:\\x"), not URLs
    return bool(parts.scheme) and len(parts.scheme) > 1 and "://" in text


def local_path(text: str, base_dir: Path) -> Path:
    """A local path from a CSV cell; relative paths are relative to the CSV's folder."""
    p = Path(text).expanduser()
    return p if p.is_absolute() else base_dir / p


def resolve_uri(text: str, base_dir: Path, *, empty_error: str, missing_error: str) -> str:
    """A URL as given, or an existing local file (relative to the CSV's folder) as an absolute path."""
    if not text:
        raise RowError(empty_error, "empty path or url")
    if is_url(text):
        return text
    path = local_path(text, base_dir)
    if not path.is_file():
        raise RowError(missing_error, f"local file {text!r} not found")
    return str(path.resolve())


def folder_index(dirs: Sequence[str | os.PathLike], suffixes: Sequence[str]) -> dict[str, Path]:
    """Map lower-cased file stem -> path for files with one of ``suffixes`` in ``dirs``.

    Built once with os.scandir so that ids are looked up in a dict instead of being joined into
    paths. Ties (``3053.jpg`` and ``3053.JPG``, or the same stem in two folders) go to the
    earlier folder, then to the earlier suffix in ``suffixes``, then to the name.
    """
    order = {s.lower(): i for i, s in enumerate(suffixes)}
    found: dict[str, tuple[tuple, Path]] = {}
    for d_rank, d in enumerate(dirs):
        if not os.path.isdir(d):
            raise ValueError(f"{d}: not a folder")
        with os.scandir(d) as it:
            for entry in it:
                stem, dot, ext = entry.name.rpartition(".")
                rank = order.get("." + ext.lower()) if dot else None
                if rank is None or not stem or not entry.is_file():
                    continue
                key = (d_rank, rank, entry.name)
                prev = found.get(stem.lower())
                if prev is None or key < prev[0]:
                    found[stem.lower()] = (key, Path(entry.path))
    return {k: v[1] for k, v in found.items()}


def natural_key(item_id: str) -> tuple:
    """Sort key putting "2" before "10" (DEAM song ids are numbers stored as text)."""
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)
