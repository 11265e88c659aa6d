"""Captioning stages: rejected clips (crashes included) keep their rows with the fallback caption, and
the rejection is a failure row; nothing stops the run."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from captioner.backends.descriptor import describe
from captioner.base import CaptionerConfig, CaptionResult
from captioner.beam import CaptionModelHandler
from captioner.fallback import parse_captioner
from pipeline.stages import ApplyCaption, CaptionInPlace, caption_batches
from pipeline.types import Clip, Failure

DESC = {"tempo_bpm": 120.0, "beat_strength": 1.5, "key": "C", "mode": "major", "key_strength": 0.8,
        "loudness_db": -20.0, "dynamic_range_db": 10.0, "brightness": 1500.0, "onset_rate": 2.0}


def clip(i: int, caption: str | None = None) -> Clip:
    return Clip(f"s-{i}", "s", "test", 0.0, 1.0, np.zeros(100, np.float32), 100, 0.5, 0.5, 0.0, 0.0, "CC0",
                DESC, caption=caption)


class Rejecting:
    id = "test/rejecting/v0"

    def caption(self, batch):
        return [CaptionResult(c.clip_id, None, self.id, "caption_repetitive", "the same words again", 3)
                for c in batch]


class Crashing:
    id = "test/crashing/v0"

    def caption(self, batch):
        raise RuntimeError("CUDA out of memory")


def caption_song(model, clips, batch_size=2) -> list:
    """What the graph does for one song: batch, RunInference's handler, apply."""
    handler, out = CaptionModelHandler(CaptionerConfig(), batch_size=batch_size), []
    for item in caption_batches(clips, batch_size):
        if isinstance(item, Clip):
            out.append(item)
            continue
        for prediction in handler.run_inference(item, model):
            out.extend(ApplyCaption().process(prediction))
    return out


def test_batches_respect_size_and_pass_source_captions_through():
    items = list(caption_batches([clip(0), clip(1, "Given."), clip(2), clip(3), clip(4)], 2))
    assert [(x.clip_id, x.captioner) for x in items if isinstance(x, Clip)] == [("s-1", "source")]
    assert [[c.clip_id for c in x] for x in items if isinstance(x, list)] == [["s-0", "s-2"], ["s-3", "s-4"]]


def test_rejected_clips_keep_their_rows_with_the_fallback_and_become_failures_too():
    out = caption_song(Rejecting(), [clip(0), clip(1), clip(2)])
    kept = [c for c in out if isinstance(c, Clip)]
    failed = [f for f in out if isinstance(f, Failure)]
    assert [(f.item_id, f.stage, f.error_type, f.attempts) for f in failed] == [
        ("s-0", "caption", "caption_repetitive", 3), ("s-1", "caption", "caption_repetitive", 3),
        ("s-2", "caption", "caption_repetitive", 3)]
    assert [c.clip_id for c in kept] == ["s-0", "s-1", "s-2"]
    assert all(c.caption == describe(DESC, 0.5, 0.5) for c in kept)  # the template, mood from the labels
    who = {parse_captioner(c.captioner) for c in kept}
    assert len(who) == 1
    (w,) = who
    assert w.fell_back and w.chosen == Rejecting.id and w.wrote.startswith("descriptor/")
    assert kept[0].captioner == f"{w.wrote} (fallback from {Rejecting.id})"


class RejectingOdd:
    """Accepts even-numbered clips, rejects odd ones: only those fall back."""

    id = "test/odd/v0"

    def caption(self, batch):
        return [CaptionResult(c.clip_id, None, self.id, "caption_non_word", "kended", 2) if int(c.clip_id[-1]) % 2
                else CaptionResult(c.clip_id, f"Caption of {c.clip_id}.", self.id) for c in batch]


def test_only_rejected_clips_fall_back():
    out = caption_song(RejectingOdd(), [clip(i) for i in range(4)], batch_size=4)
    kept = {c.clip_id: c for c in out if isinstance(c, Clip)}
    assert sorted(kept) == ["s-0", "s-1", "s-2", "s-3"]
    assert [kept[i].captioner for i in ("s-0", "s-2")] == [RejectingOdd.id] * 2
    assert kept["s-0"].caption == "Caption of s-0."
    assert all(parse_captioner(kept[i].captioner).fell_back for i in ("s-1", "s-3"))
    assert [(f.item_id, f.error_type) for f in out if isinstance(f, Failure)] == [
        ("s-1", "caption_non_word"), ("s-3", "caption_non_word")]


def test_a_clip_the_template_cannot_caption_either_is_a_failure_only():
    broken = replace(clip(0), descriptors={k: v for k, v in DESC.items() if k != "key"})
    out = caption_song(Rejecting(), [broken, clip(1)])
    assert [(type(x).__name__, x.clip_id if isinstance(x, Clip) else x.item_id) for x in out] == [
        ("Failure", "s-0"), ("Clip", "s-1"), ("Failure", "s-1")]


def test_a_crashing_batch_falls_back_per_clip_records_the_crash_and_keeps_given_captions():
    out = caption_song(Crashing(), [clip(0, "Given by the source."), clip(1), clip(2)], batch_size=3)
    kept = [c for c in out if isinstance(c, Clip)]
    failed = [f for f in out if isinstance(f, Failure)]
    assert [(c.clip_id, parse_captioner(c.captioner).chosen) for c in kept] == [
        ("s-0", "source"), ("s-1", Crashing.id), ("s-2", Crashing.id)]
    assert all(parse_captioner(c.captioner).fell_back for c in kept[1:])
    assert {f.item_id for f in failed} == {"s-1", "s-2"}
    assert all(f.error_type == "internal:RuntimeError" and "out of memory" in f.message for f in failed)


def test_in_place_captioning_falls_back_too(monkeypatch):
    from captioner.base import BACKENDS

    monkeypatch.setitem(BACKENDS, "odd", lambda config: RejectingOdd())
    fn = CaptionInPlace(CaptionerConfig("odd"))
    fn.setup()
    out = [x for item in caption_batches([clip(0), clip(1)], 2) for x in fn.process(item)]
    assert [(type(x).__name__, parse_captioner(x.captioner).fell_back if isinstance(x, Clip) else x.error_type)
            for x in out] == [("Clip", False), ("Clip", True), ("Failure", "caption_non_word")]


def test_descriptor_backend_captions_every_clip_and_handler_loads_it():
    handler = CaptionModelHandler(CaptionerConfig("descriptor"), batch_size=2, large_model=True, model_copies=2)
    assert handler.share_model_across_processes() and handler.model_copies() == 2
    out = caption_song(handler.load_model(), [clip(i) for i in range(5)], batch_size=2)
    assert [c.clip_id for c in out] == [f"s-{i}" for i in range(5)]
    assert all(c.caption and c.captioner.startswith("descriptor/") for c in out)


def test_in_place_captioning_takes_source_captions_and_batches_in_one_step():
    """One ParDo for both kinds (a Flatten of the two would end the songs' fused stage)."""
    fn = CaptionInPlace(CaptionerConfig("descriptor"))
    fn.setup()
    items = caption_batches([clip(0), clip(1, "Given."), clip(2)], 2)
    out = [c for item in items for c in fn.process(item)]
    assert sorted((c.clip_id, c.captioner.split("/")[0], c.caption == "Given.") for c in out) == [
        ("s-0", "descriptor", False), ("s-1", "source", True), ("s-2", "descriptor", False)]
