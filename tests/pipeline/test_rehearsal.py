"""The rehearsal tool (pipeline.rehearsal): its plan of the real shape, its stand-ins, and a tiny
rehearsal run end to end: pipeline with IMEMNet matching files, dataset_card validate, a short MMVA
training and an evaluation with the matching-file metrics."""
from __future__ import annotations

import collections
import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataset_card.__main__ import main as dataset_card_main
from pipeline.rehearsal import inputs, plan
from pipeline.rehearsal.__main__ import IMAGES, main as rehearsal_main, pipeline_command
from tests.e2e_helpers import read_failures, read_table

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imemnet"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="IMEMNet's files are not at ../shared/data/imemnet "
                                  "(a user's clone has no ../shared)")


@pytest.fixture(scope="module")
def stand_ins() -> inputs.ImemnetInputs:
    return inputs.stand_ins()


def test_stand_ins_have_the_real_files_shape(stand_ins):
    rows = stand_ins.images
    ids = collections.Counter(r.image_id for r in rows)
    assert (len(rows), len(ids), sum(n > 1 for n in ids.values())) == (24_758, 24_744, 8)
    assert len(stand_ins.matching["test"]) == 26_115 + 9 and len(stand_ins.matching["validation"]) == 8_795 + 7
    songs = {s: {inputs.song_of(inputs.line_ids(ln)[0]) for ln in lines} for s, lines in stand_ins.matching.items()}
    assert (len(songs["test"]), len(songs["validation"])) == (360, 90) and songs["validation"] <= songs["test"]
    assert sum(ids[x] == 1 and x.isdigit() for x in ids) >= 1_100  # IAPS-style numeric ids
    assert all(plan.clip_index(inputs.line_ids(ln)[0]) >= 9 for ln in stand_ins.matching["test"])


@pytest.mark.parametrize("source", ["stand-ins", pytest.param("real", marks=needs_shared)])
def test_universe_is_deam_shaped(source, stand_ins):
    found = stand_ins if source == "stand-ins" else inputs.load(SHARED)
    songs = plan.universe(found)
    full = [s for s in songs if s.full]
    assert (len(songs), len(full), len({s.song_id for s in songs})) == (1_802, 58, 1_802)
    clips = sum(s.top - plan.FIRST_INDEX + 1 for s in songs)
    assert abs(clips - plan.TARGET_CLIPS) <= 58  # IMEMNet-C's 25,944 clips, to rounding
    tops = {s.song_id: s.top for s in songs}
    for ln in found.matching["test"]:  # every clip a matching line names fits in its song
        clip = inputs.line_ids(ln)[0]
        assert plan.clip_index(clip) <= tops[inputs.song_of(clip)]
    song = next(s for s in full if s.matched)
    assert song.annotated_end_s >= song.top * plan.HOP_S + plan.CLIP_S


def test_fraction_keeps_the_same_songs_and_all_their_lines(stand_ins):
    small, larger = plan.make_plan(stand_ins, 0.05), plan.make_plan(stand_ins, 0.1)
    assert {s.song_id for s in small.songs} <= {s.song_id for s in larger.songs}
    assert abs(len(larger.songs) - 180) <= 2
    kept = {s.song_id for s in small.songs}
    test_lines = [ln for ln in stand_ins.matching["test"] if inputs.song_of(inputs.line_ids(ln)[0]) in kept]
    assert small.matching["test"] == test_lines  # every line on a kept song, repeats included, in file order
    named = {inputs.line_ids(ln)[1] for ln in test_lines}
    listed = {r.image_id for r in stand_ins.images}
    assert named & listed <= {r.image_id for r in small.images}
    assert len(small.images) - len({r.image_id for r in small.images}) == 14  # duplicate rows kept


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """20 songs, 300 images and the matching lines naming them, through the README's real-data command."""
    tmp = tmp_path_factory.mktemp("rehearsal")
    out = tmp / "rehearsal"
    assert rehearsal_main(["--out", str(out), "--songs", "20", "--images", "300", "--bank_variants", "1",
                           "--workers", "2"]) == 0
    from pipeline.run import run

    cmd = pipeline_command(out, ("--no_progress", "--cache_dir", str(tmp / "cache"), "--sample_rate", "16000"))
    assert cmd[1:3] == ["-m", "pipeline.run"]
    summary = run(cmd[3:])
    return out, summary


