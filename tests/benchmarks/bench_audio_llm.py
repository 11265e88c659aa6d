"""Benchmark: the audio-llm captioner's batching on this CPU (tiny Qwen2-Audio-shaped model).

The same script as ``make bench-gpu`` (:mod:`tests.benchmarks.audio_llm_speed`), with the tiny
model: batch 1/8/32/64 on 10 s clips, the knobs at the best batch size, and the two-process
Accelerate job at two clip counts (their difference removes start-up). The tiny model measures
the batching machinery, not a 7B model's cost.
"""
from __future__ import annotations

from tests.benchmarks.audio_llm_speed import main

MIN_BEST_VS_BATCH_1 = 2.0


def test_audio_llm_batching_on_cpu():
    r = main(["--model", "tiny", "--device", "cpu", "--batch_sizes", "1", "8", "32", "64", "--batches", "2",
              "--seconds", "10", "--max_new_tokens", "32", "--knobs", "--job_clips", "16", "48",
              "--job_batch_size", "16", "--loader_workers", "1"])
    assert r["best_vs_batch_1"] >= MIN_BEST_VS_BATCH_1
