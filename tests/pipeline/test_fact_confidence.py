"""The confidence rule for stating a tempo or key (thresholds: tests/benchmarks/bench_facts.py)."""
from __future__ import annotations

from pipeline import descriptors
from pipeline.fact_confidence import key_is_confident, tempo_is_confident
from tests import audiogen as g

SR = 22050


def _clip(x):
    return descriptors.clip_descriptors(descriptors.analyze(x, SR), 0.0, len(x) / SR)


def test_a_click_track_states_its_tempo_and_a_held_chord_does_not():
    clicks = _clip(g.click_track(120.0, 10.0, SR))
    assert tempo_is_confident(clicks) and abs(clicks["tempo_bpm"] - 120.0) < 120.0 * 0.04
    held = _clip(g.chord((60, 64, 67), 10.0, SR))  # no onsets after the first: no pulse
    assert held["tempo_bpm"] == 0.0 and not tempo_is_confident(held)


def test_a_clear_triad_progression_states_its_key_and_noise_does_not():
    c_major = ((60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67))
    song = _clip(g.progression(c_major, 2.5, SR))
    assert key_is_confident(song) and (song["key"], song["mode"]) == ("C", "major")
    assert not key_is_confident(_clip(g.noise(10.0, SR)))
