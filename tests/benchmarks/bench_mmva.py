"""Benchmark: MMVA training steps/s with cached frozen features vs live backbones, in one run.

The `offline` config on a small demo run: cached (frozen EfficientNet/MiniLM outputs and the
log-mel inputs read from the feature cache) against live (every step decodes the audio and
images, computes log-mels and runs the frozen backbones), live also with 2 DataLoader workers.
Reports steps/s and the share of step time spent waiting for batches, and writes
runs/bench/mmva.json.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mmva_model import train
from tests.benchmarks.records import write_record
from tests.e2e_helpers import run_pipeline

MIN_CACHE_SPEEDUP = 3.0
VARIANTS = {  # name -> (steps, overrides)
    "cached": (40, []),
    "live": (6, ["train.cache_features=false", "train.num_workers=0"]),
    "live-2-workers": (6, ["train.cache_features=false", "train.num_workers=2"]),
}


def _train(data: Path, tmp: Path, name: str, steps: int, overrides: list[str]) -> train.TrainResult:
    sets = [x for o in [f"train.steps={steps}", f"train.eval_every={10 * steps}", f"train.checkpoint_every={10 * steps}",
                        "train.warmup_steps=1", *overrides] for x in ("--set", o)]
    return train.run(["--data", str(data), "--output_dir", str(tmp / name), "--cache_dir", str(tmp / "features"),
                      "--hf_cache_dir", str(tmp / "hf"), "--no_progress", *sets])


def test_cached_features_vs_live_backbones():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run_pipeline(tmp, "--demo_songs", "12", "--demo_images", "120", "--clip_seconds", "10",
                     "--hop_seconds", "5", "--sample_rate", "44100", output="run")
        _train(tmp / "run", tmp, "warm-cache", 1, [])  # fills the cache outside the timings
        results = {name: _train(tmp / "run", tmp, name, steps, o) for name, (steps, o) in VARIANTS.items()}
    record = {name: {"steps_per_second": round(r.steps_per_second, 3),
                     "data_wait_share": round(r.data_wait_share, 3), "steps": r.step}
              for name, r in results.items()}
    speedup = results["cached"].steps_per_second / results["live"].steps_per_second
    record["cached_vs_live_speedup"] = round(speedup, 2)
    record["config"] = "offline (music_batch 32, image_batch 32), demo 12 songs x 30 s, 120 images"
    path = write_record("mmva.json", record)
    for name, r in record.items():
        print(f"{name}: {r}")
    print(f"wrote {path}")
    assert speedup >= MIN_CACHE_SPEEDUP, record
