"""The sense check: the issue's word salad is flagged; the template and MusicCaps-style English are not."""
from __future__ import annotations

import itertools

import pytest

from captioner import postprocess as pp
from captioner import sense
from captioner.backends.descriptor import describe
from captioner.prompts import EXAMPLES

# Captions SmolLM2 wrote on real recordings (issue 21), which passed every other check.
ISSUE_SENTENCES = [
    ("Loud, even-keeled and composed, this E major clip is mixed with a moderate noise of clean.",
     (), ("noise of clean",)),
    ("A light, even-keeled, composed tone with a moderate tempo and noise of cleaning; the mood is neutral.",
     (), ("noise of cleaning",)),
    ("The mood of the music is neutral, even keed, with a composed rhythm.", ("keed",), ()),
]
ISSUE_NON_WORDS = ["kended", "perscussive", "aleutonically", "timbreloaded", "megadynamic", "minecraft"]

# Written for this test in the manner of MusicCaps and of the IMEMNet-C release: genres,
# instruments, recording quality, British spellings, numbers, keys, hyphenated compounds.
GOOD = [
    "The jazz song showcases a vibraphone solo melody. It is accompanied by punchy snare and kick hits, ride "
    "cymbals, and a groovy bass guitar. The recording is clean, with every instrument distinct.",
    "This is a lo-fi hip-hop instrumental with a mellow Rhodes piano, a dusty drum loop and vinyl crackle; it "
    "feels relaxed.",
    "A female vocalist sings a soulful melody over strummed acoustic guitar and soft hand percussion. The "
    "recording quality is poor, with some hiss in the background.",
    "The low quality recording features a synth bassline, punchy 808s, hi-hats and a repetitive synth lead. It "
    "sounds like dubstep from the 2010s.",
    "An orchestral piece in D minor: sustained strings, timpani rolls and a brass fanfare build to a dramatic "
    "crescendo.",
    "This song is an EDM track at about 128 BPM with a four-on-the-floor kick, sidechained pads and an "
    "uplifting arpeggiated synth.",
    "A solo classical piano piece in F# major, played softly with lots of sustain pedal; the mood is calm and "
    "dreamy.",
    "The song's tempo is slow and the mix is muffled, as if played from another room; a choir hums in the "
    "background.",
    "A fast punk rock song with distorted electric guitars, aggressive male vocals shouting and energetic "
    "drumming.",
    "Traditional Indian music: a sitar plays a meandering raga over a tabla groove and a tanpura drone.",
    "A country ballad with fingerpicked banjo, fiddle and a warm baritone voice; it feels nostalgic and wistful.",
    "An ambient electronic soundscape with airy pads, a slowly evolving texture and no steady pulse, like a "
    "film soundtrack.",
    "A mix of loud and soft passages, colourful and organised, recorded live in a theatre; it sits in the dark.",
    "The rhythm is steady and the texture is sustained, with a level of softness and a touch of warmth.",
]


@pytest.mark.parametrize("text, non_words, misused", ISSUE_SENTENCES)
def test_the_issue_sentences_are_flagged(text, non_words, misused):
    found = sense.check(text)
    assert (found.non_words, found.misused) == (non_words, misused)
    assert not found.ok and sense.nonsense_reasons(text)


def test_the_issue_non_words_are_flagged_each():
    text = f"A {' and '.join(ISSUE_NON_WORDS)} piece in C major."
    assert sense.non_words(text) == ISSUE_NON_WORDS
    assert sense.nonsense_reasons("A kended piece.") == ["non-word: 'kended'"]


@pytest.mark.parametrize("text", GOOD)
def test_musiccaps_style_english_passes(text):
    assert sense.nonsense_reasons(text) == []


