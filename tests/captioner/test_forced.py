"""Forced words: tokens the model itself gave under the threshold, read from generate's raw logits."""
from __future__ import annotations

import math

import pytest
import torch

from captioner.faithful import draft_of
from captioner.forced import FORCED_P, Answer, forced_words, token_probabilities
from tests.captioner.test_tags_llm import clips, make


def test_token_probabilities_are_the_unprocessed_softmax_of_each_chosen_token():
    logits = (torch.tensor([[0.0, 0.0, math.log(2.0)], [1.0, 1.0, 1.0]]),
              torch.tensor([[math.log(3.0), 0.0, 0.0], [0.0, 5.0, 0.0]]))
    tokens = torch.tensor([[2, 0], [1, 1]])
    p = token_probabilities(logits, tokens)
    expected = torch.tensor([[0.5, 0.6], [1 / 3, math.exp(5) / (math.exp(5) + 2)]])
    assert torch.allclose(p, expected, atol=1e-6)


def test_forced_words_are_whole_words_and_stop_at_the_end_of_the_answer(tiny_lm_dir):
    tok = make(tiny_lm_dir).tokenizer
    text = "the sound of shift almost."
    ids = tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id] + tok(" gone", add_special_tokens=False).input_ids
    pieces = [tok.decode([i]) for i in ids]
    probs = [1e-5 if "shift".startswith(p.strip()) and p.strip() else 0.5 for p in pieces]  # every piece of "shift"
    probs[-1] = 1e-9  # after the end of sequence: not part of the answer
    assert forced_words(tok, ids, probs, FORCED_P) == (("shift", 1e-5),)
    assert forced_words(tok, ids, probs, 1e-6) == ()
    assert [w for w, _ in forced_words(tok, ids, [0.0] * len(ids), FORCED_P)] == ["the", "sound", "of", "shift",
                                                                                  "almost", "."]


def test_a_caption_with_a_forced_word_is_rejected_and_the_rest_is_checked_as_before(tiny_lm_dir):
    cap = make(tiny_lm_dir)
    clip = clips(1)[0]
    draft = draft_of(clip.descriptors, clip.valence, clip.arousal, True, clip.tags)
    assert cap._check(clip, Answer(draft)).ok and cap._check(clip, draft).ok
    checked = cap._check(clip, Answer(draft, (("almost", 2e-5),)))
    assert checked.error_type == "caption_forced_word" and "'almost' (2.0e-05)" in checked.message
    assert cap._check(clip, Answer("", (("almost", 2e-5),))).error_type != "caption_forced_word"  # first the text


def test_generated_answers_carry_their_forced_words_and_the_threshold_is_in_the_id(tiny_lm_dir):
    cap = make(tiny_lm_dir, do_sample=False, max_new_tokens=8)
    batch = clips(2)
    answers = cap.generate_answers(batch)
    assert [a.text for a in answers] == cap.generate_raw(batch)
    everything = make(tiny_lm_dir, do_sample=False, max_new_tokens=8, forced_p=0.999).generate_answers(batch)
    assert [a.text for a in everything] == [a.text for a in answers]  # measuring never changes the text
    assert all(a.forced for a in everything if a.text.strip())  # a random model's every token is under 0.999
    off = make(tiny_lm_dir, do_sample=False, max_new_tokens=8, forced_p=0)
    assert all(not a.forced for a in off.generate_answers(batch)) and off.id.endswith("+unforced")
    assert make(tiny_lm_dir, forced_p=0.01).id.endswith("+forced0.01") and not cap.id.endswith(("forced", "0.001"))
    with pytest.raises(ValueError, match="forced_p"):
        make(tiny_lm_dir, forced_p=1.5)
