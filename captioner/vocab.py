"""Shared musical vocabulary: the words captions use for measured quantities and VA.

The descriptor template writes with these words and the grounding check reads captions with
the same words, so what a caption may claim is defined once.
"""
from __future__ import annotations

# (upper bound in BPM, word); the first band whose bound exceeds the tempo names it.
TEMPO_BANDS = ((76.0, "slow"), (108.0, "moderate"), (132.0, "lively"), (float("inf"), "fast"))

# Mood words per VA quadrant: (high valence?, high arousal?) -> words.
QUADRANT_MOODS = {
    (True, True): ("joyful", "energetic", "exuberant"),
    (True, False): ("calm", "warm", "serene"),
    (False, True): ("tense", "aggressive", "agitated"),
    (False, False): ("sad", "melancholic", "gloomy"),
}


def tempo_word(bpm: float) -> str:
    """The tempo band word for ``bpm``."""
    return next(word for bound, word in TEMPO_BANDS if bpm < bound)


def mood_words(valence: float, arousal: float) -> tuple[str, ...]:
    """Mood words of the VA quadrant (split at 0.5 on both axes)."""
    return QUADRANT_MOODS[(valence >= 0.5, arousal >= 0.5)]


def level_word(x: float, low: float, high: float, words: tuple[str, str, str]) -> str:
    """Name ``x`` low / mid / high against two thresholds."""
    return words[0] if x < low else words[2] if x >= high else words[1]


# Thresholds for the three level words; the template, the prompt tags and tests share them.
def loudness_word(loudness_db: float) -> str:
    """Dynamics word for an integrated loudness in dBFS."""
    return level_word(loudness_db, -30.0, -16.0, ("soft", "moderately loud", "loud"))


def brightness_word(centroid_hz: float) -> str:
    """Timbre word for a spectral centroid in Hz."""
    return level_word(centroid_hz, 1200.0, 2800.0, ("dark, mellow", "balanced", "bright"))


def rhythm_word(onset_rate: float) -> str:
    """Rhythm-density word for onsets per second."""
    return level_word(onset_rate, 1.5, 4.0, ("sparse", "steady", "busy"))
