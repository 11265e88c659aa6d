"""Pairs: IMEMNet matching files (real ones when ../shared is there), VA-scored pairs, the check."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from dataset_card.schema import va_similarity
from pipeline.sources.pairs import (
    filter_pairs, normalise_split, pair_id, read_matching_file, score_pairs_from_va,
)
from pipeline.types import PairTask

IMEMNET = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imemnet"


def real_file(name: str) -> Path:
    path = IMEMNET / name
    if not path.is_file():
        pytest.skip(f"real IMEMNet file {name} not found at {IMEMNET} (only present beside the dev checkout)")
    return path


@pytest.mark.parametrize("name,split,expected", [("test_matching.txt", "test", "test"),
                                                  ("val_matching.txt", "val", "validation")])
def test_real_matching_files_parse(name, split, expected):
    path = real_file(name)
    lines = sum(1 for line in path.read_text().splitlines() if line.strip())
    items = read_matching_file(path, split)
    assert len(items.pairs) + len(items.failures) == lines  # every line accounted for
    assert len(items.pairs) >= 0.99 * lines, Counter(f.error_type for f in items.failures)
    assert {p.split for p in items.pairs} == {expected}
    assert all(0.0 <= p.score <= 1.0 for p in items.pairs)
    assert all(f.kind == "pair" and f.stage == "read_pairs" for f in items.failures)
    print(f"{name}: {lines} lines, {len(items.pairs)} pairs, failures "
          f"{dict(Counter(f.error_type for f in items.failures))}")


def test_bad_lines_become_failures(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text(
        "725-16 3053 0.5\n"  # ok
        "725-17  COCO_train2014_000000029116\t0.25\n"  # extra whitespace is fine
        "\n"  # blank: not a record
        "725-18 3053\n"  # 2 fields
        "725-18 3053 0.5 extra\n"  # 4 fields
        "../x 3053 0.5\n"  # bad clip id
        "725-19 a/b 0.5\n"  # bad image id
        "725-20 3053 nan\n"
        "725-21 3053 inf\n"
        "725-22 3053 1.5\n"
        "725-23 3053 -0.1\n"
        "725-24 3053 high\n"
        "725-16 3053 0.9\n"  # duplicate pair: first kept
    )
    items = read_matching_file(path, "train")
    assert [(p.music_clip_id, p.image_id, p.score, p.split) for p in items.pairs] == [
        ("725-16", "3053", 0.5, "train"), ("725-17", "COCO_train2014_000000029116", 0.25, "train")]
    got = [(f.item_id, f.error_type) for f in items.failures]
    assert got == [
        ("m.txt:line4", "malformed_row"), ("m.txt:line5", "malformed_row"),
        ("m.txt:line6", "bad_id"), ("m.txt:line7", "bad_id"),
        ("m.txt:line8", "bad_score"), ("m.txt:line9", "bad_score"), ("m.txt:line10", "bad_score"),
        ("m.txt:line11", "bad_score"), ("m.txt:line12", "bad_score"),
        ("725-16|3053", "duplicate_id"),
    ]
    assert "1.5" in items.failures[6].message and "[0, 1]" in items.failures[6].message
    assert all(f.kind == "pair" for f in items.failures)


def test_splits():
    assert normalise_split("val") == "validation" and normalise_split("test") == "test"
    with pytest.raises(ValueError, match="unknown split"):
        normalise_split("holdout")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nope.txt"):
        read_matching_file(tmp_path / "nope.txt", "test")


def _items(n: int, prefix: str, seed: int):
    rng = random.Random(seed)
    splits = ("train", "validation", "test")
    return [(f"{prefix}{i}", splits[i % 3], rng.random(), rng.random()) for i in range(n)]


def test_scored_pairs_are_deterministic_whatever_the_input_order():
    clips, images = _items(40, "c", 1), _items(90, "i", 2)
    a = score_pairs_from_va(clips, images, per_clip=4, seed=7)
    shuffled_c, shuffled_i = clips[:], images[:]
    random.Random(3).shuffle(shuffled_c)
    random.Random(4).shuffle(shuffled_i)
    assert score_pairs_from_va(shuffled_c, shuffled_i, per_clip=4, seed=7) == a
    assert score_pairs_from_va(clips, images, per_clip=4, seed=8) != a
    assert len(a) == 40 * 4


def test_scored_pairs_stay_in_split_and_score_by_va():
    clips, images = _items(30, "c", 1), _items(60, "i", 2)
    va = {i: (v, a) for i, _, v, a in clips + images}
    split = {i: s for i, s, _, _ in clips + images}
    pairs = score_pairs_from_va(clips, images, per_clip=5, seed=0)
    for p in pairs:
        assert split[p.music_clip_id] == split[p.image_id] == p.split
        assert p.score == pytest.approx(va_similarity(va[p.music_clip_id], va[p.image_id]))
    per_clip = Counter(p.music_clip_id for p in pairs)
    assert set(per_clip.values()) == {5}
    assert all(len({p.image_id for p in pairs if p.music_clip_id == c}) == 5 for c in per_clip)  # no repeats


def test_a_clips_draw_depends_on_its_id_not_on_other_clips():
    clips, images = _items(20, "c", 1), _items(60, "i", 2)
    full = score_pairs_from_va(clips, images, per_clip=3, seed=5)
    alone = score_pairs_from_va([clips[4]], images, per_clip=3, seed=5)
    assert alone == [p for p in full if p.music_clip_id == clips[4][0]]


def test_small_splits_and_edge_cases():
    clips = [("c1", "test", 0.5, 0.5), ("c2", "train", 0.1, 0.9)]
    images = [("i1", "test", 0.5, 0.5), ("i2", "test", 1.0, 1.0)]
    pairs = score_pairs_from_va(clips, images, per_clip=10, seed=0)
    assert sorted((p.image_id, round(p.score, 6)) for p in pairs) == [("i1", 1.0), ("i2", round(1 - 0.5, 6))]
    assert score_pairs_from_va(clips, images, per_clip=0, seed=0) == []
    with pytest.raises(ValueError, match="per_clip"):
        score_pairs_from_va(clips, images, per_clip=-1, seed=0)
    with pytest.raises(ValueError, match="duplicate image"):
        score_pairs_from_va(clips, images + [("i1", "train", 0.1, 0.1)], per_clip=1, seed=0)


def test_filter_pairs_reports_unknown_ids():
    pairs = [PairTask("c1", "i1", 0.5, "test"), PairTask("c9", "i1", 0.5, "test"),
             PairTask("c1", "i9", 0.5, "test"), PairTask("c9", "i9", 0.5, None)]
    kept, failures = filter_pairs(pairs, {"c1", "c2"}, {"i1"})
    assert kept == pairs[:1]
    assert [(f.item_id, f.error_type, f.kind) for f in failures] == [
        (pair_id("c9", "i1"), "unknown_clip", "pair"), ("c1|i9", "unknown_image", "pair"),
        ("c9|i9", "unknown_clip", "pair")]
    assert "clip c9 and image i9" in failures[2].message
