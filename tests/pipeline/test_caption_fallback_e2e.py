"""No clip lost to captioning: the pipeline with a captioner that rejects chosen clips.

The clips it rejects are in the music table with the template's caption and a `captioner` value
naming the fallback; the failures table still has their rejections; run.json, the console
summary, the dataset card and its validation count both.
"""
from __future__ import annotations

import collections
import json

import pytest

from captioner.backends.descriptor import PROMPT_VERSION as TEMPLATE_VERSION
from captioner.base import BACKENDS, CaptionResult
from captioner.fallback import parse_captioner
from tests.e2e_helpers import read_failures, read_table, run_pipeline


class RejectEveryOther:
    """Rejects every other clip (by a stable hash of its id), with one of two reasons."""

    needs_audio = False

    def __init__(self, config):
        self.id = "rejecting/test/v1+mood-labels"

    def caption(self, batch):
        out = []
        for c in batch:
            n = sum(map(ord, c.clip_id))
            out.append(CaptionResult(c.clip_id, f"A caption the test accepted for {c.clip_id}.", self.id) if n % 2
                       else CaptionResult(c.clip_id, None, self.id, ("caption_non_word", "caption_nonsense")[n % 4 // 2],
                                          "scripted", 3))
        return out


class RejectEveryOtherInPlace(RejectEveryOther):
    needs_model = False  # the pipeline captions in place instead of through RunInference


@pytest.mark.parametrize("backend", [RejectEveryOther, RejectEveryOtherInPlace], ids=["run_inference", "in_place"])
def test_rejected_clips_keep_their_rows_and_are_counted(tmp_path, monkeypatch, backend):
    monkeypatch.setitem(BACKENDS, "rejecting", backend)
    summary = run_pipeline(tmp_path, "--demo_songs", "2", "--demo_song_seconds", "16", "--demo_images", "0",
                           "--captioner", "rejecting")
    out = tmp_path / "out"
    rows = read_table(out, "music")
    rejects = {f["item_id"]: f for f in read_failures(out) if f["stage"] == "caption"}
    assert len(rows) == summary.stage_counters["songs_out"] == summary.stage_counters["caption_out"] >= 4
    fell = {r["clip_id"]: parse_captioner(r["captioner"]) for r in rows if parse_captioner(r["captioner"]).fell_back}
    assert set(fell) == set(rejects) and 0 < len(fell) < len(rows)
    assert {p.chosen for p in fell.values()} == {"rejecting/test/v1+mood-labels"}
    assert {p.wrote for p in fell.values()} == {f"descriptor/none/{TEMPLATE_VERSION}+mood-labels"}
    for r in rows:
        accepted = r["clip_id"] not in fell
        assert r["caption"] and (r["caption"].startswith("A caption the test accepted") == accepted)
    assert all(f["kind"] == "clip" and f["attempts"] == 3 for f in rejects.values())
    by_reason = dict(collections.Counter(f["error_type"] for f in rejects.values()))
    expected = {"chosen": len(rows) - len(fell), "fallback": len(fell), "fallback_by_reason": dict(sorted(by_reason.items())),
                "source": 0, "missing": 0}
    assert {k: summary.captions[k] for k in expected} == expected
    saved = json.loads((out / "run.json").read_text())
    assert saved["captions"] == summary.captions and "not missing clips" in saved["captions"]["note"]
    assert summary.captions_rejected == len(rejects) == summary.stage_counters["caption_failed"]


def test_the_card_counts_fallbacks_and_validation_accepts_them(tmp_path, monkeypatch):
    from dataset_card.build import build
    from dataset_card.validate import validate

    monkeypatch.setitem(BACKENDS, "rejecting", RejectEveryOtherInPlace)
    run_pipeline(tmp_path, "--demo_songs", "1", "--demo_song_seconds", "16", "--demo_images", "0",
                 "--captioner", "rejecting")
    out = tmp_path / "out"
    fell = sum(parse_captioner(r["captioner"]).fell_back for r in read_table(out, "music"))
    result = build(out, tmp_path / "hub")
    assert result.validation.check("caption_fallbacks").ok
    card = (tmp_path / "hub" / "README.md").read_text()
    assert f"{fell} clips captioned by the fallback template" in card
    assert "not missing clips" in card
    # A fallback row without its rejection (the failures table lost it) is inconsistent.
    failures = out / "failures" / "failures.parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(failures)
    pq.write_table(table.filter([s != "caption" for s in table.column("stage").to_pylist()]), failures)
    report = validate(tmp_path / "hub", failures=failures)
    assert not report.check("caption_fallbacks").ok and report.check("caption_fallbacks").count == fell


def test_every_manifest_song_lands_with_rejected_captions_as_the_one_exception(tmp_path, monkeypatch):
    """The "every input item ends in exactly one place" invariant, with its documented exception:
    a clip whose caption was rejected is a row (fallback caption) and a caption failure row."""
    from tests import audiogen
    from tests.e2e_helpers import MANIFEST_HEADER, check_songs_land, offline, wav_bytes, write_csv
    from tests.httpserver import LoopbackServer

    monkeypatch.setitem(BACKENDS, "rejecting", RejectEveryOtherInPlace)
    with offline(), LoopbackServer() as server:
        songs = [(f"song{i}", server.add(f"/song{i}.wav", wav_bytes(audiogen.music_like_song(13.0, 16000, bpm=bpm),
                                                                     16000)), None, None, 0.4, 0.6, None)
                 for i, bpm in enumerate((90.0, 128.0))]
        manifest = write_csv(tmp_path / "songs.csv", MANIFEST_HEADER, songs)
        run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest), "--captioner", "rejecting")
    landed = check_songs_land(manifest, tmp_path / "out")
    assert [ln.outcome for ln in landed.values()] == ["rows", "rows"]
    kept = [r for ln in landed.values() for r in ln.rows]
    fell = [r for r in kept if parse_captioner(r["captioner"]).fell_back]
    assert 0 < len(fell) < len(kept)
    assert {f["item_id"] for f in read_failures(tmp_path / "out") if f["stage"] == "caption"} == \
        {r["clip_id"] for r in fell}
