"""Caption post-processing: clean raw LLM output, then accept it or reject it with a reason.

Order matters: cleaning (special tokens, prompt echo, trailing half-sentence) first, so the
filters judge what would actually be written; then length, repetition and grounding. The
grounding check reads a caption with the words of :mod:`captioner.vocab` (the descriptor
template's words), so the template's own captions always pass it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from captioner.vocab import QUADRANT_MOODS, TEMPO_BANDS, tempo_word

# Error types recorded in failure rows; one per rejection reason.
EMPTY = "caption_empty"
NO_SENTENCE = "caption_no_sentence"
TOO_SHORT = "caption_too_short"
TOO_LONG = "caption_too_long"
REPETITIVE = "caption_repetitive"
UNGROUNDED_TEMPO = "caption_ungrounded_tempo"
UNGROUNDED_KEY = "caption_ungrounded_key"
UNGROUNDED_MOOD = "caption_ungrounded_mood"


@dataclass(frozen=True)
class Limits:
    """Acceptance bounds; defaults fit one or two sentences."""

    min_words: int = 5
    max_words: int = 80
    max_repeated_ngram_fraction: float = 0.3  # of 3-grams that repeat an earlier one
    bpm_tolerance: float = 0.1  # relative; at least MIN_BPM_SLACK absolute
    tempo_word_slack_bpm: float = 6.0  # a band word is fine within this distance of its band


MIN_BPM_SLACK = 8.0


@dataclass(frozen=True)
class Checked:
    """The outcome for one caption: cleaned text, or ``text=None`` with the reason."""

    text: str | None
    error_type: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.text is not None


# Special tokens of common chat formats: <|im_end|>, <|endoftext|>, </s>, <pad>, [PAD], ...
_SPECIAL = re.compile(r"<\|[^|<>]{1,40}\|>|</?s>|<(?:pad|unk|eos|bos)>|\[(?:PAD|UNK|CLS|SEP|MASK)\]")
# A model that keeps going writes the next chat turn; everything from there on is not caption.
_NEXT_TURN = re.compile(r"(?:^|\n)\s*(?:user|system|assistant|human)\s*[:\n]", re.IGNORECASE)
_LEAD_LABEL = re.compile(r"^\s*(?:(?:assistant|caption|answer)[ \t]*[:\n]\s*)+", re.IGNORECASE)
# Echoed tag lines ("tempo: moderate, about 96 BPM").
_TAG_LINE = re.compile(r"^\s*(?:tempo|key|dynamics|timbre|rhythm|mood)\s*:.*$", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?=\s|$)")


def clean(raw: str, prompt: str | None = None) -> str:
    """Strip special tokens and prompt echo, collapse whitespace, cut to the last full sentence."""
    text = _SPECIAL.sub(" ", raw or "")
    if prompt and text.lstrip().startswith(prompt.strip()):
        text = text.lstrip()[len(prompt.strip()):]
    text = _LEAD_LABEL.sub("", text)
    turn = _NEXT_TURN.search(text, 1)  # from 1: a leading role label was handled above
    if turn:
        text = text[:turn.start()]
    text = _TAG_LINE.sub(" ", text)
    text = " ".join(text.split()).strip().strip('"').strip()
    ends = list(_SENTENCE_END.finditer(text))
    return text[:ends[-1].end()].strip() if ends else text


def check(text: str, descriptors: dict[str, Any], valence: float, arousal: float,
          limits: Limits = Limits()) -> Checked:
    """Accept a cleaned caption or say why not (first failing filter wins)."""
    if not text.strip():
        return Checked(None, EMPTY, "the model wrote nothing usable")
    if not _SENTENCE_END.search(text):
        return Checked(None, NO_SENTENCE, f"no complete sentence in {text[:80]!r}")
    words = _words(text)
    if len(words) < limits.min_words:
        return Checked(None, TOO_SHORT, f"{len(words)} words < {limits.min_words}: {text[:80]!r}")
    if len(words) > limits.max_words:
        return Checked(None, TOO_LONG, f"{len(words)} words > {limits.max_words}")
    rep = repeated_ngram_fraction(words)
    if rep > limits.max_repeated_ngram_fraction:
        return Checked(None, REPETITIVE, f"{rep:.0%} of 3-grams repeat: {text[:80]!r}")
    for problem in (_tempo_problem(text, descriptors, limits), _key_problem(text, descriptors),
                    _mood_problem(text, valence, arousal)):
        if problem:
            return Checked(None, *problem)
    return Checked(text)


def postprocess(raw: str, descriptors: dict[str, Any], valence: float, arousal: float,
                prompt: str | None = None, limits: Limits = Limits()) -> Checked:
    """:func:`clean` then :func:`check`."""
    return check(clean(raw, prompt), descriptors, valence, arousal, limits)


def grounding_problem(text: str, descriptors: dict[str, Any], valence: float, arousal: float,
                      limits: Limits = Limits()) -> tuple[str, str] | None:
    """(error_type, message) when the caption contradicts the measurements, else None."""
    return (_tempo_problem(text, descriptors, limits) or _key_problem(text, descriptors)
            or _mood_problem(text, valence, arousal))


def repeated_ngram_fraction(words: list[str], n: int = 3) -> float:
    """Share of n-grams that repeat an earlier n-gram (0 for short texts)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9#']+", text.lower())


