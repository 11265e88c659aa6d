"""Tests for mmva_model.imemnet: the matching-file reader and the Spearman against its scores."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from mmva_model.imemnet import MatchingError, matching_spearman, read_matching

# The released IMEMNet files, used as they are from the shared folder (never copied here).
IMEMNET_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imemnet"


def _write(tmp_path: Path, text: str, name: str = "matching.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MESSY = "\n".join([
    "725-16 img_a 0.5",           # 1 good
    "",                           # 2 blank: skipped, not counted
    "725-17 img_b 1",             # 3 good (integer score, upper bound)
    "725-18 img_c",               # 4 two fields
    "725-19 img_d 0.2 extra",     # 5 four fields
    "725-20 img_e nan",           # 6 non-finite
    "725-21 img_f 1.5",           # 7 above 1
    "725-22 img_g -0.1",          # 8 below 0
    "725-23 img_h abc",           # 9 not a number
    "725-16 img_a 0.9",           # 10 duplicate of line 1 (first kept)
    "   ",                        # 11 blank
    "725-16\timg_b 0",            # 12 good: same clip, other image; any whitespace separates
    "725-24 img_i inf",           # 13 non-finite
]) + "\n"


def test_read_matching_keeps_good_lines_and_lists_problems(tmp_path):
    m = read_matching(_write(tmp_path, MESSY))
    assert m.path == tmp_path / "matching.txt"
    assert m.lines == 11
    assert list(m.pairs.columns) == ["music_clip_id", "image_id", "matching_score"]
    assert m.pairs["matching_score"].dtype == np.float64
    assert m.pairs.values.tolist() == [["725-16", "img_a", 0.5], ["725-17", "img_b", 1.0], ["725-16", "img_b", 0.0]]
    assert [n for n, _ in m.problems] == [4, 5, 6, 7, 8, 9, 10, 13]
    reasons = dict(m.problems)
    assert "2 fields" in reasons[4] and "4 fields" in reasons[5]
    for n in (6, 7, 8, 13):
        assert "[0, 1]" in reasons[n]
    assert "not a number" in reasons[9]
    assert "duplicate" in reasons[10] and "line 1" in reasons[10]


def test_read_matching_empty_file_and_bom(tmp_path):
    empty = read_matching(_write(tmp_path, "\n\n", "empty.txt"))
    assert (empty.lines, len(empty.pairs), empty.problems) == (0, 0, [])
    assert list(empty.pairs.columns) == ["music_clip_id", "image_id", "matching_score"]
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeff725-16 img_a 0.25\n".encode("utf-8"))
    assert read_matching(bom).pairs["music_clip_id"].tolist() == ["725-16"]


def test_read_matching_unreadable_file_raises(tmp_path):
    with pytest.raises(MatchingError, match="cannot read matching file"):
        read_matching(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(MatchingError, match="binary.txt"):
        read_matching(binary)


@pytest.mark.parametrize("name, lines, unique", [("test_matching.txt", 26_115, 26_106),
                                                 ("val_matching.txt", 8_795, 8_788)])
def test_read_real_imemnet_files(name, lines, unique):
    path = IMEMNET_DIR / name
    if not path.is_file():
        pytest.skip(f"IMEMNet matching files not present at {IMEMNET_DIR} (they live in the shared data folder)")
    m = read_matching(path)
    assert m.lines == lines
    assert len(m.pairs) == unique
    assert len(m.problems) == lines - unique
    # The released files' only problems are exact repeats of earlier lines.
    assert all(reason.startswith("duplicate pair") for _, reason in m.problems)
    text = path.read_text(encoding="utf-8").splitlines()
    for n, reason in m.problems:
        first = int(reason.rsplit("line ", 1)[1].rstrip(")"))
        assert text[n - 1].split() == text[first - 1].split()
    assert not m.pairs.duplicated(["music_clip_id", "image_id"]).any()
    assert m.pairs["matching_score"].between(0.0, 1.0).all()


def _hand_file(tmp_path: Path) -> Path:
    return _write(tmp_path, "\n".join([
        "c1 i1 0.9",   # cos 1
        "c1 i2 0.5",   # cos 1/sqrt(2)
        "c1 i3 0.6",   # cos 0
        "c2 i3 0.8",   # cos 1
        "c2 nope 0.1",  # image without a prediction
        "gone i1 0.2",  # clip without a prediction
    ]) + "\n")


def test_matching_spearman_by_hand(tmp_path):
    m = read_matching(_hand_file(tmp_path))
    clips = {"c1": np.array([1.0, 0.0]), "c2": np.array([0.0, 3.0])}  # not unit norm: cosine anyway
    images = (["i1", "i2", "i3", "unused"], np.array([[1.0, 0.0], [2.0, 2.0], [0.0, 1.0], [1.0, 1.0]]))
    out = matching_spearman(m, clips, images)
    # Ranks of cos [1, .707, 0, 1] = [3.5, 2, 1, 3.5]; of scores [.9, .5, .6, .8] = [4, 1, 2, 3];
    # their Pearson = 3.5 / sqrt(4.5 * 5).
    assert out["pairs_present"] == 4 and out["pairs_total"] == 6
    assert out["spearman"] == pytest.approx(3.5 / math.sqrt(22.5), abs=1e-12)
    assert out["spearman"] == pytest.approx(spearmanr([1, 0.7071, 0, 1], [0.9, 0.5, 0.6, 0.8]).statistic)
    # Both embedding forms give the same answer.
    as_dict = dict(zip(images[0], images[1]))
    assert matching_spearman(m, (list(clips), np.stack(list(clips.values()))), as_dict) == out


def test_matching_spearman_undefined_cases(tmp_path):
    m = read_matching(_hand_file(tmp_path))
    images = {"i1": np.array([1.0, 0.0]), "i3": np.array([0.0, 1.0])}
    few = matching_spearman(m, {"c1": np.array([1.0, 0.0])}, images)  # 2 present pairs
    assert few == {"spearman": None, "pairs_present": 2, "pairs_total": 6}
    none = matching_spearman(m, {}, {})
    assert none == {"spearman": None, "pairs_present": 0, "pairs_total": 6}
    flat = read_matching(_write(tmp_path, "a x 0.5\nb x 0.5\nc x 0.5\n", "flat.txt"))
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([1.0, 1.0]), "x": np.array([1.0, 0.0])}
    const = matching_spearman(flat, emb, emb)
    assert const["pairs_present"] == 3 and const["spearman"] is None  # constant scores: undefined


def test_matching_spearman_rejects_mismatched_ids(tmp_path):
    m = read_matching(_hand_file(tmp_path))
    with pytest.raises(ValueError, match="2 ids"):
        matching_spearman(m, (["c1", "c2"], np.zeros((3, 2))), {})
