"""The pipeline with an LLM captioner (a tiny random model through the real tags-llm code path)."""
from __future__ import annotations

import pytest

from captioner.fallback import parse_captioner
from captioner.prompts import DEFAULT_PROMPT_VERSION as PROMPT_VERSION
from tests.captioner.tiny_models import tiny_causal_lm
from tests.e2e_helpers import read_failures, read_table, run_pipeline, shard_bytes


def test_tags_llm_in_the_pipeline_captions_every_clip_rejects_falling_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_causal_lm(tmp_path / "tiny-lm")
    summary = run_pipeline(tmp_path, "--demo_songs", "2", "--demo_song_seconds", "14", "--demo_images", "0",
                           "--captioner", "tags-llm", "--caption_model", str(model), "--caption_max_new_tokens", "12",
                           "--caption_retries", "1", "--caption_batch_size", "4")
    rows = read_table(tmp_path / "out", "music")
    rejects = {f["item_id"]: f for f in read_failures(tmp_path / "out") if f["stage"] == "caption"}
    assert len(rows) == summary.stage_counters["songs_out"] > 0  # no clip lost
    chosen = f"tags-llm/tiny-lm/{PROMPT_VERSION}+mood-labels"
    assert all(parse_captioner(r["captioner"]).chosen == chosen and r["caption"] for r in rows)
    assert {r["clip_id"] for r in rows if parse_captioner(r["captioner"]).fell_back} == set(rejects)
    assert all(f["error_type"].startswith("caption_") and f["attempts"] == 2 for f in rejects.values())
    assert summary.captions_rejected == len(rejects) == summary.captions["fallback"]
    assert summary.captions["chosen"] + summary.captions["fallback"] == len(rows)
    assert 0.0 <= summary.captions_flagged_share <= 1.0


def test_balanced_captions_are_the_captions_of_the_per_song_plan(tmp_path, monkeypatch):
    """Dealing caption batches out over the workers moves work, never changes a byte of the output
    (a batch is captioned whole, with its own seed, wherever it runs); two songs of unequal length."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_causal_lm(tmp_path / "tiny-lm")
    args = ["--demo_songs", "2", "--demo_song_seconds", "18", "--demo_images", "0", "--captioner", "tags-llm",
            "--caption_model", str(model), "--caption_max_new_tokens", "12", "--caption_retries", "0",
            "--caption_batch_size", "2", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    balanced = run_pipeline(tmp_path, *args, output="balanced")
    run_pipeline(tmp_path, *args, "--no-caption_balance", output="per_song")
    assert balanced.stage_counters["songs_out"] > 2
    assert shard_bytes(tmp_path / "balanced") == shard_bytes(tmp_path / "per_song")


def test_unknown_captioner_is_refused_by_the_flag_parser(tmp_path):
    with pytest.raises(SystemExit):
        run_pipeline(tmp_path, "--captioner", "nope")


@pytest.mark.slow
def test_default_captioner_is_tags_llm_with_the_packaged_smollm2(tmp_path, monkeypatch):
    from pipeline.options import build_parser

    assert build_parser().parse_args([]).captioner == "tags-llm"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # what `make run` uses, on 2 clips: 4 s clips on a 4 s grid inside the 5-18 s annotated span
    summary = run_pipeline(tmp_path, "--demo_songs", "1", "--demo_song_seconds", "18", "--demo_images", "0",
                           "--captioner", "tags-llm")
    rows = read_table(tmp_path / "out", "music")
    rejects = [f for f in read_failures(tmp_path / "out") if f["stage"] == "caption"]
    assert len(rows) == summary.stage_counters["songs_out"] == 2  # rejected captions fall back: no clip lost
    chosen = f"tags-llm/SmolLM2-135M-Instruct.Q4_1/{PROMPT_VERSION}+mood-labels"
    assert all(parse_captioner(r["captioner"]).chosen == chosen for r in rows)
    assert {r["clip_id"] for r in rows if parse_captioner(r["captioner"]).fell_back} == {f["item_id"] for f in rejects}
    assert all(r["caption"].endswith(".") and len(r["caption"].split()) >= 8 for r in rows)
