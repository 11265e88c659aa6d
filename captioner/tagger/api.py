"""Load a musicnn tagger once per process and run it: patches in, tag probabilities / embeddings out."""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from captioner.tagger import frontend
from captioner.tagger.checkpoint import Checkpoint
from captioner.tagger.model import Musicnn, load_weights
from captioner.tagger.vocab import VOCABULARIES
from captioner.tagger.weights import INSTALL_HINT, TaggerWeightsMissing, checkpoint_prefix, known, musicnn_dir  # noqa: F401

BATCH_PATCHES = 1  # patches per forward pass (see Tagger.forward)
EMBEDDINGS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with torch's intra-op thread count set to ``n``, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class TaggerOutput:
    """Per patch: tag probabilities (n, 50) and the features musicnn's extractor exposes."""

    probabilities: np.ndarray
    penultimate: np.ndarray  # (n, 200): the dense layer before the output, after its batch norm
    mean_pool: np.ndarray  # (n, 753): the mid end's features averaged over the patch's frames
    max_pool: np.ndarray  # (n, 753)


@dataclass(frozen=True)
class SignalTags:
    """A whole signal tagged: per-patch probabilities (n, 50) and their mean over the patches."""

    tags: tuple[str, ...]
    patch_probabilities: np.ndarray
    mean: np.ndarray

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable tags of the mean, most probable first."""
        order = np.argsort(-self.mean, kind="stable")[:k]
        return [(self.tags[i], float(self.mean[i])) for i in order]


class Tagger:
    """A loaded musicnn model. Forward passes run at ``threads`` torch threads, whatever the caller's
    setting, so results do not depend on the process's thread count."""

    def __init__(self, name: str, model: Musicnn, threads: int = 1):
        self.name, self.model, self.threads = name, model, threads
        self.tags = VOCABULARIES[name]

    def patches(self, audio_16k: np.ndarray, hop_frames: int = frontend.PATCH_FRAMES) -> np.ndarray:
        """(n, 187, 96) float32 log-mel patches of 16 kHz mono audio (n = 0 below 3 s)."""
        with torch_threads(self.threads):
            spectrogram = frontend.log_mel(audio_16k)
        return frontend.cut_patches(spectrogram, hop_frames)

    def forward(self, patches: np.ndarray) -> TaggerOutput:
        """Probabilities and features of (n, frames, 96) patches, computed one patch at a time:
        one patch per pass is the fastest on one thread (measured), and it makes each patch's
        numbers independent of the others (vectorised kernels round a tensor's tail differently)."""
        x = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
        if x.ndim != 3 or x.shape[2] != frontend.N_MELS:
            raise ValueError(f"patches must be (n, frames, {frontend.N_MELS}), got {tuple(x.shape)}")
        rows = []
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, len(x), BATCH_PATCHES):
                out = self.model(x[start:start + BATCH_PATCHES])
                rows.append((torch.sigmoid(out.logits), out.penultimate, out.mean_pool, out.max_pool))
        if not rows:
            return TaggerOutput(*(np.zeros((0, d), np.float32) for d in (len(self.tags), *EMBEDDINGS.values())))
        return TaggerOutput(*(torch.cat(parts).numpy() for parts in zip(*rows)))

    def probabilities(self, patches: np.ndarray) -> np.ndarray:
        """(n, 50) float32 sigmoid tag probabilities, in ``self.tags`` order."""
        return self.forward(patches).probabilities

    def embeddings(self, patches: np.ndarray, layer: str = "penultimate") -> np.ndarray:
        """(n, d) float32 features: ``penultimate`` (200), ``mean_pool`` or ``max_pool`` (753)."""
        if layer not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {layer!r}; known: {sorted(EMBEDDINGS)}")
        return getattr(self.forward(patches), layer)

    def tag_signal(self, y: np.ndarray, sample_rate: int) -> SignalTags:
        """Tag a whole mono signal at any rate: resampled to 16 kHz, non-overlapping 3 s patches."""
        patches = self.patches(frontend.resample_to_16k(y, sample_rate))
        if len(patches) == 0:
            raise ValueError("signal shorter than one 3 s patch")
        probs = self.probabilities(patches)
        return SignalTags(self.tags, probs, probs.mean(axis=0))


@functools.lru_cache(maxsize=None)
def _load_model(name: str) -> Musicnn:
    return load_weights(Musicnn(len(VOCABULARIES[name])), Checkpoint(checkpoint_prefix(name)).read_all())


def load_tagger(name: str = "MTT_musicnn", threads: int = 1) -> Tagger:
    """The tagger ``name`` (``MTT_musicnn`` or ``MSD_musicnn``); its weights load once per process."""
    return Tagger(name, _load_model(known(name)), threads)
