"""What the page plays and shows: small previews of the shards' media, written once next to the page.

Shards hold media as bytes inside parquet, which a browser cannot read from a ``file://`` page,
and embedding them (base64) would make the page as large as the data. Copying every clip out
would cost a second copy of the dataset, and clips overlap (a 10 s clip every 5/3 s holds each
moment of a song six times). So the page gets *previews*:

- **audio**: one Opus file per song (per stretch of a song its clips cover without a gap, at most
  ``MAX_PREVIEW_S`` long), at ``PREVIEW_KBPS`` kbit/s mono, put together from the song's clips:
  each moment of music once, at a low bitrate. Each clip plays its own window of it through a
  media-fragment URL (``song.ogg#t=15,25``: the player starts at 15 s and pauses at 25 s). At
  full IMEMNet-C size that is a few per cent of the music table (``docs/performance.md``).
  A song's clips sit in several shards (rows are spread by a hash of the clip id, and sorted by
  id inside a shard), so the shards of a split are read side by side, merged by clip id: a song's
  clips arrive together, and memory holds one song at a time.
- **images**: the image itself when it is small, else a ``THUMB_PX`` px JPEG thumbnail.

Files are named by a hash of what they hold (whatever the ids hold, the name is safe), written
once: a re-run keeps the files already there and removes those no row refers to any more.
"""
from __future__ import annotations

import collections
import hashlib
import heapq
import io
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from dataset_card import codecs, schema
from dataset_card.tables import Shard, shards_of

log = logging.getLogger(__name__)

MEDIA_DIR = "media"
SUBDIR = {schema.MUSIC: "audio", schema.IMAGES: "images"}
PREVIEW_RATE = 24000  # Hz: libopus takes it, browsers play it at 48 kHz; 12 kHz of bandwidth is plenty here
PREVIEW_KBPS = 24  # Opus at 24 kbit/s mono: music is recognisable, instruments and mood audible
PREVIEW_SUFFIX = ".ogg"
MAX_PREVIEW_S = 300.0  # a longer covered stretch is cut into several previews: memory stays bounded
THUMB_PX = 240  # longest side of an image thumbnail
THUMB_BYTES = 24 << 10  # images up to this size (and THUMB_PX) go on the page as they are
_BATCH_ROWS = 16  # rows of media read at once per shard
# Stream column chunks (a row group's media can be 32 MB) instead of reading them whole, and keep
# nothing read: with pyarrow's default pre-buffering a reader holds every byte it has read until
# it is closed (measured: 477 MB of Arrow memory after one 500 MB shard, 34 MB without).
_READ_BUFFER = 1 << 20
_OURS = re.compile(r"^[0-9a-f]{24}\.[a-z0-9]+$")

