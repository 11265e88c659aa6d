"""Musical descriptors: one frame-level analysis per song, then cheap per-clip aggregation.

:func:`analyze` resamples once and takes ONE STFT (n_fft 2048, hop 512); every frame feature
(level, centroid, chroma, onset strength) derives from that spectrogram, which is computed and
reduced ``CHUNK_FRAMES`` frames at a time so that a long song never holds all of it. :func:`clip_descriptors`
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
- percussive_ratio: percussive share of the mel energy after a moving-average variant of HPSS
  (Fitzgerald 2010) on the mel spectrogram (128 bands, cheap), soft masks; 0 for silence.
- loudness_trend_db: slope of a line fitted to the frame levels (dB, audible frames only),
  times the clip length: the level change across the clip (+ building, - fading).
- harmonic_change_rate: chord changes per second: the clip's chroma averaged over
  ``CHORD_BLOCK_S`` blocks; a change is a local peak of the cosine distance between neighbouring
  blocks above ``CHORD_CHANGE``.
- noisiness: spectral flatness (geometric / arithmetic mean) of the mel power per frame, averaged
  with frame-energy weights: about 0.5-1 for noise, near 0 for clear tones; 0 for silence.
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
from scipy.ndimage import uniform_filter1d

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
# Spectrogram frames analysed at once: ~95 s at 22.05 kHz, so a 45 s DEAM excerpt is one chunk.
CHUNK_FRAMES = 4096
HPSS_KERNEL = 17  # smoothing length in frames (harmonic) and mel bands (percussive)
CHORD_BLOCK_S = 0.5
CHORD_CHANGE = 0.15  # cosine distance between neighbouring chroma blocks that counts as a change
AUDIBLE_DB = -60.0  # frames quieter than this (relative to the clip's loudest) do not shape the trend
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
    percussive: np.ndarray  # per-frame percussive mel energy
    harmonic: np.ndarray  # per-frame harmonic mel energy
    flatness: np.ndarray  # per-frame spectral flatness of the mel power

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
    """Mel filterbank, FFT bin frequencies and Hann power-normaliser (built once per rate), in
    float64 for :func:`_product32`."""
    mel = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, dtype=np.float64)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    # one-sided spectrum -> frame mean-square: bins 1..N/2-1 stand for two, and dividing by
    # N * sum(w^2) makes a stationary signal's value its own mean-square (Parseval).
    weights = np.full(len(freqs), 2.0)
    weights[0] = weights[-1] = 1.0
    window = librosa.filters.get_window("hann", N_FFT, fftbins=True)
    return mel, freqs, weights / (N_FFT * float(np.sum(window**2)))


def analyze(x: np.ndarray, sample_rate: int, analysis_sr: int = 22050) -> SongAnalysis:
    """Frame features of a whole mono song; resamples to ``analysis_sr`` once, one STFT.

    The spectrogram is taken ``CHUNK_FRAMES`` frames at a time and reduced to the per-frame
    features at once, so memory grows with a song's length by those features and their working
    arrays (about 2 KB per frame), not by the spectrogram and its copies (about 40 KB per frame:
    1.3 GB for a 9-minute song). Chroma needs the song's tuning, known only after every frame: a
    song longer than one chunk takes its STFT twice. The spectrogram's products with filterbanks
    are summed in float64 and rounded to float32 (:func:`_product32`), so the features are the same
    whatever the chunking, the BLAS kernel and its thread count (``tests/pipeline/test_descriptors.py``).
    """
    y = np.asarray(x, dtype=np.float32)
    if sample_rate != analysis_sr:
        y = soxr.resample(y, sample_rate, analysis_sr, quality="HQ")
    if len(y) == 0:
        raise ValueError("cannot analyse an empty signal")
    mel_fb, freqs, ms_weights = _filters(analysis_sr)
    chunks = _frame_chunks(1 + len(y) // HOP)  # frame count as librosa.stft(center=True)
    ms, centroid, mel, peaks, power, audible = [], [], [], [], None, False
    for f0, f1 in chunks:
        mag = np.abs(_stft_frames(y, f0, f1))
        power = mag**2
        power64 = power.astype(np.float64)
        ms.append(_product32(ms_weights, power64))
        centroid.append(_product32(freqs, mag.astype(np.float64)) / np.maximum(mag.sum(axis=0), 1e-10))
        mel.append(_product32(mel_fb, power64))
        peaks.append(_pitch_peaks(power, analysis_sr))
        audible = audible or bool(np.any(power > 1e-10))
    tuning = _tuning(peaks) if audible else 0.0
    if len(chunks) == 1:  # the chunk's power spectrogram is still at hand
        chroma = _chroma(power64, analysis_sr, tuning)
    else:  # a second pass, now that the tuning is known
        chroma = np.concatenate([
            _chroma((np.abs(_stft_frames(y, f0, f1)) ** 2).astype(np.float64), analysis_sr, tuning)
            for f0, f1 in chunks], axis=1)
    mel = np.concatenate(mel, axis=1)
    mel_db = librosa.power_to_db(mel)
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=analysis_sr, hop_length=HOP)
    percussive, harmonic = _hpss_energy(mel)
    return SongAnalysis(analysis_sr, HOP, len(y) / analysis_sr, np.concatenate(ms).astype(np.float64),
                        np.concatenate(centroid).astype(np.float64), chroma, onset_env, tuning,
                        percussive, harmonic, _flatness(mel))


def _product32(a64: np.ndarray, b64: np.ndarray) -> np.ndarray:
    """``a @ b`` in float32 that does not depend on the BLAS kernel or its thread count.

    A float32 BLAS product sums in an order set by the kernel the CPU selects and by how the work
    is split between threads, so its last bits change with both (seen: 7.5e-9 in onset strength
    with OpenBLAS's Haswell kernel). Summed in float64, the orders differ by ~1e-16 relative, far
    below float32's 6e-8 step: rounded to float32, every order gives the same value (a difference
    survives only for a sum within 1e-16 of a float32 rounding boundary, about one in 10^8).
    """
    return (a64 @ b64).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _chroma_filters(sr: int, tuning: float) -> np.ndarray:
    return librosa.filters.chroma(sr=sr, n_fft=N_FFT, tuning=tuning).astype(np.float64)


def _chroma(power64: np.ndarray, sr: int, tuning: float) -> np.ndarray:
    """``librosa.feature.chroma_stft(S=power, sr=sr, tuning=tuning)``, its product kernel-independent."""
    return librosa.util.normalize(_product32(_chroma_filters(sr, tuning), power64), norm=np.inf, axis=-2)


def _frame_chunks(n_frames: int) -> list[tuple[int, int]]:
    """``(first, end)`` frame ranges of at most ``CHUNK_FRAMES`` covering ``n_frames`` frames."""
    return [(f, min(f + CHUNK_FRAMES, n_frames)) for f in range(0, n_frames, CHUNK_FRAMES)]


def _stft_frames(y: np.ndarray, f0: int, f1: int) -> np.ndarray:
    """Frames ``f0 <= k < f1`` of ``librosa.stft(y, n_fft=N_FFT, hop_length=HOP)`` (centred,
    zero-padded), computed from the samples those frames cover only."""
    lo, hi = f0 * HOP - N_FFT // 2, (f1 - 1) * HOP + N_FFT // 2  # sample span, in y's coordinates
    seg = y[max(lo, 0):min(hi, len(y))]
    if lo < 0 or hi > len(y):
        seg = np.pad(seg, (max(0, -lo), max(0, hi - len(y))))
    return librosa.stft(seg, n_fft=N_FFT, hop_length=HOP, center=False)


def _hpss_energy(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame percussive and harmonic energy: smoothing across time (harmonic: steady in time)
    and across bands (percussive: broadband and brief), then soft masks (power 4: sharper than Wiener's 2, which lets sustained chords leak).

    Fitzgerald's HPSS uses median filters; moving averages separate the same extremes (tones,
    clicks; noise splits evenly) at a hundredth of the cost, which keeps descriptors fast."""
    scale = max(float(mel.max()), 1e-30)  # the masks are scale-free; this keeps the 4th powers in range
    half, n = HPSS_KERNEL // 2, mel.shape[1]
    percussive, harmonic = [], []
    # By chunks of frames, each with the neighbours its time smoothing reads (float64 working
    # arrays are 6x the mel spectrogram); one chunk is the whole-song computation itself.
    for f0, f1 in _frame_chunks(n):
        lo, hi = max(0, f0 - half), min(n, f1 + half)
        m = mel[:, lo:hi].astype(np.float64)
        h = uniform_filter1d(m / scale, HPSS_KERNEL, axis=1, mode="nearest")[:, f0 - lo:f1 - lo]
        m = m[:, f0 - lo:f1 - lo]
        p = uniform_filter1d(m / scale, HPSS_KERNEL, axis=0, mode="nearest")
        h4, p4 = (h * h) ** 2, (p * p) ** 2
        total = np.maximum(h4 + p4, 1e-300)
        percussive.append((m * p4 / total).sum(axis=0))
        harmonic.append((m * h4 / total).sum(axis=0))
    return np.concatenate(percussive), np.concatenate(harmonic)


