"""Captioning stages: rejects and crashing backends become failure rows instead of stopping the run."""
from __future__ import annotations

import numpy as np

from captioner.base import CaptionerConfig, CaptionResult
from captioner.beam import CaptionModelHandler
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


def test_rejected_captions_become_failures_with_reason_and_attempts():
    out = caption_song(Rejecting(), [clip(0), clip(1), clip(2)])
    assert [(f.item_id, f.stage, f.error_type, f.attempts) for f in out] == [
        ("s-0", "caption", "caption_repetitive", 3), ("s-1", "caption", "caption_repetitive", 3),
        ("s-2", "caption", "caption_repetitive", 3)]


def test_a_crashing_batch_fails_its_clips_only_and_keeps_given_captions():
    out = caption_song(Crashing(), [clip(0, "Given by the source."), clip(1), clip(2)], batch_size=3)
    kept = [c for c in out if isinstance(c, Clip)]
    failed = [f for f in out if isinstance(f, Failure)]
    assert [(c.clip_id, c.captioner) for c in kept] == [("s-0", "source")]
    assert {f.item_id for f in failed} == {"s-1", "s-2"}
    assert all(f.error_type == "internal:RuntimeError" and "out of memory" in f.message for f in failed)


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
