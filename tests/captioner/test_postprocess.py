"""Post-processing: cleaning, filters, and the grounding check against measured descriptors."""
from __future__ import annotations

import itertools

import pytest

from captioner import postprocess as pp
from captioner.backends.descriptor import describe
from captioner.prompts import FEW_SHOT, PROMPT_VERSION, tags_for, tags_messages

# A calm clip: 96 BPM (moderate), C major, high valence / low arousal.
D = {"tempo_bpm": 96.0, "key": "C", "mode": "major", "loudness_db": -24.0, "brightness": 1800.0, "onset_rate": 2.0}
V, A = 0.7, 0.3


def check(text, d=D, v=V, a=A):
    return pp.check(text, d, v, a)


@pytest.mark.parametrize("text", [
    "A calm, warm piece in C major at a moderate tempo of about 96 BPM. It feels serene.",
    "A gentle piece in C major around 100 BPM with a steady rhythm and a warm, serene feel.",
    "Moderately loud and balanced, this C-major music moves at 90 beats per minute and feels calm.",
    "A warm piece with a soft, steady pulse that sounds peaceful and relaxed.",  # states no facts
])
def test_grounded_captions_pass(text):
    result = check(text)
    assert result.ok, result
    assert result.text == text and result.error_type is None


@pytest.mark.parametrize("text, error_type", [
    ("A calm, warm piece in D minor at a moderate tempo. It feels serene.", pp.UNGROUNDED_KEY),
    ("A calm, warm piece in C minor at a moderate tempo. It feels serene.", pp.UNGROUNDED_KEY),
    ("A calm, warm piece in F# major at a moderate tempo. It feels serene.", pp.UNGROUNDED_KEY),
    ("A calm piece in a minor key with a warm sound and a steady rhythm.", pp.UNGROUNDED_KEY),
    ("A calm, warm piece in C major at about 140 BPM. It feels serene.", pp.UNGROUNDED_TEMPO),
    ("A calm, warm piece in C major at a fast tempo. It feels serene.", pp.UNGROUNDED_TEMPO),
    ("A slow and calm piece in C major with a warm, serene sound.", pp.UNGROUNDED_TEMPO),
    ("A tense, agitated piece in C major at a moderate tempo of 96 BPM.", pp.UNGROUNDED_MOOD),
])
def test_contradicting_captions_are_flagged(text, error_type):
    result = check(text)
    assert not result.ok and result.text is None
    assert result.error_type == error_type, result
    assert result.message


def test_enharmonic_key_and_band_edge_tempo_word_pass():
    d = dict(D, key="C#", tempo_bpm=105.0)  # 105 BPM: "moderate", but "lively" is 3 BPM away
    assert check("A calm, warm piece in Db major at a lively tempo. It feels serene.", d).ok
    assert check("A calm, warm piece in C sharp major at a moderate pace. It feels serene.", d).ok


def test_opposite_quadrant_only():
    # "sad" is a low-valence/low-arousal word: for a calm clip (high V, low A) a neighbour, allowed.
    assert check("A calm and slightly sad piece in C major with a warm, steady rhythm.").ok
    # For a joyful clip (high V, high A) it is the opposite quadrant.
    assert check("A sad and gloomy piece in C major with a warm, steady rhythm.", v=0.8, a=0.8).error_type \
        == pp.UNGROUNDED_MOOD


def test_filters():
    assert check("").error_type == pp.EMPTY
    assert check("A calm warm piece with").error_type == pp.NO_SENTENCE
    assert check("Calm music.").error_type == pp.TOO_SHORT
    assert check(" ".join(["warm"] * 90) + ".").error_type == pp.TOO_LONG
    looped = "A calm warm piece. " * 6
    assert check(looped.strip()).error_type == pp.REPETITIVE


def test_clean_strips_tokens_echo_and_half_sentences():
    raw = ("<|im_start|>assistant\nCaption: A calm, warm piece in C major. It feels serene. And then the"
           "<|im_end|>\nuser: tempo: fast")
    assert pp.clean(raw) == "A calm, warm piece in C major. It feels serene."
    prompt = "Describe: tempo: moderate"
    assert pp.clean(prompt + " A warm piece in C major.", prompt=prompt) == "A warm piece in C major."
    assert pp.clean("tempo: moderate, about 96 BPM\nA warm and calm piece in C major.</s>") \
        == "A warm and calm piece in C major."


def test_postprocess_combines_clean_and_check():
    r = pp.postprocess("<|im_start|>A fast piece in C major.<|im_end|>", D, V, A)
    assert r.error_type == pp.UNGROUNDED_TEMPO


# The descriptor template is the reference: its captions must pass for every combination.
@pytest.mark.parametrize("bpm", [0.0, 60.0, 75.9, 76.0, 100.0, 107.9, 108.0, 131.0, 132.0, 180.0])
def test_descriptor_template_always_passes(bpm):
    keys = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    for key, mode, (v, a), loud, bright, rate in itertools.product(
            keys, ["major", "minor"], [(0.1, 0.1), (0.1, 0.9), (0.9, 0.1), (0.9, 0.9), (0.5, 0.5)],
            [-40.0, -20.0, -5.0], [500.0, 2000.0, 4000.0], [0.5, 3.0, 6.0]):
        d = {"tempo_bpm": bpm, "key": key, "mode": mode, "loudness_db": loud, "brightness": bright, "onset_rate": rate}
        text = describe(d, v, a)
        result = pp.postprocess(text, d, v, a)
        assert result.ok and result.text == text, (text, result)


def test_few_shot_answers_are_grounded_in_their_own_tags():
    for d, v, a, answer in FEW_SHOT:
        assert pp.postprocess(answer, d, v, a).text == answer


def test_tags_messages_shape():
    msgs = tags_messages(D, V, A)
    assert msgs[0]["role"] == "system"
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant"] * len(FEW_SHOT) + ["user"]
    last = msgs[-1]["content"]
    assert "about 96 BPM" in last and "C major" in last and "calm, warm, serene" in last
    assert tags_for(D, V, A).tempo == "moderate"
    assert PROMPT_VERSION == "tags-v1"
