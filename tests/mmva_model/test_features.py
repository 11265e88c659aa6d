"""The frozen-feature cache: the same bytes whatever the workers and threads, resumable after a
kill, a progress bar, and tables read in place without a copy in the datasets cache."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from threadpoolctl import threadpool_limits

from mmva_model import feature_cache
from mmva_model.ablation import MUSIC_CNN
from mmva_model.config import load_config
from mmva_model.data import load_split
from mmva_model.encoders import build_encoder
from mmva_model.encoders.vision import efficientnet_for_inference
from mmva_model.feature_cache import CacheEntry
from mmva_model.features import build_cache, entry_folder, table_encoders
from mmva_model.model import MMVA
from tests.mmva_model.test_train import tiny_args

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["musicnn", "music-cnn"])
def offline_variant(request) -> MMVA:
    """The offline config, and with the ablation's log-mel CNN (whose log-mel is a BLAS product)."""
    return MMVA(load_config("offline", [] if request.param == "musicnn" else [MUSIC_CNN]))


@pytest.fixture(scope="module")
def train_split(demo_data):
    return load_split(str(demo_data), "train")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[m].keys() == b[m].keys() and all(torch.equal(a[m][k], b[m][k]) for k in a[m]) for m in a)


def test_offline_features_are_the_same_bytes_whatever_the_workers_and_threads(offline_variant, train_split, tmp_path):
    music = table_encoders(offline_variant, "music")
    runs = {}
    for name, workers, threads in (("in-process-1", 0, 1), ("in-process-2", 0, 2), ("2-workers", 2, 2)):
        # torch's threads and BLAS's (the log-mel's product) both set to `threads` around the pass
        with threadpool_limits(threads):
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                runs[name] = build_cache(train_split.music, music, cache_dir=tmp_path / name,
                                         workers=workers, progress=False)
            finally:
                torch.set_num_threads(before)
    assert runs["in-process-1"]["caption"]["features"].shape[1] == 384
    assert _same(runs["in-process-1"], runs["in-process-2"])
    assert _same(runs["in-process-1"], runs["2-workers"])


def test_the_inference_form_of_efficientnet_computes_the_same_features():
    image = build_encoder(load_config("offline").model.image)
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = image.backbone.extract_features(x).mean(dim=(2, 3))
        fast = efficientnet_for_inference(image.backbone).extract_features(
            x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))
    # Folding batch norm into the convolution weights reorders float32 products and sums: the
    # features agree to float32 rounding accumulated over ~50 layers, far below any VA signal.
    assert torch.allclose(fast, plain, rtol=1e-4, atol=1e-4)
    assert image.feature_fingerprint() != image.fingerprint()  # a cache key of its own


class _Interrupt(Exception):
    pass


def _counting(encoders: dict, stop_after: int | None = None) -> list[int]:
    """Count rows through each encoder's frozen step; stop the pass after ``stop_after`` batches."""
    seen: list[int] = []
    image = encoders["image"]
    original = type(image).frozen

    def frozen(batch):
        if stop_after is not None and len(seen) >= stop_after:
            raise _Interrupt
        seen.append(len(batch["pixels"]))
        return original(image, batch)

    image.frozen = frozen
    return seen


def test_a_killed_caching_run_resumes_where_it_stopped(demo_data, tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "FEATURE_BATCH", 4)
    monkeypatch.setattr(feature_cache, "CHUNK_ROWS", 8)
    split = load_split(str(demo_data), "train").images
    assert len(split) > 3 * 8, "the demo's train images span several chunks"
    whole = build_cache(split, table_encoders(MMVA(load_config("tiny")), "images"), cache_dir=tmp_path / "whole",
                        workers=0, progress=False)

    encoders = table_encoders(MMVA(load_config("tiny")), "images")
    seen = _counting(encoders, stop_after=5)  # killed in the third chunk (2 batches of 4 per chunk)
    with pytest.raises(_Interrupt):
        build_cache(split, encoders, cache_dir=tmp_path / "resumed", workers=0, progress=False)
    entry = CacheEntry(entry_folder(tmp_path / "resumed", split, "image", encoders["image"]), len(split))
    assert entry.valid_chunks() == {0, 1} and not entry.complete()
    entry.chunk_file(1).write_bytes(entry.chunk_file(1).read_bytes()[:-10])  # a chunk damaged on disk
    (entry.folder / "chunk-00002.tmp").write_bytes(b"half")  # a write cut short

    encoders = table_encoders(MMVA(load_config("tiny")), "images")
    seen = _counting(encoders)
    resumed = build_cache(split, encoders, cache_dir=tmp_path / "resumed", workers=0, progress=False)
    assert sum(seen) == len(split) - 8  # chunk 0 kept; the damaged chunk 1 computed again
    assert entry.complete() and not list(entry.folder.glob("*.tmp"))
    assert _same(resumed, whole)

    seen = _counting(encoders)
    build_cache(split, encoders, cache_dir=tmp_path / "resumed", workers=0, progress=False)
    assert seen == []  # complete: nothing computed again


def test_progress_bar_shows_rate_and_time_left_unless_silenced(train_split, tmp_path, capsys):
    encoders = table_encoders(MMVA(load_config("tiny")), "images")
    build_cache(train_split.images, encoders, cache_dir=tmp_path / "a", workers=0, progress=True)
    err = capsys.readouterr().err
    assert "caching image features (images/train)" in err and "row/s" in err and "<" in err
    build_cache(train_split.images, encoders, cache_dir=tmp_path / "b", workers=0, progress=False)
    assert capsys.readouterr().err == ""


def test_a_local_folder_is_read_in_place(demo_data, monkeypatch):
    def no_copy(*args, **kwargs):
        raise AssertionError("load_dataset copies the run into the datasets cache")

    monkeypatch.setattr(datasets, "load_dataset", no_copy)
    data = load_split(str(demo_data), "validation", with_pairs=True)
    row = data.music.row(0)
    assert row["audio"]["bytes"][:4] == b"fLaC" and row["clip_id"] == data.music.ids[0]
    assert data.images.row(len(data.images) - 1)["image"]["bytes"]


def test_training_on_a_run_folder_leaves_the_datasets_cache_empty(demo_data, tmp_path):
    hf = tmp_path / "hf-datasets"
    env = dict(os.environ, HF_DATASETS_CACHE=str(hf), HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "mmva_model/train.py",
           *tiny_args(demo_data, tmp_path / "train", tmp_path / "cache", "--set", "train.steps=1")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [p for p in hf.rglob("*") if p.is_file()] if hf.exists() else []
    assert written == []


def test_the_cache_command_fills_what_training_and_evaluation_read(demo_data, tmp_path, capsys):
    from mmva_model import cache, train

    assert cache.main(["--config", "tiny", "--data", str(demo_data), "--cache_dir", str(tmp_path / "cache"),
                       "--workers", "0", "--no_progress"]) == 0
    assert "test/images:" in capsys.readouterr().out
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 9 and all((tmp_path / "cache" / e / "complete.json").is_file() for e in entries)
    train.run(tiny_args(demo_data, tmp_path / "train", tmp_path / "cache", "--set", "train.steps=1"))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == entries  # the same keys: no entry of its own
