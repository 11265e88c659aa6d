"""Decoding constraints: the banned phrases match the grounding check, and the processor keeps them out."""
from __future__ import annotations

import re

import numpy as np
import pytest

from captioner import content
from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.constraints import BannedPhrases, allowed_phrases, banned_phrases, token_sequences
from captioner.grounding import CONTRADICTION_ATTRIBUTES, claims, contradictions, forbidden, ground
from captioner.vocab import SCALES

D = {"tempo_bpm": 124.0, "beat_strength": 3.5, "key": "F", "mode": "minor", "key_strength": 0.85,
     "loudness_db": -19.0, "brightness": 1400.0, "onset_rate": 3.0, "percussive_ratio": 0.3,
     "loudness_trend_db": 0.3, "harmonic_change_rate": 0.5, "noisiness": 0.04}
NO_PULSE = {**D, "tempo_bpm": 0.0, "beat_strength": 1.0}


def tags(**heard: float) -> dict:
    """Probabilities where each named content word's tags read ``heard[word]`` and all else 0.01."""
    probs = {m: np.full(50, 0.01, np.float32) for m in (content.MTT, content.MSD)}
    index = content._INDEX
    for phrase, p in heard.items():
        for vocab, tag in content.BY_PHRASE[phrase.replace("_", " ")].tags:
            probs[vocab][index[vocab][tag]] = p
    return probs


CASES = [(D, 0.3, 0.7, tags(piano=0.6, electronic=0.4, male_vocals=0.5)),
         (NO_PULSE, 0.8, 0.2, tags(guitar=0.5, instrumental=0.6)),
         (D, 0.5, 0.5, None)]


def _neighbour_band(phrase: str, d: dict) -> bool:
    """A phrase of a band next to the measured one, which grounding allows but is banned so that two
    neighbouring words cannot contradict each other."""
    for name in CONTRADICTION_ATTRIBUTES:
        scale = SCALES[name]
        if d.get(scale.field) is not None and any(band in scale.allowed(float(d[scale.field]))
                                                  for _, band in claims(f"It is {phrase}.", name)):
            return True
    return False


@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_banned_phrase_fails_the_check_by_itself(case):
    d, v, a, t = CASES[case]
    for phrase in banned_phrases(d, v, a, t):
        text = f"It is {phrase}, played here."
        failed = (not ground(text, d, v, a, tags=t).ok or forbidden(text, hears_audio=False, tagged=bool(t))
                  or contradictions(text))
        assert failed or _neighbour_band(phrase, d) or phrase == "BPM", phrase


def test_what_the_clip_supports_stays_allowed():
    d, v, a, t = CASES[0]
    banned = {p.lower() for p in banned_phrases(d, v, a, t)}
    assert {"piano", "electronic", "male vocals", "vocals", "f minor", "moderately loud", "lively", "tense"} \
        .isdisjoint(banned)
    assert {"guitar", "saxophone", "lyrics", "instrumental", "e major", "f major", "loud", "fast", "slow",
            "bright", "calm", "no steady pulse", "major key", "in e flat", "in c"} <= banned
    assert "in f" not in banned and "in e" not in banned  # "in E" may become "in E#" (F)
    weak = {p for p in banned_phrases(dict(d, key_strength=0.5, beat_strength=2.0), v, a, t)}
    assert {"F minor", "in F", "minor key", "BPM", "beats per minute"} <= weak  # too weak to state at all
    assert "moderately loud" in allowed_phrases(banned)  # the banned "loud" inside it stays writable


def test_a_capital_on_purpose_is_kept_and_the_article_stays_free(tokenizer):
    banned = token_sequences(tokenizer, ["in A", "A minor", "loud"])
    article = tuple(tokenizer.encode(" in a", add_special_tokens=False))
    key = tuple(tokenizer.encode(" in A", add_special_tokens=False))
    assert key in banned.spaced and article not in banned.spaced
    assert tuple(tokenizer.encode(" Loud", add_special_tokens=False)) in banned.spaced
    no_pulse = {p.lower() for p in banned_phrases(*CASES[1])}
    assert {"bpm", "slow", "fast", "vocals", "male vocals"} <= no_pulse and "instrumental" not in no_pulse
    untagged = {p.lower() for p in banned_phrases(*CASES[2])}
    assert {w.lower() for w in content.all_phrases()} <= untagged  # nothing heard: no content word


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tests.captioner.tiny_models import train_tokenizer

    return train_tokenizer(tmp_path_factory.mktemp("tok"), texts=["It is moderately loud and loud, Loud piano."])


