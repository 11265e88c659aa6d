"""Zero-shot task logic without models: segment selection, prompt templates, ranking, JSON."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.library import MusicLibrary
from mmva_model.zeroshot.output import jsonable
from mmva_model.zeroshot.prompts import QUADRANTS, build_prompt, caption_instruments
from mmva_model.zeroshot.retrieval import nearest_clip, rank_clips
from mmva_model.zeroshot.segments import make_segments, score_segments, select_segments


# -- segments and selection ----------------------------------------------------------------------

def trajectory(per_segment: list[tuple[float, float]], frames_each: int, last_frames: int | None = None) -> np.ndarray:
    """Per-frame VA: each segment's frames all at its VA (the last segment may have fewer frames)."""
    rows = []
    for i, va in enumerate(per_segment):
        n = last_frames if (last_frames is not None and i == len(per_segment) - 1) else frames_each
        rows += [va] * n
    return np.asarray(rows, dtype=np.float32)


def summarise(frame_va, fps, seg_s, budget, mode, target=None, duration=None):
    segs = make_segments(frame_va, fps, seg_s, duration)
    scores = score_segments(segs, mode, None if target is None else np.asarray(target))
    return segs, select_segments(np.array([s.seconds for s in segs]), scores, budget)


def test_segments_are_fixed_windows_with_exact_mean_va():
    va = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8], [0.9, 1.0]], dtype=np.float32)
    segs = make_segments(va, fps=2.0, segment_seconds=1.0, duration_s=2.4)
    assert [(s.first_frame, s.n_frames) for s in segs] == [(0, 2), (2, 2), (4, 1)]
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.4)]  # clipped to duration
    assert segs[0].valence == pytest.approx(0.2) and segs[1].arousal == pytest.approx(0.7)
    assert (segs[2].valence, segs[2].arousal) == pytest.approx((0.9, 1.0))


def test_arousal_mode_picks_the_most_arousing_segments_in_time_order():
    # 6 segments of 2 s (4 frames at 2 fps); arousal peaks in segments 4 then 1
    arousal = [0.2, 0.8, 0.3, 0.1, 0.9, 0.5]
    va = trajectory([(0.5, a) for a in arousal], frames_each=4)
    segs, chosen = summarise(va, 2.0, 2.0, budget=4.0, mode="arousal")
    assert chosen == [1, 4]
    assert [s.score for s in segs] == pytest.approx(arousal)
    _, chosen = summarise(va, 2.0, 2.0, budget=6.5, mode="arousal")
    assert chosen == [1, 4, 5]  # time order, not score order


def test_greedy_skips_a_segment_that_does_not_fit_and_takes_a_shorter_one():
    # segments 0..2 are 2 s; the last one is 1 s (2 frames). Best: 1, then 0; 2 s left over 4 s
    # used of a 5 s budget: segment 2 (2 s) no longer fits, the 1 s segment 3 does.
    va = trajectory([(0.5, 0.8), (0.5, 0.9), (0.5, 0.7), (0.5, 0.6)], frames_each=4, last_frames=2)
    segs, chosen = summarise(va, 2.0, 2.0, budget=5.0, mode="arousal")
    assert segs[3].seconds == pytest.approx(1.0)
    assert chosen == [0, 1, 3]
    assert sum(segs[i].seconds for i in chosen) <= 5.0


def test_match_mode_picks_segments_closest_to_the_target():
    per_segment = [(0.9, 0.9), (0.2, 0.3), (0.5, 0.5), (0.25, 0.2), (0.1, 0.9)]
    va = trajectory(per_segment, frames_each=3)
    segs, chosen = summarise(va, 3.0, 1.0, budget=2.0, mode="match", target=(0.2, 0.25))
    assert chosen == [1, 3]
    expected = [-math.hypot(v - 0.2, a - 0.25) for v, a in per_segment]
    assert [s.score for s in segs] == pytest.approx(expected, abs=1e-6)


def test_budget_below_one_segment_selects_nothing_and_ties_prefer_earlier_segments():
    va = trajectory([(0.5, 0.5)] * 4, frames_each=2)
    assert summarise(va, 2.0, 1.0, budget=0.5, mode="arousal")[1] == []
    assert summarise(va, 2.0, 1.0, budget=2.0, mode="arousal")[1] == [0, 1]


def test_selection_errors():
    va = trajectory([(0.5, 0.5)] * 2, frames_each=2)
    segs = make_segments(va, 2.0, 1.0)
    with pytest.raises(ZeroShotError, match="needs a target"):
        score_segments(segs, "match", None)
    with pytest.raises(ZeroShotError, match="unknown mode"):
        score_segments(segs, "loudest", None)
    with pytest.raises(ZeroShotError, match="holds no frame"):
        make_segments(va, 1.0, 0.2)


# -- prompts -------------------------------------------------------------------------------------

NEIGHBOURS = [
    {"clip_id": "a-1", "caption": "Soft piano with warm strings.", "descriptors":
        {"tempo_bpm": 90.0, "brightness": 900.0, "loudness_db": -24.0, "onset_rate": 2.0}},
    {"clip_id": "a-2", "caption": "A piano ballad with a cello line.", "descriptors":
        {"tempo_bpm": 0.0, "brightness": 1000.0, "loudness_db": -22.0, "onset_rate": 1.0}},  # no pulse
    {"clip_id": "a-3", "caption": "Piano and strings, slow.", "descriptors":
        {"tempo_bpm": 100.0, "brightness": 1100.0, "loudness_db": -20.0, "onset_rate": 3.0}},
]


