"""Beam stages: thin DoFns around the plain functions; they emit records and Failures alike.

Heavy state (downloader, captioner model) is built once per worker in ``setup``. An unexpected
exception on one item becomes a failure row with its type and is logged with the traceback;
the run goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Iterable, Iterator

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
from apache_beam.metrics import Metrics

from captioner.base import CaptionerConfig, as_clips_for_caption, build
from captioner.content import content_tags, to_row
from captioner.fallback import Fallback, caption_with_fallback
from dataset_card.codecs import AudioFormat, encode
from pipeline import progress
from pipeline.download import DownloadError, DownloadOptions, Downloader
from pipeline.images import ImageError, process_image
from pipeline.memory import keep_returning_freed_memory
from pipeline.song import CutOptions, process_song
from pipeline.splits import split_for
from pipeline.types import Clip, Failure, ImageTask, PairTask, SongTask
from pipeline.writer import STAGED, stage_media

log = logging.getLogger(__name__)
NAMESPACE = "imemnet_c"


def _internal(item_id: str, stage: str, kind: str, exc: BaseException) -> Failure:
    """A bug or an unforeseen input: keep the item as a failure and the traceback in the log."""
    log.exception("unexpected error in stage %s on %s", stage, item_id)
    return Failure(item_id, stage, f"internal:{type(exc).__name__}", str(exc)[:500], 1, kind)


class _Counted(beam.DoFn):
    """Counts items in and failures out of a stage in Beam metrics."""

    stage = "stage"

    def __init__(self):
        super().__init__()
        self.items_in = Metrics.counter(NAMESPACE, f"{self.stage}_in")
        self.items_failed = Metrics.counter(NAMESPACE, f"{self.stage}_failed")
        self.items_out = Metrics.counter(NAMESPACE, f"{self.stage}_out")
        self.millis = Metrics.distribution(NAMESPACE, f"{self.stage}_ms")

    def emit(self, items: Iterable[Any]) -> Iterator[Any]:
        for it in items:
            (self.items_failed if isinstance(it, Failure) else self.items_out).inc()
            yield it


class SongsToClips(_Counted):
    """SongTask → one list of its labelled, described clips (one analysis per song), or Failures.

    A song's clips travel together so the captioner gets them as a batch without BatchElements,
    whose last batch DaskRunner drops (it ignores finish_bundle output). Each clip's audio is
    encoded (``audio``: FLAC, Opus or MP3) and staged here; unless the captioner reads audio, the
    float samples are dropped before the clips leave: RunInference is a stage of its own (no fusion
    across it), so everything it receives is held in memory between stages on the in-process
    runner, and float audio is ~8x the FLAC (a 200-song run needed >23 GB with it, 1.3 GB without).
    """

    stage = "songs"

    def __init__(self, cut: CutOptions, download: DownloadOptions, progress_dir: str | None,
                 output: str, keep_audio: bool, audio: AudioFormat = AudioFormat()):
        super().__init__()
        self.cut, self.download, self.progress_dir = cut, download, progress_dir
        self.output, self.keep_audio, self.audio = output, keep_audio, audio

    def setup(self):
        keep_returning_freed_memory()
        self.downloader = Downloader(self.download)

    def process(self, task: SongTask):
        self.items_in.inc()
        t0 = time.perf_counter()
        try:
            out = list(process_song(task, self.downloader, self.cut))
        except Exception as e:  # noqa: BLE001 - recorded as a failure row and logged with traceback
            out = [_internal(task.clip_id or task.song_id, "songs", "song", e)]
        self.millis.update(int((time.perf_counter() - t0) * 1000))
        clips = [self._staged(c, task.split) for c in out if isinstance(c, Clip)]
        yield from self.emit(c for c in out if isinstance(c, Failure))
        if clips:
            self.items_out.inc(len(clips))
            yield clips
        progress.mark(self.progress_dir, "songs", task.song_id if task.clip_id is None else task.clip_id)


    def _staged(self, clip: Clip, split: str | None) -> Clip:
        row = stage_media(self.output, "music", {"clip_id": clip.clip_id}, "audio",
                          encode(clip.samples, clip.sample_rate, self.audio))
        return replace(clip, staged_audio=row[STAGED]["audio"], samples=clip.samples if self.keep_audio else None,
                       split=split)


def caption_batches(clips: list[Clip], batch_size: int) -> Iterator[Clip | list[Clip]]:
    """A song's clips as batches for the captioner; clips the source captioned pass through."""
    todo = []
    for c in clips:
        if c.caption:
            yield replace(c, captioner="source")
        else:
            todo.append(c)
    for i in range(0, len(todo), batch_size):
        yield todo[i:i + batch_size]


