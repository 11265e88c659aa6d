"""`audio-llm`: a transformers audio-language model listens to each clip and describes it.

Default ``Qwen/Qwen2-Audio-7B-Instruct`` (Apache-2.0); any model whose ``AutoProcessor`` takes
``audio=`` and whose class (named in its config.json) has ``generate`` works, e.g. Music
Flamingo (non-commercial licence). Clips are resampled to the feature extractor's rate,
batched with left padding, bf16 on GPU. Captions go through the same post-processing and
grounding check as tags-llm: a model that hears "D minor" where we measured C major is flagged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.generation import GenerationSettings, caption_with_retries, pick_device_dtype, seeded
from captioner.postprocess import Checked, Limits, postprocess
from captioner.prompts import AUDIO_PROMPT_VERSION, audio_messages
from captioner.weights import load_error, resolve

DEFAULT_MODEL = "Qwen/Qwen2-Audio-7B-Instruct"


@register("audio-llm")
class AudioLLMCaptioner:
    """Loads processor and model once; ``caption`` runs one batched ``generate`` per attempt."""

    def __init__(self, config: CaptionerConfig):
        self.settings = GenerationSettings.from_extra(config.extra)
        self.limits = Limits()
        flag_value = config.model or DEFAULT_MODEL
        self.source = resolve(flag_value)
        self.device, dtype = pick_device_dtype(self.settings)
        self.processor, self.model = _load(self.source.name_or_path, flag_value, dtype,
                                           self.source.trust_kwargs(self.settings.trust_remote_code,
                                                                    self.settings.revision))
        self.model.to(self.device).eval()
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)
        self.prompt = self._render_prompt()
        self.id = f"audio-llm/{self.source.display_id}/{AUDIO_PROMPT_VERSION}"

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]:
        return caption_with_retries(batch, self.generate_raw, self._check, self.settings, self.id)

    def generate_raw(self, clips: Sequence[ClipForCaption], attempt: int = 0) -> list[str]:
        """One batched ``generate`` over the clips' audio; returns only the new text of each."""
        import torch

        audio = [resample(c.samples, c.sample_rate, self.sample_rate) for c in clips]
        enc = self.processor(text=[self.prompt] * len(clips), audio=audio, sampling_rate=self.sample_rate,
                             return_tensors="pt", padding=True)
        enc = {k: (v.to(self.device, self.model.dtype) if v.is_floating_point() else v.to(self.device))
               for k, v in enc.items()}
        with seeded(self.settings.seed_for(attempt), self.device), torch.inference_mode():
            out = self.model.generate(**enc, **self.settings.generate_kwargs(attempt),
                                      pad_token_id=self.processor.tokenizer.pad_token_id)
        return self.processor.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def _render_prompt(self) -> str:
        # Every clip gets the same instruction; the processor expands the audio placeholder to as
        # many audio tokens as each clip's features need.
        owner = self.processor if getattr(self.processor, "chat_template", None) else self.processor.tokenizer
        return owner.apply_chat_template(audio_messages(), add_generation_prompt=True, tokenize=False)

    def _check(self, clip: ClipForCaption, raw: str) -> Checked:
        return postprocess(raw, clip.descriptors, clip.valence, clip.arousal, limits=self.limits)


def resample(samples, rate: int, target: int) -> np.ndarray:
    """Mono float32 at ``target`` Hz (soxr, librosa's own resampler backend)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim > 1:
        x = x.mean(axis=0 if x.shape[0] < x.shape[-1] else -1)  # channels-first or -last
    if rate == target:
        return x
    import soxr

    return soxr.resample(x, rate, target).astype(np.float32)


def _load(name_or_path: str, flag_value: str, dtype, trust: dict):
    """Processor (left padding) and the model class its config names, or one WeightsMissing.

    ``trust``: :meth:`ModelSource.trust_kwargs` (remote code and revision, already checked).
    """
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(name_or_path, **trust)
        config = AutoConfig.from_pretrained(name_or_path, **trust)
        # The class named in config.json (Qwen2AudioForConditionalGeneration, ...); models that
        # ship their own code register it with the causal-LM auto class instead.
        arch = (config.architectures or [""])[0]
        model_cls = getattr(transformers, arch, None) or AutoModelForCausalLM
        model = model_cls.from_pretrained(name_or_path, dtype=dtype, **trust)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(flag_value, e) from e
    processor.tokenizer.padding_side = "left"  # decoder-only generation continues at the right edge
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor, model
