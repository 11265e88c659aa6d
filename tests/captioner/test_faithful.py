"""Captions held to their draft: the check finds what a caption adds, and decoding cannot write it."""
from __future__ import annotations

import numpy as np
import pytest

from captioner import faithful
from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.backends.descriptor import describe
from captioner.faithful import DraftWords, Lexicon, TokenWords, WordRules, check, written_forms
from captioner.postprocess import ADDED, DANGLING, EMPTY_SENTENCE, REPETITIVE
from captioner.postprocess import check as accept
from captioner.sense import allowed_words
from tests.captioner.test_constraints import tags

D = {"tempo_bpm": 124.0, "beat_strength": 3.5, "key": "F", "mode": "minor", "key_strength": 0.85,
     "loudness_db": -19.0, "brightness": 1000.0, "onset_rate": 3.0, "percussive_ratio": 0.3,
     "loudness_trend_db": 0.3, "harmonic_change_rate": 0.5, "noisiness": 0.004}
T = tags(electronic=0.4, drums=0.5)
DRAFT = describe(D, 0.3, 0.7, True, T)


def test_the_draft_and_the_template_are_faithful_to_themselves():
    rng = np.random.default_rng(0)
    for _ in range(40):
        d = dict(D, tempo_bpm=float(rng.uniform(50, 180)), loudness_db=float(rng.uniform(-40, -5)),
                 brightness=float(rng.uniform(500, 4000)), beat_strength=float(rng.uniform(1, 4)),
                 key_strength=float(rng.uniform(0.4, 0.95)), noisiness=float(rng.uniform(0, 0.2)))
        v, a = (float(x) for x in rng.uniform(0, 1, 2))
        draft = describe(d, v, a, True, T)
        assert check(draft, draft).ok, (draft, check(draft, draft))


def test_a_paraphrase_in_other_words_of_the_vocabulary_passes():
    text = ("Drums drive this lively electronic track at about 124 BPM in F minor; moderately loud and "
            "mellow, it feels tense and uneasy.")
    assert check(text, DRAFT).ok, (DRAFT, check(text, DRAFT))


@pytest.mark.parametrize("text, added", [
    ("The electronic piece on drums is a fan favorite, and its dark sound feels tense.", {"fan", "favorite"}),
    ("An electronic track with a metallic, dry-docked sound and drums.", {"metallic", "dry-docked"}),
    ("The drums are gentle and soothing in this electronic track.", {"gentle", "soothing"}),
    ("They're playing drums on both sides of the board.", {"sides", "board"}),
])
def test_words_the_draft_does_not_say_are_found(text, added):
    assert set(check(text, DRAFT).added) == added


def test_a_sentence_that_states_no_fact_is_found():
    text = "An electronic track with drums. It is what it is, and it seems to be so."
    assert check(text, DRAFT).empty == ("It is what it is, and it seems to be so.",)
    assert check("It moves at about 124 BPM.", DRAFT).ok  # a number is a fact


def test_forms_are_english_words_only():
    known = allowed_words()
    forms = faithful.common_forms() | faithful.draft_forms(DRAFT)
    assert {f for f in forms if f not in known and len(f) > 1} <= faithful.vocabulary_words() | faithful.PLAIN_WORDS
    assert {"drum", "percussively", "moderately", "relaxing", "shifts"} <= \
        written_forms("drums") | written_forms("percussive") | written_forms("moderate") \
        | written_forms("relaxed") | written_forms("shifting")
    assert "business" not in written_forms("busy") and "mod" not in written_forms("mode")
    assert written_forms("b") == {"b"}  # a letter has no forms


def test_contractions_and_compounds_are_read_by_their_parts():
    lex = Lexicon.of(DRAFT)
    assert lex.admits("it's") and lex.admits("they're") and lex.admits("light-hearted")
    assert lex.admits("even-keeled") and not lex.admits("drum-machine")
    assert not lex.admits("guitar-drum")  # made of allowed words, but no compound the draft or vocabulary has


