"""`descriptor`: a deterministic template over measured descriptors and VA; no model at all.

The fallback backend and the reference the grounding check compares LLM captions against: it
writes only words of :mod:`captioner.vocab`, so its captions always pass :func:`captioner.grounding.ground`.
"""
from __future__ import annotations

from typing import Sequence

from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.prompts import mood_setting
from captioner.vocab import SCALES, mood_words, tempo_clause

PROMPT_VERSION = "template-v2"


@register("descriptor")
class DescriptorCaptioner:
    """Writes one sentence pair per clip from the measured facts (and the VA mood unless told not to)."""

    needs_audio = False  # reads descriptors only; batch jobs skip decoding the audio
    needs_model = False  # a template: the pipeline captions in place, without RunInference

    def __init__(self, config: CaptionerConfig | None = None):
        self.mood = mood_setting(config.extra if config else None)
        self.id = f"descriptor/none/{PROMPT_VERSION}+mood-{self.mood}"

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]:
        return [CaptionResult(c.clip_id, describe(c.descriptors, c.valence, c.arousal, self.mood == "labels"), self.id)
                for c in batch]


def _word(d: dict, attribute: str) -> str | None:
    x = d.get(SCALES[attribute].field)
    return None if x is None else SCALES[attribute].word(float(x))


def describe(d: dict, valence: float, arousal: float, mood: bool = True) -> str:
    """The template caption for one clip; facts the descriptors lack are left out."""
    moods = mood_words(valence, arousal) if mood else ()
    lead = f"A {moods[0]}, {moods[1]} piece" if moods else "A piece"
    first = f"{lead} in {d['key']} {d['mode']} {tempo_clause(float(d['tempo_bpm']))}."
    texture = [f"The sound is {_word(d, 'loudness')} and {_word(d, 'timbre')}"]
    if _word(d, "percussion"):
        texture.append(_word(d, "percussion"))
    texture.append(f"with a {_word(d, 'rhythm')} rhythm")
    if _word(d, "harmony"):
        texture.append(f"over {_word(d, 'harmony')}")
    second = ", ".join(texture) + "."
    extra = [w for w in (_word(d, "dynamics"), _word(d, "noisiness")) if w]
    third = f"It is {' and '.join(extra)}" if extra else ""
    if moods:
        third = f"{third}, and feels {moods[2]}." if third else f"It feels {moods[2]}."
    elif third:
        third += "."
    return " ".join(p for p in (first, second, third) if p)
