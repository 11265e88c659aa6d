"""CPU threads of a training process: every core it was given, unless the user chose a count."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmva_model import train
from mmva_model.threads import available_cores, choose_threads, local_processes, torch_threads
from tests.mmva_model.test_train import tiny_args, train_losses

ROOT = Path(__file__).resolve().parents[2]
LAUNCHED = {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO"}


def choose(env, cores=8, local=1, physical=4, requested=0):
    return choose_threads(env, cores=cores, local=local, physical=physical, requested=requested).threads


def test_unset_count_takes_every_core_shared_between_local_processes():
    assert choose({}) == 8
    assert choose({}, local=2) == 4
    assert choose({}, cores=3, local=2) == 1
    assert choose({}, cores=1, local=4) == 1  # never zero


def test_accelerates_default_is_replaced_and_a_users_count_is_kept():
    assert choose({"OMP_NUM_THREADS": "1", **LAUNCHED}) == 8  # accelerate's plain default
    assert choose({"OMP_NUM_THREADS": "2", **LAUNCHED}, local=2) == 4  # its --cpu default: physical / local
    assert choose({"OMP_NUM_THREADS": "3", **LAUNCHED}) == 3  # not a value accelerate sets: the user's
    assert choose({"OMP_NUM_THREADS": "1"}) == 1  # not launched by accelerate: the user's
    assert choose({"OMP_NUM_THREADS": "1", **LAUNCHED}, requested=2) == 2  # --threads wins
    assert choose({"OMP_NUM_THREADS": "4,2"}) is None  # a nested OpenMP setting is left to torch


def test_local_processes_from_the_launchers_variables():
    assert local_processes({"LOCAL_WORLD_SIZE": "2"}, fallback=8) == 2
    assert local_processes({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}) == 3
    assert local_processes({}, fallback=2) == 2
    assert local_processes({"LOCAL_WORLD_SIZE": ""}, fallback=0) == 1


def test_torch_threads_context_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_training_on_one_thread_and_two_differs_only_by_rounding(demo_data, tmp_path):
    runs = {n: train.run(tiny_args(demo_data, tmp_path / f"t{n}", tmp_path / "cache", "--threads", str(n)))
            for n in (1, 2)}
    assert (runs[1].threads, runs[2].threads) == (1, 2)
    one, two = train_losses(tmp_path / "t1"), train_losses(tmp_path / "t2")
    # torch splits some CPU reductions by thread, so sums are added in another order: float32
    # rounding (~1e-7 relative per operation), compounded over 6 optimizer steps, stays far below
    # 1e-4; a real change of what is learned (another batch, another initialisation) moves the
    # losses by percent.
    assert one.keys() == two.keys() and all(abs(one[s] - two[s]) <= 1e-4 * abs(one[s]) for s in one)


@pytest.mark.skipif(available_cores() < 2, reason="one core: nothing to tell apart")
def test_accelerate_launch_of_one_process_trains_on_every_core(demo_data, tmp_path):
    # The command a user runs, with OMP_NUM_THREADS unset: accelerate sets it to 1 in the child.
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    out = tmp_path / "train"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "mmva_model/train.py",
           *tiny_args(demo_data, out, tmp_path / "cache", "--set", "train.steps=1")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accelerate launch's default OMP_NUM_THREADS=1" in proc.stderr
    assert json.loads((out / "train.json").read_text())["threads"] == available_cores()
