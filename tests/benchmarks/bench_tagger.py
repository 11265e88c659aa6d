"""Benchmark: the musicnn taggers (captioner.tagger) per core.

Run with ``make bench`` (or ``pytest -s tests/benchmarks/bench_tagger.py -o python_files='bench_*.py'``).
Prints and records (``runs/bench/tagger.json``), at one thread: the front end (resampling to 16 kHz
and the log-mel patches) of a 45 s song, each model's forward pass over its 15 patches (patches/s
and x real time), both models sharing one front end, and, side by side, one patch per forward
pass (what the tagger does) against all 15 in one batch. Figures are CPU time of this (one-thread)
process, which other processes on a shared machine inflate far less than wall time (also recorded).

The original TensorFlow musicnn is not a project dependency, so it is not run here; its figure on
the same patches (throwaway environment, one intra/inter-op thread) is in docs/captioner.md.
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np
import torch

from captioner.tagger import api, frontend, load_tagger
from tests import audiogen as g
from tests.benchmarks.records import OUT_DIR, machine, write_record

SONG_S, SONG_SR = 45.0, 44100
MODELS = ("MTT_musicnn", "MSD_musicnn")
REPEATS = 5
MIN_X_REAL_TIME = 50.0  # per model, forward pass only (measured about 90x here): a floor, not a target


def _timed(fn, repeats: int = REPEATS, clock=time.perf_counter) -> list[float]:
    fn()  # warm-up: oneDNN picks and caches its kernels on the first call
    out = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def _tensorflow_ratios(per_model: dict) -> dict:
    """Port vs the original, CPU time per patch (robust on a shared machine), when the original's
    record (tests/benchmarks/tagger_tensorflow_speed.py, run in a TensorFlow environment) exists."""
    path = OUT_DIR / "tagger_tensorflow.json"
    if not path.exists():
        return {}
    tf_models = json.loads(path.read_text())["models"]
    return {name: {batch: run["cpu_ms_per_patch"] / m["cpu_ms_per_patch"] for batch, run in tf_models[name].items()}
            for name, m in per_model.items() if name in tf_models}


def _batched(tagger, patches: np.ndarray) -> None:
    with api.torch_threads(1), torch.inference_mode():
        tagger.model(torch.from_numpy(patches))


def test_tagger_speed():
    song = g.music_like_song(SONG_S, SONG_SR)
    taggers = {m: load_tagger(m, threads=1) for m in MODELS}
    first = taggers[MODELS[0]]
    patches = first.patches(frontend.resample_to_16k(song, SONG_SR))
    front_t = _timed(lambda: first.patches(frontend.resample_to_16k(song, SONG_SR)), clock=time.process_time)
    per_model = {}
    for name, tagger in taggers.items():
        net_t = _timed(lambda: tagger.probabilities(patches))
        cpu_t = _timed(lambda: tagger.probabilities(patches), clock=time.process_time)
        batch_t = _timed(lambda: _batched(tagger, patches), clock=time.process_time)
        median = statistics.median(cpu_t)
        per_model[name] = {"forward_cpu_seconds": cpu_t, "patches_per_second": len(patches) / median,
                           "x_real_time_per_core": SONG_S / median, "cpu_ms_per_patch": 1e3 * median / len(patches),
                           "forward_wall_seconds": net_t, "x_real_time_wall": SONG_S / statistics.median(net_t),
                           "one_batch_of_all_cpu_seconds": batch_t,
                           "one_patch_per_pass_speedup": statistics.median(batch_t) / median}
    both = statistics.median(front_t) + sum(statistics.median(m["forward_cpu_seconds"]) for m in per_model.values())
    record = {"benchmark": "tagger", "song_seconds": SONG_S, "input_sample_rate": SONG_SR,
              "patches": len(patches), "threads": 1, "repeats": REPEATS, "frontend_cpu_seconds": front_t,
              "models": per_model, "both_models_seconds": both, "both_models_x_real_time_per_core": SONG_S / both,
              "speedup_vs_tensorflow_cpu": _tensorflow_ratios(per_model), "min_x_real_time": MIN_X_REAL_TIME,
              "machine": machine(torch=torch.__version__, numpy=np.__version__),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = write_record("tagger.json", record)
    print(f"\ntagger, one thread, {SONG_S:.0f} s song ({len(patches)} patches): front end "
          f"{statistics.median(front_t) * 1e3:.0f} ms; " + "; ".join(
              f"{n} {m['patches_per_second']:.1f} patches/s = {m['x_real_time_per_core']:.0f}x real time "
              f"(one patch per pass {m['one_patch_per_pass_speedup']:.2f}x the speed of one batch of all)"
              for n, m in per_model.items())
          + f"; both models + front end {SONG_S / both:.0f}x real time -> {path}")
    for name, ratios in record["speedup_vs_tensorflow_cpu"].items():
        print(f"{name}: port vs original TensorFlow musicnn, CPU time per patch: "
              + ", ".join(f"{r:.2f}x at TF {batch.replace('_', ' ')}" for batch, r in ratios.items()))
    assert all(m["x_real_time_per_core"] >= MIN_X_REAL_TIME for m in per_model.values())
