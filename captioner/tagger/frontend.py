"""musicnn's input: log-compressed mel spectrogram of 16 kHz mono, cut into 3 s patches.

As musicnn 0.1.0's ``extractor.batch_data``: ``librosa.feature.melspectrogram`` with its defaults
(periodic Hann window, centred frames with zero padding, power 2, Slaney mel filterbank) at 16 kHz,
512-point STFT, hop 256, 96 bands; ``log10(1 + 10000 * mel)``; patches of 187 frames (3 s), the
last partial patch dropped. One difference, deliberately: the original casts the mel spectrogram
to float16 first, and ``10000 * mel`` overflows float16 (max 65,504) wherever a band exceeds 6.55,
so loud music reached the network as infinities. Here everything stays float32.
"""
from __future__ import annotations

import functools

import librosa
import numpy as np
import soxr
import torch

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 512, 256, 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1, as the extractor computes it
LOG_GAIN = 10000.0


@functools.lru_cache(maxsize=1)
def _mel_basis() -> torch.Tensor:
    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS))


@functools.lru_cache(maxsize=1)
def _window() -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)


def resample_to_16k(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz (soxr HQ, as the pipeline and ``librosa.load`` resample)."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {y.shape}")
    if sample_rate == SAMPLE_RATE:
        return y
    return soxr.resample(y, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def mel_power(y_16k: np.ndarray) -> np.ndarray:
    """(frames, 96) float32 mel power spectrogram of 16 kHz mono audio (librosa's defaults)."""
    y = torch.from_numpy(np.ascontiguousarray(y_16k, dtype=np.float32))
    spec = torch.stft(y, N_FFT, hop_length=HOP, window=_window(), center=True, pad_mode="constant",
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (1 + n_fft/2, frames)
    return (_mel_basis() @ power).T.contiguous().numpy()


def log_compress(mel: np.ndarray) -> np.ndarray:
    """musicnn's ``log10(1 + 10000 * mel)``, in float32."""
    return np.log10(np.float32(1.0) + np.float32(LOG_GAIN) * mel.astype(np.float32, copy=False))


def log_mel(y_16k: np.ndarray) -> np.ndarray:
    """(frames, 96) float32 network input of 16 kHz mono audio, before cutting into patches."""
    return log_compress(mel_power(y_16k))


def grid_size(n_samples: int) -> int:
    """How many whole patches ``cut_patches(log_mel(y))`` gives for ``n_samples`` samples of 16 kHz audio."""
    return (1 + n_samples // HOP) // PATCH_FRAMES  # centred frames, as librosa counts them


def grid_patches(y_16k: np.ndarray, first: int, count: int) -> np.ndarray:
    """(count, 187, 96) patches ``first .. first + count - 1`` of ``cut_patches(log_mel(y_16k))``,
    computed from the samples those patches cover only (the song's other patches are not computed)."""
    if count <= 0 or first < 0 or first + count > grid_size(len(y_16k)):
        raise ValueError(f"patches {first}..{first + count - 1} are outside the song's {grid_size(len(y_16k))}")
    lo = first * PATCH_FRAMES * HOP - N_FFT // 2  # frame j is centred on sample j * HOP
    hi = ((first + count) * PATCH_FRAMES - 1) * HOP + N_FFT // 2
    seg = np.asarray(y_16k[max(lo, 0):min(hi, len(y_16k))], dtype=np.float32)
    seg = np.pad(seg, (max(0, -lo), max(0, hi - len(y_16k))))  # the zeros centring pads with
    spec = torch.stft(torch.from_numpy(seg), N_FFT, hop_length=HOP, window=_window(), center=False,
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()
    mel = (_mel_basis() @ power).T.contiguous().numpy()
    return log_compress(mel).reshape(count, PATCH_FRAMES, N_MELS)


def cut_patches(spectrogram: np.ndarray, hop_frames: int = PATCH_FRAMES) -> np.ndarray:
    """(n, 187, 96) patches starting every ``hop_frames`` frames; a partial last one is dropped."""
    n = 0 if len(spectrogram) < PATCH_FRAMES else 1 + (len(spectrogram) - PATCH_FRAMES) // hop_frames
    if n == 0:
        return np.zeros((0, PATCH_FRAMES, spectrogram.shape[1]), dtype=np.float32)
    starts = np.arange(n) * hop_frames
    return np.stack([spectrogram[s:s + PATCH_FRAMES] for s in starts]).astype(np.float32, copy=False)
