"""Post-processing: cleaning, filters, and the grounding check against measured descriptors."""
from __future__ import annotations

import itertools

import pytest

from captioner import postprocess as pp
from captioner.backends.descriptor import describe
from captioner.vocab import mood_words
from captioner import audit
from captioner.prompts import EXAMPLES, EXAMPLES_PER_PROMPT, PROMPT_VERSION, tags_for, tags_messages

# A calm clip: 96 BPM (moderate), C major, high valence / low arousal.
D = {"tempo_bpm": 96.0, "beat_strength": 3.5, "key": "C", "mode": "major", "key_strength": 0.9, "loudness_db": -24.0,
     "brightness": 1800.0, "onset_rate": 2.0}
V, A = 0.7, 0.3


def check(text, d=D, v=V, a=A):
    return pp.check(text, d, v, a)


@pytest.mark.parametrize("text", [
    "A calm, warm piece in C major at a moderate tempo of about 96 BPM. It feels serene.",
    "A gentle piece in C major around 100 BPM with a steady rhythm and a warm, serene feel.",
    "Moderately loud and balanced, this C-major music moves at 90 beats per minute and feels calm.",
    "A warm piece with a gentle pulse that sounds peaceful and relaxed.",  # states no measured fact
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
    ("A calm, warm piece in E flat at a moderate tempo. It feels serene.", pp.UNGROUNDED_KEY),  # tonic only
    ("A calm, warm piece in G; it moves at a moderate tempo and feels serene.", pp.UNGROUNDED_KEY),
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
    assert check("A calm, warm piece in Db, at a moderate pace. In a word, it feels serene.", d).ok  # tonic only


def test_mood_words_are_checked_per_axis_with_a_margin():
    # "sad" claims low valence: wrong for a clearly positive clip, fair within 0.1 of the centre line.
    assert check("A calm and slightly sad piece in C major with a warm, even rhythm.").error_type == pp.UNGROUNDED_MOOD
    assert check("A calm and slightly sad piece in C major with a warm, even rhythm.", v=0.45, a=0.2).ok
    assert check("A sad and gloomy piece in C major with a warm, even rhythm.", v=0.8, a=0.8).error_type \
        == pp.UNGROUNDED_MOOD


def test_filters():
    assert check("").error_type == pp.EMPTY
    assert check("A calm warm piece with").error_type == pp.NO_SENTENCE
    assert check("Calm music.").error_type == pp.TOO_SHORT
    assert check(" ".join(["warm"] * 90) + ".").error_type == pp.TOO_LONG
    looped = "A calm warm piece. " * 6
    assert check(looped.strip()).error_type == pp.REPETITIVE
    # One repeated 3-word phrase is enough: "feel sad and" twice.
    assert check("Its sound feel sad and dark. Its rhythm feel sad and slow.", d=dict(D, tempo_bpm=60.0),
                 v=0.2, a=0.2).error_type == pp.REPETITIVE


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
        result = pp.postprocess(text, d, v, a, hears_audio=False)
        assert result.ok and result.text == text, (text, result)
        # the newer facts, each band reached: derived from the loop values
        d.update(percussive_ratio=rate / 7, loudness_trend_db=(bright - 2000.0) / 333, harmonic_change_rate=rate / 6,
                 noisiness=(loud + 45.0) / 100)
        for mood in (True, False):
            text = describe(d, v, a, mood)
            result = pp.postprocess(text, d, v, a, hears_audio=False, mood_given=mood)
            assert result.ok and result.text == text, (text, result)


@pytest.mark.parametrize("mood", [True, False])
def test_every_example_answer_is_grounded_in_its_own_tags(mood):
    for ex in EXAMPLES:
        answer = ex.answer if mood else ex.answer_without_mood
        r = pp.postprocess(answer, ex.descriptors, ex.valence, ex.arousal, hears_audio=False, mood_given=mood,
                           tags=ex.tags)
        assert r.text == answer, r
    openings = {tuple(audit.masked(ex.answer)[:5]) for ex in EXAMPLES}
    assert len(openings) == len(EXAMPLES)  # every example shows a different sentence shape


def test_tags_messages_shape():
    msgs = tags_messages(D, V, A)
    assert msgs[0]["role"] == "system"
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant"] * EXAMPLES_PER_PROMPT + ["user"]
    last = msgs[-1]["content"]
    assert "about 96 BPM" in last and "C major" in last and ", ".join(mood_words(V, A)) in last
    assert tags_for(D, V, A).tempo == "moderate tempo"
    assert PROMPT_VERSION == "tags-v6"
    no_mood = tags_messages(D, V, A, mood=False)
    assert all("mood:" not in m["content"] for m in no_mood)
    unsure = tags_messages(dict(D, beat_strength=1.5, key_strength=0.5), V, A)[-1]["content"]
    assert "tempo:" not in unsure and "key:" not in unsure  # estimates too uncertain to state


def test_prompts_vary_by_variant_and_state_no_bpm_without_a_pulse():
    lasts = {tags_messages(D, V, A, variant=v)[-2]["content"] for v in range(len(EXAMPLES))}
    assert len(lasts) == len(EXAMPLES)  # the example shown last rotates
    facts = {tags_for(dict(D, percussive_ratio=0.3, loudness_trend_db=0.0, harmonic_change_rate=0.4,
                           noisiness=0.02), V, A, variant=v).facts for v in range(7)}
    assert len(facts) == 7
    tags = tags_for(dict(D, tempo_bpm=0.0), V, A).render()
    assert "BPM" not in tags and "no steady pulse" in tags


def test_mood_strength_follows_distance_from_centre():
    assert mood_words(0.5, 0.52) == ("neutral", "even-keeled", "composed")
    assert mood_words(0.65, 0.6) == ("cheerful", "upbeat", "lighthearted")
    assert mood_words(0.9, 0.9) == ("joyful", "exuberant", "euphoric")
    assert check("A joyful piece in C major.", v=0.5, a=0.5).error_type == pp.UNGROUNDED_MOOD
    assert check("A neutral piece in C major.", v=0.9, a=0.1).error_type == pp.UNGROUNDED_MOOD
    assert check("A neutral, composed piece in C major.", v=0.5, a=0.5).ok


def test_no_pulse_clip_may_not_state_a_tempo():
    d = dict(D, tempo_bpm=0.0)
    assert check("A calm piece in C major at about 0 BPM.", d).error_type == pp.UNGROUNDED_TEMPO
    assert check("A calm, slow piece in C major.", d).error_type == pp.UNGROUNDED_TEMPO
    assert check("A calm piece in C major with no steady pulse.", d).ok
    assert check("A calm piece in C major with no steady pulse.").error_type == pp.UNGROUNDED_TEMPO


def test_self_contradiction_and_forbidden_content_are_rejected():
    assert check("A slow piece in C major at a moderate tempo of about 96 BPM.").error_type == pp.CONTRADICTORY
    assert check("A dark and bright piece in C major at 96 BPM.").error_type == pp.CONTRADICTORY
    assert check("A calm piano piece in C major at 96 BPM.", ).ok  # hears_audio defaults to True
    assert pp.check("A calm piano piece in C major at 96 BPM.", D, V, A, hears_audio=False).error_type == pp.FORBIDDEN
    assert check("A calm piece in C major whose lyrics tell of home.").error_type == pp.FORBIDDEN


@pytest.mark.parametrize("d, v, error_type", [
    (dict(D, loudness_db=-100.0), V, pp.SILENT),
    (dict(D, tempo_bpm=float("nan")), V, pp.BAD_INPUT),
    ({k: x for k, x in D.items() if k != "key"}, V, pp.BAD_INPUT),
    (None, V, pp.BAD_INPUT),
    (D, float("nan"), pp.BAD_INPUT),
])
def test_unusable_clips_are_named(d, v, error_type):
    assert pp.unusable(d, v, A)[0] == error_type
    assert pp.unusable(D, V, A) is None


def test_a_key_or_bpm_too_weakly_measured_may_not_be_stated():
    """Keys and BPM numbers are stated only where the estimate is confident (vocab.key_is_confident,
    vocab.tempo_is_confident), even when they match the estimate."""
    weak = dict(D, key_strength=0.5, beat_strength=2.0)
    assert check("A calm, warm piece in C major with a steady rhythm. It feels serene.", weak).error_type \
        == pp.UNGROUNDED_KEY
    assert check("A calm, warm piece at about 96 BPM with a steady rhythm. It feels serene.", weak).error_type \
        == pp.UNGROUNDED_TEMPO
    assert check("A calm, warm piece at a moderate tempo with a steady rhythm. It feels serene.", weak).ok
    legacy = {k: v for k, v in D.items() if k not in ("key_strength", "beat_strength")}  # older runs: no strengths
    assert check("A calm, warm piece in C major at about 96 BPM. It feels serene.", legacy).ok


def test_clean_mends_a_before_a_vowel():
    assert pp.clean("A electronic track with a echo, a unique sound and a one-off break.") == \
        "An electronic track with an echo, a unique sound and a one-off break."


def test_mood_is_judged_on_the_label_as_stored():
    """The table stores VA as float32: 0.6 reads 0.6000000238, beyond the 0.1 margin; the pipeline's
    check (given 0.6) and the audit's (reading the table) must agree."""
    import numpy as np

    from captioner.vocab import mood_problem, mood_words

    assert mood_problem("serene", 0.8, 0.6) == mood_problem("serene", 0.8, float(np.float32(0.6))) is not None
    assert mood_words(0.6, 0.6) == mood_words(float(np.float32(0.6)), float(np.float32(0.6)))
