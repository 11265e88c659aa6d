"""Songs listed in a CSV: ``--source manifest --input songs.csv [--manifest_va_scale unit]``.

Header ``song_id,url[,start_s,end_s,valence,arousal,license]``. ``url`` is anything yt-dlp
fetches (YouTube, direct links, Google Drive, file://) or a local path (relative paths are
relative to the CSV's folder; a missing local file fails with "missing_audio"). ``start_s`` /
``end_s`` pick a time range (0 <= start < end, either may be empty). Valence/arousal are given on
``--manifest_va_scale`` (see :data:`pipeline.sources.tables.VA_SCALES`); a row without them fails
here with "no_va" since the pipeline could not label its clips. ``license`` defaults to "unknown".
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.sources.base import SourceItems, register
from pipeline.sources.tables import (
    Row, RowError, check_scale, collect_rows, parse_float, parse_va, read_table, resolve_uri,
)
from pipeline.types import SongTask

STAGE = "read_manifest"
EXPECTED_HEADER = "song_id,url[,start_s,end_s,valence,arousal,license]"


@register("manifest")
class ManifestSource:
    """One SongTask per manifest row."""

    name = "manifest"

    def __init__(self, opts: argparse.Namespace):
        self.csv = getattr(opts, "input", None)
        if not self.csv:
            raise ValueError(f"--source manifest needs --input: a CSV with header {EXPECTED_HEADER!r}")
        self.scale = check_scale(getattr(opts, "manifest_va_scale", None) or "unit")

    def items(self) -> SourceItems:
        table = read_table(self.csv, required=["song_id", "url"], expected_header=EXPECTED_HEADER,
                           stage=STAGE, kind="row")
        if table.has("valence") != table.has("arousal"):
            raise ValueError(f"{self.csv}: has only one of valence/arousal; expected header {EXPECTED_HEADER!r}")
        base = Path(self.csv).resolve().parent
        tasks, failures, _ = collect_rows(table.rows, lambda row, sid: self._task(row, sid, base),
                                          id_column="song_id", stage=STAGE, kind="song")
        return SourceItems(songs=tasks, failures=table.failures + failures)

    def _task(self, row: Row, song_id: str, base: Path) -> SongTask:
        """The SongTask of one manifest row (RowError for anything unusable)."""
        start, end = _time_range(row)
        if not row.get("valence") and not row.get("arousal"):
            raise RowError("no_va", "no valence/arousal given; the song's clips could not be labelled")
        va = parse_va(row, self.scale)
        return SongTask(song_id=song_id, source="manifest",
                        uri=resolve_uri(row.get("url"), base, empty_error="bad_url", missing_error="missing_audio"),
                        license=row.get("license") or "unknown", static_va=va, start_s=start, end_s=end)


def _time_range(row: Row) -> tuple[float | None, float | None]:
    """(start_s, end_s) with 0 <= start < end; either may be None (song start / end)."""
    start = parse_float(row.get("start_s"), "start_s", "bad_time_range") if row.get("start_s") else None
    end = parse_float(row.get("end_s"), "end_s", "bad_time_range") if row.get("end_s") else None
    if start is not None and start < 0:
        raise RowError("bad_time_range", f"start_s {start} < 0")
    if end is not None and end <= (start or 0.0):
        raise RowError("bad_time_range", f"end_s {end} must be > start_s {start or 0.0}")
    return start, end
