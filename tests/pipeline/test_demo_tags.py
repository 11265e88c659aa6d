"""The demo's songs exercise the tagger, and the tests know the answer: who plays is in the plan."""
from __future__ import annotations

import pytest

from captioner.content import content_tags
from pipeline import tagging
from pipeline.sources import demo

WINDOWS = [(s, s + 10.0) for s in (0.0, 5.0, 10.0)]


@pytest.fixture(scope="module")
def tagged():
    """Clip content tags of a 20 s solo-piano song and a 20 s rock-band song (drum kit)."""
    out = {}
    for ensemble in ("solo piano", "rock band"):
        samples, _ = demo.synthesize_song(f"tagtest-{ensemble}", 0, 20.0, ensemble=ensemble)
        tags = tagging.tag_song(samples, demo.SYNTH_RATE, tagging.TAGGERS["musicnn"], (0.0, 20.0))
        out[ensemble] = [content_tags(tags.clip(s, e)) for s, e in WINDOWS]
    return out


def test_the_plan_says_who_plays():
    plan = demo.demo_song_plan(12)
    assert any(p.instruments == ("piano",) for p in plan)
    assert any("drums" in p.instruments for p in plan)


def test_a_piano_only_song_is_tagged_piano_and_not_guitar(tagged):
    assert all("piano" in c.instruments and "guitar" not in c.instruments for c in tagged["solo piano"])


def test_a_drum_kit_song_is_tagged_drums(tagged):
    assert all("drums" in c.instruments for c in tagged["rock band"])
    assert not any("drums" in c.instruments for c in tagged["solo piano"])
