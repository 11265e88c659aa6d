"""Content tags: the words captions use for genre, instruments and voice, and their tagger evidence."""
from __future__ import annotations

import numpy as np
import pytest

from captioner import content, grounding
from captioner.backends.descriptor import describe
from captioner.content import MSD, MTT, content_evidence, content_tags
from captioner.tagger.vocab import VOCABULARIES
from captioner.vocab import all_phrases

D = {"tempo_bpm": 124.0, "beat_strength": 3.5, "key": "A", "mode": "minor", "key_strength": 0.85,
     "loudness_db": -12.0, "dynamic_range_db": 10.0, "brightness": 2900.0, "onset_rate": 4.5,
     "percussive_ratio": 0.6, "loudness_trend_db": 0.0, "harmonic_change_rate": 0.5, "noisiness": 0.05}


def _probs(**by_tag: float) -> dict[str, np.ndarray]:
    """Probabilities with ``mtt_<tag>`` / ``msd_<tag>`` set (spaces as underscores), the rest 0.01."""
    out = {m: np.full(50, 0.01, np.float32) for m in (MTT, MSD)}
    for key, p in by_tag.items():
        model = MTT if key.startswith("mtt_") else MSD
        out[model][VOCABULARIES[model].index(key[4:].replace("_", " "))] = p
    return out


def test_every_tag_named_exists_and_phrases_claim_one_thing():
    for w in content.WORDS:
        for model, tag in w.tags:
            assert tag in VOCABULARIES[model], (w.phrase, tag)
    phrases = [p.lower() for p in content.all_phrases()]
    assert len(phrases) == len(set(phrases))
    assert not set(phrases) & {p.lower() for p in all_phrases()}  # no overlap with measured-fact words


def test_words_pass_by_threshold_strongest_first():
    tags = content_tags(_probs(mtt_drums=0.5, mtt_synth=0.3, mtt_piano=0.2, msd_electronic=0.45, mtt_techno=0.3))
    assert tags.instruments == ("drums", "synthesizer")  # piano 0.2 is under the writing threshold
    assert tags.genres == ("electronic", "techno")
    assert content_tags(None) == content.ContentTags() and content_tags({}).words == ()


def test_voice_rules():
    assert content_tags(_probs(mtt_no_vocals=0.6, mtt_vocals=0.1)).voice == "instrumental"
    assert content_tags(_probs(mtt_no_vocals=0.4, mtt_female_vocal=0.5)).voice == "female vocals"
    assert content_tags(_probs(mtt_vocals=0.6, mtt_male=0.4)).voice == "male vocals"  # specific over generic
    assert content_tags(_probs(mtt_vocals=0.6)).voice == "vocals"
    assert content_tags(_probs(mtt_choir=0.8, mtt_choral=0.6)).voice == "choir"


def test_a_parent_genre_is_not_repeated():
    assert content_tags(_probs(msd_hard_rock=0.5, msd_rock=0.6)).genres == ("hard rock",)


def test_grounding_holds_named_content_to_the_tags():
    tags = _probs(mtt_piano=0.5, mtt_vocals=0.5)
    assert grounding.ground("A gentle piano piece with vocals.", D, tags=tags).ok
    bad = grounding.ground("A piece for guitar.", D, tags=tags)
    assert "content" in bad.failures and "'guitar'" in bad.failures["content"]
    sung = grounding.ground("An instrumental piano piece.", D, tags=_probs(mtt_piano=0.5, mtt_no_vocals=0.5,
                                                                          mtt_female=0.6))
    assert "hears a voice" in sung.failures["content"]
    assert "content" in grounding.ground("A piece for guitar.", D, tags=None).unchecked


def test_a_performer_s_sex_claims_the_gendered_voice():
    """"A male drummer" says a man performs: only the male-voice evidence can support that."""
    no_voice = _probs(mtt_drums=0.4, mtt_no_vocals=0.6)
    for text in ("A male drummer drives this rock track.", "A woman plays guitar here.",
                 "He plays the drums hard and fast."):
        assert "content" in grounding.ground(text, D, tags=no_voice).failures, text
    assert grounding.ground("A male drummer drives this track.", D, tags=_probs(mtt_drums=0.4, mtt_male=0.5)).ok


def test_forbidden_and_contradictions():
    assert grounding.forbidden("A rock piece for piano.", hears_audio=False) == ("genre", "instrument")
    assert grounding.forbidden("A rock piece for piano.", hears_audio=False, tagged=True) == ()
    assert grounding.forbidden("A rock piece for saxophone.", hears_audio=False, tagged=True) == ("instrument",)
    assert grounding.forbidden("A rock piece for saxophone.", hears_audio=True) == ()
    assert grounding.forbidden("A rock piece with xylophones.", hears_audio=False, tagged=True) == ("instrument",)
    assert grounding.contradictions("An instrumental track with male vocals.") == {
        "voice": "'instrumental' vs 'male vocals'"}


@pytest.mark.parametrize("seed", range(40))
def test_the_template_is_grounded_in_random_tags(seed):
    """Whatever the tags, the descriptor template names only what they support."""
    rng = np.random.default_rng(seed)
    tags = {m: (rng.beta(0.6, 3.0, 50)).astype(np.float32) for m in (MTT, MSD)}
    d = dict(D, beat_strength=float(rng.uniform(0.9, 5.0)), key_strength=float(rng.uniform(0, 1)),
             tempo_bpm=float(rng.choice([0.0, 80.0, 140.0])))
    text = describe(d, float(rng.uniform()), float(rng.uniform()), True, tags)
    g = grounding.ground(text, d, 0.5, 0.5, mood_given=False, tags=tags)
    assert {k: v for k, v in g.failures.items() if k != "mood"} == {}, text
    assert not grounding.contradictions(text) and not grounding.forbidden(text, False, tagged=True), text


def test_the_template_names_what_it_hears():
    text = describe(D, 0.8, 0.8, True, content_evidence(("electronic", "drums", "synthesizer", "instrumental")))
    assert text.startswith("An instrumental electronic track featuring drums and synthesizer. It moves at a "
                           "lively tempo of about 124 BPM in A minor."), text
    assert "in A minor" not in describe(dict(D, key_strength=0.3), 0.8, 0.8, True, None)
    assert "BPM" not in describe(dict(D, beat_strength=2.0), 0.8, 0.8, True, None)


def test_rows_round_trip():
    probs = _probs(mtt_piano=0.5)
    back = content.from_row(content.to_row(probs))
    assert set(back) == {MTT, MSD} and all(np.array_equal(back[m], probs[m]) for m in back)
    assert content.from_row(None) is None and content.to_row(None) is None
