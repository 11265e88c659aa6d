"""audio-llm backend: a tiny Qwen2-Audio-shaped model through AutoProcessor + batched generate."""
from __future__ import annotations

import numpy as np
import pytest

from captioner import audio_prep, weights
from captioner.audio_prep import AudioPreparer, PreparedClip, bucket_by_length, resample
from captioner.backends import audio_llm
from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.postprocess import Checked, check
from captioner.vocab import mood_words
from captioner.prompts import AUDIO_PROMPT_VERSION, AUDIO_STYLE_EXAMPLE
from tests.captioner.tiny_models import tiny_causal_lm, tiny_qwen2_audio

D = {"tempo_bpm": 120.0, "beat_strength": 3.5, "key": "A", "mode": "minor", "key_strength": 0.9, "loudness_db": -18.0,
     "brightness": 2500.0, "onset_rate": 3.0}
GOOD = "The rock song features distorted electric guitars and pounding drums. It conveys a tense mood."


@pytest.fixture(scope="module")
def tiny_audio_dir(tmp_path_factory):
    return tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))


@pytest.fixture(scope="module")
def greedy(tiny_audio_dir):
    return make(tiny_audio_dir, do_sample=False, retries=1)


def tone(clip_id: str, seconds: float = 6.0, rate: int = 22050, amp: float = 0.3, d=D, va=(0.3, 0.8)):
    t = np.arange(int(seconds * rate)) / rate
    return ClipForCaption(clip_id, (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, d, *va)


def six_second_clips():
    """Two 6 s clips at rates other than the processor's 16 kHz, so resampling is exercised."""
    rng = np.random.default_rng(0)
    return [tone("1-9"),
            ClipForCaption("2-10", (0.1 * rng.standard_normal(6 * 44100)).astype(np.float32), 44100, D, 0.6, 0.4)]


def make(model_dir, **extra):
    return build(CaptionerConfig("audio-llm", str(model_dir), {"max_new_tokens": 8, **extra}))


def test_tiny_qwen2_audio_captions_two_clips_batched(greedy, tiny_audio_dir):
    cap = greedy
    assert cap.id == f"audio-llm/{tiny_audio_dir.name}/{AUDIO_PROMPT_VERSION}+mood-labels"
    assert cap.sample_rate == 16000 and cap.processor.tokenizer.padding_side == "left"
    clips = six_second_clips()
    raws = cap.generate_raw(clips)
    assert len(raws) == 2 and all(isinstance(r, str) for r in raws)
    assert raws == [cap.generate_raw([c])[0] for c in clips]  # batching changes nothing under greedy
    results = cap.caption(clips)
    assert [r.clip_id for r in results] == ["1-9", "2-10"]
    assert all(r.text is None and r.error_type.startswith("caption_") and r.attempts == 2 for r in results)


def test_prompt_carries_the_measured_facts_and_the_release_style(greedy):
    prompt = greedy.prompt(tone("1-9"))
    assert prompt.count("<|AUDIO|>") == 1 and prompt.index("<|AUDIO|>") < prompt.index("Measured facts")
    for fact in ("about 120 BPM", "key: A minor", "dynamics: moderately loud", "mood: " + ", ".join(mood_words(0.3, 0.8)),
                 "genre", "instruments", "recording quality", AUDIO_STYLE_EXAMPLE):
        assert fact in prompt
    # A caption shaped like the example passes every check where its mood fits the labels.
    assert check(AUDIO_STYLE_EXAMPLE, D, 0.8, 0.8).ok and not check(AUDIO_STYLE_EXAMPLE, D, 0.2, 0.2).ok
    no_pulse = greedy.prompt(tone("3-9", d={**D, "tempo_bpm": 0.0}))
    assert "tempo: no steady pulse" in no_pulse and "BPM" not in no_pulse.split("Measured facts")[1].split("Example")[0]


def test_random_weights_build_the_model_from_its_config_alone(tiny_audio_dir):
    cap = make(tiny_audio_dir, random_weights=True, do_sample=False, min_new_tokens=8)
    assert cap.model.config._attn_implementation == "sdpa"
    out = cap._generate([cap.preparer(c) for c in six_second_clips()], 0)
    assert len(out) == 2


def test_mood_left_to_the_model_is_in_the_id_and_out_of_the_prompt(tiny_audio_dir):
    cap = make(tiny_audio_dir, mood="none")
    assert cap.id.endswith(f"/{AUDIO_PROMPT_VERSION}+mood-none")
    prompt = cap.prompt(tone("1-9"))
    assert "mood:" not in prompt and "Judge the mood" in prompt
    with pytest.raises(ValueError, match="labels, none"):
        make(tiny_audio_dir, mood="vibes")


def test_precomputed_features_equal_what_the_processor_makes(greedy):
    """The fast path (features once per clip, placeholder expanded here) feeds the model exactly
    what ``processor(text=, audio=)`` would."""
    import torch

    prepared = [greedy.preparer(c) for c in six_second_clips()]
    fast = greedy._inputs(prepared)
    ref = greedy.processor(text=[greedy.prompt(p.clip) for p in prepared], audio=[p.samples for p in prepared],
                           sampling_rate=16000, return_tensors="pt", padding=True)
    for key in ("input_ids", "attention_mask", "input_features", "feature_attention_mask"):
        assert torch.equal(fast[key], ref[key]), key
    assert prepared[0].n_audio_tokens == 150  # 6 s at Qwen2-Audio's 25 tokens/s


def test_features_once_per_clip_across_retries_and_groups_of_one_length(greedy, monkeypatch):
    calls, sizes = [], []
    real_prep, real_gen = AudioPreparer.__call__, type(greedy)._generate
    monkeypatch.setattr(AudioPreparer, "__call__", lambda self, c: calls.append(c.clip_id) or real_prep(self, c))
    monkeypatch.setattr(type(greedy), "_generate",
                        lambda self, ps, attempt: sizes.append(sorted(p.n_audio_tokens for p in ps)) or real_gen(self, ps, attempt))
    clips = [tone("a", 6), tone("b", 4), tone("c", 6), tone("d", 4), tone("e", 6)]
    results = greedy.caption(clips)  # every caption is rejected (random model): 2 attempts each
    assert [r.clip_id for r in results] == ["a", "b", "c", "d", "e"] and all(r.attempts == 2 for r in results)
    assert sorted(calls) == ["a", "b", "c", "d", "e"]
    assert sorted(sizes) == [[100, 100]] * 2 + [[150, 150, 150]] * 2  # no batch mixes lengths


def test_accepted_audio_captions_flow_through(greedy, monkeypatch):
    monkeypatch.setattr(audio_llm, "postprocess", lambda raw, *a, **k: Checked("A tense piece in A minor."))
    results = greedy.caption(six_second_clips())
    assert [(r.text, r.attempts) for r in results] == [("A tense piece in A minor.", 1)] * 2


# -- bad input ------------------------------------------------------------------------------

def test_unusable_audio_becomes_failure_rows_and_the_rest_is_captioned(greedy, monkeypatch):
    monkeypatch.setattr(type(greedy), "_generate", lambda self, ps, attempt: [GOOD] * len(ps))
    nan = tone("nan")
    nan.samples[100] = np.nan
    clips = [tone("ok"), tone("silent", amp=0.0), tone("dither", amp=1e-4), nan, tone("short", seconds=0.5),
             ClipForCaption("none", None, 16000, D, 0.3, 0.8),
             ClipForCaption("empty", np.zeros(0, np.float32), 16000, D, 0.3, 0.8),
             tone("nan-facts", d={**D, "tempo_bpm": float("nan")})]
    results = {r.clip_id: r for r in greedy.caption(clips)}
    assert list(results) == [c.clip_id for c in clips]
    assert results["ok"].text == GOOD
    expected = {"silent": audio_prep.AUDIO_SILENT, "dither": audio_prep.AUDIO_SILENT, "nan": audio_prep.AUDIO_CORRUPT,
                "short": audio_prep.AUDIO_TOO_SHORT, "none": audio_prep.AUDIO_MISSING, "empty": audio_prep.AUDIO_CORRUPT,
                "nan-facts": "caption_unusable_descriptors"}
    for clip_id, error_type in expected.items():
        r = results[clip_id]
        assert (r.text, r.error_type, r.attempts) == (None, error_type, 0) and r.message, clip_id


@pytest.mark.parametrize("raw, error_type", [
    ("", "caption_empty"),
    ("<|im_end|><|endoftext|> <|im_end|>", "caption_empty"),
    ("PROMPT", "caption_empty"),  # the whole prompt back
    ("Do not invent lyrics or singers you cannot hear.", audio_llm.PROMPT_ECHO),  # a piece of it
])
def test_useless_model_output_is_retried_then_recorded(greedy, monkeypatch, raw, error_type):
    seen = []

    def fake(self, ps, attempt):
        seen.append(attempt)
        return [self.instruction(p.clip) if raw == "PROMPT" else raw for p in ps]

    monkeypatch.setattr(type(greedy), "_generate", fake)
    [r] = greedy.caption([tone("1-9")])
    assert (r.text, r.error_type, r.attempts) == (None, error_type, 2) and seen == [0, 1]


def test_cuda_oom_splits_the_batch_and_loses_no_clip(greedy, monkeypatch):
    import torch

    sizes = []

    def generate(**kw):
        n = kw["input_ids"].shape[0]
        sizes.append(n)
        if n > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return torch.cat([kw["input_ids"], torch.full((n, 3), 7)], dim=1)

    monkeypatch.setattr(greedy.model, "generate", generate)
    monkeypatch.setattr(audio_llm, "postprocess", lambda raw, *a, **k: Checked(GOOD))
    clips = [tone(f"c{i}") for i in range(7)]
    results = greedy.caption(clips)
    assert [r.clip_id for r in results] == [c.clip_id for c in clips] and all(r.text == GOOD for r in results)
    assert sizes == [7, 3, 1, 2, 4, 2, 2]


def test_a_clip_that_never_fits_is_a_failure_row(greedy, monkeypatch):
    import torch

    def generate(**kw):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(greedy.model, "generate", generate)
    results = greedy.caption([tone("a"), tone("b")])
    assert [(r.clip_id, r.text, r.error_type, r.attempts) for r in results] == [
        ("a", None, audio_llm.CUDA_OOM, 2), ("b", None, audio_llm.CUDA_OOM, 2)]
    assert "batch 1" in results[0].message


def test_model_folder_without_an_audio_processor_is_a_clear_error(tmp_path):
    text_only = tiny_causal_lm(tmp_path / "lm", "qwen2")
    with pytest.raises(weights.WeightsMissing, match="no audio processor.*tags-llm"):
        make(text_only)


def test_missing_audio_model_names_the_flag(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(weights.WeightsMissing, match="--model"):
        build(CaptionerConfig("audio-llm"))  # the 7B default is not in this offline cache


# -- helpers ----------------------------------------------------------------------------------

def test_resample_to_feature_extractor_rate():
    x = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32)
    y = resample(x, 44100, 16000)
    assert y.dtype == np.float32 and abs(len(y) - 16000) <= 1
    stereo = np.stack([x, x])
    assert resample(stereo, 44100, 44100).shape == (44100,)


def test_bucket_by_length_batches_one_length_and_bounds_what_it_holds():
    items = [("a", 5), ("b", 3), ("c", 5), ("d", 3), ("e", 5), ("f", 9)]
    out = list(bucket_by_length(items, 2, key=lambda x: x[1]))
    assert out == [[("a", 5), ("c", 5)], [("b", 3), ("d", 3)], [("e", 5)], [("f", 9)]]
    many = [(str(i), i) for i in range(20)]  # every item its own length
    batches = list(bucket_by_length(many, 4, key=lambda x: x[1], max_held=3))
    assert sorted(x for b in batches for x in b) == sorted(many) and all(len(b) == 1 for b in batches)
    assert all(len({x[1] for x in b}) == 1 for b in batches)


def test_prepared_clip_ids_follow_the_clip(greedy):
    p = greedy.preparer(tone("7-12"))
    assert isinstance(p, PreparedClip) and p.clip_id == "7-12" and p.features.shape == (128, 3000)


def test_beam_run_inference_goes_through_the_same_backend(tiny_audio_dir):
    """Beam's handler hands raw clips to the same ``caption``: prepared there; a rejection keeps its
    reason and gets the fallback template's caption."""
    from captioner.beam import CaptionModelHandler

    config = CaptionerConfig("audio-llm", str(tiny_audio_dir), {"max_new_tokens": 4, "do_sample": False, "retries": 0})
    handler = CaptionModelHandler(config, batch_size=4)
    model = handler.load_model()
    clips = six_second_clips() + [tone("silent", amp=0.0)]
    out = [p.inference for p in handler.run_inference(clips, model)]
    assert [r.clip_id for r in out] == ["1-9", "2-10", "silent"]
    assert out[2].error_type == audio_prep.AUDIO_SILENT and out[2].fell_back
    direct = model.caption(clips[:2])
    assert [r.error_type for r in out[:2]] == [r.error_type for r in direct]
    assert [r.text if r.text is not None else "fallback" for r in direct] == \
        [r.text if not r.fell_back else "fallback" for r in out[:2]]


@pytest.mark.slow
def test_audio_llm_in_the_pipeline_captions_every_clip(tmp_path, tiny_audio_dir):
    """The Beam pipeline (RunInference) with audio-llm: every clip is a row; a rejected caption is also
    a failure with a reason, and its row has the fallback's caption."""
    from captioner.fallback import parse_captioner
    from tests.e2e_helpers import read_failures, read_table, run_pipeline

    summary = run_pipeline(tmp_path, "--demo_songs", "2", "--demo_song_seconds", "14", "--demo_images", "0",
                           "--captioner", "audio-llm", "--caption_model", str(tiny_audio_dir),
                           "--caption_max_new_tokens", "6", "--caption_retries", "0", "--caption_batch_size", "4")
    rows = read_table(tmp_path / "out", "music")
    rejects = [f for f in read_failures(tmp_path / "out") if f["stage"] == "caption"]
    assert len(rows) == summary.stage_counters.get("songs_out", 0) > 0, summary.stage_counters
    assert all(parse_captioner(r["captioner"]).chosen.startswith("audio-llm/") and r["caption"] for r in rows)
    assert {r["clip_id"] for r in rows if parse_captioner(r["captioner"]).fell_back} == {f["item_id"] for f in rejects}
    assert all(f["error_type"].startswith(("caption_", "audio_")) and f["message"] for f in rejects)
