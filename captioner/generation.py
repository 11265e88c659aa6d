"""Generation settings and the retry loop shared by the LLM backends.

Settings arrive in ``CaptionerConfig.extra`` (from command-line flags or a config file), so
they are parsed here once, typed, with defaults that suit a small instruct model on a CPU.
"""
from __future__ import annotations

import argparse

import contextlib
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

from captioner.base import CaptionResult, ClipForCaption
from captioner.postprocess import Checked

ATTENTION = ("auto", "sdpa", "flash_attention_2", "eager")
CACHES = ("dynamic", "static")
# Seeds of successive attempts are far apart so retries never replay an earlier sample.
RETRY_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class GenerationSettings:
    """What every LLM backend accepts in ``CaptionerConfig.extra``."""

    max_new_tokens: int = 64
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    retries: int = 2  # extra attempts for rejected captions, each with a new seed
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str = "auto"  # auto: bfloat16 on GPU, float32 on CPU
    trust_remote_code: bool = False  # off unless the user passes it (remote code runs locally)
    revision: str | None = None  # Hub commit of the model; required with trust_remote_code for Hub ids
    min_new_tokens: int = 0  # benchmarks set it to max_new_tokens: a fixed amount of text per clip
    # auto: flash_attention_2 on GPU when the flash-attn package is installed, else PyTorch's sdpa
    attn_implementation: str = "auto"
    # dynamic: a cache that grows per step; static: preallocated for prompt + max_new_tokens
    cache_implementation: str = "dynamic"
    random_weights: bool = False  # audio-llm: build the model from its config only (speed benchmarks)

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> "GenerationSettings":
        """Pick the known keys out of ``extra`` (others belong to other parts) and coerce types."""
        kwargs = {}
        for f in fields(cls):
            if f.name in extra and extra[f.name] is not None:
                default = getattr(cls, f.name)
                kind = type(default) if default is not None else str
                kwargs[f.name] = as_bool(extra[f.name]) if kind is bool else kind(extra[f.name])
        if kwargs.get("retries", 0) < 0 or kwargs.get("max_new_tokens", 1) < 1 or kwargs.get("min_new_tokens", 0) < 0:
            raise ValueError("retries and min_new_tokens must be >= 0 and max_new_tokens >= 1")
        for name, known in (("attn_implementation", ATTENTION), ("cache_implementation", CACHES)):
            if name in kwargs and kwargs[name] not in known:
                raise ValueError(f"{name} {kwargs[name]!r}: choose one of {', '.join(known)}")
        return cls(**kwargs)

    def generate_kwargs(self, attempt: int) -> dict[str, Any]:
        """``generate`` sampling flags; retries always sample (greedy would repeat the reject)."""
        sample = self.do_sample or attempt > 0
        out: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": sample}
        if self.min_new_tokens:
            out["min_new_tokens"] = min(self.min_new_tokens, self.max_new_tokens)
        if self.cache_implementation != "dynamic":
            out["cache_implementation"] = self.cache_implementation
        if sample:
            out.update(temperature=self.temperature, top_p=self.top_p)
        return out

    def seed_for(self, attempt: int) -> int:
        return self.seed + attempt * RETRY_SEED_STRIDE


