"""MMVA learns: on data whose VA follows from the inputs, training must beat trivial predictors.

The other training tests check plumbing (files, resumption, processes); these fail when learning
itself breaks (a detached loss, a zero learning rate, a head that ignores its input, shuffled
labels). Checked by hand: with ``train.lr=0`` every assertion below fails.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmva_model import train
from mmva_model.data import load_split
from tests.mmva_model.learnable import write_learnable_run

STEPS = 60
# A high rate and no dropout: the data are clean and the test has a few seconds, not hours.
SETTINGS = {"train.steps": STEPS, "train.lr": 0.03, "train.warmup_steps": 2, "train.music_batch": 16,
            "train.image_batch": 16, "train.eval_every": STEPS, "train.checkpoint_every": STEPS,
            "model.dropout": 0.0, "train.seed": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learn")
    data = write_learnable_run(tmp / "run")
    args = ["--config", "tiny", "--data", str(data), "--output_dir", str(tmp / "train"),
            "--cache_dir", str(tmp / "features"), "--hf_cache_dir", str(tmp / "hf"), "--no_progress", "--log_every", "1"]
    for key, value in SETTINGS.items():
        args += ["--set", f"{key}={value}"]
    result = train.run(args)
    return result, data, tmp / "hf"


def test_training_loss_falls_well_below_the_first_steps(trained):
    result, _, _ = trained
    losses = [rec["train"]["loss"] for rec in map(json.loads, (result.output_dir / "metrics.jsonl").read_text().splitlines())
              if "train" in rec]
    assert len(losses) == STEPS
    first, last = np.mean(losses[:3]), np.mean(losses[-5:])
    assert last < 0.4 * first, f"loss {first:.3f} -> {last:.3f}"


def test_validation_va_error_beats_predicting_the_training_mean(trained):
    result, data, hf = trained
    train_split, val_split = (load_split(str(data), s, str(hf)) for s in ("train", "validation"))
    tables = {"music": "music", "caption": "music", "image": "images"}  # captions carry their clip's VA
    worse = []
    for modality, table in tables.items():
        mean = getattr(train_split, table).va.mean(axis=0)
        truth = getattr(val_split, table).va
        constant = np.sqrt(((truth - mean) ** 2).mean(axis=0))  # RMSE per dimension
        model = np.array([result.validation["va"][modality][dim]["rmse"] for dim in ("valence", "arousal")])
        assert result.validation["n"][modality] == len(truth)
        if not model.mean() < 0.75 * constant.mean():
            worse.append(f"{modality}: RMSE {model} vs constant {constant}")
    assert not worse, worse


def test_retrieval_beats_random_ranking(trained):
    result, _, _ = trained
    n = result.validation["n"]["music"]
    random_mrr = sum(1 / r for r in range(1, n + 1)) / n  # one relevant clip at a uniform rank
    retrieval = result.validation["retrieval"]
    assert set(retrieval) == {"caption->music", "image->music"}
    worse = [f"{task}: MRR {s['MRR']:.3f} vs random {random_mrr:.3f}" for task, s in retrieval.items()
             if not s["MRR"] > 1.5 * random_mrr]
    assert not worse, worse
