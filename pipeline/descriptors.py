"""Musical descriptors: one frame-level analysis per song, then cheap per-clip aggregation.

:func:`analyze` resamples once and takes ONE STFT (n_fft 2048, hop 512); every frame feature
(level, centroid, chroma, onset strength) derives from that spectrogram. :func:`clip_descriptors`
slices those frames for a clip window and aggregates them; only tempo, beats and onsets run per
clip, on the clip's slice of the onset envelope (cheap). Clips of one song overlap heavily
(10 s every 5/3 s: 13 clips cover a 30 s span 4.3 times), so the spectral work is done once
instead of per clip (``tests/benchmarks/bench_descriptors.py`` measures the gain), and the values
equal those of each clip analysed alone up to window-edge frames (``tests/pipeline`` checks).

Definitions (the keys are ``dataset_card.schema.DESCRIPTOR_FIELDS``):

- loudness_db: RMS level of the clip in dBFS, i.e. 10*log10 of the mean frame mean-square
  (Hann-weighted frames, so a full-scale sine reads -3.01 dB), floored at ``DB_FLOOR``.
- dynamic_range_db: 95th minus 5th percentile of the frame levels (dB, each floored at DB_FLOOR).
- brightness: spectral centroid in Hz, averaged over frames weighted by frame energy (quiet
  frames, whose centroid is noise, count little); 0.0 for a silent clip.
- onset_rate: detected onsets per second; tempo_bpm: librosa's tempo of the clip's onset
  envelope; beat_strength: mean onset strength on tracked beats / mean onset strength.
- key/mode/key_strength: Krumhansl-Schmuckler: the energy-weighted mean chroma of the clip
  correlated with the 24 rotated major/minor profiles; the best one wins.
- Clips with fewer than ``MIN_PULSE_ONSETS`` onsets (silence, steady tones, noise: see
  ``ONSET_SCALE``) have no pulse: tempo_bpm 0.0, beat_strength 1.0. Clips without pitch content
  (silence) get key "C", mode "major", key_strength 0.0. Every value is finite.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import librosa
import numpy as np
import soxr

from dataset_card.schema import DESCRIPTOR_FIELDS

N_FFT = 2048
HOP = 512
N_MELS = 128
DB_FLOOR = -100.0  # dBFS; below 16-bit dither, so digital silence reads as this, not -inf
# Onset envelopes are mean positive dB rises per frame across mel bands, so they do not scale with
# level: noise at -95 dBFS has the same envelope as noise at -15. Onsets are therefore picked on
# the envelope divided by max(its peak, ONSET_SCALE), not by its own peak: librosa's threshold
# (0.07) becomes at least 1.4 dB over the local mean, which the fluctuations of noise and steady
# tones (envelope ~1 dB, p99 ~1.2) do not reach, while drums and clicks (peaks 25-45) keep
# librosa's usual relative threshold.
ONSET_SCALE = 20.0
# A tempo needs a few events to repeat: with fewer onsets in a clip (a sound starting, a chord
# change every few seconds) the autocorrelation only returns its prior (~120 BPM).
MIN_PULSE_ONSETS = 4
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class SongAnalysis:
    """Frame-level features of a whole song, computed once by :func:`analyze`.

    Frame ``k`` is centred at ``k * hop / sr`` seconds. ``ms`` is the frame mean-square
    (Hann-weighted), ``centroid`` in Hz, ``chroma`` (12, frames) max-normalised per frame,
    ``onset_env`` librosa's onset strength (mel of the same spectrogram).
    """

    sr: int
    hop: int
    duration_s: float
    ms: np.ndarray
    centroid: np.ndarray
    chroma: np.ndarray
    onset_env: np.ndarray
    tuning: float

    @property
    def n_frames(self) -> int:
        return len(self.ms)

    def frames(self, start_s: float, end_s: float) -> slice:
        """Frames whose centres fall in [start_s, end_s)."""
        rate = self.sr / self.hop
        lo = int(np.ceil(start_s * rate - 1e-6))
        hi = int(np.ceil(end_s * rate - 1e-6))
        return slice(max(0, lo), min(self.n_frames, hi))


@functools.lru_cache(maxsize=8)
def _filters(sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mel filterbank, FFT bin frequencies and Hann power-normaliser (built once per rate)."""
    mel = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT).astype(np.float32)
    # one-sided spectrum -> frame mean-square: bins 1..N/2-1 stand for two, and dividing by
    # N * sum(w^2) makes a stationary signal's value its own mean-square (Parseval).
    weights = np.full(len(freqs), 2.0, dtype=np.float32)
    weights[0] = weights[-1] = 1.0
    window = librosa.filters.get_window("hann", N_FFT, fftbins=True)
    return mel, freqs, weights / (N_FFT * float(np.sum(window**2)))


def analyze(x: np.ndarray, sample_rate: int, analysis_sr: int = 22050) -> SongAnalysis:
    """Frame features of a whole mono song; resamples to ``analysis_sr`` once, one STFT."""
    y = np.asarray(x, dtype=np.float32)
    if sample_rate != analysis_sr:
        y = soxr.resample(y, sample_rate, analysis_sr, quality="HQ")
    if len(y) == 0:
        raise ValueError("cannot analyse an empty signal")
    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = mag**2
    mel_fb, freqs, ms_weights = _filters(analysis_sr)
    ms = ms_weights @ power
    centroid = (freqs @ mag) / np.maximum(mag.sum(axis=0), 1e-10)
    tuning = _tuning(power, analysis_sr)
    chroma = librosa.feature.chroma_stft(S=power, sr=analysis_sr, tuning=tuning)
    mel_db = librosa.power_to_db(mel_fb @ power)
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=analysis_sr, hop_length=HOP)
    return SongAnalysis(analysis_sr, HOP, len(y) / analysis_sr, ms.astype(np.float64),
                        centroid.astype(np.float64), chroma, onset_env, tuning)