def test_every_template_caption_and_prompt_example_passes():
    checked = 0
    for bpm, key, (v, a), loud, bright, rate in itertools.product(
            [0.0, 60.0, 100.0, 131.0, 180.0], ["C", "F#", "A#"], [(0.1, 0.1), (0.1, 0.9), (0.9, 0.1), (0.9, 0.9),
                                                                 (0.5, 0.5), (0.6, 0.6)],
            [-40.0, -20.0, -5.0], [500.0, 2000.0, 4000.0], [0.5, 3.0, 6.0]):
        d = {"tempo_bpm": bpm, "key": key, "mode": "minor" if rate > 2 else "major", "loudness_db": loud,
             "brightness": bright, "onset_rate": rate, "percussive_ratio": rate / 7,
             "loudness_trend_db": (bright - 2000.0) / 333, "harmonic_change_rate": rate / 6,
             "noisiness": (loud + 45.0) / 100}
        for mood in (True, False):
            text = describe(d, v, a, mood)
            assert sense.nonsense_reasons(text) == [], text
            checked += 1
    assert checked == 5 * 3 * 6 * 3 * 3 * 3 * 2
    for ex in EXAMPLES:
        assert sense.nonsense_reasons(ex.answer) == [] and sense.nonsense_reasons(ex.answer_without_mood) == []


def test_numbers_keys_compounds_possessives_and_british_spellings_are_words():
    text = "In Bb and C# at 96 BPM in 4/4, an 80s-style, even-keeled song's colours are organised round the centre."
    assert sense.non_words(text) == []
    assert sense.non_words("A synths-heavy track.") == []  # plural of a term the dictionary lacks
    # SmolLM2 wrote these three on the demo; the first is English (a -ness noun of a compound)
    assert sense.non_words("light-heartedness, upbeatness, percussible, exuberante") == ["percussible", "exuberante"]
    assert sense.non_words("A timbreloaded mega-dynamik piece.") == ["timbreloaded", "mega-dynamik"]


def test_nouns_that_are_also_attribute_words_are_not_misuse():
    assert sense.misused_vocabulary("It glows in the dark. A moment of calm. Over a drone.") == []
    assert sense.misused_vocabulary("A mood of calm, the timbre of bright.") == ["timbre of bright"]
    assert sense.misused_vocabulary("A gloomy, mournful piece with a rhythm of sparse attacks.") == []
    assert sense.misused_vocabulary("It rises with a lively.") == ["a lively"]


def test_tagger_and_content_vocabulary_words_are_words():
    from captioner import content
    from captioner.tagger.vocab import VOCABULARIES

    assert sense.non_words(" ".join(t for vocab in VOCABULARIES.values() for t in vocab)) == []
    assert sense.non_words(", ".join(content.all_phrases()) + ".") == []


def test_template_captions_naming_each_content_word_pass():
    from captioner import content

    d = {"tempo_bpm": 120.0, "beat_strength": 4.0, "key": "A", "mode": "minor", "key_strength": 0.9,
         "loudness_db": -12.0, "brightness": 2500.0, "onset_rate": 3.0}
    for word in content.WORDS:
        text = describe(d, 0.7, 0.7, tags=content.content_evidence((word.phrase,), 0.9))
        assert word.phrase.lower() in text.lower() and sense.nonsense_reasons(text) == [], text


# SmolLM2 wrote the first seven (some shortened) on the real game-soundtrack tracks (docs/captioner.md), each
# passing every other check; the last holds a band word inside a longer phrase.
RESTATED = [
    ("Drum, a piece featuring drums that moves at a lively tempo of about 113 BPM.", ["drums"]),
    ("An ambient piece in ambient music, moderately loud and dark.", ["ambient"]),
    ("The sound feels upbeat and upbeat; the music has a lighthearted, upbeat feel.", ["upbeat"]),
    ("This guitar and drums piece in a lively 111 BPM rhythm, with a steady tempo of about 109 BPM.", ["BPM"]),
    ("Male guitar and drums sit in a country track for male vocals.", ["male vocals"]),
    ("Drums play with this ambient electronic piece in this ambient and electronic piece.", ["ambient", "electronic"]),
    ("Mournful and dark, a loud synthesizer sound that keeps fading toward the very dark, sad mood.", ["timbre: dark"]),
    ("It is loud, moderately loud and dark.", ["loudness: loud"]),  # "loud" of "moderately loud" is the same word
]


