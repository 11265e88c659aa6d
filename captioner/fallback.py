"""No clip lost to captioning: a clip the chosen captioner cannot caption acceptably gets the
deterministic template's caption, and the rejection is still reported.

The `captioner` value of such a clip names both, in one convention written and read only here::

    descriptor/none/template-v3+mood-labels (fallback from tags-llm/SmolLM2-135M-Instruct.Q4_1/draft-v4+mood-labels)

that is ``"<template id> (fallback from <chosen captioner id>)"``; :func:`parse_captioner` splits
it. A rescued :class:`~captioner.base.CaptionResult` carries the template's text *and* the chosen
captioner's rejection (``error_type``, ``message``, ``attempts``): the pipeline writes the clip's
row and a failure row of stage ``caption`` from it. The template uses the chosen captioner's mood
setting, so a ``mood-none`` run gets no mood words from its fallback either.

The one clip the template cannot caption is one with missing or non-finite descriptors or VA
(:func:`captioner.postprocess.unusable`): no caption can be grounded on it, and the pipeline's
descriptors never leave a clip so. It stays a failure row only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from captioner.base import Captioner, CaptionerConfig, CaptionResult, ClipForCaption, build, caption_safely
from captioner.postprocess import BAD_INPUT, unusable

FALLBACK_BACKEND = "descriptor"
_OPEN, _CLOSE = " (fallback from ", ")"


def fallback_captioner(template_id: str, chosen_id: str) -> str:
    """The `captioner` value of a clip the template captioned after ``chosen_id`` rejected it."""
    return f"{template_id}{_OPEN}{chosen_id}{_CLOSE}"


@dataclass(frozen=True)
class CaptionerValue:
    """A `captioner` column value, read: who wrote the caption, and who was asked to."""

    wrote: str
    chosen: str
    fell_back: bool


def parse_captioner(value: str) -> CaptionerValue:
    """Split a `captioner` value; a plain id (or ``source``) wrote its own caption."""
    value = value or ""
    head, sep, tail = value.partition(_OPEN)
    if sep and tail.endswith(_CLOSE):
        return CaptionerValue(head, tail[:-len(_CLOSE)], True)
    return CaptionerValue(value, value, False)


class Fallback:
    """The template that stands in for a chosen captioner's rejected captions."""

    def __init__(self, config: CaptionerConfig):
        # The chosen captioner's settings (its mood source) apply; the template ignores the rest.
        self.template: Captioner = build(CaptionerConfig(FALLBACK_BACKEND, extra=dict(config.extra)))

    def rescue(self, clip: ClipForCaption, result: CaptionResult) -> CaptionResult:
        """``result`` when accepted; else the template's caption carrying ``result``'s rejection;
        ``result`` unchanged when the template cannot caption the clip either."""
        if result.text is not None:
            return result
        problem = unusable(clip.descriptors, clip.valence, clip.arousal)
        if problem and problem[0] == BAD_INPUT:
            return result
        written = caption_safely(self.template, [clip], FALLBACK_BACKEND)[0]
        if written.text is None:  # the template failed (logged by caption_safely): the rejection stands
            return result
        return replace(result, text=written.text, captioner=fallback_captioner(written.captioner, result.captioner))

    def apply(self, clips: Sequence[ClipForCaption], results: Sequence[CaptionResult]) -> list[CaptionResult]:
        """:meth:`rescue` for each clip of a batch."""
        return [self.rescue(c, r) for c, r in zip(clips, results, strict=True)]


def caption_with_fallback(model: Captioner, fallback: Fallback, clips: Sequence[ClipForCaption],
                          backend: str) -> list[CaptionResult]:
    """The chosen captioner's results for a batch (a crashing batch fails its clips), each
    rejection rescued by the template."""
    return fallback.apply(clips, caption_safely(model, clips, backend))
