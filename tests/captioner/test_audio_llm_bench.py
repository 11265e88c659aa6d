"""The GPU benchmark's CPU path (tiny model), run with only the GPU machine's packages importable.

``make bench-gpu`` cannot be exercised here without a GPU, but everything except the device is
the same code: this runs it end to end (in-process batches, knobs, the two-process job) with
every package the GPU machine lacks hidden, so the benchmark cannot rot or grow an import there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from captioner.base import ClipForCaption
from tests.captioner.audio_run import DESCRIPTORS as D

ROOT = Path(__file__).resolve().parents[2]
# Installed here, absent on the GPU machine (torch, transformers, accelerate, safetensors, pyarrow,
# pandas and their own dependencies only), plus the project's packages the captioner must not need.
HIDDEN = ("datasets", "apache_beam", "librosa", "soundfile", "soxr", "torchcodec", "yt_dlp", "scipy", "sklearn",
          "PIL", "matplotlib", "gguf", "pipeline", "dataset_card", "mmva_model")
SITECUSTOMIZE = f"""import sys
for name in {HIDDEN!r}:
    sys.modules[name] = None  # import fails and importlib.util.find_spec says: not installed
"""


@pytest.mark.slow
def test_gpu_benchmark_runs_on_cpu_with_the_gpu_machines_packages_only(tmp_path):
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "hide"), str(ROOT)]), HF_HUB_OFFLINE="1",
               CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    record = tmp_path / "bench.json"
    check = ("import sys, json, runpy; sys.argv = ['x'] + sys.argv[1:]; "
             "runpy.run_module('tests.benchmarks.audio_llm_speed', run_name='__main__'); "
             f"print('LEAKED', json.dumps(sorted(m for m in {HIDDEN!r} if sys.modules.get(m) is not None)))")
    proc = subprocess.run(
        [sys.executable, "-c", check, "--model", "tiny", "--device", "cpu", "--batch_sizes", "1", "4",
         "--batches", "1", "--seconds", "2", "--max_new_tokens", "4", "--knobs", "--job_clips", "4",
         "--job_batch_size", "2", "--record", str(record)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'LEAKED []' in proc.stdout
    r = json.loads(record.read_text())
    assert [b["batch_size"] for b in r["batches"]] == [1, 4] and all(b["clips_per_s"] > 0 for b in r["batches"])
    assert r["batches"][1]["generated_tokens_per_s"] == pytest.approx(4 * r["batches"][1]["clips_per_s"])
    assert r["captioner"].startswith("audio-llm/tiny/") and r["prompt_tokens"] > 50  # 2 s = 50 audio tokens
    assert [k["knob"] for k in r["knobs"]] == ["cache_implementation=static", "attn_implementation=eager"]
    assert [(j["clips"], j["ranks"]) for j in r["job"]] == [(4, 2)] and r["job"][0]["caption_seconds"] > 0


def test_seven_b_configuration_builds_as_qwen2_audio_7b_and_its_ceiling_is_the_issues(tmp_path):
    """The 7B folder loads through the backend's random-weights path (on the meta device: shapes,
    no memory): ~8.4 B parameters as the released checkpoint, and the ceiling the benchmark
    reports for an H200 is the 70-100 clips/s that ~8 TFLOP per clip and 16 GB per step give."""
    from captioner.base import CaptionerConfig, build
    from tests.benchmarks.audio_llm_speed import H200_TBPS, H200_TFLOPS, ceiling, qwen2_audio_7b_folder

    folder = qwen2_audio_7b_folder(tmp_path / "7b")
    cap = build(CaptionerConfig("audio-llm", str(folder), {"random_weights": True, "device": "meta",
                                                           "dtype": "bfloat16"}))
    params = sum(p.numel() for p in cap.model.parameters())
    assert 8.2e9 < params < 8.6e9 and cap.model.dtype.is_floating_point and str(cap.model.device) == "meta"
    a = cap.model.config.audio_config
    assert (a.num_mel_bins, a.max_source_positions, a.encoder_layers, a.d_model) == (128, 1500, 32, 1280)
    prepared = cap.preparer(ClipForCaption("x", np.sin(np.arange(160000) / 7).astype(np.float32) * 0.3, 16000,
                                           D, 0.3, 0.8))
    assert prepared.n_audio_tokens == 250  # 10 s
    limit = ceiling(cap.model, 450, 64, 64, H200_TFLOPS, H200_TBPS)
    assert 7 < limit["tflop_per_clip"] < 9 and 16 < limit["weights_gb"] < 17.5 and 60 < limit["clips_per_s"] < 100
