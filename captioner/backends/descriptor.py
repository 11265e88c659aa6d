"""`descriptor`: a deterministic template over measured descriptors and VA; no model at all.

The fallback backend and the reference the grounding check compares LLM captions against: it
writes only words of :mod:`captioner.vocab`, so its captions always pass :func:`captioner.grounding.ground`.
"""
from __future__ import annotations

from typing import Sequence

from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.content import ContentTags, content_tags
from captioner.prompts import mood_setting
from captioner.vocab import NO_PULSE_PHRASES, SCALES, has_pulse, key_is_confident, mood_words, tempo_clause, tempo_is_confident

PROMPT_VERSION = "template-v3"  # v3: genre, instruments and voice from the tagger; key and tempo only when confident


@register("descriptor")
class DescriptorCaptioner:
    """Writes one sentence pair per clip from the measured facts (and the VA mood unless told not to)."""

    needs_audio = False  # reads descriptors only; batch jobs skip decoding the audio
    needs_model = False  # a template: the pipeline captions in place, without RunInference

    def __init__(self, config: CaptionerConfig | None = None):
        self.mood = mood_setting(config.extra if config else None)
        self.id = f"descriptor/none/{PROMPT_VERSION}+mood-{self.mood}"

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]:
        return [CaptionResult(c.clip_id, describe(c.descriptors, c.valence, c.arousal, self.mood == "labels", c.tags),
                              self.id) for c in batch]


def _word(d: dict, attribute: str) -> str | None:
    x = d.get(SCALES[attribute].field)
    return None if x is None else SCALES[attribute].word(float(x))


def describe(d: dict, valence: float, arousal: float, mood: bool = True, tags: dict | None = None) -> str:
    """The template caption for one clip: what the tagger hears (genre, instruments, voice), the
    measured facts, then the mood; facts the descriptors or tags lack, or that are measured too
    unreliably to state (vocab.key_is_confident, vocab.tempo_is_confident), are left out."""
    moods = mood_words(valence, arousal) if mood else ()
    content = content_tags(tags)
    key = f"in {d['key']} {d['mode']}" if key_is_confident(d) else ""
    if not has_pulse(d):
        facts = [f"has {NO_PULSE_PHRASES[0]}", f"sits {key}" if key else ""]
    elif tempo_is_confident(d):
        facts = [f"moves {tempo_clause(float(d['tempo_bpm']))}", key]
    else:
        facts = [f"sits {key}" if key else ""]
    facts = " ".join(f for f in facts if f).replace("pulse sits", "pulse and sits")
    if content.words:
        first = f"{opening(content)}." + (f" It {facts}." if facts else "")
    else:  # nothing heard to name: the measured facts open the caption
        first = f"{opening(content)} that {facts}." if facts else ""
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
        feel = f"feels {moods[0]} and {moods[1]}"
        third = f"{third}, and {feel}." if third else f"It {feel}."
    elif third:
        third += "."
    return " ".join(p for p in (first, second, third) if p)


# Genres whose music is a "piece" rather than a "track".
PIECE_GENRES = frozenset({"classical", "ambient", "new age", "opera", "easy listening", "chill-out"})


def opening(content: ContentTags) -> str:
    """"An instrumental electronic track featuring drums and synthesizer" from the content tags."""
    noun = "piece" if not content.genres or set(content.genres) & PIECE_GENRES else "track"
    instrumental = "instrumental" if content.voice == "instrumental" else ""
    head = " ".join(w for w in (instrumental, " and ".join(content.genres), noun) if w)
    text = f"{article(head)} {head}"
    if content.instruments:
        text += f" featuring {join_words(content.instruments)}"
    if content.voice and not instrumental:
        text += " with a choir" if content.voice == "choir" else f" with {content.voice}"
    return text[0].upper() + text[1:]


def article(phrase: str) -> str:
    """"a" or "an" before ``phrase``, by its first sound ("an R&B track", "a house track")."""
    first = phrase.split()[0]
    return "an" if first == "R&B" or first[0].lower() in "aeio" else "a"


def join_words(words: tuple[str, ...]) -> str:
    """"a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