def _tuning(power: np.ndarray, sr: int) -> float:
    """Deviation from A440 in fractions of a chroma bin, estimated once for the whole song."""
    if not np.any(power > 1e-10):
        return 0.0
    with warnings.catch_warnings():  # no pitched peaks (noise, clicks): librosa warns, returns 0
        warnings.filterwarnings("ignore", message="Trying to estimate tuning")
        return float(librosa.estimate_tuning(S=power, sr=sr, bins_per_octave=12))


def clip_descriptors(a: SongAnalysis, start_s: float, end_s: float) -> dict:
    """Descriptors of the clip ``[start_s, end_s)``: keys exactly ``DESCRIPTOR_FIELDS``."""
    sl = a.frames(start_s, end_s)
    if sl.stop <= sl.start:
        raise ValueError(f"clip [{start_s}, {end_s}) s has no frames in a {a.duration_s:.2f} s song")
    ms, env = a.ms[sl], a.onset_env[sl]
    out = {**_level(ms), "brightness": _brightness(a.centroid[sl], ms)}
    seconds = min(end_s, a.duration_s) - max(start_s, 0.0)  # the part of the window with audio
    out.update(_rhythm(env, a.sr, a.hop, seconds))
    out.update(_key(a.chroma[:, sl], ms))
    return {k: out[k] for k in DESCRIPTOR_FIELDS}  # KeyError here means the schema moved on


def _level(ms: np.ndarray) -> dict:
    frame_db = np.maximum(10.0 * np.log10(ms + 1e-30), DB_FLOOR)
    p5, p95 = np.percentile(frame_db, [5, 95])
    return {"loudness_db": float(max(10.0 * np.log10(ms.mean() + 1e-30), DB_FLOOR)),
            "dynamic_range_db": float(p95 - p5)}


def _brightness(centroid: np.ndarray, ms: np.ndarray) -> float:
    total = ms.sum()
    return float(centroid @ ms / total) if total > 0 else 0.0


def _rhythm(env: np.ndarray, sr: int, hop: int, seconds: float) -> dict:
    scaled = env / max(float(env.max()), ONSET_SCALE)
    onsets = librosa.onset.onset_detect(onset_envelope=scaled, sr=sr, hop_length=hop, normalize=False)
    rate = len(onsets) / seconds
    if len(onsets) < MIN_PULSE_ONSETS:  # no pulse to speak of (silence, steady tones, noise)
        return {"tempo_bpm": 0.0, "beat_strength": 1.0, "onset_rate": rate}
    tempo = _tempo(env, sr, hop)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, bpm=tempo)
    mean_env = float(env.mean())
    strength = float(env[beats].mean() / mean_env) if len(beats) and mean_env > 0 else 1.0
    return {"tempo_bpm": tempo, "beat_strength": strength, "onset_rate": rate}


def _tempo(env: np.ndarray, sr: int, hop: int) -> float:
    """librosa's tempo estimate, refined between autocorrelation lags.

    librosa picks a whole lag of the onset autocorrelation: at hop 512 / 22050 Hz a true
    120 BPM reads 117.5 or 123.0. A parabola through the peak and its two neighbours recovers
    the fractional lag (120 BPM clicks read 120 +- 0.5).
    """
    win = int(librosa.time_to_frames(8.0, sr=sr, hop_length=hop))
    tg = librosa.feature.tempogram(onset_envelope=env, sr=sr, hop_length=hop, win_length=win)
    tg = tg.mean(axis=1, keepdims=True)
    tempo = float(librosa.feature.tempo(tg=tg, sr=sr, hop_length=hop, aggregate=None)[0])
    bpms = librosa.tempo_frequencies(win, hop_length=hop, sr=sr)
    lag = int(np.argmin(np.abs(bpms - tempo)))
    if 1 <= lag < win - 1:
        left, mid, right = tg[lag - 1, 0], tg[lag, 0], tg[lag + 1, 0]
        curvature = left - 2 * mid + right
        if curvature < 0:
            shift = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
            tempo = 60.0 * sr / (hop * (lag + shift))
    return tempo


@functools.lru_cache(maxsize=1)
def _profiles() -> np.ndarray:
    """(24, 12) z-scored key profiles: rows 0-11 major on C..B, 12-23 minor on C..B."""
    rows = [np.roll(p, k) for p in (_MAJOR, _MINOR) for k in range(12)]
    z = np.array(rows)
    return (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, keepdims=True)


def _key(chroma: np.ndarray, ms: np.ndarray) -> dict:
    total = ms.sum()
    mean = chroma @ ms / total if total > 0 else chroma.mean(axis=1)
    if not np.isfinite(mean).all() or mean.std() < 1e-9:
        return {"key": "C", "mode": "major", "key_strength": 0.0}
    z = (mean - mean.mean()) / mean.std()
    corr = _profiles() @ z / 12.0
    best = int(np.argmax(corr))
    return {"key": KEY_NAMES[best % 12], "mode": "major" if best < 12 else "minor",
            "key_strength": float(corr[best])}