def add_generation_flags(parser, prefix: str = "") -> None:
    """Add the LLM backends' flags (``--{prefix}max_new_tokens`` ...) to a parser or group."""
    for f in ("max_new_tokens", "min_new_tokens", "seed", "retries"):
        parser.add_argument(f"--{prefix}{f}", type=int, help=f"generation {f} (default {getattr(GenerationSettings, f)})")
    for f in ("temperature", "top_p"):
        parser.add_argument(f"--{prefix}{f}", type=float, help=f"sampling {f} (default {getattr(GenerationSettings, f)})")
    parser.add_argument(f"--{prefix}do_sample", action=argparse.BooleanOptionalAction, default=None,
                        help="sample (default) or decode greedily; retries always sample")
    parser.add_argument(f"--{prefix}dtype", help="torch dtype name (default: bfloat16 on GPU, float32 on CPU)")
    parser.add_argument(f"--{prefix}trust_remote_code", action="store_true", default=None,
                        help="run model code shipped with the weights (needed by some models; off by default); "
                        f"a Hugging Face id also needs --{prefix}revision")
    parser.add_argument(f"--{prefix}revision", metavar="COMMIT",
                        help="40-hex commit of a Hugging Face model id to load (pins weights and code; "
                        "ignored for local folders)")
    parser.add_argument(f"--{prefix}attn_implementation", choices=ATTENTION,
                        help="attention kernel (default auto: flash_attention_2 on GPU when installed, else sdpa)")
    parser.add_argument(f"--{prefix}cache_implementation", choices=CACHES,
                        help="KV cache for batched generation (default dynamic; static preallocates it)")
    parser.add_argument(f"--{prefix}random_weights", action="store_true", default=None,
                        help="audio-llm: random weights from the model's config, for speed benchmarks only "
                             "(captions are noise)")
    parser.add_argument(f"--{prefix}prompt_design", choices=("tags", "draft"), default=None,
                        help="tags-llm prompt: 'tags' = the clip's facts as tag lines to write up; 'draft' = the "
                             "descriptor template's caption to rewrite (see docs/captioner.md, 'Choosing the LLM')")
    parser.add_argument(f"--{prefix}constrain", action=argparse.BooleanOptionalAction, default=None,
                        help="tags-llm: keep out, while decoding, every phrase the grounding check would reject "
                             "for the clip (default on; see captioner.constraints). Recorded in the captioner id "
                             "when off")
    parser.add_argument(f"--{prefix}content_boost", type=float, default=None,
                        help="tags-llm: logit added to each genre, instrument or voice word the clip's tags pass "
                             "until the caption names it (default 3; 0 off; needs constraints on)")
    parser.add_argument(f"--{prefix}hold_to_draft", action=argparse.BooleanOptionalAction, default=None,
                        help="tags-llm: reject a caption with a word or a sentence that states what the clip's "
                             "facts do not, and keep such words out while decoding (default on; see "
                             "captioner.faithful). Recorded in the captioner id ('+loose') when off")
    parser.add_argument(f"--{prefix}state_once", action=argparse.BooleanOptionalAction, default=None,
                        help="tags-llm, with --hold_to_draft: while decoding, write each fact (a genre, an "
                             "instrument, a scale or mood word, BPM) once a sentence at most (default on; see "
                             "captioner.once). Recorded in the captioner id ('+restating') when off")
    parser.add_argument(f"--{prefix}forced_p", type=float, default=None, metavar="P",
                        help="tags-llm: reject a caption holding a token the model itself, before the decoding "
                             "rules, gave under probability P there: a word the rules forced, where sentences break "
                             "(default 0.001; 0 off; see captioner.forced). Recorded in the captioner id when not "
                             "the default")
    parser.add_argument(f"--{prefix}mood", choices=("labels", "none"), default=None,
                        help="where caption mood words come from: 'labels' (default) = the clip's VA labels "
                        "(captions then carry their label); 'none' = tags-llm and descriptor write no mood words, "
                        "audio-llm judges the mood by ear. Recorded in the captioner id")


def extra_from_args(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The flags of :func:`add_generation_flags` that were given, as ``CaptionerConfig.extra``."""
    keys = ("max_new_tokens", "min_new_tokens", "seed", "retries", "temperature", "top_p", "do_sample", "dtype",
            "trust_remote_code", "revision", "attn_implementation", "cache_implementation", "random_weights",
            "mood", "constrain", "prompt_design", "content_boost", "hold_to_draft", "state_once", "forced_p")
    # `is not None`, not truthiness: --retries 0 and --seed 0 are real values.
    return {k: getattr(args, prefix + k) for k in keys if getattr(args, prefix + k, None) is not None}


def as_bool(value: Any) -> bool:
    """A flag's value from a config or the command line ("true", "0", True, ...) as a bool."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def pick_device_dtype(settings: GenerationSettings):
    """(device, torch dtype) from the settings: bf16 on GPU, fp32 on CPU unless asked otherwise."""
    import torch

    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if settings.dtype == "auto":
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        dtype = getattr(torch, settings.dtype)
    return device, dtype


@contextlib.contextmanager
def seeded(seed: int, device: str):
    """Seed torch for one ``generate`` call without disturbing the caller's RNG state."""
    import torch

    where = torch.device(device)
    # Only the model's own GPU: a bare "cuda" is the current device (Accelerate sets it per rank),
    # not GPU 0, whose RNG state every rank would otherwise open a context for.
    cuda = [torch.cuda.current_device() if where.index is None else where.index] if where.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def caption_with_retries(
    batch: Sequence[ClipForCaption],
    generate: Callable[[Sequence[ClipForCaption], int], list[Any]],
    check: Callable[[ClipForCaption, Any], Checked],
    settings: GenerationSettings,
    captioner_id: str,
) -> list[CaptionResult]:
    """Generate for the whole batch, then regenerate only the rejected clips, up to ``retries`` times.

    ``generate(clips, attempt)`` returns one raw answer per clip (a text, or what the backend's
    ``check`` reads: text and the words decoding forced); the last rejection's reason is
    what a clip that never passes is recorded with, and ``attempts`` counts generations.
    """
    results: list[CaptionResult | None] = [None] * len(batch)
    pending = list(range(len(batch)))  # indices, so repeated clip ids cannot collide
    for attempt in range(settings.retries + 1):
        if not pending:
            break
        raws = generate([batch[i] for i in pending], attempt)
        still = []
        for i, raw in zip(pending, raws, strict=True):
            clip = batch[i]
            checked = check(clip, raw)
            results[i] = CaptionResult(
                clip.clip_id, checked.text, captioner_id, checked.error_type, checked.message, attempt + 1)
            if not checked.ok:
                still.append(i)
        pending = still
    return [r for r in results if r is not None]
