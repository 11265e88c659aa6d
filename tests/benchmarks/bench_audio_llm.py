"""Benchmark: the audio-llm captioner's batching on this CPU (tiny Qwen2-Audio-shaped model).

The same script as ``make bench-gpu`` (:mod:`tests.benchmarks.audio_llm_speed`), with the tiny
model: batch 1/8/32/64 on 10 s clips, the knobs at the best batch size, and the two-process
Accelerate job end to end (its captioning time, start-up excluded, from the job's summary). The tiny model measures
the batching machinery, not a 7B model's cost: on a CPU it is compute-bound in its audio encoder
(30 s of mel frames per clip, whatever the clip's length, as Qwen2-Audio requires), so batching
gains little here; on a GPU the 7B model's decode steps are bound by weight reads that a batch
shares, which is what ``make bench-gpu`` measures.
"""
from __future__ import annotations

from tests.benchmarks.audio_llm_speed import main

# Batching must never cost throughput, even where compute, not weight reads, bounds it.
MIN_BEST_VS_BATCH_1 = 1.0


def test_audio_llm_batching_on_cpu():
    r = main(["--model", "tiny", "--device", "cpu", "--batch_sizes", "1", "8", "32", "64", "--batches", "2",
              "--seconds", "10", "--max_new_tokens", "32", "--knobs", "--job_clips", "48",
              "--job_batch_size", "16", "--loader_workers", "1"])
    assert r["best_vs_batch_1"] >= MIN_BEST_VS_BATCH_1
    assert all("clips_per_s" in k for k in r["knobs"]), r["knobs"]  # every knob runs on this model
    assert [j["ranks"] for j in r["job"]] == [2]
