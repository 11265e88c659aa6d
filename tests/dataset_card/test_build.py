"""`python -m dataset_card build`: the folder loads with `datasets`, the card says what the data is."""
from __future__ import annotations

import io
import re

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from dataset_card import schema
from dataset_card.__main__ import main
from dataset_card.build import BuildError, build
from dataset_card.card import parse_front_matter
from tests.dataset_card.fakerun import make_rows, write_run


def test_built_folder_loads_with_media_decoding(built, tmp_path):
    _, result = built
    music = datasets.load_dataset(str(result.out_dir), "music", cache_dir=str(tmp_path))
    assert music["train"].num_rows == 4 and set(music) == {"train", "validation", "test"}
    assert isinstance(music["train"].features["audio"], datasets.Audio)
    clip = music["train"].cast_column("audio", datasets.Audio(decode=False))[0]
    assert sf.info(io.BytesIO(clip["audio"]["bytes"])).frames == 8000
    decoded = music["train"][0]["audio"]  # torchcodec decoder
    assert decoded.get_all_samples().sample_rate == 8000
    images = datasets.load_dataset(str(result.out_dir), "images", cache_dir=str(tmp_path))
    assert images["train"][0]["image"].size == (8, 8)
    pairs = datasets.load_dataset(str(result.out_dir), "pairs", cache_dir=str(tmp_path))
    assert sum(d.num_rows for d in pairs.values()) == 8


def test_shards_are_the_runs_own_files_not_copies(built):
    run, result = built
    shards = [f for f in result.files if f.startswith("data/")]
    assert shards and result.placed == {"linked": len(shards)}
    for rel in shards:
        built_stat, run_stat = (result.out_dir / rel).stat(), (run / rel).stat()
        assert (built_stat.st_dev, built_stat.st_ino) == (run_stat.st_dev, run_stat.st_ino), rel
        assert run_stat.st_nlink == 2, rel  # one file on disk, two names


def test_rebuilding_relinks_and_leaves_the_run_intact(run_dir, tmp_path):
    first = build(run_dir, tmp_path / "hub")
    before = {rel: (run_dir / rel).read_bytes() for rel in first.files if rel.startswith("data/")}
    again = build(run_dir, tmp_path / "hub")  # clears the old links first
    assert again.placed == first.placed
    for rel, data in before.items():
        assert (run_dir / rel).read_bytes() == data and (run_dir / rel).stat().st_nlink == 2, rel


def test_shards_are_copied_with_a_note_where_links_are_refused(run_dir, tmp_path, monkeypatch, caplog):
    import errno
    import os

    from dataset_card import build as build_mod

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(build_mod.os, "link", cross_device)
    with caplog.at_level("INFO", logger="dataset_card.build"):
        result = build(run_dir, tmp_path / "hub")
    shards = [f for f in result.files if f.startswith("data/")]
    assert result.placed == {"copied": len(shards)}
    for rel in shards:
        assert (result.out_dir / rel).read_bytes() == (run_dir / rel).read_bytes(), rel
        assert os.stat(run_dir / rel).st_nlink == 1
    notes = [r.getMessage() for r in caplog.records if "cannot be hard-linked" in r.getMessage()]
    assert len(notes) == len(shards) and "Invalid cross-device link" in notes[0]


def test_other_link_errors_are_not_hidden(run_dir, tmp_path, monkeypatch):
    import errno

    from dataset_card import build as build_mod

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build_mod.os, "link", no_space)
    with pytest.raises(OSError, match="No space left"):
        build(run_dir, tmp_path / "hub")


def test_card_yaml_and_body(built):
    _, result = built
    text = (result.out_dir / "README.md").read_text()
    meta = parse_front_matter(text)
    assert [c["config_name"] for c in meta["configs"]] == list(schema.TABLES)
    music_info = next(i for i in meta["dataset_info"] if i["config_name"] == "music")
    assert {s["name"]: s["num_examples"] for s in music_info["splits"]} == {"train": 4, "validation": 2, "test": 2}
    assert datasets.Features._from_yaml_list(music_info["features"]) == schema.FEATURES["music"]
    for key in ("license", "task_categories", "tags", "pretty_name", "size_categories"):
        assert meta[key], key
    for needle in ("## Sources and licences", "CC0-1.0 (synthetic)", "descriptor/none/template-v1",
                   "song/download/http_404 | 1", "tempo_bpm", "Modes: major 4, minor 4", "2501.01094",
                   "@article{aljanaki2017deam", "kosti2019emotic", "## Limitations", "## Intended uses"):
        assert needle in text, needle
    assert "## Audio and size" in text and "Clips are stored as **FLAC (lossless, 16-bit)**, mono, 8 kHz" in text
    total = sum((result.out_dir / f).stat().st_size for f in result.files if f.startswith("data/"))
    assert f"The dataset's files take {total / 1e6:.1f} MB (`music` " in text
    for plot in ("va_scatter_music", "va_scatter_images", "va_hist_music", "caption_length_hist"):
        path = result.out_dir / "plots" / f"{plot}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"(plots/{plot}.png)" in text