def _flatness(mel: np.ndarray) -> np.ndarray:
    def chunk(m: np.ndarray) -> np.ndarray:
        m = np.maximum(m, 1e-20)
        return (np.exp(np.log(m).mean(axis=0)) / m.mean(axis=0)).astype(np.float64)

    return np.concatenate([chunk(mel[:, f0:f1]) for f0, f1 in _frame_chunks(mel.shape[1])])


def _pitch_peaks(power: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, magnitude) of every spectral peak librosa's tuning estimate considers, in some frames.

    ``piptrack`` works frame by frame, so peaks gathered chunk by chunk are those of the song.
    """
    pitch, mag = librosa.piptrack(S=power, sr=sr)
    found = pitch > 0
    return pitch[found], mag[found]


def _tuning(peaks: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Deviation from A440 in fractions of a chroma bin, estimated once for the whole song: what
    ``librosa.estimate_tuning(S=power, bins_per_octave=12)`` returns, from the song's peaks."""
    pitch = np.concatenate([p for p, _ in peaks])
    mag = np.concatenate([m for _, m in peaks])
    if len(pitch) == 0:
        return 0.0
    with warnings.catch_warnings():  # no pitched peaks (noise, clicks): librosa warns, returns 0
        warnings.filterwarnings("ignore", message="Trying to estimate tuning")
        return float(librosa.pitch_tuning(pitch[mag >= np.median(mag)], bins_per_octave=12))


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
    out.update(_texture(a, sl, ms, seconds))
    # As stored (float32 columns): every reader, the captioners in the pipeline included, then sees the
    # same values (1.4999999999999998 onsets/s is 1.5 in the table, on the other side of a band edge).
    return {k: out[k] if isinstance(out[k], str) else float(np.float32(out[k])) for k in DESCRIPTOR_FIELDS}


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


