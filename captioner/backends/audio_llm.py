"""`audio-llm`: a transformers audio-language model listens to each clip and describes it.

Default ``Qwen/Qwen2-Audio-7B-Instruct`` (Apache-2.0); any model whose ``AutoProcessor`` has a
feature extractor and takes ``audio=``, and whose class (named in its config.json) has
``generate``, works, e.g. Music Flamingo (non-commercial licence).

The prompt asks for the release's caption shape (genre, instruments, performance, recording
quality, mood) and gives the clip's measured facts; captions go through the same
post-processing and grounding check as tags-llm, so a model that hears "D minor" where we
measured C major is rejected, retried, then recorded as a failure.

Speed (see docs/captioner.md for the measured effect of each knob): features are computed once
per clip by :class:`~captioner.audio_prep.AudioPreparer` (in the job's loader workers, or here
for clips that arrive raw, as on Beam); one ``generate`` runs per group of clips of one length,
so no batch pays for audio padding; bf16 and the fastest installed attention on GPU. A CUDA
out-of-memory error splits the batch in half and tries again; a single clip that still does not
fit becomes a failure row, so no clip is ever lost.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from captioner.audio_prep import AudioPreparer, PreparedClip, length_groups, resample  # noqa: F401 (re-export)
from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.generation import GenerationSettings, caption_with_retries, pick_device_dtype, seeded
from captioner.postprocess import Checked, Limits, clean, postprocess, unusable
from captioner.prompts import AUDIO_PROMPT_VERSION, audio_instruction, audio_messages, mood_setting
from captioner.weights import WeightsMissing, load_error, resolve

DEFAULT_MODEL = "Qwen/Qwen2-Audio-7B-Instruct"
CUDA_OOM = "cuda_out_of_memory"
PROMPT_ECHO = "caption_prompt_echo"


@dataclass(frozen=True)
class GenerationFailed:
    """Stands in for a clip's raw text when ``generate`` could not run for it (e.g. out of memory)."""

    error_type: str
    message: str


