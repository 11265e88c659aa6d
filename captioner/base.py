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


@dataclass(frozen=True)
class CaptionResult:
    """A caption, or ``text=None`` with the reason it was rejected."""

    clip_id: str
    text: str | None
    captioner: str  # backend + model id + prompt version
    error_type: str | None = None
    message: str | None = None
    attempts: int = 1


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


def build(config: CaptionerConfig) -> Captioner:
    """Instantiate the backend named in ``config``; unknown names list the known ones."""
    from captioner import backends  # noqa: F401  (registers the built-in backends)

    try:
        factory = BACKENDS[config.backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown captioner backend {config.backend!r}; choose one of: {known}") from None
    return factory(config)
