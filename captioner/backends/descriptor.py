"""`descriptor`: a deterministic template over measured descriptors and VA; no model at all.

The fallback backend and the reference the grounding check compares LLM captions against.
"""
from __future__ import annotations

from typing import Sequence

from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.vocab import brightness_word, loudness_word, mood_words, rhythm_word, tempo_word

PROMPT_VERSION = "template-v1"


@register("descriptor")
class DescriptorCaptioner:
    """Writes one sentence pair per clip from tempo, key/mode, dynamics, timbre, rhythm and mood."""

    needs_audio = False  # reads descriptors only; batch jobs skip decoding the audio
    needs_model = False  # a template: the pipeline captions in place, without RunInference

    def __init__(self, config: CaptionerConfig | None = None):
        self.id = f"descriptor/none/{PROMPT_VERSION}"

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]:
        return [CaptionResult(c.clip_id, describe(c.descriptors, c.valence, c.arousal), self.id) for c in batch]


def describe(d: dict, valence: float, arousal: float) -> str:
    """The template caption for one clip."""
    moods = mood_words(valence, arousal)
    loud = loudness_word(d["loudness_db"])
    bright = brightness_word(d["brightness"])
    busy = rhythm_word(d["onset_rate"])
    tempo = d["tempo_bpm"]
    first = (
        f"A {moods[0]}, {moods[1]} piece in {d['key']} {d['mode']} at a "
        f"{tempo_word(tempo)} tempo of about {round(tempo)} BPM."
    )
    second = f"The sound is {loud} with a {bright} timbre and a {busy} rhythm, and it feels {moods[2]}."
    return f"{first} {second}"
