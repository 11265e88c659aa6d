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

import pytest

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
    assert [(j["clips"], j["ranks"]) for j in r["job"]] == [(4, 2)]


def test_seven_b_configuration_matches_qwen2_audio_7b(tmp_path):
    """Shapes of the 7B configuration (no model built): ~8.4 B parameters, as the released checkpoint."""
    from transformers import AutoConfig

    from tests.benchmarks.audio_llm_speed import qwen2_audio_7b_folder

    cfg = AutoConfig.from_pretrained(qwen2_audio_7b_folder(tmp_path / "7b"))
    t, a = cfg.text_config, cfg.audio_config
    text = (t.vocab_size * t.hidden_size * 2
            + t.num_hidden_layers * (4 * t.hidden_size ** 2 + 3 * t.hidden_size * t.intermediate_size))
    audio = a.encoder_layers * (4 * a.d_model ** 2 + 2 * a.d_model * a.encoder_ffn_dim)
    assert 8.0e9 < text + audio < 8.7e9
    assert (a.num_mel_bins, a.max_source_positions, cfg.architectures) == (128, 1500, ["Qwen2AudioForConditionalGeneration"])
