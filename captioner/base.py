"""The captioner contract: a batch of clips in, one caption (or a reasoned rejection) per clip out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence


@dataclass(frozen=True)
class ClipForCaption:
    """What a backend may look at: the audio, its measured descriptors and its VA labels."""

    clip_id: str
    samples: Any  # np.ndarray, float32 mono
    sample_rate: int
    descriptors: dict[str, Any]
    valence: float
    arousal: float
    tags: dict[str, Any] | None = None  # tagger model -> tag probabilities (captioner.content reads them)


@dataclass(frozen=True)
class CaptionResult:
    """A caption, or ``text=None`` with the reason it was rejected.

    Both set: the chosen captioner rejected the clip (``error_type``, ``message``, ``attempts``
    say why) and ``text`` is the fallback template's caption, ``captioner`` naming both
    (:mod:`captioner.fallback`).
    """

    clip_id: str
    text: str | None
    captioner: str  # backend + model id + prompt version
    error_type: str | None = None
    message: str | None = None
    attempts: int = 1

    @property
    def rejected(self) -> bool:
        """The chosen captioner gave no acceptable caption (a fallback's text may stand in)."""
        return self.text is None or self.error_type is not None

    @property
    def fell_back(self) -> bool:
        return self.text is not None and self.error_type is not None


class Captioner(Protocol):
    """A captioning backend; heavy models are loaded once, in the constructor."""

    id: str

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]: ...


@dataclass(frozen=True)
class CaptionerConfig:
    """Backend-independent settings; backends ignore what they do not use."""

    backend: str = "descriptor"
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


BACKENDS: dict[str, Callable[[CaptionerConfig], Captioner]] = {}


def register(name: str):
    """Decorator adding a backend factory to :data:`BACKENDS`."""

    def deco(factory):
        BACKENDS[name] = factory
        return factory

    return deco


def needs_audio(config: CaptionerConfig) -> bool:
    """Whether the backend reads the clips' audio (else only descriptors and VA), without building it."""
    from captioner import backends  # noqa: F401  (registers the built-in backends)

    return bool(getattr(BACKENDS.get(config.backend), "needs_audio", True))


def needs_model(config: CaptionerConfig) -> bool:
    """Whether the backend loads a model (worth RunInference's per-worker sharing and batching);
    a template over descriptors does not, and can caption wherever its clips are."""
    from captioner import backends  # noqa: F401  (registers the built-in backends)

    return bool(getattr(BACKENDS.get(config.backend), "needs_model", True))


def caption_safely(model: Captioner, clips: Sequence[ClipForCaption], backend: str) -> list[CaptionResult]:
    """``model.caption(clips)``, with a failing batch turned into one rejection per clip (one bad
    batch fails its clips, not the job); the traceback goes to the log."""
    import logging

    try:
        results = model.caption(clips)
        if len(results) != len(clips):
            raise RuntimeError(f"{model.id} returned {len(results)} captions for {len(clips)} clips")
    except Exception as e:  # noqa: BLE001 - recorded as rejections and logged with traceback
        logging.getLogger(__name__).exception("captioner %s failed on a batch of %d clips",
                                              getattr(model, "id", "?"), len(clips))
        results = [CaptionResult(c.clip_id, None, getattr(model, "id", backend),
                                 f"internal:{type(e).__name__}", str(e)[:500]) for c in clips]
    return results


def as_clips_for_caption(batch: Sequence[Any]) -> list[ClipForCaption]:
    """What a backend may see of the pipeline's clips (any objects with these fields)."""
    return [ClipForCaption(c.clip_id, c.samples, c.sample_rate, c.descriptors, c.valence, c.arousal,
                           getattr(c, "tags", None)) for c in batch]


def build(config: CaptionerConfig) -> Captioner:
    """Instantiate the backend named in ``config``; unknown names list the known ones."""
    from captioner import backends  # noqa: F401  (registers the built-in backends)

    try:
        factory = BACKENDS[config.backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown captioner backend {config.backend!r}; choose one of: {known}") from None
    return factory(config)
