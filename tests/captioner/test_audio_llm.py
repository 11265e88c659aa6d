"""audio-llm backend: a tiny Qwen2-Audio-shaped model through AutoProcessor + batched generate."""
from __future__ import annotations

import numpy as np
import pytest

from captioner import weights
from captioner.backends.audio_llm import resample
from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.postprocess import Checked
from captioner.prompts import AUDIO_PROMPT_VERSION
from tests.captioner.tiny_models import tiny_qwen2_audio

D = {"tempo_bpm": 120.0, "key": "A", "mode": "minor", "loudness_db": -18.0, "brightness": 2500.0, "onset_rate": 3.0}


@pytest.fixture(scope="module")
def tiny_audio_dir(tmp_path_factory):
    return tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))


def six_second_clips():
    """Two 6 s clips at rates other than the processor's 16 kHz, so resampling is exercised."""
    rng = np.random.default_rng(0)
    t = np.arange(6 * 22050) / 22050
    return [
        ClipForCaption("1-9", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050, D, 0.3, 0.8),
        ClipForCaption("2-10", (0.1 * rng.standard_normal(6 * 44100)).astype(np.float32), 44100, D, 0.6, 0.4),
    ]


def make(model_dir, **extra):
    return build(CaptionerConfig("audio-llm", str(model_dir), {"max_new_tokens": 8, **extra}))


def test_tiny_qwen2_audio_captions_two_clips_batched(tiny_audio_dir):
    cap = make(tiny_audio_dir, do_sample=False, retries=1)
    assert cap.id == f"audio-llm/{tiny_audio_dir.name}/{AUDIO_PROMPT_VERSION}"
    assert cap.sample_rate == 16000 and cap.processor.tokenizer.padding_side == "left"
    assert "<|AUDIO|>" in cap.prompt
    clips = six_second_clips()
    raws = cap.generate_raw(clips)
    assert len(raws) == 2 and all(isinstance(r, str) for r in raws)
    assert raws == [cap.generate_raw([c])[0] for c in clips]  # batching changes nothing under greedy
    results = cap.caption(clips)
    assert [r.clip_id for r in results] == ["1-9", "2-10"]
    assert all(r.text is None and r.error_type.startswith("caption_") and r.attempts == 2 for r in results)


def test_accepted_audio_captions_flow_through(tiny_audio_dir, monkeypatch):
    from captioner.backends import audio_llm

    monkeypatch.setattr(audio_llm, "postprocess", lambda raw, *a, **k: Checked("A tense piece in A minor."))
    results = make(tiny_audio_dir).caption(six_second_clips())
    assert [(r.text, r.attempts) for r in results] == [("A tense piece in A minor.", 1)] * 2


def test_resample_to_feature_extractor_rate():
    x = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32)
    y = resample(x, 44100, 16000)
    assert y.dtype == np.float32 and abs(len(y) - 16000) <= 1
    stereo = np.stack([x, x])
    assert resample(stereo, 44100, 44100).shape == (44100,)


def test_missing_audio_model_names_the_flag(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(weights.WeightsMissing, match="--model"):
        build(CaptionerConfig("audio-llm"))  # the 7B default is not in this offline cache
