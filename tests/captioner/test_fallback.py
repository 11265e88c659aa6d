"""The fallback: the captioner-value convention, and which rejected clips the template rescues."""
from __future__ import annotations

import pytest

from captioner.backends.descriptor import PROMPT_VERSION as TEMPLATE_VERSION, describe
from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption
from captioner.fallback import Fallback, caption_with_fallback, fallback_captioner, parse_captioner
from captioner.vocab import MOOD_LEXICON

D = {"tempo_bpm": 96.0, "key": "C", "mode": "major", "loudness_db": -24.0, "brightness": 1800.0, "onset_rate": 2.0}
CHOSEN = "tags-llm/SmolLM2-135M-Instruct.Q4_1/tags-v2+mood-labels"


def clip(clip_id="s-0", d=D, valence=0.8, arousal=0.8):
    return ClipForCaption(clip_id, None, 0, d, valence, arousal)


def rejected(clip_id="s-0"):
    return CaptionResult(clip_id, None, CHOSEN, "caption_ungrounded_key", "said D minor", 3)


@pytest.mark.parametrize("value, wrote, chosen, fell_back", [
    (CHOSEN, CHOSEN, CHOSEN, False),
    ("source", "source", "source", False),
    ("", "", "", False),
    (fallback_captioner("descriptor/none/template-v2+mood-labels", CHOSEN),
     "descriptor/none/template-v2+mood-labels", CHOSEN, True),
    (fallback_captioner("d/x/v1", "m/a (b)/v1"), "d/x/v1", "m/a (b)/v1", True),  # parentheses in a model id
])
def test_the_captioner_value_convention_round_trips(value, wrote, chosen, fell_back):
    p = parse_captioner(value)
    assert (p.wrote, p.chosen, p.fell_back) == (wrote, chosen, fell_back)


def test_a_rejection_gets_the_template_caption_and_keeps_its_reason():
    r = Fallback(CaptionerConfig("tags-llm")).rescue(clip(), rejected())
    assert r.text == describe(D, 0.8, 0.8) and r.fell_back and r.rejected
    assert (r.error_type, r.message, r.attempts) == ("caption_ungrounded_key", "said D minor", 3)
    assert r.captioner == f"descriptor/none/{TEMPLATE_VERSION}+mood-labels (fallback from {CHOSEN})"


def test_an_accepted_caption_is_left_alone():
    ok = CaptionResult("s-0", "A fine caption.", CHOSEN)
    assert Fallback(CaptionerConfig("tags-llm")).rescue(clip(), ok) is ok
    assert not ok.rejected and not ok.fell_back


def test_the_fallback_follows_the_chosen_mood_setting():
    r = Fallback(CaptionerConfig("tags-llm", extra={"mood": "none"})).rescue(clip(), rejected())
    assert parse_captioner(r.captioner).wrote.endswith("+mood-none")
    assert not any(word in r.text for word in MOOD_LEXICON)
    assert r.text == describe(D, 0.8, 0.8, mood=False)


def test_a_clip_no_caption_can_be_grounded_on_stays_rejected():
    fb = Fallback(CaptionerConfig("tags-llm"))
    for bad in (clip(d={k: v for k, v in D.items() if k != "key"}), clip(d=dict(D, tempo_bpm=float("nan"))),
                clip(valence=None)):
        assert fb.rescue(bad, rejected()) == rejected()


class Crashing:
    id = "test/crash/v0"

    def caption(self, batch):
        raise MemoryError("out of memory")


def test_a_crashing_batch_falls_back_per_clip():
    results = caption_with_fallback(Crashing(), Fallback(CaptionerConfig("x")), [clip("a"), clip("b")], "x")
    assert [(r.clip_id, r.error_type, parse_captioner(r.captioner).chosen) for r in results] == [
        ("a", "internal:MemoryError", "test/crash/v0"), ("b", "internal:MemoryError", "test/crash/v0")]
    assert all(r.fell_back and r.text == describe(D, 0.8, 0.8) for r in results)
