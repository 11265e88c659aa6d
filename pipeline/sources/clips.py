"""Already-cut clips with their VA: ``--source clips --input DIR_OR_URL --clips_csv CSV``.

The CSV is IMEMNet-C's music table format ``,clip_id,valence,arousal[,caption]`` (first column an
unnamed index, VA in [0, 1]). Clip ``725-16`` is clip 16 of song ``725``: the song id is the part
before the last ``-`` (the whole id when there is none), which keeps a song's clips in one split.
Audio is ``{clip_id}.wav`` in a folder (looked up in an index of the folder, never by joining an
unchecked id into a path) or under an http(s) base URL (existence is checked by the downloader).
WAV files in the folder without a CSV row fail with "unknown_song".
"""
from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

from pipeline.sources.base import SourceItems, register
from pipeline.sources.tables import (
    Row, RowError, collect_rows, folder_index, is_url, natural_key, parse_va, read_table,
)
from pipeline.types import Failure, SongTask

STAGE = "read_clips"
EXPECTED_HEADER = ",clip_id,valence,arousal[,caption]"
AUDIO_SUFFIXES = (".wav",)


def song_of_clip(clip_id: str) -> str:
    """The song a clip was cut from: ``"725-16"`` -> ``"725"``; no ``-`` -> the id itself."""
    song, sep, _ = clip_id.rpartition("-")
    return song if sep and song else clip_id


@register("clips")
class ClipsSource:
    """One SongTask per row of ``--clips_csv``, whose audio is the whole clip."""

    name = "clips"

    def __init__(self, opts: argparse.Namespace):
        self.input = getattr(opts, "input", None)
        self.csv = getattr(opts, "clips_csv", None)
        if not self.input or not self.csv:
            raise ValueError("--source clips needs --input (folder or http(s) base URL of {clip_id}.wav) "
                             "and --clips_csv (',clip_id,valence,arousal[,caption]')")

    def items(self) -> SourceItems:
        table = read_table(self.csv, required=["clip_id", "valence", "arousal"],
                           expected_header=EXPECTED_HEADER, stage=STAGE, kind="row")
        locate = self._locator()
        tasks, failures, seen = collect_rows(
            table.rows, lambda row, cid: _task(row, cid, locate), id_column="clip_id", stage=STAGE, kind="song")
        out = SourceItems(songs=tasks, failures=table.failures + failures)
        if not is_url(str(self.input)):
            out.failures += _orphans(self._index, seen)
        return out

    def _locator(self):
        """clip_id -> audio uri (or None when the folder has no such file)."""
        base = str(self.input)
        if is_url(base):
            if not base.lower().startswith(("http://", "https://")):
                raise ValueError(f"--input {base!r}: expected a folder or an http(s) base URL")
            base = base.rstrip("/")
            return lambda clip_id: f"{base}/{quote(clip_id)}.wav"
        if not Path(base).is_dir():
            raise ValueError(f"--input {base!r}: not a folder (expected a folder of {{clip_id}}.wav)")
        self._index = folder_index([base], AUDIO_SUFFIXES)
        return lambda clip_id: (str(p) if (p := self._index.get(clip_id.lower())) else None)


def _task(row: Row, clip_id: str, locate) -> SongTask:
    """The SongTask of one clip row (RowError for bad VA or missing audio)."""
    va = parse_va(row, "unit")
    uri = locate(clip_id)
    if uri is None:
        raise RowError("missing_audio", f"no {clip_id}.wav in --input")
    return SongTask(song_id=song_of_clip(clip_id), source="clips", uri=uri, static_va=va,
                    static_va_std=(0.0, 0.0), clip_id=clip_id, caption=row.get("caption") or None)


def _orphans(index: dict, rows_seen: dict[str, int]) -> list[Failure]:
    """Failures for WAV files that no CSV row names (audio without annotations)."""
    named = {cid.lower() for cid in rows_seen}
    return [Failure(path.stem[:200], STAGE, "unknown_song", f"{path.name} has no row in --clips_csv")
            for key, path in sorted(index.items(), key=lambda kv: natural_key(kv[1].stem))
            if key not in named]