def _texture(a: SongAnalysis, sl: slice, ms: np.ndarray, seconds: float) -> dict:
    """percussive_ratio, loudness_trend_db, harmonic_change_rate and noisiness of a clip."""
    perc, harm = a.percussive[sl].sum(), a.harmonic[sl].sum()
    total = ms.sum()
    return {"percussive_ratio": float(perc / (perc + harm)) if perc + harm > 0 else 0.0,
            "loudness_trend_db": _trend(ms, a.sr / a.hop, seconds),
            "harmonic_change_rate": _chord_changes(a.chroma[:, sl], ms, a.sr / a.hop) / max(seconds, 1e-9),
            "noisiness": float(a.flatness[sl] @ ms / total) if total > 0 else 0.0}


def _trend(ms: np.ndarray, frame_rate: float, seconds: float) -> float:
    db = 10.0 * np.log10(ms + 1e-30)
    keep = db > max(db.max() + AUDIBLE_DB, DB_FLOOR)
    if keep.sum() < 2:
        return 0.0
    t = np.flatnonzero(keep) / frame_rate
    slope = np.polyfit(t, db[keep], 1)[0]
    return float(slope * seconds)


def _chord_changes(chroma: np.ndarray, ms: np.ndarray, frame_rate: float) -> int:
    size = max(1, int(round(CHORD_BLOCK_S * frame_rate)))
    n = chroma.shape[1] // size
    if n < 2:
        return 0
    w = ms[:n * size].reshape(n, size)
    blocks = np.einsum("cnk,nk->nc", chroma[:, :n * size].reshape(12, n, size), w)
    audible = w.sum(axis=1) > 1e-10
    norms = np.linalg.norm(blocks, axis=1)
    unit = blocks / np.maximum(norms, 1e-20)[:, None]
    dist = 1.0 - np.einsum("nc,nc->n", unit[1:], unit[:-1])
    dist[~(audible[1:] & audible[:-1])] = 0.0
    padded = np.concatenate([[0.0], dist, [0.0]])
    peaks = (dist > CHORD_CHANGE) & (dist >= padded[:-2]) & (dist > padded[2:])
    return int(peaks.sum())


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