def test_card_states_the_codec_rate_and_size_of_the_audio(tmp_path):
    """Clips stored as the pipeline stores them (parquet neither compresses nor dictionary-encodes
    the media column): the card's bitrate and size are the encoded audio's own."""
    from dataset_card.codecs import AudioFormat, encode

    rows = make_rows()
    rng = np.random.default_rng(0)
    for r in rows["music"]:
        noise = (0.1 * rng.standard_normal(48000)).astype(np.float32)
        r["audio"] = {"bytes": encode(noise, 48000, AudioFormat("opus", kbps=64)), "path": f"{r['clip_id']}.opus"}
    run = write_run(tmp_path / "run", rows)
    for shard in (run / "data" / "music").glob("*.parquet"):
        pq.write_table(pq.read_table(shard), shard, compression="none", use_dictionary=False)
    text = (build(run).out_dir / "README.md").read_text()
    stored = re.search(r"Clips are stored as \*\*Opus in Ogg \(lossy\)\*\*, mono, 48 kHz, (\d+) kbit/s on average: "
                       r"8 clips, 0\.0 h of audio in ([\d.]+) MB", text)
    assert stored, text
    audio_bytes = sum(len(r["audio"]["bytes"]) for r in rows["music"])
    # parquet adds a 4-byte length per value and a page header per page: under 2 % here
    assert float(stored.group(1)) == pytest.approx(audio_bytes * 8 / 8 / 1000, rel=0.02)
    assert float(stored.group(2)) == pytest.approx(audio_bytes / 1e6, abs=0.05)


def test_build_is_deterministic(run_dir, tmp_path):
    a, b = build(run_dir, tmp_path / "a"), build(run_dir, tmp_path / "b")
    assert a.files == b.files
    for rel in a.files:
        assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes(), rel


def test_metadata_only_has_no_media_and_loads(run_dir, tmp_path):
    result = build(run_dir, tmp_path / "meta", metadata_only=True)
    assert result.validation.ok and result.validation.metadata_only
    assert result.placed == {"rewritten": 6, "linked": 3}  # music and images lose their media; pairs are linked
    assert "This build holds no audio." in (result.out_dir / "README.md").read_text()
    music = datasets.load_dataset(str(result.out_dir), "music", cache_dir=str(tmp_path / "cache"))
    images = datasets.load_dataset(str(result.out_dir), "images", cache_dir=str(tmp_path / "cache"))
    assert "audio" not in music["train"].column_names and "image" not in images["train"].column_names
    assert music["train"].features == schema.metadata_only_features("music")
    assert music["train"][0]["caption"]


def test_cli_build_and_validate(run_dir, tmp_path, capsys):
    assert main(["build", str(run_dir), "--out", str(tmp_path / "hub")]) == 0
    assert main(["validate", str(tmp_path / "hub")]) == 0
    assert "ok   pairs_reference" in capsys.readouterr().out


def test_build_refuses_to_overwrite_the_run(run_dir):
    with pytest.raises(BuildError, match="overwrite"):
        build(run_dir, run_dir)
    assert (run_dir / "data/music/train-00000-of-00001.parquet").exists()


def test_card_hides_url_query_strings(tmp_path):
    import json

    run = write_run(tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    meta["options"]["input"] = "https://bucket.example/DEAM.zip?X-Amz-Signature=secret123"
    meta["options"]["matching_file"] = [["test", "https://h.example/m.txt?sig=s3cr3t"]]
    (run / "run.json").write_text(json.dumps(meta))
    text = (build(run).out_dir / "README.md").read_text()
    assert "https://bucket.example/DEAM.zip" in text and "secret123" not in text and "s3cr3t" not in text


def test_build_without_shards_says_what_is_missing(tmp_path):
    with pytest.raises(BuildError, match="pipeline.run"):
        build(tmp_path)
