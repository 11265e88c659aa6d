"""The split policy with matching files (pipeline.splits): rules on small cases, then IMEMNet's own files."""
from __future__ import annotations

import collections
from pathlib import Path

import pytest

from pipeline import splits
from pipeline.ids import split_of
from pipeline.sources.clips import song_of_clip
from pipeline.sources.pairs import read_matching_file
from pipeline.types import PairTask

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imemnet"


def _place_all(pairs):
    refs = collections.defaultdict(list)
    for p in pairs:
        for key, split in splits.references(p):
            refs[key].append(split)
    return {k: splits.place(k, v) for k, v in refs.items()}


def _outcomes(pairs, songs_of_clips):
    """Apply the whole policy as the pipeline does: place, split clips/images, resolve pairs."""
    placed = _place_all(pairs)
    clip_split = {c: splits.split_for(song_of_clip(c), getattr(placed.get(f"song:{song_of_clip(c)}"), "split", None))
                  for c in songs_of_clips}
    images = {p.image_id for p in pairs}
    image_split = {i: splits.split_for(i, getattr(placed.get(f"image:{i}"), "split", None)) for i in images}
    return placed, clip_split, image_split, splits.resolve_pairs(pairs, clip_split, image_split)


def test_precedence_and_placement():
    assert splits.strongest(["test", "validation"]) == "validation"
    assert splits.strongest(["train", "test"]) == "test"
    pl = splits.place("song:7", ["test", "validation", "test"])
    assert (pl.split, pl.referenced, pl.label) == ("validation", ("validation", "test"), "songs/validation+test->validation")
    assert splits.place("image:x", ["test"]).label == "images/test->test"
    assert splits.split_for("42", None) == split_of("42") and splits.split_for("42", "test") == "test"


def test_overlap_moves_duplicates_and_conflicts():
    pairs = [
        PairTask("1-9", "a", 0.5, "validation"),
        PairTask("1-9", "a", 0.4, "test"),     # same pair in test: dropped (validation wins)
        PairTask("1-10", "a", 0.3, "test"),    # song 1 and image a are validation: moved
        PairTask("2-9", "b", 0.2, "test"),     # test only: kept
        PairTask("2-10", "a", 0.1, "test"),    # song 2 test, image a validation: conflict
        PairTask("3-9", "zz", 0.1, "test"),    # image never written: missing
    ]
    placed = _place_all(pairs)
    assert placed["song:1"].split == placed["image:a"].split == "validation" and placed["song:2"].split == "test"
    clip_split = {"1-9": "validation", "1-10": "validation", "2-9": "test", "2-10": "test", "3-9": "test"}
    image_split = {"a": "validation", "b": "test"}  # "zz" was never written
    out = splits.resolve_pairs(pairs, clip_split, image_split)
    labels = collections.Counter(o.label for o in out)
    assert labels == {"pairs/kept/validation": 1, "pairs/dropped/split_overlap": 1, "pairs/moved/test->validation": 1,
                      "pairs/kept/test": 1, "pairs/dropped/split_conflict": 1, "pairs/missing/unknown_image": 1}
    rows = [o.pair for o in out if o.pair]
    failures = [o.failure for o in out if o.failure]
    assert len(rows) + len(failures) == len(pairs)  # every given line ends as a row or a failure
    for r in rows:  # no pair points across splits
        assert clip_split[r.music_clip_id] == image_split[r.image_id] == r.split
    assert {f.error_type for f in failures} == {"split_overlap", "split_conflict", "unknown_image"}
    report = splits.policy_report(labels)
    assert report["pairs"]["moved"] == {"test->validation": 1}
    assert report["pairs"]["dropped"] == {"split_conflict": 1, "split_overlap": 1}


@pytest.mark.skipif(not SHARED.is_dir(), reason="IMEMNet's matching files are not at ../shared/data/imemnet "
                    "(a user's clone has no ../shared)")
def test_imemnet_files_policy_has_no_cross_split_pair():
    """On IMEMNet's real files: every val/test overlap resolved, no test pair touches train or validation."""
    pairs = (read_matching_file(SHARED / "test_matching.txt", "test").pairs
             + read_matching_file(SHARED / "val_matching.txt", "validation").pairs)
    clips = {p.music_clip_id for p in pairs}
    placed, clip_split, image_split, out = _outcomes(pairs, clips)
    by_label = collections.Counter(pl.label for pl in placed.values())
    assert by_label["songs/validation+test->validation"] == 90  # all validation songs are in test too
    assert by_label["images/validation+test->validation"] == 1175
    rows = [o.pair for o in out if o.pair]
    assert all(clip_split[r.music_clip_id] == image_split[r.image_id] == r.split for r in rows)
    assert not any(r.split == "train" for r in rows)
    labels = collections.Counter(o.label for o in out)
    # the test file repeats 4,110 validation pairs: dropped once, never scored twice
    assert labels["pairs/dropped/split_overlap"] == 4110
    assert sum(n for k, n in labels.items()) == len(pairs)