def _scores(tok, prompt: str, answer: str, banned, allowed=()):
    import torch

    p = tok.encode(prompt, add_special_tokens=False)
    ids = torch.tensor([p + tok.encode(answer, add_special_tokens=False)])
    proc = BannedPhrases(len(p), [token_sequences(tok, banned, allowed)])
    return proc(ids, torch.zeros(1, len(tok)))[0]


def test_processor_bans_the_completing_token_in_context(tokenizer):
    tok = tokenizer
    loud = tok.encode(" loud", add_special_tokens=False)
    opening = tok.encode("Loud", add_special_tokens=False)
    # mid-answer after a space: the last token of " loud" is banned once the rest is written
    s = _scores(tok, "prompt: loud", "It is" + tok.decode(loud[:-1]), ["loud"])
    assert s[loud[-1]] == float("-inf")
    # inside the allowed "moderately loud" it is not
    s = _scores(tok, "prompt", "It is moderately" + tok.decode(loud[:-1]), ["loud"], ["moderately loud"])
    assert s[loud[-1]] == 0
    # as the answer's first word, capitalised
    s = _scores(tok, "prompt", tok.decode(opening[:-1]), ["loud"])
    assert s[opening[-1]] == float("-inf")
    # nothing banned: scores untouched
    assert bool((_scores(tok, "prompt", "It is", []) == 0).all())


def _clip(i: int, d: dict, t: dict | None) -> ClipForCaption:
    return ClipForCaption(f"c{i}", np.zeros(160, np.float32), 16000, d, 0.3, 0.7, t)


def _banned_pattern(d, t) -> re.Pattern:
    """A banned phrase as the processor sees one: opening the answer or after a space, in any case
    unless it holds a capital on purpose ("in A" bans the key, not the article)."""
    def alt(phrase: str) -> str:
        body = re.escape(phrase)
        return f"(?i:{body})" if phrase == phrase.lower() else f"(?:{body}|{re.escape(phrase[:1].upper() + phrase[1:])})"

    alts = sorted(banned_phrases(d, 0.3, 0.7, t), key=len, reverse=True)
    return re.compile(r"(?:^|(?<= ))(" + "|".join(alt(b) for b in alts) + r")(?![\w-])")


def _unmasked(text: str, d, t) -> str:
    """``text`` without the allowed phrases that contain a banned one ("moderately loud")."""
    for phrase in sorted(allowed_phrases(banned_phrases(d, 0.3, 0.7, t)), key=len, reverse=True):
        text = re.sub(re.escape(phrase), "_", text, flags=re.I)
    return text


def test_constrained_tags_llm_never_writes_a_banned_phrase(tiny_lm_dir):
    """A random model writes vocabulary words at random; constrained, none of its clip's banned ones."""
    clips = [_clip(i, D, tags(piano=0.6, electronic=0.4)) for i in range(6)]
    found = {}
    for constrain in (True, False):
        cap = build(CaptionerConfig("tags-llm", str(tiny_lm_dir), {"max_new_tokens": 60, "constrain": constrain,
                                                                    "seed": 3}))
        texts = cap.generate_raw(clips)
        found[constrain] = [m.group(1) for t in texts for m in _banned_pattern(D, clips[0].tags).finditer(_unmasked(t, D, clips[0].tags))]
    assert found[False], "the random model should write some banned phrase unconstrained"
    assert found[True] == []
    assert build(CaptionerConfig("tags-llm", str(tiny_lm_dir), {"constrain": "false"})).id.endswith("+unconstrained")


def test_content_boost_raises_a_wanted_word_until_it_is_written(tokenizer):
    import torch

    from captioner.constraints import wanted_sequences

    tok = tokenizer
    piano = tok.encode(" piano", add_special_tokens=False)
    banned = token_sequences(tok, [])
    row = type(banned)(banned.spaced, banned.opening, banned.allowed, wanted_sequences(tok, ["piano"]))
    prompt = tok.encode("prompt", add_special_tokens=False)

    def scores(answer: str):
        ids = torch.tensor([prompt + tok.encode(answer, add_special_tokens=False)])
        return BannedPhrases(len(prompt), [row], boost=2.5)(ids, torch.zeros(1, len(tok)))[0]

    assert scores("It is")[piano[0]] == 2.5
    assert scores("It is a piano piece")[piano[0]] == 0  # written: no more boost
