"""The real-data sources through the whole pipeline: DEAM folders and IMEMNet-C style clips."""
from __future__ import annotations

import numpy as np
import pytest

from tests import audiogen as g
from tests.e2e_helpers import read_failures, read_table, run_pipeline
from tests.pipeline.test_sources import make_deam

SR = 16000


def test_deam_song_gives_imemnet_c_clip_ids_and_curve_labels(tmp_path):
    # 45 s excerpts annotated 15.0-44.5 s at 2 Hz (60 samples), like DEAM songs 1-2000
    valence = {"2": list(np.linspace(-1, 1, 60).round(4)), "7": [0.2] * 60}
    arousal = {"2": [0.0] * 60, "7": list(np.linspace(0.5, -0.5, 60).round(4))}
    root = make_deam(tmp_path / "DEAM", ["2", "7"], valence=valence, arousal=arousal)
    for song, bpm in (("2", 100.0), ("7", 140.0)):
        g.write(root / "DEAM_audio" / "MEMD_audio" / f"{song}.mp3", g.music_like_song(45.0, 22050, bpm=bpm), 22050)
    summary = run_pipeline(tmp_path, "--source", "deam", "--input", str(root), "--sample_rate", str(SR),
                           "--clip_seconds", "10", "--hop_seconds", repr(5 / 3))
    rows = {r["clip_id"]: r for r in read_table(tmp_path / "out", "music")}
    assert sorted(rows, key=lambda c: (c.split("-")[0], int(c.split("-")[1]))) == (
        [f"2-{i}" for i in range(9, 22)] + [f"7-{i}" for i in range(9, 22)])
    clip = rows["2-12"]  # 20.0-30.0 s: curve samples 15.0 + 0.5 k for k = 10..29
    assert (clip["start_s"], clip["end_s"]) == (20.0, 30.0)
    expected = (np.asarray(valence["2"][10:30]) + 1) / 2
    assert clip["valence"] == pytest.approx(expected.mean(), abs=1e-5)
    assert clip["valence_std"] == pytest.approx(expected.std(), abs=1e-5)
    assert clip["arousal"] == pytest.approx(0.5) and clip["arousal_std"] == pytest.approx(0.0)
    assert rows["7-9"]["arousal"] > rows["7-21"]["arousal"]
    assert abs(rows["7-15"]["descriptors"]["tempo_bpm"] - 140.0) < 7.0
    assert read_failures(tmp_path / "out") == []
    assert summary.rows["music"] and summary.clip_audio_hours == pytest.approx(26 * 10 / 3600, abs=1e-4)


def test_clips_source_keeps_given_captions_and_ids(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip_id in ("725-16", "725-17", "31-9"):
        g.write(folder / f"{clip_id}.wav", g.music_like_song(10.0, SR), SR)
    csv = tmp_path / "music_va.csv"
    csv.write_text(",clip_id,valence,arousal,caption\n"
                   "0,725-16,0.25,0.75,A tense string ostinato.\n"
                   "1,725-17,0.3,0.7,\n"
                   "2,31-9,1.5,0.2,Out of range.\n"
                   "3,99-1,0.5,0.5,No audio for this one.\n")
    run_pipeline(tmp_path, "--source", "clips", "--input", str(folder), "--clips_csv", str(csv))
    rows = {r["clip_id"]: r for r in read_table(tmp_path / "out", "music")}
    assert set(rows) == {"725-16", "725-17"}
    assert rows["725-16"]["caption"] == "A tense string ostinato." and rows["725-16"]["captioner"] == "source"
    assert rows["725-17"]["captioner"].startswith("descriptor/")
    assert rows["725-16"]["song_id"] == "725" and (rows["725-16"]["valence"], rows["725-16"]["arousal"]) == (0.25, 0.75)
    assert rows["725-16"]["end_s"] == pytest.approx(10.0)
    reasons = {f["item_id"]: f["error_type"] for f in read_failures(tmp_path / "out")}
    assert reasons == {"31-9": "bad_va", "99-1": "missing_audio"}
