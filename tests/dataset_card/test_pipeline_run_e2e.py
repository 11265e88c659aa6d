"""Build, validate and publish a real (small) `pipeline.run` output, not only synthetic shards."""
from __future__ import annotations

import datasets
import pytest

from captioner.backends.descriptor import PROMPT_VERSION as TEMPLATE_VERSION
from dataset_card.build import build
from dataset_card.publish import publish
from pipeline import run as run_mod
from tests.dataset_card.fakehub import FakeHfApi
from tests.e2e_helpers import offline

SMALL_DEMO = ["--demo_songs", "4", "--demo_song_seconds", "20", "--demo_images", "12", "--no_progress",
              "--captioner", "descriptor"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    with offline():
        run_mod.run(["--output", str(base / "out"), "--cache_dir", str(base / "cache"), *SMALL_DEMO])
    return base / "out"


def test_real_run_builds_validates_and_publishes(demo_run, tmp_path, monkeypatch):
    result = build(demo_run)
    assert result.validation.ok, result.validation.render()
    card = (result.out_dir / "README.md").read_text()
    assert f"descriptor/none/{TEMPLATE_VERSION}+mood-labels" in card and "| music | " in card
    monkeypatch.setenv("HF_TOKEN", "hf_TESTTOKEN_e2e")
    hub = FakeHfApi(tmp_path / "fakehub")
    assert publish(demo_run, "mmva/imemnet-c", api=hub).commit
    music = datasets.load_dataset(str(hub.checkout_dir("mmva/imemnet-c")), "music", cache_dir=str(tmp_path / "c"))
    assert music["train"][0]["audio"].get_all_samples().sample_rate == 48000  # Opus, the default codec
    assert "Clips are stored as **Opus in Ogg (lossy)**, mono, 48 kHz" in card


def test_metadata_only_real_run(demo_run, tmp_path):
    result = build(demo_run, tmp_path / "meta", metadata_only=True)
    assert result.validation.ok
    pairs = datasets.load_dataset(str(result.out_dir), "pairs", cache_dir=str(tmp_path / "c"))
    assert sum(d.num_rows for d in pairs.values()) > 0