_BPM = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-\s*)?(?:bpm|beats per minute|beats a minute)\b", re.IGNORECASE)
_TEMPO_WORDS = tuple(word for _, word in TEMPO_BANDS)
_TEMPO_WORD = re.compile(r"\b(" + "|".join(_TEMPO_WORDS) + r")\b", re.IGNORECASE)


def _tempo_problem(text: str, d: dict[str, Any], limits: Limits) -> tuple[str, str] | None:
    bpm = float(d.get("tempo_bpm", 0.0))
    slack = max(MIN_BPM_SLACK, limits.bpm_tolerance * bpm)
    for m in _BPM.finditer(text):
        if abs(float(m.group(1)) - bpm) > slack:
            return UNGROUNDED_TEMPO, f"states {m.group(0)!r}, measured {bpm:.0f} BPM"
    # Near a band edge either neighbour's word is fair: 107 BPM may be called lively.
    s = limits.tempo_word_slack_bpm
    allowed = {tempo_word(max(bpm - s, 0.0)), tempo_word(bpm), tempo_word(bpm + s)}
    for m in _TEMPO_WORD.finditer(text):
        if m.group(1).lower() not in allowed:
            return UNGROUNDED_TEMPO, f"calls the tempo {m.group(1)!r}, measured {bpm:.0f} BPM ({tempo_word(bpm)})"
    return None


_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# The note letter is case-sensitive so the article "a minor ..." is not read as A minor.
_KEY = re.compile(r"\b([A-G])(#|♯|b|♭|-sharp|-flat| sharp| flat)?[ -](?i:(major|minor))\b")
_MODE = re.compile(r"\b(major|minor)[ -](?:key|mode|tonality|scale)\b", re.IGNORECASE)


def _pitch_class(letter: str, accidental: str | None) -> int:
    shift = {"#": 1, "♯": 1, "-sharp": 1, " sharp": 1, "b": -1, "♭": -1, "-flat": -1, " flat": -1}
    return (_PITCH[letter] + shift.get(accidental or "", 0)) % 12


def _key_problem(text: str, d: dict[str, Any]) -> tuple[str, str] | None:
    key, mode = str(d.get("key", "")), str(d.get("mode", "")).lower()
    if not key or key[0] not in _PITCH:
        return None  # nothing measured to compare against
    measured = _pitch_class(key[0], key[1:] or None)
    for m in _KEY.finditer(text):
        if _pitch_class(m.group(1), m.group(2)) != measured or m.group(3).lower() != mode:
            return UNGROUNDED_KEY, f"states {m.group(0)!r}, measured {key} {mode}"
    for m in _MODE.finditer(text):
        if m.group(1).lower() != mode:
            return UNGROUNDED_KEY, f"states {m.group(0)!r}, measured {key} {mode}"
    return None


def _mood_problem(text: str, valence: float, arousal: float) -> tuple[str, str] | None:
    # Only the opposite quadrant is a contradiction: VA labels near 0.5 make neighbouring
    # quadrants' words plausible, but a calm clip (high V, low A) is never "tense" or "agitated".
    opposite = QUADRANT_MOODS[(valence < 0.5, arousal < 0.5)]
    lowered = _words(text)
    for word in opposite:
        if word in lowered:
            return UNGROUNDED_MOOD, f"says {word!r}, but valence {valence:.2f} / arousal {arousal:.2f}"
    return None