# Magic bytes first: the stored path is a name, not a promise about the format.
_MAGIC = ((b"fLaC", ".flac"), (b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"),
          (b"OggS", ".ogg"), (b"ID3", ".mp3"))
_RIFF = {b"WAVE": ".wav", b"WEBP": ".webp"}


@dataclass
class MediaResult:
    """Where each row's media ended up (relative URLs from the page), and what was missing."""

    urls: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> id -> "media/audio/<h>.ogg#t=0,10"
    written: int = 0
    reused: int = 0
    removed: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # table -> rows whose media are empty or unreadable
    bytes: int = 0  # size of every referenced file
    source_bytes: int = 0  # size of the media they preview, as stored in the shards


@dataclass(frozen=True)
class Span:
    """Where a clip sits in its song."""

    song_id: str
    start_s: float
    end_s: float


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


def extract(shards: list[Shard], clips: dict[str, Span] | None, images: set[str] | None, out_dir: Path,
            jobs: int = 1) -> MediaResult:
    """Write previews of the ``clips`` ({clip id: span}) and ``images`` (ids) under ``out_dir/media``;
    ``jobs`` processes encode the audio previews (the same files whatever the number)."""
    result = MediaResult()
    keep: set[Path] = set()
    if clips is not None:
        result.urls[schema.MUSIC] = _audio_previews(shards, clips, out_dir, result, keep, jobs)
    if images is not None:
        result.urls[schema.IMAGES] = _image_previews(shards, images, out_dir, result, keep)
    result.removed = _prune(out_dir / MEDIA_DIR, keep)
    return result


# --- audio ---------------------------------------------------------------------------------------


def _audio_previews(shards: list[Shard], clips: dict[str, Span], out_dir: Path, result: MediaResult,
                    keep: set[Path], jobs: int) -> dict[str, str]:
    urls: dict[str, str] = {}
    folder = out_dir / MEDIA_DIR / SUBDIR[schema.MUSIC]
    music = shards_of(shards, schema.MUSIC)
    with _Pool(jobs) as pool:
        for split in sorted({s.split for s in music}):
            merged = _merged([s for s in music if s.split == split], "clip_id", "audio", set(clips))
            for _, group in itertools.groupby(merged, key=lambda kv: clips[kv[0]].song_id):
                for run in _runs(list(group), clips):
                    _preview(run, clips, folder, out_dir, result, keep, urls, pool)
    return urls


def _merged(shards: list[Shard], id_column: str, column: str, ids: set[str]) -> Iterator[tuple[str, bytes | None]]:
    """(id, media bytes) of the wanted ids of ``shards``, merged in id order (each shard is sorted by id)."""
    streams = [_media_values([s], id_column, column, ids) for s in shards]
    for item_id, value in heapq.merge(*streams, key=lambda kv: kv[0]):
        yield item_id, (value or {}).get("bytes")


def _runs(group: list[tuple[str, bytes | None]], clips: dict[str, Span]) -> Iterator[list[tuple[str, bytes]]]:
    """A song's clips, by start, cut where they leave a gap or the stretch would pass MAX_PREVIEW_S."""
    run: list[tuple[str, bytes]] = []
    start = end = 0.0
    for item_id, data in sorted(group, key=lambda kv: (clips[kv[0]].start_s, kv[0])):
        span = clips[item_id]
        if run and (span.start_s > end + 1e-3 or span.end_s - start > MAX_PREVIEW_S):
            yield run
            run = []
        if not run:
            start, end = span.start_s, span.end_s
        run.append((item_id, data))
        end = max(end, span.end_s)
    if run:
        yield run


def _preview(run: list[tuple[str, bytes | None]], clips: dict[str, Span], folder: Path, out_dir: Path,
             result: MediaResult, keep: set[Path], urls: dict[str, str], pool: "_Pool") -> None:
    """One preview file for a run of clips (named by a hash of what it holds, so an existing one is
    reused); each clip's URL is its window of it."""
    usable = [(i, d) for i, d in run if d]
    result.missing[schema.MUSIC] = result.missing.get(schema.MUSIC, 0) + len(run) - len(usable)
    if not usable:
        return
    digest = hashlib.sha256()
    for item_id, data in usable:
        digest.update(f"{item_id}\x00{clips[item_id]}\x00{len(data)}\x00".encode() + hashlib.sha256(data).digest())
    path = folder / (digest.hexdigest()[:24] + PREVIEW_SUFFIX)
    start = min(clips[i].start_s for i, _ in usable)
    source = sum(len(d) for _, d in usable)

    def done(placed: list[str] | None) -> None:
        if placed is None:  # reused
            result.reused += 1
            placed = [i for i, _ in usable]
        else:
            result.written += int(bool(placed))
            result.missing[schema.MUSIC] += len(usable) - len(placed)
        if not placed:
            return
        keep.add(path)
        result.bytes += path.stat().st_size
        result.source_bytes += source
        rel = path.relative_to(out_dir).as_posix()
        urls.update({i: f"{rel}#t={clips[i].start_s - start:.3f},{clips[i].end_s - start:.3f}" for i in placed})

    if path.exists() and path.stat().st_size > 0:
        done(None)
    else:
        pool.submit(_write_preview, (usable, {i: clips[i] for i, _ in usable}, start, str(path)), done)


def _write_preview(run: list[tuple[str, bytes]], clips: dict[str, Span], start: float, path: str) -> list[str]:
    """Put the run's stretch of the song together from its clips, encode it as the preview, write
    it; returns the clips placed (those that decode).

    Each clip is decoded only up to where the next one starts (the clips are windows of one song:
    the next one holds what follows), so each moment is decoded about once, not six times; the
    stretch is resampled once, whole, so no resampler edge falls on a join.
    """
    run = sorted(run, key=lambda kv: (clips[kv[0]].start_s, kv[0]))
    end = max(clips[i].end_s for i, _ in run)
    out, rate, placed = None, 0, []
    for k, (item_id, data) in enumerate(run):
        span = clips[item_id]
        upto = span.end_s if k + 1 == len(run) else min(span.end_s, max(span.start_s, clips[run[k + 1][0]].start_s))
        try:
            x, sr = _decode_head(data, upto - span.start_s)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            log.warning("clip %r does not decode, left out of its preview: %s", item_id, e)
            continue
        if out is None:
            out, rate = np.zeros(int(round((end - start) * sr)), dtype=np.float32), sr
        if sr != rate:  # a folder mixing rates: this piece joins the run's rate
            x = _resample(x, sr, rate)
        at = int(round((span.start_s - start) * rate))
        n = max(0, min(len(x), len(out) - at))
        out[at:at + n] = x[:n]
        placed.append(item_id)
    if placed:
        preview = out if rate == PREVIEW_RATE else _resample(out, rate, PREVIEW_RATE)
        _write_file(Path(path), codecs.CODECS["opus"].write(preview, PREVIEW_RATE, PREVIEW_KBPS))
    return placed


def _decode_head(data: bytes, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of encoded audio, mono float32, and its rate."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        frames = min(f.frames, int(round(seconds * f.samplerate)))
        x = f.read(frames, dtype="float32", always_2d=True)
        return x.mean(axis=1, dtype=np.float32), f.samplerate


def _resample(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, sr, rate, quality="HQ").astype(np.float32)


class _Pool:
    """Jobs run here (``jobs`` 1) or in ``jobs`` processes with at most two per process in flight, so
    memory holds a bounded number of runs; each job's ``done`` is called in submission order."""

    def __init__(self, jobs: int):
        self.jobs = max(1, jobs)
        self.pending: collections.deque = collections.deque()
        self.executor = None

    def __enter__(self) -> "_Pool":
        if self.jobs > 1:
            import concurrent.futures
            import multiprocessing

            # spawn: a fork of a process holding Arrow's and BLAS's threads can hang
            self.executor = concurrent.futures.ProcessPoolExecutor(
                self.jobs, mp_context=multiprocessing.get_context("spawn"))
        return self

    def submit(self, fn, args: tuple, done) -> None:
        if self.executor is None:
            done(fn(*args))
            return
        self.pending.append((self.executor.submit(fn, *args), done))
        while len(self.pending) > 2 * self.jobs:
            self._finish_one()

    def _finish_one(self) -> None:
        future, done = self.pending.popleft()
        done(future.result())

    def __exit__(self, *exc) -> None:
        try:
            while self.pending and exc[0] is None:
                self._finish_one()
        finally:
            if self.executor is not None:
                self.executor.shutdown(cancel_futures=True)


# --- images --------------------------------------------------------------------------------------


def _image_previews(shards: list[Shard], ids: set[str], out_dir: Path, result: MediaResult,
                    keep: set[Path]) -> dict[str, str]:
    urls: dict[str, str] = {}
    folder = out_dir / MEDIA_DIR / SUBDIR[schema.IMAGES]
    for item_id, value in _media_values(shards_of(shards, schema.IMAGES), schema.ID_COLUMN[schema.IMAGES],
                                        schema.MEDIA_COLUMN[schema.IMAGES], ids):
        data = (value or {}).get("bytes")
        shown = _thumbnail(data) if data else None
        if not shown:
            result.missing[schema.IMAGES] = result.missing.get(schema.IMAGES, 0) + 1
            continue
        path = folder / (file_stem(item_id) + suffix_of(shown, (value or {}).get("path")))
        if path.exists() and path.stat().st_size == len(shown):
            result.reused += 1
        else:
            _write_file(path, shown)
            result.written += 1
        keep.add(path)
        urls[item_id] = path.relative_to(out_dir).as_posix()
        result.bytes += len(shown)
        result.source_bytes += len(data)
    return urls


def _thumbnail(data: bytes) -> bytes | None:
    """The image as it is when small, else a THUMB_PX JPEG; None when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if len(data) <= THUMB_BYTES and max(im.size) <= THUMB_PX:
                return data
            im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at a fraction of the size
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80, optimize=True)
            return buf.getvalue() if buf.tell() < len(data) else data
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        log.warning("an image does not open, left off the page: %s", e)
        return None


# --- files ---------------------------------------------------------------------------------------


def _media_values(shards: list[Shard], id_column: str, column: str, ids: set[str]) -> Iterable[tuple[str, dict]]:
    """(id, media struct) of the wanted ids, streamed shard by shard in small batches (memory: a
    batch and a read buffer, whatever the shard's size)."""
    for s in shards:
        f = pq.ParquetFile(s.path, pre_buffer=False, buffer_size=_READ_BUFFER)
        if column not in f.schema_arrow.names:
            continue
        for batch in f.iter_batches(batch_size=_BATCH_ROWS, columns=[id_column, column]):
            for item_id, value in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                if item_id in ids:
                    yield item_id, value


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a killed run leaves the old file or the new one, never half of one


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