def test_postprocess_rejects_with_the_reason_only_when_given_a_draft():
    added = "The electronic piece on drums is a fan favorite, and its dark sound feels tense."
    assert accept(added, D, 0.3, 0.7, hears_audio=False, tags=T).ok  # no draft: not held
    r = accept(added, D, 0.3, 0.7, hears_audio=False, tags=T, draft=DRAFT)
    assert r.error_type == ADDED and "fan, favorite" in r.message
    empty = "An electronic track with drums. It is what it is, and it seems to be so."
    assert accept(empty, D, 0.3, 0.7, hears_audio=False, tags=T, draft=DRAFT).error_type == EMPTY_SENTENCE
    dangling = "An electronic track with drums; it feels tense and until."
    assert accept(dangling, D, 0.3, 0.7, hears_audio=False, tags=T).error_type == DANGLING
    almost = "Drums play a lively rhythm, with the sound of shift almost. It is an electronic track."
    assert accept(almost, D, 0.3, 0.7, hears_audio=False, tags=T).error_type == DANGLING
    doubled = "An electronic track with drums played percussively percussively at 124 BPM."
    assert accept(doubled, D, 0.3, 0.7, hears_audio=False, tags=T).error_type == REPETITIVE


# --- decoding ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tests.captioner.tiny_models import train_tokenizer

    text = "It is a fan favorite, a piano piece. Piano and drums, moderately loud. It's BPM."
    return train_tokenizer(tmp_path_factory.mktemp("tok"), texts=[text] * 5, vocab_size=700)


def _scores(tok, answer: str, draft: str, once: bool = True):
    import torch

    prompt = tok.encode("Draft:", add_special_tokens=False)
    ids = torch.tensor([prompt + tok.encode(answer, add_special_tokens=False)])
    words = TokenWords(tok)
    proc = DraftWords(len(prompt), words, [WordRules.of(draft, words)], once=once)
    return proc(ids, torch.zeros(1, len(tok)))[0]


def _first(tok, text: str) -> int:
    return tok.encode(text, add_special_tokens=False)[0]


def test_a_word_the_draft_does_not_allow_cannot_begin(tokenizer):
    tok = tokenizer
    s = _scores(tok, "It is a", "A piano piece.")
    assert s[_first(tok, " fan")] == float("-inf")  # "fan": nowhere in the draft, the vocabularies or the plain words
    assert s[_first(tok, " piano")] == 0
    assert s[_first(tok, " piece")] == 0


def test_inside_a_word_only_pieces_toward_an_allowed_form_and_no_early_end(tokenizer):
    tok = tokenizer
    draft = "A harpsichord piece."
    word = tok.encode(" harpsichord", add_special_tokens=False)
    assert len(word) > 2, "the test needs a word of several tokens"
    s = _scores(tok, "It is a" + tok.decode(word[:-1]), draft)
    assert s[word[-1]] == 0
    assert s[_first(tok, ".")] == float("-inf")  # half a word: it may not end here
    assert s[_first(tok, "x")] == float("-inf")  # nor go on toward no word
    done = _scores(tok, "It is a harpsichord", draft)
    assert done[_first(tok, ".")] == 0 and done[_first(tok, ",")] == 0


def test_a_banned_vocabulary_word_cannot_be_written_but_the_draft_keeps_its_own(tokenizer):
    import torch

    tok = tokenizer
    prompt = tok.encode("Draft:", add_special_tokens=False)
    words = TokenWords(tok)
    end = _first(tok, ".")

    def scores(answer: str, draft: str, banned: list[str]):
        ids = torch.tensor([prompt + tok.encode(answer, add_special_tokens=False)])
        return DraftWords(len(prompt), words, [WordRules.of(draft, words, banned)])(ids, torch.zeros(1, len(tok)))[0]

    # "loud" is banned ("louder", a vocabulary word of its own, may still begin with it)
    assert scores("It is loud", "A soft piano piece.", ["loud", "moderately loud"])[end] == float("-inf")
    assert scores("It is loud", "A soft piano piece.", [])[end] == 0
    # the draft says it inside "moderately loud": there, and only there, it may be written
    draft = "A piano piece, moderately loud."
    assert scores("It is moderately loud", draft, ["loud"])[end] == 0
    assert scores("It is loud", draft, ["loud"])[end] == float("-inf")
    loud = tok.encode(" loud", add_special_tokens=False)
    assert len(loud) == 1
    assert scores("It is moderately", draft, ["loud"])[loud[0]] == 0
    assert scores("It is", draft, ["loud"])[loud[0]] == 0  # "louder" may follow


def _clip(i: int) -> ClipForCaption:
    return ClipForCaption(f"c{i}", None, 0, D, 0.3, 0.7, T)


