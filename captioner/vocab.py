"""Shared musical vocabulary: the words captions use for measured quantities and VA.

The descriptor template and the tags-llm prompt write with these words, and the grounding check
(:mod:`captioner.grounding`) reads any caption with the same words, so what a caption may claim is
defined once. Each measured quantity is a :class:`Scale`: bands of a descriptor's value, each band
with the word the template writes and the other phrases that claim the same band.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Band:
    """Values below ``upper`` (and above the previous band's) are called ``word``."""

    upper: float
    word: str
    synonyms: tuple[str, ...] = ()

    @property
    def phrases(self) -> tuple[str, ...]:
        return (self.word, *self.synonyms)


@dataclass(frozen=True)
class Scale:
    """One measured attribute as words: ``field`` of the descriptors, cut into ``bands``.

    ``slack``: near a band edge the neighbour's word is fair too (107 BPM may be called lively),
    because the measurement itself is uncertain by about that much.
    """

    attribute: str
    field: str
    bands: tuple[Band, ...]
    slack: float

    def index(self, x: float) -> int:
        return next(i for i, b in enumerate(self.bands) if x < b.upper)

    def word(self, x: float) -> str:
        return self.bands[self.index(x)].word

    def allowed(self, x: float) -> set[int]:
        """Band indices a caption may claim for the value ``x``."""
        return {self.index(x - self.slack), self.index(x), self.index(x + self.slack)}

    def phrase_bands(self) -> dict[str, int]:
        return {p: i for i, b in enumerate(self.bands) for p in b.phrases}


INF = float("inf")

# Registry: attribute name -> scale. Phrases are matched whole-word, longest first, so
# "moderately loud" never also reads as "loud". No phrase appears in two scales or in the mood
# lexicon below (tests check), so one word claims one thing.
SCALES: dict[str, Scale] = {s.attribute: s for s in (
    Scale("tempo", "tempo_bpm", (
        Band(76.0, "slow", ("unhurried", "leisurely", "slowly")),
        Band(108.0, "moderate tempo", ("moderate pace", "moderately paced", "medium tempo", "mid-tempo",
                                       "walking pace")),
        Band(132.0, "lively", ("brisk",)),
        Band(INF, "fast", ("quick tempo", "rapid tempo", "quickly")),
    ), slack=6.0),
    Scale("loudness", "loudness_db", (
        Band(-30.0, "soft", ("quiet", "hushed", "softly")),
        Band(-16.0, "moderately loud", ("medium loudness", "moderate volume", "moderate loudness")),
        Band(INF, "loud", ("loudly", "forceful")),
    ), slack=3.0),
    Scale("timbre", "brightness", (
        Band(1200.0, "dark", ("mellow", "dark-toned", "muted tone")),
        Band(2800.0, "balanced", ("balanced tone", "even tone")),
        Band(INF, "bright", ("brilliant", "airy", "light sound", "light tone", "light timbre")),
    ), slack=200.0),
    Scale("rhythm", "onset_rate", (
        Band(1.5, "sparse", ("sparsely", "few attacks")),
        Band(4.0, "regular", ("regular rhythm", "regular pulse", "even rhythm", "moderately active rhythm")),
        Band(INF, "busy", ("dense rhythm", "rhythmically dense", "bustling")),
    ), slack=0.4),
    Scale("percussion", "percussive_ratio", (
        Band(0.2, "sustained", ("legato", "smooth, held", "held tones")),
        Band(0.5, "partly percussive", ("mix of sustained and percussive", "half percussive")),
        Band(INF, "percussive", ("punchy", "percussion-driven", "hit-driven")),
    ), slack=0.05),
    Scale("dynamics", "loudness_trend_db", (
        Band(-4.0, "fading", ("fades", "fade out", "receding", "diminuendo", "growing quieter", "gets quieter")),
        Band(4.0, "steady in level", ("holds its level", "level dynamics", "even dynamics", "constant level")),
        Band(INF, "building", ("builds", "swelling", "swells", "crescendo", "growing louder", "gets louder")),
    ), slack=1.5),
    Scale("harmony", "harmonic_change_rate", (
        Band(0.25, "static harmony", ("a single chord", "drone", "unchanging harmony", "one sustained chord")),
        Band(0.9, "shifting harmony", ("gradual chord changes", "slowly changing chords", "chord changes")),
        Band(INF, "rapidly changing harmony", ("rapid chord changes", "fast chord changes", "quickly changing chords")),
    ), slack=0.1),
    Scale("noisiness", "noisiness", (
        Band(0.08, "clean", ("pure tone", "clear tone")),
        Band(0.25, "slightly grainy", ("somewhat noisy", "a little grainy")),
        Band(INF, "noisy", ("gritty", "hissy", "noise-like")),
    ), slack=0.03),
)}

# Tempo without a pulse: the descriptor reads 0 BPM when a clip has too few onsets to have one.
NO_PULSE_PHRASES = ("no steady pulse", "without a steady pulse", "free-flowing", "no clear beat",
                    "without a clear beat", "beatless", "rubato")


def has_pulse(d: dict[str, Any]) -> bool:
    return float(d.get("tempo_bpm") or 0.0) > 0.0


# How sure a measurement must be before a caption states it (docs/captioner.md, "Key and tempo",
# has the accuracy figures on songs of known key and tempo behind these thresholds).
KEY_MIN_STRENGTH = 0.8  # key_strength: correlation of the clip's chroma with its best key profile
TEMPO_MIN_BEAT_STRENGTH = 3.0  # beat_strength: onset strength on the beats / overall (1: no pulse)


def key_is_confident(d: dict[str, Any]) -> bool:
    """Whether the measured key is likely enough to be right to state."""
    return float(d.get("key_strength") or 0.0) >= KEY_MIN_STRENGTH


def tempo_is_confident(d: dict[str, Any]) -> bool:
    """Whether the measured tempo is likely enough to be right to state (a pulse, clearly beaten)."""
    return has_pulse(d) and float(d.get("beat_strength") or 0.0) >= TEMPO_MIN_BEAT_STRENGTH


def tempo_word(bpm: float) -> str:
    """The tempo band word for ``bpm`` (the no-pulse phrase for 0)."""
    return SCALES["tempo"].word(bpm) if bpm > 0 else NO_PULSE_PHRASES[0]


def tempo_clause(bpm: float) -> str:
    """How the template states a tempo: band and BPM, or that there is no pulse (never "0 BPM")."""
    if bpm <= 0:
        return "with no steady pulse"
    word = SCALES["tempo"].word(bpm).removesuffix(" tempo")
    return f"at a {word} tempo of about {round(bpm)} BPM"


def level_word(attribute: str, x: float) -> str:
    return SCALES[attribute].word(x)


def loudness_word(loudness_db: float) -> str:
    """Dynamics word for an integrated loudness in dBFS."""
    return level_word("loudness", loudness_db)


def brightness_word(centroid_hz: float) -> str:
    """Timbre word for a spectral centroid in Hz."""
    return level_word("timbre", centroid_hz)


def rhythm_word(onset_rate: float) -> str:
    """Rhythm-density word for onsets per second."""
    return level_word("rhythm", onset_rate)


# --- mood -----------------------------------------------------------------------------------
# A mood word claims a side of the valence axis, of the arousal axis, or both, and a strength.
# Strength follows the VA label's distance from the centre (0.5, 0.5): near it a clip gets neutral
# words, further out mild ones, far out strong ones.
NEUTRAL_MAX = 0.1  # distance below which the mood is neutral
STRONG_MIN = 0.25  # distance from which strong words are written
MOOD_SLACK = 0.05  # a check allows this much beyond the writing thresholds
SIDE_MARGIN = 0.1  # a word claiming "high arousal" fails only when arousal < 0.5 - margin

NEUTRAL, MILD, STRONG = "neutral", "mild", "strong"


@dataclass(frozen=True)
class MoodWord:
    word: str
    high_valence: bool | None  # None: says nothing about valence
    high_arousal: bool | None
    strength: str


def _quadrant(hv: bool, ha: bool, mild: tuple[str, ...], strong: tuple[str, ...]) -> list[MoodWord]:
    return [MoodWord(w, hv, ha, MILD) for w in mild] + [MoodWord(w, hv, ha, STRONG) for w in strong]


MOOD_LEXICON: dict[str, MoodWord] = {m.word: m for m in (
    *_quadrant(True, True, ("cheerful", "upbeat", "lighthearted"), ("joyful", "exuberant", "euphoric")),
    *_quadrant(True, False, ("calm", "relaxed", "peaceful"), ("serene", "tranquil", "blissful")),
    *_quadrant(False, True, ("tense", "uneasy", "restless"), ("aggressive", "agitated", "furious")),
    *_quadrant(False, False, ("sad", "wistful", "melancholic"), ("gloomy", "mournful", "despairing")),
    MoodWord("energetic", None, True, MILD), MoodWord("intense", None, True, STRONG),
    MoodWord("subdued", None, False, MILD), MoodWord("warm", True, None, MILD),
    MoodWord("neutral", None, None, NEUTRAL), MoodWord("even-keeled", None, None, NEUTRAL),
    MoodWord("composed", None, None, NEUTRAL), MoodWord("unassuming", None, None, NEUTRAL),
)}


def va_distance(valence: float, arousal: float) -> float:
    return math.hypot(valence - 0.5, arousal - 0.5)


def as_stored(x: float) -> float:
    """A VA value as the `music` table stores it (float32): the pipeline that writes a caption and
    whoever checks it from the table must read one number, or a label at a band edge (0.6 stored as
    0.6000000238) passes in one and fails in the other."""
    return float(np.float32(x))


def mood_strength(valence: float, arousal: float) -> str:
    valence, arousal = as_stored(valence), as_stored(arousal)
    d = va_distance(valence, arousal)
    return NEUTRAL if d < NEUTRAL_MAX else MILD if d < STRONG_MIN else STRONG


def mood_words(valence: float, arousal: float) -> tuple[str, ...]:
    """Three mood words for a VA label: the quadrant's words at the distance's strength."""
    valence, arousal = as_stored(valence), as_stored(arousal)
    strength = mood_strength(valence, arousal)
    if strength == NEUTRAL:
        return ("neutral", "even-keeled", "composed")
    hv, ha = valence >= 0.5, arousal >= 0.5
    return tuple(m.word for m in MOOD_LEXICON.values()
                 if m.high_valence is hv and m.high_arousal is ha and m.strength == strength)


def mood_problem(word: str, valence: float, arousal: float) -> str | None:
    """Why ``word`` does not fit the VA label, or None."""
    m = MOOD_LEXICON[word]
    valence, arousal = as_stored(valence), as_stored(arousal)
    d = va_distance(valence, arousal)
    if m.high_valence is not None and (valence >= 0.5) is not m.high_valence \
            and abs(valence - 0.5) > SIDE_MARGIN:
        return f"{word!r} claims {'high' if m.high_valence else 'low'} valence, label {valence:.2f}"
    if m.high_arousal is not None and (arousal >= 0.5) is not m.high_arousal \
            and abs(arousal - 0.5) > SIDE_MARGIN:
        return f"{word!r} claims {'high' if m.high_arousal else 'low'} arousal, label {arousal:.2f}"
    if m.strength == STRONG and d < STRONG_MIN - MOOD_SLACK:
        return f"{word!r} is strong for a label {d:.2f} from the centre (valence {valence:.2f}, arousal {arousal:.2f})"
    if m.strength == NEUTRAL and d >= NEUTRAL_MAX + MOOD_SLACK:
        return f"{word!r} is neutral for a label {d:.2f} from the centre (valence {valence:.2f}, arousal {arousal:.2f})"
    return None


# --- matching -------------------------------------------------------------------------------
def phrase_pattern(phrases) -> re.Pattern:
    """Whole-word, case-insensitive, longest phrase first."""
    alts = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(a).replace(r"\ ", r"\s+") for a in alts) + r")(?![\w-])",
                      re.IGNORECASE)


def all_phrases() -> list[str]:
    """Every vocabulary phrase (scales, no-pulse, mood), for masking in the audit."""
    out = [p for s in SCALES.values() for b in s.bands for p in b.phrases]
    return out + list(NO_PULSE_PHRASES) + list(MOOD_LEXICON)
