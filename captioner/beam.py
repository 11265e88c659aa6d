"""A Beam ``ModelHandler`` for captioners, so pipelines caption through ``RunInference``.

The model (any backend of :data:`captioner.base.BACKENDS`) is loaded once per worker process by
RunInference, or once per machine with ``large_model`` (shared across processes, ``model_copies``
of it: for GPU workers whose memory holds only so many copies of a 7B model).

Examples are any objects with ``clip_id, samples, sample_rate, descriptors, valence, arousal``
attributes (the pipeline's clips), so this module imports nothing of the pipeline. A backend that
raises fails its batch's clips as data (``error_type="internal:..."``) instead of failing the job,
and every rejected clip, crash or not, gets the fallback template's caption with its rejection
(:mod:`captioner.fallback`).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from captioner.base import Captioner, CaptionerConfig, as_clips_for_caption, build
from captioner.fallback import Fallback, caption_with_fallback


class CaptionModelHandler(ModelHandler[Any, PredictionResult, Captioner]):
    """RunInference handler: a batch of clips in, one :class:`CaptionResult` per clip out (a rejected
    clip's result holds the fallback's caption and the rejection)."""

    def __init__(self, config: CaptionerConfig, *, batch_size: int = 16, large_model: bool = False,
                 model_copies: int | None = None):
        super().__init__()
        self.config = config
        self._batching_kwargs = {"min_batch_size": 1, "max_batch_size": batch_size}
        self._share_across_processes = large_model
        self._model_copies = model_copies
        self.fallback = Fallback(config)  # a template: cheap to build and to pickle

    def load_model(self) -> Captioner:
        return build(self.config)

    def run_inference(self, batch: Sequence[Any], model: Captioner,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        results = caption_with_fallback(model, self.fallback, as_clips_for_caption(batch), self.config.backend)
        return [PredictionResult(example, result) for example, result in zip(batch, results)]

    def get_metrics_namespace(self) -> str:
        return f"captioner-{self.config.backend}"