def test_tree_has_deam_layout(tiny):
    out, _ = tiny
    audio = sorted((out / "DEAM" / "DEAM_audio" / "MEMD_audio").glob("*.mp3"))
    assert len(audio) == 20
    dynamic = out / "DEAM" / "DEAM_Annotations" / "annotations" / "annotations averaged per song" / \
        "dynamic (per second annotations)"
    with open(dynamic / "valence.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:3] == ["song_id", "sample_15000ms", "sample_15500ms"] and len(header) > 61  # a full-length song
    files = [p for f in ("IAPS", "NAPS", "EMOTIC") for p in (out / IMAGES / f).iterdir()]
    assert len(files) == 300 and all(p.suffix in (".jpg", ".JPG") for p in files)


def test_every_input_ends_as_one_row_or_one_failure(tiny):
    out, summary = tiny
    run = out / "run"
    failures = read_failures(run)
    by_kind = collections.Counter(f["kind"] for f in failures)
    music = read_table(run, "music")
    songs = {p.stem for p in (out / "DEAM" / "DEAM_audio" / "MEMD_audio").glob("*.mp3")}
    failed_songs = {f["item_id"] for f in failures if f["kind"] == "song"}
    assert {m["song_id"] for m in music} | failed_songs == songs and not failed_songs & {m["song_id"] for m in music}
    assert failed_songs == set(json.loads((out / "rehearsal.json").read_text())["counts"]["deam"]["broken_audio"])
    image_rows = sum(1 for ln in (out / "image_va.csv").read_text().splitlines()[1:] if ln.strip())
    assert len(read_table(run, "images")) + by_kind["image"] == image_rows
    assert collections.Counter(f["error_type"] for f in failures if f["kind"] == "image") == {"duplicate_id": 14}
    lines = sum(len((out / n).read_text().splitlines()) for n in (inputs.TEST, inputs.VALIDATION))
    assert len(read_table(run, "pairs")) + by_kind["pair"] == lines
    reasons = collections.Counter(f["error_type"] for f in failures if f["kind"] == "pair")
    assert reasons["duplicate_id"] > 0  # repeated matching lines
    assert reasons["unknown_clip"] > 0 and reasons["unknown_image"] > 0  # broken songs, images IMEMNet-C lacks
    policy = summary.split_policy
    counted = sum(n for d in policy["pairs"].values() for n in d.values())
    assert counted == len(read_table(run, "pairs")) + reasons["unknown_clip"] + reasons["unknown_image"] \
        + reasons["split_overlap"] + reasons["split_conflict"]


def test_no_pair_points_across_splits(tiny):
    out, summary = tiny
    run = out / "run"
    clip_split = {m["clip_id"]: m["split"] for m in read_table(run, "music")}
    image_split = {i["image_id"]: i["split"] for i in read_table(run, "images")}
    pairs = read_table(run, "pairs")
    assert pairs and {p["split"] for p in pairs} <= {"test", "validation"}
    assert all(clip_split[p["music_clip_id"]] == image_split[p["image_id"]] == p["split"] for p in pairs)
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["split_policy"] == summary.split_policy and "validation before test" in summary.split_policy["rule"]


def test_validate_train_and_evaluate_with_matching_files(tiny, tmp_path, capsys):
    from mmva_model import evaluate, train

    out, _ = tiny
    hub = tmp_path / "hub"
    assert dataset_card_main(["build", str(out / "run"), "--out", str(hub)]) == 0
    assert dataset_card_main(["validate", str(hub)]) == 0
    report = capsys.readouterr().out
    assert "ok   pairs_within_split" in report
    card = (hub / "README.md").read_text()
    assert "## Splits" in card and "split_overlap" in card
    result = train.run(["--config", "tiny", "--data", str(hub), "--output_dir", str(tmp_path / "train"),
                        "--cache_dir", str(tmp_path / "features"), "--hf_cache_dir", str(tmp_path / "hf"),
                        "--no_progress", "--set", "train.steps=2", "--set", "train.eval_every=2",
                        "--set", "train.checkpoint_every=2"])
    assert result.step == 2
    matching = [str(out / inputs.TEST), str(out / inputs.VALIDATION)]
    ev = evaluate.run(["--checkpoint", str(tmp_path / "train"), "--data", str(hub), "--split", "test",
                       "--cache_dir", str(tmp_path / "features"), "--hf_cache_dir", str(tmp_path / "hf"),
                       "--device", "cpu", "--quiet", "--matching", *matching])
    m = ev.metrics
    test_pairs = len(pq.read_table(next((hub / "data" / "pairs").glob("test-*.parquet"))))
    assert m["pairs"]["rows"] == m["pairs"]["used"] == test_pairs and m["pairs"]["dropped"] == {}
    test_file, val_file = (m["matching"][f] for f in matching)
    # the test file scores exactly the test pairs the dataset kept; the validation file's clips are not in test
    assert test_file["pairs_present"] == test_pairs and val_file["pairs_present"] == 0
    assert test_file["problems"] > 0  # its repeated lines, reported by the evaluator's own reader


def test_rerun_into_the_same_folder_replaces_the_songs(tmp_path):
    out = tmp_path / "r"
    for n in (4, 2):
        argv = ["--out", str(out), "--songs", str(n), "--images", "40", "--bank_variants", "1", "--broken_songs", "0"]
        assert rehearsal_main(argv) == 0
    assert len(list((out / "DEAM" / "DEAM_audio" / "MEMD_audio").glob("*.mp3"))) == 2


def test_missing_imemnet_dir_is_a_clear_error(tmp_path, capsys):
    assert rehearsal_main(["--out", str(tmp_path / "r"), "--imemnet_dir", str(tmp_path / "nowhere")]) == 2
    assert "expected image_va.csv, test_matching.txt and val_matching.txt" in capsys.readouterr().err
