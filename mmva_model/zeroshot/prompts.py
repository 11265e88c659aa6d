"""Text prompts for a text-to-music model (MusicGen), built from VA and the nearest library clips.

A deterministic template: mood words come from the VA quadrant (split at 0.5 on both axes);
tempo, timbre, dynamics and rhythm from the median descriptors of the neighbour clips;
instruments from the words of a small vocabulary that the neighbours' captions use (the
quadrant's default instrumentation when none does, and the prompt says which it used).
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Quadrant:
    name: str
    moods: tuple[str, ...]
    instruments: tuple[str, ...]  # used when the neighbours' captions name none


# (valence >= 0.5, arousal >= 0.5) -> quadrant
QUADRANTS: dict[tuple[bool, bool], Quadrant] = {
    (True, True): Quadrant("exuberant", ("joyful", "energetic", "uplifting"),
                           ("bright synths", "drums", "electric guitar")),
    (True, False): Quadrant("serene", ("calm", "warm", "peaceful"), ("soft piano", "acoustic guitar", "strings")),
    (False, True): Quadrant("tense", ("tense", "aggressive", "restless"),
                            ("distorted guitar", "pounding drums", "brass")),
    (False, False): Quadrant("melancholic", ("sad", "melancholic", "gloomy"), ("solo piano", "cello", "ambient pads")),
}

# (upper bound, word): the first band whose bound exceeds the value names it
TEMPO_BANDS = ((76.0, "slow"), (108.0, "moderate"), (132.0, "lively"), (float("inf"), "fast"))
BRIGHTNESS_BANDS = ((1200.0, "dark, mellow"), (2800.0, "balanced"), (float("inf"), "bright"))
LOUDNESS_BANDS = ((-30.0, "soft"), (-16.0, "moderate"), (float("inf"), "loud"))
RHYTHM_BANDS = ((1.5, "sparse"), (4.0, "steady"), (float("inf"), "busy"))

# Instrument vocabulary: prompt word -> caption pattern (word boundaries, plural allowed).
INSTRUMENTS: dict[str, str] = {
    "piano": r"piano", "acoustic guitar": r"acoustic guitar", "electric guitar": r"electric guitar",
    "guitar": r"guitar", "strings": r"strings?|string section|orchestra", "violin": r"violin",
    "cello": r"cello", "bass": r"bass(?: guitar)?", "drums": r"drums?|drum kit|percussion",
    "synthesizer": r"synth(?:esi[sz]er)?s?|synth pads?", "organ": r"organ", "flute": r"flute",
    "saxophone": r"sax(?:ophone)?", "trumpet": r"trumpet", "brass": r"brass", "choir": r"choir",
    "vocals": r"vocals?|voice|singer|singing", "harp": r"harp", "bells": r"bells?|chimes?",
}
_INSTRUMENT_RES = {w: re.compile(rf"\b(?:{p})s?\b", re.IGNORECASE) for w, p in INSTRUMENTS.items()}
# A generic word is not counted when a caption already names its specific kind.
_SPECIFIC = {"guitar": ("acoustic guitar", "electric guitar")}
MAX_INSTRUMENTS = 3


@dataclass
class Prompt:
    """A text prompt and the facts it was made from."""

    text: str
    valence: float
    arousal: float
    quadrant: str
    moods: list[str]
    tempo_bpm: float | None  # median pulse tempo of the neighbours; None when none has a pulse
    tempo: str
    instruments: list[str]
    instruments_from: str  # "captions" or "quadrant default"
    timbre: str | None
    dynamics: str | None
    rhythm: str | None
    neighbours: list[str] = field(default_factory=list)  # clip ids the prompt drew on


def quadrant(valence: float, arousal: float) -> Quadrant:
    return QUADRANTS[(valence >= 0.5, arousal >= 0.5)]


def band(value: float, bands: Sequence[tuple[float, str]]) -> str:
    return next(word for bound, word in bands if value < bound)


def caption_instruments(captions: Sequence[str]) -> list[str]:
    """Vocabulary instruments named by the captions, most captions first (vocabulary order on ties)."""
    counts: Counter[str] = Counter()
    for caption in captions:
        found = {w for w, rx in _INSTRUMENT_RES.items() if rx.search(caption or "")}
        found -= {w for w, specific in _SPECIFIC.items() if found & set(specific)}
        counts.update(found)
    order = list(INSTRUMENTS)
    return sorted(counts, key=lambda w: (-counts[w], order.index(w)))[:MAX_INSTRUMENTS]


def _median(descriptors: Sequence[dict[str, Any]], key: str, keep=lambda v: True) -> float | None:
    values = [float(d[key]) for d in descriptors if d.get(key) is not None and keep(float(d[key]))]
    return statistics.median(values) if values else None


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def build_prompt(valence: float, arousal: float, neighbours: Sequence[dict[str, Any]]) -> Prompt:
    """The prompt for VA ``(valence, arousal)`` and neighbour clips (dicts with ``clip_id``,
    ``caption``, ``descriptors``), deterministic."""
    q = quadrant(valence, arousal)
    descs = [n.get("descriptors") or {} for n in neighbours]
    bpm = _median(descs, "tempo_bpm", keep=lambda v: v > 0)  # 0 means "no pulse" in the pipeline
    tempo = (f"{band(bpm, TEMPO_BANDS)} tempo around {bpm:.0f} BPM" if bpm is not None
             else "free tempo without a steady beat")
    instruments = caption_instruments([n.get("caption", "") for n in neighbours])
    source = "captions" if instruments else "quadrant default"
    instruments = instruments or list(q.instruments)
    brightness, loudness, onsets = (_median(descs, k) for k in ("brightness", "loudness_db", "onset_rate"))
    timbre = band(brightness, BRIGHTNESS_BANDS) if brightness is not None else None
    dynamics = band(loudness, LOUDNESS_BANDS) if loudness is not None else None
    rhythm = band(onsets, RHYTHM_BANDS) if onsets is not None else None
    parts = [f"{', '.join(q.moods).capitalize()} music featuring {_join(instruments)}", tempo]
    parts += [p for p in (timbre and f"{timbre} timbre", dynamics and f"{dynamics} dynamics",
                          rhythm and f"{rhythm} rhythm") if p]
    return Prompt(", ".join(parts) + ".", float(valence), float(arousal), q.name, list(q.moods), bpm,
                  tempo, instruments, source, timbre, dynamics, rhythm,
                  [str(n.get("clip_id", "")) for n in neighbours])
