"""Content tags per song: the musicnn taggers once over a song's 3 s patches; a clip gets the mean of
the patches it covers, of the tag probabilities and of the penultimate layer's embeddings (the
frozen music features of MMVA's ``musicnn`` encoder, which come from the same forward pass).

Both taggers read the same log-mel patches (musicnn's front end: 16 kHz, 96 mel bands), so the
spectrogram is computed once per song and each model runs once per patch, however many clips of
the song overlap it (IMEMNet-C's clips overlap six times over). A patch belongs to a clip when its
centre lies in the clip's window; a clip shorter than a patch takes the patch nearest its centre.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from captioner.content import ROW_KEYS

# --tagger choice -> the tagger models it runs.
TAGGERS: dict[str, tuple[str, ...]] = {"musicnn": tuple(ROW_KEYS), "none": ()}


@dataclass(frozen=True)
class SongTags:
    """Per-patch tag probabilities of one song, by model; row ``i`` is patch ``first + i`` of the song's
    grid, which covers ``[(first + i) * patch_s, (first + i + 1) * patch_s)`` seconds."""

    patch_s: float
    probabilities: dict[str, np.ndarray]  # model -> (patches, tags) float32
    first: int = 0
    embeddings: dict[str, np.ndarray] | None = None  # model -> (patches, 200) penultimate features

    def _inside(self, start_s: float, end_s: float) -> np.ndarray:
        n = len(next(iter(self.probabilities.values())))
        centres = (self.first + np.arange(n) + 0.5) * self.patch_s
        inside = np.flatnonzero((centres >= start_s) & (centres < end_s))
        if len(inside) == 0:
            inside = np.array([int(np.argmin(np.abs(centres - (start_s + end_s) / 2)))])
        return inside

    def clip(self, start_s: float, end_s: float) -> dict[str, np.ndarray]:
        """Mean probabilities of the patches whose centres fall in ``[start_s, end_s)``."""
        return _mean_rows(self.probabilities, self._inside(start_s, end_s))

    def clip_embeddings(self, start_s: float, end_s: float) -> dict[str, np.ndarray] | None:
        """Mean penultimate embeddings of the same patches as :meth:`clip` (None if not kept)."""
        return _mean_rows(self.embeddings, self._inside(start_s, end_s)) if self.embeddings else None


def _mean_rows(per_model: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {m: x[rows].mean(axis=0, dtype=np.float64).astype(np.float32) for m, x in per_model.items()}


def tag_song(samples: np.ndarray, sample_rate: int, models: Sequence[str],
             span_s: tuple[float, float] | None = None) -> SongTags | None:
    """Tag a mono song with ``models`` (None when no model is asked for).

    ``span_s``: the part of the song its clips cover; only the patches a clip there can use are
    computed (a DEAM excerpt's first 15 s are in no clip), which gives every clip the same tags as
    tagging the whole song, for two thirds of the work on 45 s excerpts.
    """
    if not models:
        return None
    from captioner.tagger import frontend, load_tagger, torch_threads

    taggers = [load_tagger(m) for m in models]
    y = frontend.resample_to_16k(np.asarray(samples, dtype=np.float32), sample_rate)
    patch_samples = frontend.PATCH_FRAMES * frontend.HOP
    if len(y) < patch_samples:  # shorter than one patch: pad with silence so it is tagged at all
        y = np.pad(y, (0, patch_samples - len(y)))
    patch_s = patch_samples / frontend.SAMPLE_RATE
    total = frontend.grid_size(len(y))
    first, end = 0, total
    if span_s is not None:
        first = min(max(0, int(np.floor(span_s[0] / patch_s))), total - 1)
        end = min(max(first + 1, int(np.ceil(span_s[1] / patch_s))), total)
    with torch_threads(1):  # the front end's products, like the models', at a fixed thread count
        patches = frontend.grid_patches(y, first, end - first)
    outputs = {t.name: t.forward(patches) for t in taggers}
    return SongTags(patch_s, {m: o.probabilities for m, o in outputs.items()}, first,
                    {m: o.penultimate for m, o in outputs.items()})


def tagger_models(name: str) -> tuple[str, ...]:
    """The models ``--tagger name`` runs, their weights checked now rather than in every worker."""
    models = TAGGERS[name]
    if models:
        from captioner.tagger.weights import TaggerWeightsMissing, checkpoint_prefix

        try:
            for m in models:
                checkpoint_prefix(m)
        except TaggerWeightsMissing as e:
            raise ValueError(f"{e}; or run without content tags: --tagger none") from e
    return models