@register("audio-llm")
class AudioLLMCaptioner:
    """Loads processor and model once; ``caption`` prepares clips, groups them by length, generates."""

    def __init__(self, config: CaptionerConfig):
        self.settings = GenerationSettings.from_extra(config.extra)
        self.mood = mood_setting(config.extra)
        self.limits = Limits()
        flag_value = config.model or DEFAULT_MODEL
        self.source = resolve(flag_value)
        self.device, dtype = pick_device_dtype(self.settings)
        trust = self.source.trust_kwargs(self.settings.trust_remote_code, self.settings.revision)
        self.processor, self.model = _load(self.source.name_or_path, flag_value, dtype, self.settings, self.device,
                                           trust)
        self.model.eval()
        self.tokenizer = self.processor.tokenizer
        self.audio_token = getattr(self.processor, "audio_token", None)
        self.id = f"audio-llm/{self.source.display_id}/{AUDIO_PROMPT_VERSION}+mood-{self.mood}"
        self.preparer = AudioPreparer(self.processor, self.id)
        self.sample_rate = self.preparer.sample_rate

    # -- the Captioner contract ------------------------------------------------------------

    def caption(self, batch: Sequence[ClipForCaption | PreparedClip]) -> list[CaptionResult]:
        """Captions in input order; clips may arrive raw (Beam) or prepared by loader workers (job)."""
        items = [self._unusable(x) or (x if isinstance(x, PreparedClip) else self.preparer(x)) for x in batch]
        results: list[CaptionResult | None] = [x if isinstance(x, CaptionResult) else None for x in items]
        ready = [i for i, x in enumerate(items) if isinstance(x, PreparedClip)]
        for group in length_groups([items[i] for i in ready], max_size=len(batch)):
            idx = [ready[j] for j in group]
            done = caption_with_retries([items[i] for i in idx], self._generate_split, self._check,
                                        self.settings, self.id)
            for i, r in zip(idx, done, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def _unusable(self, x: ClipForCaption | PreparedClip) -> CaptionResult | None:
        """A failure for clips whose facts no caption can be grounded on (missing or NaN descriptors)."""
        c = x.clip if isinstance(x, PreparedClip) else x
        problem = unusable(c.descriptors, c.valence, c.arousal)
        return CaptionResult(c.clip_id, None, self.id, *problem, attempts=0) if problem else None

    # -- prompts -----------------------------------------------------------------------------

    def instruction(self, clip: ClipForCaption) -> str:
        """The user text of one clip's prompt: the request, its measured facts, the style example."""
        return audio_instruction(clip.descriptors, clip.valence, clip.arousal, self.mood, clip.tags)

    def prompt(self, clip: ClipForCaption) -> str:
        """The full chat text of one clip, audio placeholder not yet expanded."""
        owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
        return owner.apply_chat_template(audio_messages(self.instruction(clip)), add_generation_prompt=True,
                                         tokenize=False)

    # -- generation --------------------------------------------------------------------------

    def generate_raw(self, clips: Sequence[ClipForCaption | PreparedClip], attempt: int = 0) -> list[str]:
        """One batched ``generate``; returns only the new text of each clip (no post-processing)."""
        prepared = [c if isinstance(c, PreparedClip) else self.preparer(c) for c in clips]
        bad = [p for p in prepared if not isinstance(p, PreparedClip)]
        if bad:
            raise ValueError(f"clip {bad[0].clip_id}: {bad[0].error_type}: {bad[0].message}")
        return self._generate(prepared, attempt)

    def _generate_split(self, prepared: Sequence[PreparedClip], attempt: int) -> list[str | GenerationFailed]:
        """:meth:`_generate`, halving the batch on CUDA out-of-memory until it fits."""
        import torch

        try:
            return self._generate(prepared, attempt)
        except getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError) as e:
            message = f"CUDA out of memory at batch {len(prepared)}: {str(e)[:200]}"
        # Outside the except block, so the traceback's frames (and their tensors) are freed first.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(prepared) == 1:
            return [GenerationFailed(CUDA_OOM, message)]
        half = len(prepared) // 2
        return self._generate_split(prepared[:half], attempt) + self._generate_split(prepared[half:], attempt)

    def _generate(self, prepared: Sequence[PreparedClip], attempt: int) -> list[str]:
        import torch

        enc = self._inputs(prepared)
        with seeded(self.settings.seed_for(attempt), self.device), torch.inference_mode():
            out = self.model.generate(**enc, **self.settings.generate_kwargs(attempt),
                                      pad_token_id=self.tokenizer.pad_token_id)
        # Left padding: every prompt ends at the same column, the new text starts after it.
        return self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def _inputs(self, prepared: Sequence[PreparedClip]) -> dict:
        """Model inputs on the device: precomputed features stacked, or the processor run on the batch."""
        import torch

        prompts = [self.prompt(p.clip) for p in prepared]
        if prepared[0].features is None:  # a processor without a fast path featurises the batch
            enc = dict(self.processor(text=prompts, audio=[p.samples for p in prepared],
                                      sampling_rate=self.sample_rate, return_tensors="pt", padding=True))
        else:
            texts = [t.replace(self.audio_token, self.audio_token * p.n_audio_tokens, 1)
                     for t, p in zip(prompts, prepared)]
            enc = dict(self.tokenizer(texts, return_tensors="pt", padding=True))
            enc["input_features"] = torch.from_numpy(np.stack([p.features for p in prepared]))
            enc["feature_attention_mask"] = torch.from_numpy(np.stack([p.feature_mask for p in prepared]))
        dtype = self.model.dtype
        return {k: v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in enc.items() if hasattr(v, "to")}

    # -- checking ----------------------------------------------------------------------------

    def _check(self, p: PreparedClip, raw: str | GenerationFailed) -> Checked:
        if isinstance(raw, GenerationFailed):
            return Checked(None, raw.error_type, raw.message)
        c = p.clip
        instruction = self.instruction(c)
        text = clean(raw, instruction)
        # A model that answers with the prompt (or a piece of it) has not captioned anything.
        if len(text.split()) >= 3 and text in instruction:
            return Checked(None, PROMPT_ECHO, f"the model repeated the prompt: {text[:80]!r}")
        # The model hears the clip, so genres, instruments and singers are its to name.
        return postprocess(text, c.descriptors, c.valence, c.arousal, limits=self.limits, hears_audio=True,
                           mood_given=self.mood == "labels", tags=c.tags)


def attention_for(settings: GenerationSettings, device: str) -> str:
    """The attention kernel: flash-attention 2 on GPU when its package is installed, else sdpa."""
    if settings.attn_implementation != "auto":
        return settings.attn_implementation
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _load(name_or_path: str, flag_value: str, dtype, settings: GenerationSettings, device: str, trust: dict):
    """Processor (left padding) and the model class its config names, on ``device``.

    ``trust``: :meth:`ModelSource.trust_kwargs` (remote code and revision, already checked).
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(name_or_path, **trust)
        config = AutoConfig.from_pretrained(name_or_path, **trust)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(flag_value, e) from e
    if getattr(processor, "feature_extractor", None) is None or not hasattr(processor, "tokenizer"):
        raise WeightsMissing(
            f"--model {flag_value}: no audio processor there (AutoProcessor gave {type(processor).__name__}, "
            "without a feature extractor); audio-llm needs an audio-language model folder with its "
            "preprocessor_config.json, e.g. Qwen/Qwen2-Audio-7B-Instruct; a text-only LLM belongs to tags-llm")
    # The class named in config.json (Qwen2AudioForConditionalGeneration, ...); models that
    # ship their own code register it with the causal-LM auto class instead.
    arch = (config.architectures or [""])[0]
    model_cls = getattr(transformers, arch, None) or AutoModelForCausalLM
    attn = attention_for(settings, device)
    try:
        if settings.random_weights:  # initialised on the device itself: no 16 GB host copy
            with torch.device(device):
                model = model_cls._from_config(config, dtype=dtype, attn_implementation=attn)
        else:
            model = model_cls.from_pretrained(name_or_path, dtype=dtype, attn_implementation=attn,
                                              **trust).to(device)
    except (OSError, ValueError, ImportError) as e:
        raise load_error(flag_value, e) from e
    processor.tokenizer.padding_side = "left"  # decoder-only generation continues at the right edge
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor, model