class CaptionInPlace(_Counted):
    """A batch of clips → captioned clips (and failures), for backends without a model (a template);
    a clip its source captioned passes through. See :func:`_with_caption` for rejections.

    RunInference would cost a stage of its own and, through its model manager, a torch import in
    every worker process, for a function of the descriptors.
    """

    stage = "caption"

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = config

    def setup(self):
        self.captioner = build(self.config)
        self.fallback = Fallback(self.config)

    def process(self, batch: list[Clip] | Clip):
        if isinstance(batch, Clip):  # captioned by its source: passes through
            yield batch
            return
        self.items_in.inc(len(batch))
        results = caption_with_fallback(self.captioner, self.fallback, as_clips_for_caption(batch), self.config.backend)
        yield from self.emit(x for c, r in zip(batch, results) for x in _with_caption(c, r))


class ApplyCaption(_Counted):
    """RunInference's (clip, CaptionResult) → the captioned clip, and a failure for a rejection."""

    stage = "caption"

    def process(self, prediction):
        self.items_in.inc()
        yield from self.emit(_with_caption(prediction.example, prediction.inference))


def _with_caption(clip: Clip, r) -> list[Clip | Failure]:
    """The captioned clip, plus the failure row of a rejection: a rejected clip keeps its row with
    the fallback's caption (``captioner`` says so), and is a failure row only when even the
    template could not caption it. Captioning never removes a clip it can caption."""
    out: list[Clip | Failure] = []
    if r.text is not None:
        out.append(replace(clip, caption=r.text, captioner=r.captioner))
    if r.rejected:
        out.append(Failure(clip.clip_id, "caption", r.error_type or "rejected", r.message or "", r.attempts, "clip"))
    return out


def music_row(clip: Clip, output: str, audio: AudioFormat = AudioFormat()) -> tuple[str, dict[str, Any]]:
    """A captioned clip as a `music` table row; its encoded audio is (or goes) in the staging area."""
    row = music_record(clip, audio)
    if clip.staged_audio is not None:
        row[STAGED] = {"audio": clip.staged_audio}
        return "music", row
    return "music", stage_media(output, "music", row, "audio", encode(clip.samples, clip.sample_rate, audio))


def music_record(clip: Clip, audio: AudioFormat = AudioFormat()) -> dict[str, Any]:
    """The `music` row of a captioned clip, audio bytes not yet filled in (the path names ``audio``'s codec)."""
    return {
        "clip_id": clip.clip_id,
        "song_id": clip.song_id,
        "source": clip.source,
        "start_s": clip.start_s,
        "end_s": clip.end_s,
        "audio": {"bytes": None, "path": f"{clip.clip_id}{audio.extension}"},
        "valence": clip.valence,
        "arousal": clip.arousal,
        "valence_std": clip.valence_std,
        "arousal_std": clip.arousal_std,
        "caption": clip.caption,
        "captioner": clip.captioner,
        "descriptors": clip.descriptors,
        "tags": list(content_tags(clip.tags).words),
        "tag_probs": to_row(clip.tags),
        "tag_embeddings": to_row(clip.tag_embeddings),
        "license": clip.license,
        "split": split_for(clip.song_id, clip.split),
    }


class ImagesToRows(_Counted):
    """ImageTask → `images` table row (fetched when remote, validated, normalised)."""

    stage = "images"

    def __init__(self, download: DownloadOptions, output: str, progress_dir: str | None):
        super().__init__()
        self.download, self.output, self.progress_dir = download, output, progress_dir

    def setup(self):
        keep_returning_freed_memory()
        self.downloader = Downloader(self.download)

    def process(self, task: ImageTask):
        self.items_in.inc()
        yield from self.emit([self._one(task)])
        progress.mark(self.progress_dir, "images", task.image_id)

    def _one(self, task: ImageTask):
        try:
            path = self.downloader.fetch(task.uri).path
            rec = process_image(task, path)
        except DownloadError as e:
            return Failure(task.image_id, "image_download", e.error_type, str(e), e.attempts, "image")
        except ImageError as e:
            return Failure(task.image_id, "image_decode", e.error_type, str(e), 1, "image")
        except Exception as e:  # noqa: BLE001 - recorded and logged
            return _internal(task.image_id, "images", "image", e)
        row = {
            "image_id": rec.image_id,
            "image": {"bytes": None, "path": rec.path},
            "source": rec.source,
            "valence": rec.valence,
            "arousal": rec.arousal,
            "split": split_for(rec.image_id, task.split),
        }
        return "images", stage_media(self.output, "images", row, "image", rec.data)


def pair_row(p: PairTask) -> tuple[str, dict[str, Any]]:
    """A pair (its split decided) as a `pairs` row."""
    return "pairs", {"music_clip_id": p.music_clip_id, "image_id": p.image_id, "score": p.score, "split": p.split}