def test_held_tags_llm_writes_only_words_its_draft_allows(tiny_lm_dir):
    """A random model writes random words; held to the draft, each of its words is admitted, or is
    the start of one where the other processors (no repeated 3-gram) forbade its last piece."""
    clips = [_clip(i) for i in range(4)]
    lexicon = Lexicon.of(DRAFT)
    prefixes = {f[:i] for f in lexicon.allowed for i in range(1, len(f) + 1)}
    strays = {}
    for hold in (True, False):
        cap = build(CaptionerConfig("tags-llm", str(tiny_lm_dir), {"max_new_tokens": 40, "seed": 5,
                                                                    "hold_to_draft": hold}))
        texts = cap.generate_raw(clips)
        # the last word may be cut off by max_new_tokens
        strays[hold] = [w for t in texts for w in faithful.added_words(" ".join(t.split()[:-1]), lexicon)]
    assert strays[False], "the random model should write some word outside the draft when not held"
    assert strays[True] == [w for w in strays[True] if w in prefixes]
    assert len(strays[True]) < len(strays[False]) / 3
    loose = build(CaptionerConfig("tags-llm", str(tiny_lm_dir), {"hold_to_draft": "false"}))
    assert loose.id.endswith("+loose")


def test_a_hyphen_only_inside_a_compound_of_the_vocabulary(tokenizer):
    tok = tokenizer
    hyphen = [i for i in range(len(tok)) if tok.decode([i]) == "-"]
    assert hyphen, "the test needs a bare hyphen token"
    assert _scores(tok, "It is even", DRAFT)[hyphen[0]] == 0  # even-keeled
    assert _scores(tok, "It is piano", "A piano piece.")[hyphen[0]] == float("-inf")  # no "piano-..." compound


def test_a_fact_is_written_once_a_sentence(tokenizer):
    tok = tokenizer
    draft = "A piano piece, moderately loud."
    piano, capital, loud = (tok.encode(w, add_special_tokens=False) for w in (" piano", " Piano", " loud"))
    assert len(piano) == len(capital) == len(loud) == 1, "the test needs one-token words"
    s = _scores(tok, "A piano piece with a", draft)
    assert s[piano[0]] == float("-inf") and s[capital[0]] == float("-inf")
    assert _scores(tok, "A piano piece with a", draft, once=False)[piano[0]] == 0
    assert _scores(tok, "A piano piece. It is a", draft)[piano[0]] == 0  # a new sentence may name it again
    assert _scores(tok, "It is a piano", draft)[_first(tok, ".")] == 0  # the first time it may end
    # "loud" of "moderately loud" is stated: " loud" may still open "louder", but may not end there
    end = _first(tok, ".")
    assert _scores(tok, "It is moderately loud and", draft)[loud[0]] == 0
    assert _scores(tok, "It is moderately loud and loud", draft)[end] == float("-inf")
    assert _scores(tok, "It is moderately loud and loud", draft, once=False)[end] == 0


def test_the_rule_reads_stated_facts_as_the_check_does():
    from captioner.once import stated_forms

    assert {"drum", "drums", "rock", "rocks"} <= stated_forms("a rock piece with drums".split())
    assert "rock" not in stated_forms("a hard rock and".split())  # "progressive rock" may follow
    assert stated_forms("it feels warm and".split()) >= {"warm"} and not stated_forms("it is a".split())


def test_a_piece_that_leads_only_to_a_stated_fact_is_not_written(tokenizer):
    tok = tokenizer
    draft = "A harpsichord piece."
    pieces = [tok.decode([i]) for i in tok.encode(" harpsichord", add_special_tokens=False)]
    assert pieces[:3] == [" har", "ps", "ic"], "the test needs harpsichord in these pieces"
    ic = tok.encode(" harpsic", add_special_tokens=False)[-1]
    # "harps" is the harp's plural, so it may be written; "harpsic" leads to the stated harpsichord alone
    assert _scores(tok, "A harpsichord piece with a har", draft)[_first(tok, "ps")] == 0
    assert _scores(tok, "A harpsichord piece with a harps", draft)[ic] == float("-inf")
    assert _scores(tok, "A harpsichord piece with a harps", draft, once=False)[ic] == 0


def test_stating_once_is_a_setting_the_captioner_id_records(tiny_lm_dir):
    from captioner.backends.tags_llm import AnswerDecoding

    for value, suffix in (("true", ""), ("false", "+restating")):
        cap = build(CaptionerConfig("tags-llm", str(tiny_lm_dir), {"state_once": value}))
        assert cap.id.endswith("+mood-labels" + suffix)
        words = cap._word_rules([_clip(0)], [cap._banned_phrases(_clip(0))])
        draft_words = [p for p in cap.decoding.processors(3, None, words) if isinstance(p, DraftWords)]
        assert [p.once for p in draft_words] == [value == "true"]
    assert AnswerDecoding.from_extra({"state_once": False, "hold_to_draft": False}).id_suffix() == "+loose"
