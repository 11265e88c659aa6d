"""The fixed inputs on which the musicnn port is compared with the original (TensorFlow) musicnn.

Imported both by the tests and by ``make_musicnn_reference.py``, which runs in a throwaway
TensorFlow environment: so it needs numpy and ``tests.audiogen`` only, nothing of the project.
"""
from __future__ import annotations

import numpy as np

from tests import audiogen as g

SR = 16000
PATCH_FRAMES, N_MELS = 187, 96


def random_patches() -> np.ndarray:
    """Two (187, 96) patches of seeded uniform noise over the range real log-mel inputs span."""
    return np.random.default_rng(2021).uniform(0.0, 3.5, (2, PATCH_FRAMES, N_MELS)).astype(np.float32)


def signals() -> dict[str, np.ndarray]:
    """Generated 16 kHz signals, quiet enough that no mel band reaches float16's overflow (6.55)."""
    return {
        "chords": g.progression(g.C_MAJOR_PROGRESSION, 1.0, SR, amp=0.3, harmonics=8),
        "clicks_noise": g.click_track(100.0, 4.0, SR, amp=0.3) + g.noise(4.0, SR, amp=0.02, seed=3),
    }


def quiet_song() -> np.ndarray:
    """12.5 s of the music-like test song at a tenth of its level: four patches for the extractor."""
    return (0.1 * g.music_like_song(12.5, SR, bpm=110.0, seed=4)).astype(np.float32)
