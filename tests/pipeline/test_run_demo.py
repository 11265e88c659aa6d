"""The default job end to end: `python -m pipeline.run` on the built-in demo source."""
from __future__ import annotations

import json
import os

import datasets
import pytest

from pipeline import run as run_mod
from pipeline.options import build_parser
from tests.e2e_helpers import offline, shard_bytes

SMALL_DEMO = ["--demo_songs", "4", "--demo_song_seconds", "20", "--demo_images", "12", "--no_progress",
              "--captioner", "descriptor"]  # the LLM default is tested in test_llm_captions_e2e


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    out, cache = str(base / "out"), str(base / "cache")
    with offline():  # module-scoped: runs before the autouse guard, so guard it here
        summary = run_mod.run(["--output", out, "--cache_dir", cache, *SMALL_DEMO])
    return out, cache, summary


def test_demo_run_loads_with_datasets_and_media_decode(demo_run):
    out, _, summary = demo_run
    music = datasets.load_dataset(out, "music")
    n = sum(ds.num_rows for ds in music.values())
    assert n == summary.rows["music"]["train"] + sum(v for k, v in summary.rows["music"].items() if k != "train")
    row = next(iter(music.values()))[0]
    samples = row["audio"].get_all_samples()  # the default codec: Opus, which decoders play at 48 kHz
    assert samples.sample_rate == 48000
    assert samples.data.shape[-1] == 10 * 48000  # the encoder's delay and padding trimmed: sample-exact
    raw = music[next(iter(music))].cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    assert raw["path"].endswith(".opus") and raw["bytes"][28:36] == b"OpusHead"
    assert row["caption"] and row["captioner"].startswith("descriptor/")
    assert 0.0 <= row["valence"] <= 1.0 and 0.0 <= row["arousal"] <= 1.0
    assert set(row["descriptors"]) >= {"tempo_bpm", "key", "mode", "loudness_db", "brightness", "onset_rate"}
    images = datasets.load_dataset(out, "images")
    img = next(iter(images.values()))[0]["image"]
    assert img.size[0] >= 32
    pairs = datasets.load_dataset(out, "pairs")
    clip_ids = {r["clip_id"] for ds in music.values() for r in ds}
    image_ids = {r["image_id"] for ds in images.values() for r in ds}
    for ds in pairs.values():
        for r in ds:
            assert r["music_clip_id"] in clip_ids and r["image_id"] in image_ids
            assert 0.0 <= r["score"] <= 1.0


def test_splits_are_by_song(demo_run):
    out, _, _ = demo_run
    music = datasets.load_dataset(out, "music")
    split_of_song: dict[str, set[str]] = {}
    for split, ds in music.items():
        for song in ds["song_id"]:
            split_of_song.setdefault(song, set()).add(split)
    assert all(len(s) == 1 for s in split_of_song.values())


def test_run_json_records_options_versions_counts(demo_run):
    out, _, summary = demo_run
    record = json.load(open(os.path.join(out, "run.json")))
    assert record["listed"]["songs"] == 4 and record["listed"]["images"] == 12
    assert record["versions"]["apache-beam"] and record["versions"]["datasets"]
    assert record["options"]["demo_songs"] == 4
    assert record["rows"] == summary.rows
    assert record["clip_audio_hours"] > 0
    text = run_mod.summary.render(summary)
    assert "failures: 0" in text and "next:" in text and out in text


def test_rerun_downloads_nothing_and_writes_identical_bytes(demo_run, tmp_path):
    out, cache, _ = demo_run
    before = shard_bytes(out)
    downloads = os.path.join(cache, "downloads")
    cached = {f: os.stat(os.path.join(downloads, f)).st_mtime_ns for f in os.listdir(downloads)}
    assert cached, "the demo songs should have gone through the download cache"
    stale = os.path.join(out, "data", "music", "train-00000-of-00009.parquet")
    open(stale, "wb").write(b"left over from an older run")
    run_mod.run(["--output", out, "--cache_dir", cache, *SMALL_DEMO])
    assert {f: os.stat(os.path.join(downloads, f)).st_mtime_ns for f in os.listdir(downloads)} == cached
    assert not os.path.exists(stale), "shards that this run did not write must be removed"
    assert shard_bytes(out) == before


def test_every_flag_has_help_text():
    parser = build_parser()
    missing = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert not missing
    text = parser.format_help()
    assert "--runner=DirectRunner" in text and "--source" in text


def test_direct_runner_is_kept_offline():
    po = run_mod.beam_options([])
    assert po.get_all_options()["update_compatibility_version"]
    assert po.get_all_options()["runner"] == "DirectRunner"
    explicit = run_mod.beam_options(["--update_compatibility_version=2.60.0"])
    assert explicit.get_all_options()["update_compatibility_version"] == "2.60.0"


def test_direct_runner_uses_every_core_unless_told_otherwise(monkeypatch):
    from pipeline import beam_options as bo

    monkeypatch.setattr(bo, "usable_cores", lambda: 4)
    got = bo.beam_options([], all_cores=True).get_all_options()
    assert (got["direct_num_workers"], got["direct_running_mode"]) == (4, "multi_processing")
    for flags in (["--direct_num_workers=1"], ["--direct_num_workers", "3"], ["--direct_running_mode=in_memory"]):
        assert bo.default_workers(flags) == []
    assert bo.beam_options([], all_cores=False).get_all_options()["direct_num_workers"] == 1
    dask = bo.beam_options(["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"], all_cores=True)
    assert dask.get_all_options()["direct_num_workers"] == 1  # other runners keep their own parallelism
    monkeypatch.setattr(bo, "usable_cores", lambda: 1)
    assert bo.default_workers([]) == []


def test_unusable_input_is_one_clear_line_not_a_traceback(tmp_path, capsys):
    code = run_mod.main(["--source", "manifest", "--input", str(tmp_path / "missing.csv"),
                         "--output", str(tmp_path / "out"), "--no_progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "missing.csv" in err and "Traceback" not in err
