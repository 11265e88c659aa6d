"""One song from URL to labelled, described clips: fetch → decode → cut → label → describe.

Each step either returns its result or raises a :class:`StageError`; :func:`process_song` turns
those into :class:`Failure` records so that a bad song never stops the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pipeline import audio, descriptors, tagging
from pipeline.download import DownloadError, Downloader
from pipeline.redact import redact_url
from pipeline.types import Clip, Failure, SongTask


@dataclass(frozen=True)
class CutOptions:
    """How songs become clips."""

    sample_rate: int = 44100
    clip_seconds: float = 10.0
    hop_seconds: float = 5.0 / 3.0  # IMEMNet-C grid: 45 s DEAM excerpts give clip indices 9..21
    annotated_only: bool = True
    max_song_seconds: float = 1800.0
    silence_db: float = -60.0
    taggers: tuple[str, ...] = ()  # music taggers run over each song (pipeline.tagging.TAGGERS)


class StageError(Exception):
    """A song-level failure at a named stage."""

    def __init__(self, stage: str, error_type: str, message: str, attempts: int = 1):
        super().__init__(message)
        self.stage, self.error_type, self.attempts = stage, error_type, attempts

    def failure(self, item_id: str, kind: str = "song") -> Failure:
        return Failure(item_id, self.stage, self.error_type, str(self), self.attempts, kind)


@dataclass
class DecodedSong:
    """A fetched and decoded song, with the time offset of its first sample."""

    task: SongTask
    samples: np.ndarray
    sample_rate: int
    offset_s: float  # song time of samples[0] (a manifest range starts later than 0)
    from_cache: bool

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def fetch_and_decode(task: SongTask, downloader: Downloader, opts: CutOptions) -> DecodedSong:
    """Download (or find in cache) and decode one song, honouring its time range."""
    try:
        got = downloader.fetch(task.uri, start_s=task.start_s, end_s=task.end_s)
    except DownloadError as e:
        raise StageError("download", e.error_type, str(e), e.attempts) from e
    # got.offset_s: where the file starts in the song (yt-dlp may already have cut the range).
    start = None if task.start_s is None else max(0.0, task.start_s - got.offset_s)
    end = None if task.end_s is None else task.end_s - got.offset_s
    try:
        x = audio.decode(got.path, opts.sample_rate, start_s=start, end_s=end, max_seconds=opts.max_song_seconds)
    except audio.AudioError as e:
        # The message names the cached file; the output should name the input instead.
        raise StageError("decode", e.error_type, str(e).replace(got.path, redact_url(task.uri))) from e
    if audio.is_silent(x, opts.silence_db):
        raise StageError("decode", "silent", f"whole song is below {opts.silence_db} dBFS")
    return DecodedSong(task, x, opts.sample_rate, task.start_s or 0.0, got.from_cache)


def windows(song: DecodedSong, opts: CutOptions) -> list[tuple[str, float, float]]:
    """(clip_id, start, end) in song time; one whole-file window for an already-cut clip."""
    task = song.task
    if task.clip_id is not None:
        return [(task.clip_id, 0.0, round(song.duration_s, 3))]
    span = None
    if task.va_curve is not None and opts.annotated_only:
        span = task.va_curve.span
    end = song.offset_s + song.duration_s
    grid = audio.clip_grid(end, opts.clip_seconds, opts.hop_seconds, span)
    grid = [(i, s, e) for i, s, e in grid if s >= song.offset_s - 1e-6]
    if not grid:
        where = f"annotated span {span[0]:.1f}-{span[1]:.1f} s" if span else f"{song.duration_s:.1f} s of audio"
        raise StageError("cut", "too_short", f"no {opts.clip_seconds:g} s clip fits in the {where}")
    return [(f"{task.song_id}-{i}", s, e) for i, s, e in grid]


def label(task: SongTask, start: float, end: float) -> tuple[float, float, float, float]:
    """Clip VA mean/std from the song's curve, else its static VA."""
    if task.va_curve is not None:
        return audio.clip_va(task.va_curve, start, end)
    if task.static_va is None:
        raise StageError("label", "no_va", "the source gave no valence/arousal for this song")
    std = task.static_va_std or (0.0, 0.0)
    return task.static_va[0], task.static_va[1], std[0], std[1]


def cut(song: DecodedSong, opts: CutOptions) -> Iterator[Clip | Failure]:
    """Clips of a decoded song with VA and descriptors (one analysis for the whole song)."""
    task = song.task
    analysis = descriptors.analyze(song.samples, song.sample_rate)
    grid = list(windows(song, opts))
    span = (min(s for _, s, _ in grid) - song.offset_s, max(e for _, _, e in grid) - song.offset_s) if grid else None
    song_tags = tagging.tag_song(song.samples, song.sample_rate, opts.taggers, span) if grid else None
    for clip_id, start, end in grid:
        a = int(round((start - song.offset_s) * song.sample_rate))
        b = int(round((end - song.offset_s) * song.sample_rate))
        x = song.samples[a:b]
        if audio.is_silent(x, opts.silence_db):
            yield Failure(clip_id, "cut", "silent", f"clip is below {opts.silence_db} dBFS", 1, "clip")
            continue
        try:
            v, ar, vs, as_ = label(task, start, end)
        except (StageError, ValueError) as e:
            yield Failure(clip_id, "label", getattr(e, "error_type", "no_va"), str(e), 1, "clip")
            continue
        desc = descriptors.clip_descriptors(analysis, start - song.offset_s, end - song.offset_s)
        window = (start - song.offset_s, end - song.offset_s)
        tags = song_tags.clip(*window) if song_tags else None
        embeddings = song_tags.clip_embeddings(*window) if song_tags else None
        yield Clip(clip_id, task.song_id, task.source, start, end, x, song.sample_rate,
                   v, ar, vs, as_, task.license, desc, caption=task.caption, tags=tags,
                   tag_embeddings=embeddings)


def process_song(task: SongTask, downloader: Downloader, opts: CutOptions) -> Iterator[Clip | Failure]:
    """Everything for one song; failures come out as records, never as exceptions."""
    try:
        song = fetch_and_decode(task, downloader, opts)
        clips = list(cut(song, opts))
    except StageError as e:
        yield e.failure(task.song_id if task.clip_id is None else task.clip_id,
                        "song" if task.clip_id is None else "clip")
        return
    yield from clips
