"""Caption post-processing: clean raw LLM output, then accept it or reject it with a reason.

Order matters: cleaning (special tokens, prompt echo, trailing half-sentence) first, so the
filters judge what would actually be written; then length, repetition, sense (words that are not
English words, vocabulary words misused, a fact stated twice in a sentence: :mod:`captioner.sense`)
and grounding. The
grounding check reads a caption with the words of :mod:`captioner.vocab` (the descriptor
template's words), so the template's own captions always pass it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from captioner import faithful, sense
from captioner.grounding import contradictions, forbidden, ground

# Error types recorded in failure rows; one per rejection reason.
EMPTY = "caption_empty"
NO_SENTENCE = "caption_no_sentence"
TOO_SHORT = "caption_too_short"
TOO_LONG = "caption_too_long"
REPETITIVE = "caption_repetitive"
NON_WORD = "caption_non_word"  # a word that is not English (captioner.sense)
NONSENSE = "caption_nonsense"  # a vocabulary word where English needs a noun: "noise of cleaning"
RESTATED = "caption_restated_fact"  # a fact word twice in one sentence: "Drum, a piece featuring drums"
INVENTED_NAME = "caption_invented_name"  # a title, band or place inside a sentence (captioner.sense)
DANGLING = "caption_dangling_word"  # a sentence ending in "of", "the", "until": broken off
ADDED = "caption_adds_to_draft"  # a word stating what the draft does not (captioner.faithful)
EMPTY_SENTENCE = "caption_empty_sentence"  # a sentence stating none of the draft's facts
CONTRADICTORY = "caption_self_contradiction"
FORBIDDEN = "caption_forbidden_content"
UNGROUNDED = "caption_ungrounded_{}"  # .format(attribute): tempo, key, mood, loudness, timbre, ...
UNGROUNDED_TEMPO = UNGROUNDED.format("tempo")
UNGROUNDED_KEY = UNGROUNDED.format("key")
UNGROUNDED_MOOD = UNGROUNDED.format("mood")
SILENT = "caption_silent_clip"
BAD_INPUT = "caption_unusable_descriptors"
SILENCE_DB = -90.0  # dBFS: below this a clip is silence (descriptors floor digital silence at -100)
REQUIRED = ("tempo_bpm", "key", "mode", "loudness_db", "brightness", "onset_rate")


@dataclass(frozen=True)
class Limits:
    """Acceptance bounds; defaults fit one or two sentences."""

    min_words: int = 5
    max_words: int = 80
    max_repeated_ngram_fraction: float = 0.0  # of 3-grams that repeat an earlier one (0: none may)


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
# Words no English sentence ends in: articles, prepositions that need an object, conjunctions, and
# degree words that need something to modify ("with the sound of shift almost.").
_CANNOT_END = frozenset("""a an the of in at by for with from to into onto upon than until and but or nor
    whereas although because if every each very quite rather almost nearly somewhat slightly mostly
    partly fairly""".split())
_LAST_WORD = re.compile(r"([A-Za-z']+)\W*[.!?;:]")
_DOUBLED = re.compile(r"\b([A-Za-z]+)\s+\1\b", re.IGNORECASE)  # "percussively percussively"
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?=\s|$)")


# "a" before a word sounding a vowel (u and "one" start with a consonant sound: "a unique", "a one-off").
_A_BEFORE_VOWEL = re.compile(r"\b([Aa])(?= (?!one\b|once\b)[aeioAEIO]\w)")


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
    text = _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + "n", text)  # "A electronic track": small models slip
    ends = list(_SENTENCE_END.finditer(text))
    return text[:ends[-1].end()].strip() if ends else text


def check(text: str, descriptors: dict[str, Any] | None, valence: float | None, arousal: float | None,
          limits: Limits = Limits(), hears_audio: bool = True, mood_given: bool = True,
          tags: dict[str, Any] | None = None, draft: str | None = None) -> Checked:
    """Accept a cleaned caption or say why not (first failing filter wins).

    ``hears_audio=False`` (tags-llm, template): genres, instruments and voices are invented unless
    the clip's ``tags`` (tagger probabilities) support them, so rejected; lyrics are rejected for
    every captioner. ``mood_given=False``: mood words are too. ``draft``: the facts the captioner
    was given, as the template writes them; a word or a sentence beyond them is rejected
    (:mod:`captioner.faithful`).
    """
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
    dangling = [m.group(1) for m in _LAST_WORD.finditer(text) if m.group(1).lower() in _CANNOT_END]
    if dangling:
        return Checked(None, DANGLING, f"a sentence ends in {dangling[0]!r}: {text[:80]!r}")
    doubled = _DOUBLED.search(text)
    if doubled:
        return Checked(None, REPETITIVE, f"{doubled.group(0)!r} twice in a row: {text[:80]!r}")
    senseless = sense.check(text)
    if senseless.non_words:
        return Checked(None, NON_WORD, f"not English words: {', '.join(senseless.non_words)}: {text[:80]!r}")
    if senseless.misused:
        return Checked(None, NONSENSE, f"vocabulary misused: {'; '.join(senseless.misused)}: {text[:80]!r}")
    if senseless.restated:
        return Checked(None, RESTATED, f"states {', '.join(senseless.restated)} twice in a sentence: {text[:80]!r}")
    names = [] if hears_audio else sense.invented_names(text)
    if names:
        return Checked(None, INVENTED_NAME, f"names {', '.join(names)}, which it cannot know: {text[:80]!r}")
    con = contradictions(text)
    if con:
        name, what = next(iter(con.items()))
        return Checked(None, CONTRADICTORY, f"two {name} words disagree ({what}): {text[:80]!r}")
    bad = forbidden(text, hears_audio, tagged=bool(tags))
    if bad:
        return Checked(None, FORBIDDEN, f"mentions {', '.join(bad)}, which the captioner cannot know: {text[:80]!r}")
    problem = grounding_problem(text, descriptors, valence, arousal, mood_given=mood_given, tags=tags)
    if problem:
        return Checked(None, *problem)
    strays = faithful.check(text, draft) if draft is not None else None
    if strays and strays.added:
        return Checked(None, ADDED, f"says what the draft does not: {', '.join(strays.added)}: {text[:80]!r}")
    if strays and strays.empty:
        return Checked(None, EMPTY_SENTENCE, f"states no fact: {strays.empty[0][:80]!r}")
    return Checked(text)


def postprocess(raw: str, descriptors: dict[str, Any] | None, valence: float | None, arousal: float | None,
                prompt: str | None = None, limits: Limits = Limits(), hears_audio: bool = True,
                mood_given: bool = True, tags: dict[str, Any] | None = None, draft: str | None = None) -> Checked:
    """:func:`clean` then :func:`check`."""
    return check(clean(raw, prompt), descriptors, valence, arousal, limits, hears_audio, mood_given, tags, draft)


def grounding_problem(text: str, descriptors: dict[str, Any] | None, valence: float | None,
                      arousal: float | None, mood_given: bool = True,
                      tags: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """(error_type, message) of the first attribute the caption gets wrong, else None."""
    g = ground(text, descriptors, valence, arousal, mood_given=mood_given, tags=tags)
    if g.ok:
        return None
    attribute, message = next(iter(g.failures.items()))
    return UNGROUNDED.format(attribute), message


def unusable(descriptors: dict[str, Any] | None, valence: float | None, arousal: float | None) -> tuple[str, str] | None:
    """(error_type, message) for a clip no caption can be grounded on: silence, missing or NaN inputs."""
    d = descriptors or {}
    missing = [k for k in REQUIRED if d.get(k) is None]
    if missing:
        return BAD_INPUT, f"descriptors missing: {', '.join(missing)}"
    numbers = {k: d[k] for k in REQUIRED if k not in ("key", "mode")}
    va = {"valence": valence, "arousal": arousal}
    bad = [k for k, x in {**numbers, **va}.items() if x is None or not _finite(x)]
    if bad:
        return BAD_INPUT, f"not finite: {', '.join(bad)}"
    if float(d["loudness_db"]) < SILENCE_DB:
        return SILENT, f"silence: loudness {float(d['loudness_db']):.0f} dBFS"
    return None


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def repeated_ngram_fraction(words: list[str], n: int = 3) -> float:
    """Share of n-grams that repeat an earlier n-gram (0 for short texts)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9#']+", text.lower())
