"""Training end to end: in-process and with two real processes under `accelerate launch`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmva_model import train
from mmva_model.checkpoint import load_checkpoint
from tests.e2e_helpers import accelerate_two_cpu_processes
from tests.mmva_model.conftest import copy_run_with

ROOT = Path(__file__).resolve().parents[2]
STEPS = 6


def tiny_args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--config", "tiny", "--data", str(data), "--output_dir", str(out), "--cache_dir", str(cache),
            "--no_progress", "--log_every", "1", "--set", f"train.steps={STEPS}",
            "--set", "train.eval_every=3", "--set", "train.checkpoint_every=3", *extra]


def train_losses(out: Path) -> dict[int, float]:
    """Step -> logged training loss, from metrics.jsonl (the last record of a step wins)."""
    losses = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "train" in rec:
            losses[rec["step"]] = rec["train"]["loss"]
    return losses


def test_tiny_training_writes_checkpoints_logs_and_a_loadable_model(demo_data, tmp_path):
    out = tmp_path / "train"
    result = train.run(tiny_args(demo_data, out, tmp_path / "cache"))
    assert (result.step, result.world_size) == (STEPS, 1)
    assert result.best_step in (3, 6) and result.validation["n"]["music"] > 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    assert set(train_losses(out)) == set(range(1, STEPS + 1))
    assert list((out / "logs" / "mmva").glob("events.out.tfevents.*")), "no TensorBoard events"
    summary = json.loads((out / "train.json").read_text())
    assert summary["step"] == STEPS and 0 <= summary["data_wait_share"] <= 1
    for name in ("best", "last"):
        ckpt = load_checkpoint(out / name)
        assert ckpt.model.cfg.name == "tiny" and ckpt.meta["fingerprints"]
    # The cache was filled once; a second run with other settings reuses it.
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 6  # {train, validation} x {music, caption, image}
    train.run(tiny_args(demo_data, tmp_path / "again", tmp_path / "cache", "--set", "train.steps=1"))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == cached


def test_resumed_run_matches_an_uninterrupted_one(demo_data, tmp_path):
    full = tmp_path / "full"
    train.run(tiny_args(demo_data, full, tmp_path / "cache"))
    part = tmp_path / "part"
    first = train.run(tiny_args(demo_data, part, tmp_path / "cache", "--stop_after", "3"))
    assert first.step == 3 and not (part / "last").exists()
    resumed = train.run(tiny_args(demo_data, part, tmp_path / "cache", "--resume"))
    assert resumed.step == STEPS
    assert train_losses(part) == pytest.approx(train_losses(full), rel=1e-6, abs=1e-7)


def test_live_backbones_give_the_same_first_loss_as_cached_features(demo_data, tmp_path):
    # Caching changes where features come from, not what they are (tiny stores them in float32).
    cached = train.run(tiny_args(demo_data, tmp_path / "c", tmp_path / "cache", "--set", "train.steps=2"))
    live = train.run(tiny_args(demo_data, tmp_path / "l", tmp_path / "cache", "--set", "train.steps=2",
                               "--set", "train.cache_features=false"))
    assert cached.step == live.step == 2
    assert train_losses(tmp_path / "l") == pytest.approx(train_losses(tmp_path / "c"), rel=1e-4)


def test_fixed_pair_and_contrastive_variants_train(demo_data, tmp_path):
    for i, extra in enumerate((["--set", "train.matching=fixed"], ["--set", "loss.similarity=contrastive"],
                               ["--set", "train.matching=fixed", "--set", "loss.similarity=contrastive"])):
        out = tmp_path / f"v{i}"
        result = train.run(tiny_args(demo_data, out, tmp_path / "cache", "--set", "train.steps=2", *extra))
        losses = train_losses(out)
        assert result.step == 2 and all(v == v and v > 0 for v in losses.values())


def _launch(*args: str):
    return accelerate_two_cpu_processes(str(ROOT / "mmva_model" / "train.py"), *args, cwd=ROOT)


@pytest.mark.slow
def test_two_process_training_checkpoints_resumes_and_matches(demo_data, tmp_path):
    cache = tmp_path / "cache"
    full, part = tmp_path / "full", tmp_path / "part"
    proc = _launch(*tiny_args(demo_data, full, cache))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((full / "train.json").read_text())["world_size"] == 2
    proc = _launch(*tiny_args(demo_data, part, cache, "--stop_after", "3"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert max(train_losses(part)) == 3
    proc = _launch(*tiny_args(demo_data, part, cache, "--resume"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resumed from" in proc.stderr
    assert json.loads((part / "train.json").read_text())["world_size"] == 2
    assert train_losses(part) == pytest.approx(train_losses(full), rel=1e-6, abs=1e-7)
    # Two processes see different batches: the gathered loss differs from a one-process run's.
    single = tmp_path / "single"
    train.run(tiny_args(demo_data, single, cache, "--set", "train.steps=1"))
    assert train_losses(single)[1] != pytest.approx(train_losses(full)[1], rel=1e-6)


def test_bad_data_stops_with_the_rows_named(demo_data, tmp_path, capsys):
    bad_ids = []

    def break_audio(rows):
        rows[1]["audio"] = {"bytes": b"this is not audio", "path": "x.flac"}
        bad_ids.append(rows[1]["clip_id"])
        return rows

    broken = copy_run_with(demo_data, tmp_path / "broken", "music", "train", break_audio)
    code = train.main(tiny_args(broken, tmp_path / "o1", tmp_path / "cache"))
    err = capsys.readouterr().err
    assert code == 2 and bad_ids[0] in err and "cannot be decoded" in err

    def drop_valence(rows):
        return [{k: v for k, v in r.items() if k != "valence"} for r in rows]

    no_col = copy_run_with(demo_data, tmp_path / "nocol", "images", "train", drop_valence)
    code = train.main(tiny_args(no_col, tmp_path / "o2", tmp_path / "cache"))
    err = capsys.readouterr().err
    assert code == 2 and "valence" in err and "images" in err


def test_a_fresh_run_refuses_a_used_folder_unless_told(demo_data, tmp_path, capsys):
    out = tmp_path / "o"
    train.run(tiny_args(demo_data, out, tmp_path / "cache", "--set", "train.steps=1"))
    assert train.main(tiny_args(demo_data, out, tmp_path / "cache", "--set", "train.steps=1")) == 2
    assert "--overwrite" in capsys.readouterr().err
    result = train.run(tiny_args(demo_data, out, tmp_path / "cache", "--set", "train.steps=2", "--overwrite"))
    assert result.step == 2 and set(train_losses(out)) == {1, 2}  # nothing of the first run left
    assert train.main(tiny_args(demo_data, tmp_path / "empty", tmp_path / "cache", "--resume")) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_trains_from_a_built_dataset_folder_and_refuses_a_metadata_only_one(demo_data, tmp_path, capsys):
    from dataset_card.build import build

    built = build(demo_data, tmp_path / "hub").out_dir
    result = train.run(tiny_args(built, tmp_path / "o", tmp_path / "cache", "--set", "train.steps=2"))
    assert result.step == 2 and result.validation["n"]["image"] > 0
    meta_only = build(demo_data, tmp_path / "hub-meta", metadata_only=True).out_dir
    assert train.main(tiny_args(meta_only, tmp_path / "o2", tmp_path / "cache")) == 2
    assert "lacks columns ['audio']" in capsys.readouterr().err


def test_gradient_accumulation_and_early_stopping(demo_data, tmp_path):
    accum = train.run(tiny_args(demo_data, tmp_path / "a", tmp_path / "cache", "--set", "train.steps=2",
                                "--set", "train.grad_accum=2"))
    assert accum.step == 2 and len(train_losses(tmp_path / "a")) == 2
    # lr 0: the weights stay put, so validation barely moves (batch-norm statistics still do, so it may
    # improve once or twice by chance); patience 1 stops one evaluation (3 steps) after the best.
    flat = train.run(tiny_args(demo_data, tmp_path / "e", tmp_path / "cache", "--set", "train.steps=30",
                               "--set", "train.lr=0", "--set", "train.patience=1"))
    assert flat.stopped_early and flat.step == flat.best_step + 3 and flat.step < 30
    assert (tmp_path / "e" / "last").is_dir()


def test_missing_default_data_says_how_to_make_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no runs/demo here
    code = train.main(["--config", "tiny", "--no_progress", "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "make run" in err and "runs/demo" in err


def test_fixed_matching_reports_dropped_train_pairs(demo_data, tmp_path, capsys):
    """Train pairs naming a clip or image the train split lacks are left out, counted and said."""
    data = copy_run_with(demo_data, tmp_path / "run", "pairs", "train",
                         lambda rows: rows + [dict(rows[0], music_clip_id="nosuch-1")])
    result = train.run(tiny_args(data, tmp_path / "out", tmp_path / "cache", "--set", "train.steps=1",
                                 "--set", "train.matching=fixed"))
    assert result.dropped_pairs == {"clip_not_in_split": 1}
    assert "train split: 1 of" in capsys.readouterr().err
