"""CPU-side work of the audio-llm captioner: check, resample and featurise each clip once.

:class:`AudioPreparer` is small and picklable (the feature extractor, the model's rate and the
input limits, no model), so the job's loader workers run it and the GPU process only stacks
ready features. Every clip ends as a :class:`PreparedClip` or as a failure
:class:`~captioner.base.CaptionResult` saying why the model cannot use it (silent, corrupt, too
short). :func:`length_groups` batches prepared clips of one length, so a batch never pays for
padding: clips of equal length have equal numbers of audio tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from captioner.base import CaptionResult, ClipForCaption

# Error types of failure rows for audio the model cannot use.
AUDIO_MISSING = "audio_missing"
AUDIO_CORRUPT = "audio_corrupt"
AUDIO_TOO_SHORT = "audio_too_short"
AUDIO_SILENT = "audio_silent"


@dataclass(frozen=True)
class AudioLimits:
    """What the audio-llm accepts; shorter or quieter clips become failure rows, not captions."""

    # Below a second there is no melody or rhythm to describe (Qwen2-Audio makes 25 tokens/s).
    min_seconds: float = 1.0
    # Peak below this is silence or dither (-60 dBFS is ~1/1000 of full scale).
    silence_peak_dbfs: float = -60.0


@dataclass(frozen=True)
class PreparedClip:
    """A clip ready for the model: its features at the model's rate, computed once."""

    clip: ClipForCaption
    samples: np.ndarray  # mono float32 at the model's rate (processors without a fast path read it)
    features: np.ndarray | None  # (mel bins, frames) float32, or None: the processor runs per batch
    feature_mask: np.ndarray | None  # (frames,) int32
    n_audio_tokens: int  # what the prompt's audio placeholder expands to; the batching key

    @property
    def clip_id(self) -> str:
        return self.clip.clip_id


def qwen2_audio_tokens(feature_frames: int) -> int:
    """Audio tokens Qwen2-Audio makes of ``feature_frames`` mel frames (conv stride 2, pool 2)."""
    return (((feature_frames - 1) // 2 + 1) - 2) // 2 + 1


# Processors whose audio placeholder expansion we can reproduce from precomputed features, by
# class name: features are then computed once per clip (in loader workers) and reused by
# retries. Other processors get the resampled audio and run themselves per batch.
TOKEN_COUNTERS: dict[str, Callable[[int], int]] = {"Qwen2AudioProcessor": qwen2_audio_tokens}


class AudioPreparer:
    """Turns a :class:`ClipForCaption` into a :class:`PreparedClip` or a failure result."""

    def __init__(self, processor, captioner_id: str, limits: AudioLimits = AudioLimits()):
        self.feature_extractor = processor.feature_extractor
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.count_tokens = TOKEN_COUNTERS.get(type(processor).__name__)
        self.captioner_id = captioner_id
        self.limits = limits

    def __call__(self, clip: ClipForCaption) -> PreparedClip | CaptionResult:
        if clip.samples is None:
            return self._fail(clip, AUDIO_MISSING, "no audio samples (was the clip decoded?)")
        try:
            x = resample(clip.samples, clip.sample_rate, self.sample_rate)
        except (ValueError, TypeError) as e:
            return self._fail(clip, AUDIO_CORRUPT, f"cannot read the samples: {type(e).__name__}: {e}")
        problem = self._problem(x)
        if problem:
            return self._fail(clip, *problem)
        if self.count_tokens is None:  # the processor featurises per batch
            return PreparedClip(clip, x, None, None, int(round(len(x) / self.sample_rate * 25)))
        enc = self.feature_extractor(x, sampling_rate=self.sample_rate, padding="max_length",
                                     return_attention_mask=True, return_tensors="np")
        mask = enc["attention_mask"][0].astype(np.int32)
        return PreparedClip(clip, x, enc["input_features"][0].astype(np.float32), mask,
                            self.count_tokens(int(mask.sum())))

    def _problem(self, x: np.ndarray) -> tuple[str, str] | None:
        rate = self.sample_rate
        if x.size == 0 or not np.isfinite(x).all():
            bad = "no samples" if x.size == 0 else f"{int((~np.isfinite(x)).sum())} NaN/inf samples"
            return AUDIO_CORRUPT, bad
        if len(x) < self.limits.min_seconds * rate:
            return AUDIO_TOO_SHORT, f"{len(x) / rate:.2f} s < the model's minimum {self.limits.min_seconds} s"
        peak = float(np.abs(x).max())
        peak_db = 20 * np.log10(peak) if peak > 0 else float("-inf")
        if peak_db < self.limits.silence_peak_dbfs:
            return AUDIO_SILENT, f"peak {peak_db:.1f} dBFS < {self.limits.silence_peak_dbfs} dBFS"
        return None

    def _fail(self, clip: ClipForCaption, error_type: str, message: str) -> CaptionResult:
        return CaptionResult(clip.clip_id, None, self.captioner_id, error_type, message, attempts=0)


def resample(samples: Any, rate: int, target: int) -> np.ndarray:
    """Mono float32 at ``target`` Hz (soxr, librosa's own resampler, imported only when needed)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim > 1:
        x = x.mean(axis=0 if x.shape[0] < x.shape[-1] else -1)  # channels-first or -last
    if rate == target or x.size == 0:
        return x
    import soxr

    return soxr.resample(x, rate, target).astype(np.float32)


def length_groups(items: Sequence[PreparedClip], max_size: int) -> list[list[int]]:
    """Indices of ``items`` grouped by audio length (equal token counts), each at most ``max_size``."""
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(items):
        by_len.setdefault(p.n_audio_tokens, []).append(i)
    return [idx[j:j + max_size] for idx in by_len.values() for j in range(0, len(idx), max_size)]


def bucket_by_length(items: Iterable[Any], batch_size: int, key: Callable[[Any], int],
                     max_held: int | None = None) -> Iterator[list[Any]]:
    """Stream ``items`` as batches whose members share ``key`` (their length).

    A bucket is yielded when full; when more than ``max_held`` items wait (many distinct lengths),
    the fullest bucket goes out part-full, so memory stays bounded by work in flight.
    """
    max_held = max_held or 4 * batch_size
    buckets: dict[int, list[Any]] = {}
    held = 0
    for item in items:
        bucket = buckets.setdefault(key(item), [])
        bucket.append(item)
        held += 1
        if len(bucket) == batch_size or held > max_held:
            k = key(item) if len(bucket) == batch_size else max(buckets, key=lambda b: len(buckets[b]))
            out = buckets.pop(k)
            held -= len(out)
            yield out
    for out in buckets.values():
        yield out
