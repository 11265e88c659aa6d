"""Images with VA labels (``--images_csv``), in one of two formats told apart by the header.

(a) IMEMNet-C ``image_va.csv``: ``,img,valence,arousal`` (VA in [0, 1]) plus image folders
    (``--images_dir``, repeatable) where id ``3053`` is ``3053.jpg`` / ``.JPG`` / ``.jpeg`` /
    ``.png``. The folders are indexed once (lower-cased stems); a row without a file fails with
    "missing_image". ``source`` is ``--images_source_name`` (default "imemnet").
(b) a general CSV ``image_id,path_or_url,valence,arousal,source,scale`` with ``scale`` a name
    in :data:`~pipeline.sources.tables.VA_SCALES`, so IAPS/NAPS 1-9 and EMOTIC 1-10 ratings are
    mapped to [0, 1] here. Relative paths are relative to the CSV's folder.

Not a song source: the pipeline calls :func:`image_items` when ``--images_csv`` is given.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.sources.base import SourceItems
from pipeline.sources.tables import (
    VA_SCALES, Row, RowError, Table, collect_rows, folder_index, parse_va, read_table, resolve_uri,
)
from pipeline.types import ImageTask

STAGE = "read_images"
IMEMNET_HEADER = ",img,valence,arousal"
GENERAL_HEADER = "image_id,path_or_url,valence,arousal,source,scale"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # first wins when one id has several files


def image_items(opts: argparse.Namespace) -> SourceItems:
    """ImageTasks and failures for ``opts.images_csv`` (format detected from its header)."""
    csv_path = getattr(opts, "images_csv", None)
    if not csv_path:
        raise ValueError("--images_csv is required to read images")
    dirs = getattr(opts, "images_dir", None) or []
    dirs = [dirs] if isinstance(dirs, (str, Path)) else list(dirs)
    name = getattr(opts, "images_source_name", None)
    table = read_table(csv_path, required=[], expected_header=f"{IMEMNET_HEADER!r} or {GENERAL_HEADER!r}",
                       stage=STAGE, kind="row")
    if table.has("img"):
        return _imemnet(table, dirs, name or "imemnet")
    if table.has("image_id") and table.has("path_or_url"):
        return _general(table, name or "unknown")
    raise ValueError(f"{csv_path}: header {table.header[:8]} is neither {IMEMNET_HEADER!r} (IMEMNet-C) "
                     f"nor {GENERAL_HEADER!r}")


def _require(table: Table, columns: list[str], expected: str) -> None:
    """ValueError naming the file and the missing columns of the detected format."""
    missing = [c for c in columns if not table.has(c)]
    if missing:
        raise ValueError(f"{table.path}: missing column(s) {missing}; expected header {expected!r}")


def _imemnet(table: Table, dirs: list, source: str) -> SourceItems:
    """Format (a): ids looked up in an index of the image folders."""
    _require(table, ["img", "valence", "arousal"], IMEMNET_HEADER)
    # resolve the folders once so each uri is absolute without a realpath call per image
    index = folder_index([Path(d).resolve() for d in dirs], IMAGE_SUFFIXES) if dirs else {}

    def task(row: Row, image_id: str) -> ImageTask:
        v, a = parse_va(row, "unit")
        path = index.get(image_id.lower())
        if path is None:
            where = f"in {len(dirs)} --images_dir folder(s)" if dirs else "(no --images_dir given)"
            raise RowError("missing_image", f"no {image_id}{{.jpg,.jpeg,.png}} {where}")
        return ImageTask(image_id, source, str(path), v, a)

    tasks, failures, _ = collect_rows(table.rows, task, id_column="img", stage=STAGE, kind="image")
    return SourceItems(images=tasks, failures=table.failures + failures)


def _general(table: Table, default_source: str) -> SourceItems:
    """Format (b): explicit path or URL and rating scale per row."""
    _require(table, ["image_id", "path_or_url", "valence", "arousal", "scale"], GENERAL_HEADER)
    base = table.path.resolve().parent

    def task(row: Row, image_id: str) -> ImageTask:
        scale = row.get("scale")
        if scale not in VA_SCALES:
            raise RowError("bad_scale", f"scale {scale!r} is not one of {sorted(VA_SCALES)}")
        v, a = parse_va(row, scale)
        uri = resolve_uri(row.get("path_or_url"), base, empty_error="missing_image", missing_error="missing_image")
        return ImageTask(image_id, row.get("source") or default_source, uri, v, a)

    tasks, failures, _ = collect_rows(table.rows, task, id_column="image_id", stage=STAGE, kind="image")
    return SourceItems(images=tasks, failures=table.failures + failures)