@pytest.mark.parametrize("text, facts", RESTATED)
def test_a_fact_stated_twice_in_a_sentence_is_flagged(text, facts):
    assert sense.restated_words(text) == facts
    assert sense.nonsense_reasons(text) == [f"restated: {f!r}" for f in facts]


def test_players_pronouns_and_later_sentences_may_restate():
    assert sense.restated_words("A male vocalist sings in a high voice over a guitar a guitarist plays.") == []
    assert sense.restated_words("A drummer plays the drums. The drums are loud. He sings, and his voice is warm.") == []
    assert sense.restated_words("Rhythm and blues with a busy rhythm, in a new age style.") == []
    assert sense.restated_words("Drums and guitars, then a guitar and a piano.") == ["guitar"]  # plurals too
    assert sense.restated_words("A synth bassline and a synth lead, piano chords and a piano melody.") == []
    assert sense.restated_words("A hard rock and progressive rock track, an instrumental with no vocals.") == []


def test_template_captions_naming_two_content_words_state_each_once():
    from captioner import content

    d = {"tempo_bpm": 120.0, "beat_strength": 4.0, "key": "A", "mode": "minor", "key_strength": 0.9,
         "loudness_db": -12.0, "brightness": 2500.0, "onset_rate": 3.0}
    for a, b in itertools.combinations(content.WORDS, 2):
        text = describe(d, 0.7, 0.7, tags=content.content_evidence((a.phrase, b.phrase), 0.9))
        assert sense.restated_words(text) == [], text


@pytest.mark.parametrize("text, error_type", [
    ("The mood of the music is calm, even keed, with a warm and balanced sound.", pp.NON_WORD),
    ("A calm piece in C major, warm and balanced, with a moderate noise of cleaning.", pp.NONSENSE),
    ("A calm piece in C major, warm and balanced, calm and warm.", pp.RESTATED),
])
def test_postprocess_rejects_nonsense(text, error_type):
    d = {"tempo_bpm": 96.0, "key": "C", "mode": "major", "loudness_db": -24.0, "brightness": 1800.0,
         "onset_rate": 2.0, "noisiness": 0.02}
    r = pp.check(text, d, 0.7, 0.3)
    assert (r.text, r.error_type) == (None, error_type)
    assert {pp.NON_WORD: "keed", pp.NONSENSE: "noise of cleaning", pp.RESTATED: "calm, warm twice"}[error_type] \
        in r.message


def test_names_inside_a_sentence_are_found_and_keys_and_units_are_not():
    assert sense.invented_names("A male guitarist plays in the style of The Killers; he fades.") == ["The Killers"]
    assert sense.invented_names('It recalls "Bringing Up Baby" by Ledge\'s Lace, in F#-minor.') == [
        "Up Baby", "Ledge's Lace"]
    assert sense.invented_names("A track in C# minor at 120 BPM. Drums play: Guitar too. An R&B and Indian blend.") == []


def test_a_captioner_without_ears_may_not_name_what_it_cannot_know():
    from captioner import postprocess as pp

    d = {"tempo_bpm": 96.0, "beat_strength": 3.5, "key": "C", "mode": "major", "key_strength": 0.9,
         "loudness_db": -24.0, "brightness": 1800.0, "onset_rate": 2.0}
    text = "A warm piece in the style of The Killers, played at a moderate tempo with a steady rhythm."
    assert pp.check(text, d, 0.7, 0.3, hears_audio=False).error_type == pp.INVENTED_NAME
    assert pp.check(text, d, 0.7, 0.3, hears_audio=True).ok  # one that hears may name a band or a Rhodes
