"""Typed records that flow between pipeline stages.

Every input item ends as exactly one table row or one :class:`Failure`; stages return either
their next record or a ``Failure`` and never raise for bad data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.redact import redact_text


class ItemError(Exception):
    """One input item that cannot become a row; ``error_type`` names the reason in the failures
    table. Pickles with both fields (Beam may ship exceptions between processes)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def __reduce__(self):
        return type(self), (self.error_type, self.message)


@dataclass(frozen=True)
class Failure:
    """One input item that did not make it into a table, with the reason."""

    item_id: str
    stage: str
    error_type: str
    message: str
    attempts: int = 1
    kind: str = "song"  # song | clip | image | pair | row

    def __post_init__(self) -> None:
        # Messages quote URLs (and exceptions quote whatever they were given): whatever a stage
        # wrote, a failure row never keeps a URL's password or signed query string.
        object.__setattr__(self, "message", redact_text(self.message))


@dataclass(frozen=True)
class VACurve:
    """Per-song valence/arousal samples already mapped to [0, 1].

    ``times_s[i]`` is the time of sample ``i`` in the song; the annotated span is
    ``[times_s[0], times_s[-1] + period_s)``.
    """

    times_s: tuple[float, ...]
    valence: tuple[float, ...]
    arousal: tuple[float, ...]
    period_s: float = 0.5

    @property
    def span(self) -> tuple[float, float]:
        return self.times_s[0], self.times_s[-1] + self.period_s


@dataclass(frozen=True)
class SongTask:
    """One song (or one already-cut clip) to fetch, decode and cut.

    ``uri`` is an http(s)/file URL (fetched through the downloader and cached) or a local path
    (read in place). VA comes from ``va_curve`` when given, else from ``static_va``.
    """

    song_id: str
    source: str
    uri: str
    license: str = "unknown"
    va_curve: VACurve | None = None
    static_va: tuple[float, float] | None = None  # (valence, arousal) in [0, 1]
    static_va_std: tuple[float, float] | None = None
    start_s: float | None = None  # time range of the song to use (manifest)
    end_s: float | None = None
    clip_id: str | None = None  # set for already-cut clips: the whole file is this one clip
    caption: str | None = None  # a caption given by the source (clips CSV)
    split: str | None = None  # set by the split policy when matching files place the song; None: hash


@dataclass(frozen=True)
class ImageTask:
    """One image to fetch, validate and write; VA already mapped to [0, 1]."""

    image_id: str
    source: str
    uri: str
    valence: float
    arousal: float
    split: str | None = None  # set by the split policy when a matching file places the image; None: hash


@dataclass(frozen=True)
class PairTask:
    """One music-image pair with its matching score; ``split`` None means derive from the clip."""

    music_clip_id: str
    image_id: str
    score: float
    split: str | None = None


@dataclass
class Clip:
    """A cut clip before captioning: audio plus labels and descriptors."""

    clip_id: str
    song_id: str
    source: str
    start_s: float
    end_s: float
    samples: Any  # np.ndarray float32 mono; None once staged for a captioner that needs no audio
    sample_rate: int
    valence: float
    arousal: float
    valence_std: float
    arousal_std: float
    license: str
    descriptors: dict[str, Any] = field(default_factory=dict)
    caption: str | None = None
    captioner: str | None = None
    staged_audio: tuple[str, int] | None = None  # (uri, bytes) of its FLAC in the staging area
    split: str | None = None  # its song's split when the split policy placed it; None: hash of the song id
    tags: dict[str, Any] | None = None  # tagger model -> (tags,) float32 probabilities (pipeline.tagging)
    tag_embeddings: dict[str, Any] | None = None  # tagger model -> (200,) float32 penultimate features
