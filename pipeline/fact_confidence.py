"""Which measured facts are likely right: a rule for stating a clip's tempo or key in a caption.

Grounding holds a caption to the descriptors; this says when the descriptors themselves can be
trusted. The thresholds come from ``tests/benchmarks/bench_facts.py``, which checks
``pipeline.descriptors``' estimates against the demo's known truth (360 clips of 36 songs played
by sampled instruments; figures in docs/pipeline.md):

- Tempo: every wrong estimate (legato strings, choir and flute, read near librosa's 120 BPM
  prior, at 3/2 or twice the true tempo) had ``beat_strength`` below 2.4; from 3.0 up every
  estimate was within 4 % of a tempo the clip plays at, and 80 % of the clips qualify.
- Key: ``key_strength`` separates right from wrong keys poorly (60 % exact overall; most misses
  are the dominant, a fifth up). From 0.80 up 80 % of the keys are exact and 88 % of the modes
  right, on a third of the clips; no threshold or pairing with another descriptor reached 90 %.

Not wired into the captioners: they may use :func:`tempo_is_confident` and
:func:`key_is_confident` to leave out a tempo or key that is likely wrong.
"""
from __future__ import annotations

from collections.abc import Mapping

TEMPO_MIN_BEAT_STRENGTH = 3.0
KEY_MIN_STRENGTH = 0.80


def tempo_is_confident(descriptors: Mapping[str, float]) -> bool:
    """True when the clip has a pulse whose tempo estimate is likely right (see module doc)."""
    return descriptors["tempo_bpm"] > 0.0 and descriptors["beat_strength"] >= TEMPO_MIN_BEAT_STRENGTH


def key_is_confident(descriptors: Mapping[str, float]) -> bool:
    """True when the key estimate is strong enough to state (about 4 in 5 right on the demo)."""
    return descriptors["key_strength"] >= KEY_MIN_STRENGTH
