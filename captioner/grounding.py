"""Does a caption agree with what was measured? One check for every captioner.

:func:`ground` reads any caption text (template, tags-llm, audio-llm, human) with the words of
:mod:`captioner.vocab` and compares each claim with a clip's descriptors and VA label, attribute
by attribute. Attributes it cannot check (descriptor missing or NaN, no VA label) are skipped and
named in :attr:`Grounding.unchecked`, so callers can count what was not checked instead of
counting it as a pass. :func:`contradictions` finds captions that disagree with themselves, and
:func:`forbidden` finds content a captioner could not have known.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from captioner import content
from captioner.vocab import (KEY_MIN_STRENGTH, MOOD_LEXICON, NO_PULSE_PHRASES, SCALES, TEMPO_MIN_BEAT_STRENGTH,
                             key_is_confident, mood_problem, phrase_pattern, tempo_is_confident)

# Minimum BPM slack: a stated BPM within max(this, 10 % of the measured tempo) is fine.
MIN_BPM_SLACK = 8.0
BPM_TOLERANCE = 0.1
KEY, MOOD, CONTENT = "key", "mood", "content"
ATTRIBUTES = (*SCALES, KEY, MOOD, CONTENT)  # every attribute :func:`ground` can report


@dataclass(frozen=True)
class Grounding:
    """Per attribute: why the caption contradicts the measurement (only attributes that do)."""

    failures: dict[str, str] = field(default_factory=dict)
    unchecked: tuple[str, ...] = ()  # attributes without a usable measurement

    @property
    def ok(self) -> bool:
        return not self.failures


_PATTERNS = {name: phrase_pattern(s.phrase_bands()) for name, s in SCALES.items()}
_PHRASE_BAND = {name: {p.lower(): i for p, i in s.phrase_bands().items()} for name, s in SCALES.items()}
_NO_PULSE = phrase_pattern(NO_PULSE_PHRASES)
_MOODS = phrase_pattern(MOOD_LEXICON)
_CONTENT_WORD = {p.lower(): w for w in content.WORDS for p in w.phrases}
_CONTENT = phrase_pattern(_CONTENT_WORD)
BPM_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-\s*)?(?:bpm|beats per minute|beats a minute)\b", re.IGNORECASE)
_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# The note letter is case-sensitive so the article "a minor ..." is not read as A minor.
KEY_PATTERN = re.compile(r"\b([A-G])(#|♯|b|♭|-sharp|-flat| sharp| flat)?[ -](?i:(major|minor))\b")
# A tonic without a mode ("in E flat", "in C#;"): lowercase "in", so "In a minute" is no claim.
TONIC_PATTERN = re.compile(r"\bin ([A-G])(#|♯|b|♭|-sharp|-flat| sharp| flat)?+(?![\w#♯♭-])(?!\s*(?i:major|minor))")
_MODE = re.compile(r"\b(major|minor)[ -](?:key|mode|tonality|scale)\b", re.IGNORECASE)


def claims(text: str, attribute: str) -> list[tuple[str, int]]:
    """(phrase, band index) of every phrase of one scale in ``text``, in order."""
    table = _PHRASE_BAND[attribute]
    return [(m.group(1), table[" ".join(m.group(1).lower().split())]) for m in _PATTERNS[attribute].finditer(text)]


def mood_claims(text: str) -> list[str]:
    return [m.group(1).lower() for m in _MOODS.finditer(text)]


def content_claims(text: str) -> list[tuple[str, content.ContentWord]]:
    """(phrase, content word) of every genre, instrument or voice ``text`` names, in order."""
    return [(m.group(1), _CONTENT_WORD[" ".join(m.group(1).lower().split())]) for m in _CONTENT.finditer(text)]


def _number(d: dict[str, Any] | None, key: str) -> float | None:
    if not d or d.get(key) is None:
        return None
    try:
        x = float(d[key])
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def ground(text: str, descriptors: dict[str, Any] | None, valence: float | None = None,
           arousal: float | None = None, mood_given: bool = True, tags: dict[str, Any] | None = None) -> Grounding:
    """Check every attribute ``text`` states against ``descriptors``, the VA label and the tagger's
    probabilities (``tags``: model -> probabilities; None leaves genre, instruments and voice unchecked).

    ``mood_given=False`` (a captioner told no mood): any mood word is a failure, since nothing
    the captioner was given supports it.
    """
    failures: dict[str, str] = {}
    unchecked: list[str] = []
    for name, scale in SCALES.items():
        x = _number(descriptors, scale.field)
        if x is None:
            unchecked.append(name)
            continue
        problem = _tempo_problem(text, x, descriptors) if name == "tempo" else _scale_problem(text, name, x)
        if problem:
            failures[name] = problem
    key_result = _key_problem(text, descriptors or {})
    if key_result is None:
        unchecked.append(KEY)
    elif key_result:
        failures[KEY] = key_result
    mood = _mood_problem(text, valence, arousal, mood_given)
    if mood is None:
        unchecked.append(MOOD)
    elif mood:
        failures[MOOD] = mood
    named = _content_problem(text, tags)
    if named is None:
        unchecked.append(CONTENT)
    elif named:
        failures[CONTENT] = named
    return Grounding(failures, tuple(unchecked))


def _content_problem(text: str, tags: dict[str, Any] | None) -> str | None:
    """None: the clip was not tagged; "" fine; else the genre, instrument or voice without evidence."""
    if not tags:
        return None
    for phrase, word in content_claims(text):
        problem = content.claim_problem(tags, word, phrase)
        if problem:
            return problem
    return ""


def _scale_problem(text: str, name: str, x: float) -> str:
    scale = SCALES[name]
    allowed = scale.allowed(x)
    for phrase, band in claims(text, name):
        if band not in allowed:
            return f"says {phrase!r}, measured {scale.field} {x:.3g} ({scale.word(x)!r})"
    return ""


def _tempo_problem(text: str, bpm: float, d: dict[str, Any]) -> str:
    if bpm <= 0:  # no pulse measured: no BPM and no tempo band may be claimed
        stated = BPM_PATTERN.search(text) or next(iter(_PATTERNS["tempo"].finditer(text)), None)
        return f"states {stated.group(0)!r}, but the clip has no steady pulse" if stated else ""
    number = BPM_PATTERN.search(text)
    if number and d.get("beat_strength") is not None and not tempo_is_confident(d):
        return (f"states {number.group(0)!r}, but the tempo estimate is too weak to state (beat strength "
                f"{float(d['beat_strength']):.2f} < {TEMPO_MIN_BEAT_STRENGTH})")
    slack = max(MIN_BPM_SLACK, BPM_TOLERANCE * bpm)
    for m in BPM_PATTERN.finditer(text):
        if abs(float(m.group(1)) - bpm) > slack:
            return f"states {m.group(0)!r}, measured {bpm:.0f} BPM"
    pulse_free = _NO_PULSE.search(text)
    if pulse_free:
        return f"says {pulse_free.group(0)!r}, measured a pulse at {bpm:.0f} BPM"
    return _scale_problem(text, "tempo", bpm)


def pitch_class(letter: str, accidental: str | None) -> int:
    """0-11 for a note letter and its accidental as captions write them ("#", "b", " flat", ...)."""
    shift = {"#": 1, "♯": 1, "-sharp": 1, " sharp": 1, "b": -1, "♭": -1, "-flat": -1, " flat": -1}
    return (_PITCH[letter] + shift.get(accidental or "", 0)) % 12


def _key_problem(text: str, d: dict[str, Any]) -> str | None:
    """None: nothing measured to compare against; "" fine; else the problem."""
    key, mode = str(d.get("key") or ""), str(d.get("mode") or "").lower()
    if not key or key[0] not in _PITCH or mode not in ("major", "minor"):
        return None
    if _number(d, "key_strength") == 0.0:
        return None  # no pitch content (silence): the key is a placeholder, not a measurement
    measured = pitch_class(key[0], key[1:] or None)
    stated = KEY_PATTERN.search(text) or TONIC_PATTERN.search(text) or _MODE.search(text)
    if stated and d.get("key_strength") is not None and not key_is_confident(d):
        return (f"states {stated.group(0)!r}, but the key estimate is too weak to state (key strength "
                f"{float(d['key_strength']):.2f} < {KEY_MIN_STRENGTH})")
    for m in KEY_PATTERN.finditer(text):
        if pitch_class(m.group(1), m.group(2)) != measured or m.group(3).lower() != mode:
            return f"states {m.group(0)!r}, measured {key} {mode}"
    for m in TONIC_PATTERN.finditer(text):
        if pitch_class(m.group(1), m.group(2)) != measured:
            return f"states a key of {m.group(0)[3:]!r}, measured {key} {mode}"
    for m in _MODE.finditer(text):
        if m.group(1).lower() != mode:
            return f"states {m.group(0)!r}, measured {key} {mode}"
    return ""


def _mood_problem(text: str, valence: float | None, arousal: float | None, mood_given: bool) -> str | None:
    words = mood_claims(text)
    if not mood_given:
        return f"states a mood ({words[0]!r}) though the captioner was given none" if words else ""
    if valence is None or arousal is None or not (math.isfinite(valence) and math.isfinite(arousal)):
        return None
    for word in words:
        problem = mood_problem(word, valence, arousal)
        if problem:
            return problem
    return ""


# --- self-contradiction -----------------------------------------------------------------------
CONTRADICTION_ATTRIBUTES = ("tempo", "loudness", "timbre")


def contradictions(text: str) -> dict[str, str]:
    """Attributes for which ``text`` uses words of two different bands ("slow ... moderate tempo")."""
    out = {}
    for name in CONTRADICTION_ATTRIBUTES:
        seen: dict[int, str] = {}
        for phrase, band in claims(text, name):
            seen.setdefault(band, phrase)
        if name == "tempo" and _NO_PULSE.search(text) and (seen or BPM_PATTERN.search(text)):
            seen[-1] = _NO_PULSE.search(text).group(0)
        if len(seen) > 1:
            out[name] = " vs ".join(repr(p) for p in seen.values())
    voices = {w.phrase == "instrumental": p for p, w in content_claims(text) if w.category == content.VOICE}
    if len(voices) > 1:  # "instrumental ... with male vocals"
        out["voice"] = " vs ".join(repr(p) for p in voices.values())
    return out


# --- content a captioner cannot know ----------------------------------------------------------
# Lyrics are unknowable to every captioner here (none transcribes). Genres, instruments and voices
# outside the tagger's vocabulary (captioner.content) only a captioner that hears the audio can know;
# those inside it, a captioner that does not hear may name only where the clip was tagged (and
# grounding then checks the evidence).
FORBIDDEN_ALWAYS = {"lyrics": ("lyrics", "lyric", "the words say", "sings about", "the song says")}
_UNHEARD_INSTRUMENTS = ("bass guitar", "saxophone", "trumpet", "organ", "percussion instruments", "orchestra",
                        "orchestral", "brass", "clarinet", "ukulele", "banjo", "keyboard", "accordion", "trombone",
                        "oboe", "bassoon", "marimba", "xylophone", "vibraphone", "bagpipes", "tabla", "saxophonist",
                        "trumpeter", "organist", "clarinetist", "banjoist", "keyboardist", "accordionist")
FORBIDDEN_UNHEARD = {
    "voice": ("a cappella", "rapper", "rapping"),
    # and their plurals ("xylophones"); "brass", "orchestral" and the like have none
    "instrument": _UNHEARD_INSTRUMENTS + tuple(f"{w}s" for w in _UNHEARD_INSTRUMENTS if not w.endswith(("s", "al"))),
    "genre": ("edm", "reggae", "disco", "soundtrack", "lo-fi", "trance", "dubstep", "gospel", "salsa",
              "bossa nova", "latin", "k-pop", "ska", "grunge"),
}
_UNTAGGED = {category: tuple(p for w in content.WORDS if w.category == category for p in w.phrases)
             for category in content.CATEGORIES}
_FORBIDDEN = {name: phrase_pattern(words) for name, words in {**FORBIDDEN_ALWAYS, **FORBIDDEN_UNHEARD}.items()}
_FORBIDDEN_UNTAGGED = {category: phrase_pattern(words) for category, words in _UNTAGGED.items()}


def forbidden(text: str, hears_audio: bool, tagged: bool = False) -> tuple[str, ...]:
    """Categories of content in ``text`` that its captioner could not know (sorted).

    ``tagged``: the clip carries tag probabilities, so genre, instrument and voice words of the tag
    vocabulary are known (and grounded against them by :func:`ground`)."""
    names = list(FORBIDDEN_ALWAYS) + ([] if hears_audio else list(FORBIDDEN_UNHEARD))
    found = {n for n in names if _FORBIDDEN[n].search(text)}
    if not hears_audio and not tagged:
        found |= {c for c, pattern in _FORBIDDEN_UNTAGGED.items() if pattern.search(text)}
    return tuple(sorted(found))