@pytest.mark.parametrize("va, key", [((0.8, 0.9), (True, True)), ((0.8, 0.1), (True, False)),
                                     ((0.2, 0.9), (False, True)), ((0.1, 0.2), (False, False))])
def test_prompt_mood_words_come_from_the_va_quadrant(va, key):
    p = build_prompt(*va, NEIGHBOURS)
    q = QUADRANTS[key]
    assert p.quadrant == q.name and p.moods == list(q.moods)
    assert p.text.startswith(", ".join(q.moods).capitalize() + " music")
    other = {w for k, o in QUADRANTS.items() if k != key for w in o.moods}
    assert not other & set(p.text.lower().replace(",", " ").split())


def test_prompts_change_with_quadrant_and_only_the_mood_part_changes():
    prompts = {k: build_prompt(0.8 if k[0] else 0.2, 0.8 if k[1] else 0.2, NEIGHBOURS) for k in QUADRANTS}
    assert len({p.text for p in prompts.values()}) == 4
    tails = {p.text.split(" music ", 1)[1] for p in prompts.values()}
    assert len(tails) == 1  # same neighbours: same tempo, instruments, timbre


def test_prompt_facts_from_neighbour_descriptors_and_captions():
    p = build_prompt(0.7, 0.3, NEIGHBOURS)
    assert p.tempo_bpm == pytest.approx(95.0)  # median of 90 and 100: the no-pulse clip is left out
    assert "moderate tempo around 95 BPM" in p.text
    assert p.instruments == ["piano", "strings", "cello"] and p.instruments_from == "captions"
    assert p.timbre == "dark, mellow" and p.dynamics == "moderate" and p.rhythm == "steady"
    assert p.neighbours == ["a-1", "a-2", "a-3"]
    assert build_prompt(0.7, 0.3, NEIGHBOURS) == p  # deterministic


def test_prompt_without_captions_or_pulse_falls_back_and_says_so():
    bare = [{"clip_id": "x#0", "caption": "", "descriptors": {"tempo_bpm": 0.0, "brightness": 3000.0}}]
    p = build_prompt(0.9, 0.9, bare)
    assert p.instruments == list(QUADRANTS[(True, True)].instruments)
    assert p.instruments_from == "quadrant default"
    assert p.tempo_bpm is None and "free tempo without a steady beat" in p.text
    assert p.timbre == "bright" and p.dynamics is None and "dynamics" not in p.text


def test_caption_instruments_prefer_specific_words_and_counts():
    caps = ["An acoustic guitar and drums.", "Guitar, drums and a synth pad.", "Drums and vocals."]
    assert caption_instruments(caps) == ["drums", "acoustic guitar", "guitar"]
    assert caption_instruments(["A bassoon solo."]) == []  # "bass" is a whole word only


# -- ranking -------------------------------------------------------------------------------------

def toy_library(va: list[tuple[float, float]], ids: list[str], emb: np.ndarray | None = None) -> MusicLibrary:
    n = len(ids)
    emb = np.eye(n, 4, dtype=np.float32) if emb is None else emb
    return MusicLibrary("toy", "folder", ids, np.asarray(va, np.float32), emb, [f"cap {i}" for i in ids],
                        [{} for _ in ids], np.full((n, 2), np.nan, np.float32), [{} for _ in ids], "h")


def test_rank_by_va_distance_breaks_ties_by_clip_id():
    lib = toy_library([(0.5, 0.5), (0.6, 0.5), (0.4, 0.5), (0.5, 0.9), (0.5, 0.5)], ["e", "d", "c", "b", "a"])
    got = rank_clips(lib, np.array([0.5, 0.5]), np.zeros(4), k=5)
    assert [m.clip_id for m in got] == ["a", "e", "c", "d", "b"]  # 0, 0 (tie: a < e), .1, .1 (c < d), .4
    assert [m.rank for m in got] == [1, 2, 3, 4, 5]
    assert [m.va_distance for m in got] == pytest.approx([0, 0, 0.1, 0.1, 0.4], abs=1e-6)
    assert got[0].annotated_valence is None
    assert [m.clip_id for m in rank_clips(lib, np.array([0.5, 0.5]), np.zeros(4), k=2)] == ["a", "e"]
    assert lib.ids[nearest_clip(lib, np.array([0.5, 0.52]))] == "a"


def test_rank_by_embedding_cosine():
    emb = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
    lib = toy_library([(0.5, 0.5)] * 3, ["x", "y", "z"], emb)
    got = rank_clips(lib, np.array([0.5, 0.5]), np.array([0.0, 1.0]), k=3, by="embedding")
    assert [m.clip_id for m in got] == ["z", "y", "x"]
    assert [m.cosine for m in got] == pytest.approx([1.0, 0.8, 0.0])
    with pytest.raises(ZeroShotError, match="unknown ranking"):
        rank_clips(lib, np.zeros(2), np.zeros(2), by="loudness")
    with pytest.raises(ZeroShotError, match="at least 1"):
        rank_clips(lib, np.zeros(2), np.zeros(2), k=0)
    with pytest.raises(ZeroShotError, match="not in the library"):
        lib.index("nope")


def test_jsonable_turns_nan_and_numpy_into_plain_json():
    lib = toy_library([(0.5, 0.5)], ["x"])
    doc = json.loads(json.dumps(jsonable(rank_clips(lib, np.array([0.5, 0.5]), np.zeros(4), k=1))))
    assert doc[0]["annotated_valence"] is None and doc[0]["clip_id"] == "x"
    assert jsonable({"a": np.float32(0.5), "b": np.arange(2), "c": float("inf")}) == {"a": 0.5, "b": [0, 1], "c": None}
