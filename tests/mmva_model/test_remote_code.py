"""Model code shipped with weights runs only with a pinned revision and the command's own flag.

A config (or the ``config.yaml`` inside someone else's checkpoint) can ask for remote code but
never switch it on. The real thing is exercised with a local model folder whose modelling code
writes a marker file when it is imported.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmva_model.checkpoint import load_checkpoint, save_checkpoint
from mmva_model.config import EncoderConfig, load_config
from mmva_model.encoders.weights import RemoteCodeError, load_pretrained, remote_code_allowed
from mmva_model.model import MMVA

REPO = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"

CUSTOM_CODE = '''
import os
import pathlib

pathlib.Path(os.environ["MMVA_REMOTE_CODE_MARKER"]).write_text("ran")

from transformers import HubertConfig, HubertModel


class MarkerConfig(HubertConfig):
    model_type = "marker-hubert"


class MarkerModel(HubertModel):
    config_class = MarkerConfig
'''


class Spy:
    """A ``from_pretrained`` loader that records its arguments instead of loading anything."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def from_pretrained(self, model_id, **kwargs):
        self.calls.append((model_id, kwargs))
        return object()


def _cfg(**options) -> EncoderConfig:
    return EncoderConfig("hf-audio", "some-org/some-model", True, options)


def test_paper_config_pins_mert_to_a_commit():
    music = load_config("paper").model.music
    assert music.options["trust_remote_code"] is True
    assert re.fullmatch(r"[0-9a-f]{40}", music.options["revision"])


def test_config_alone_never_enables_remote_code():
    spy = Spy()
    with pytest.raises(RemoteCodeError, match="pass --trust_remote_code"):
        load_pretrained(spy, "some-org/some-model", _cfg(trust_remote_code=True, revision=COMMIT))
    assert spy.calls == []  # refused before anything was fetched


@pytest.mark.parametrize("revision", [None, "main", "v1.0", COMMIT[:12]])
def test_hub_remote_code_needs_a_40_hex_commit_even_with_the_flag(revision):
    spy = Spy()
    options = {"trust_remote_code": True, **({"revision": revision} if revision else {})}
    with remote_code_allowed(True), pytest.raises(RemoteCodeError, match="40-hex commit"):
        load_pretrained(spy, "some-org/some-model", _cfg(**options))
    assert spy.calls == []


def test_flag_and_pinned_commit_run_remote_code_at_that_commit():
    spy = Spy()
    with remote_code_allowed(True):
        load_pretrained(spy, "some-org/some-model", _cfg(trust_remote_code=True, revision=COMMIT))
    assert spy.calls == [("some-org/some-model", {"trust_remote_code": True, "revision": COMMIT})]
    load_pretrained(spy, "some-org/other", _cfg(revision=COMMIT))  # a pin alone just pins the weights
    assert spy.calls[-1] == ("some-org/other", {"trust_remote_code": False, "revision": COMMIT})


def test_the_flag_does_not_leak_out_of_its_command():
    with remote_code_allowed(True):
        pass
    with pytest.raises(RemoteCodeError):
        load_pretrained(Spy(), "x/y", _cfg(trust_remote_code=True, revision=COMMIT))


@pytest.fixture
def marker_model(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A tiny HuBERT folder whose config maps to modelling code that leaves a marker when run."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    # transformers imports the code as a module named after the folder: one name per test, so a
    # module imported by an earlier test cannot stand in for this one
    folder = tmp_path / f"marker_{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}"
    HubertModel(HubertConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                             conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                             num_conv_pos_embedding_groups=2)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="marker-hubert", architectures=["MarkerModel"],
                  auto_map={"AutoConfig": "marker_code.MarkerConfig", "AutoModel": "marker_code.MarkerModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "marker_code.py").write_text(CUSTOM_CODE)
    marker = tmp_path / "remote-code-ran"
    monkeypatch.setenv("MMVA_REMOTE_CODE_MARKER", str(marker))
    return folder, marker


def _checkpoint_asking_for_remote_code(tmp_path: Path, model_dir: Path) -> Path:
    """A tiny checkpoint whose config.yaml was edited to run ``model_dir``'s code."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(MMVA(load_config("tiny")), tmp_path / "ckpt")
    cfg = load_config(ckpt)
    cfg.model.music = EncoderConfig("hf-audio", str(model_dir), True, {"trust_remote_code": True, "clip_seconds": 1.0})
    cfg.save(ckpt / "config.yaml")
    return ckpt


def test_checkpoint_config_alone_never_runs_its_code(tmp_path, marker_model):
    model_dir, marker = marker_model
    ckpt = _checkpoint_asking_for_remote_code(tmp_path, model_dir)
    with pytest.raises(RemoteCodeError, match="--trust_remote_code"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_evaluate_command_refuses_and_names_the_flag(tmp_path, marker_model):
    model_dir, marker = marker_model
    ckpt = _checkpoint_asking_for_remote_code(tmp_path, model_dir)
    out = subprocess.run([sys.executable, "-m", "mmva_model.evaluate", "--checkpoint", str(ckpt),
                          "--data", str(tmp_path / "no-data"), "--quiet"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "pass --trust_remote_code to this command" in out.stderr
    assert not marker.exists()


def test_local_model_code_runs_with_the_flag(tmp_path, marker_model):
    """A local folder is used as it is (no Hub revision to pin): the flag alone allows its code."""
    model_dir, marker = marker_model
    cfg = EncoderConfig("hf-audio", str(model_dir), True, {"trust_remote_code": True, "clip_seconds": 1.0})
    from mmva_model.encoders import build_encoder

    with remote_code_allowed(True):
        enc = build_encoder(cfg)
    assert marker.read_text() == "ran" and type(enc.backbone).__name__ == "MarkerModel"
