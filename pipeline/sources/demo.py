"""The built-in ``demo`` source: synthetic songs and images whose content follows known VA.

What ``make run`` processes by default, and what the MMVA model is first trained on, so the
valence/arousal (VA) -> content mapping is deliberately clear yet music-like:

Songs (:func:`synthesize_song`) first draw a smooth VA trajectory (2 Hz, like DEAM's per-second
annotations; one of four VA quadrants per song plus a few sections and a slow random walk), then
render the audio bar by bar, each bar from the VA at its middle:

=========  ==========================================================================
arousal    tempo 60..170 BPM (a soft bass pulse on every beat keeps slow tempos from being
           heard double); melody notes per bar 2..14, fewer off-beats when calm (onset rate
           ~1..8 /s); master gain -27..-9 dB; shorter plucks; louder bass in eighths; kick,
           snare and hi-hat fade in from arousal ~0.35/0.45/0.5; brighter harmonics
valence    share of major chords in a tonic-centred progression over a tonic drone (all minor
           below 0.12, all major above 0.88, a mixture between: mostly major above 0.5);
           pad and melody register +20 semitones from 0 to 1; brighter harmonics and drum
           kit; below 0.45 an in-scale semitone clash and a detuned (beating) pad
=========  ==========================================================================

Every note and drum hit has an attack/release envelope, notes take their phase from absolute
time and chords of consecutive sections overlap by their release, so boundaries do not click.
Levels use one fixed gain mapping (no per-song normalisation) and a soft limiter keeps peaks
below 1.

Songs are spread evenly over the four VA quadrants and their ids are chosen so that the
train/validation/test splits (a hash of the song id) all get songs (:func:`demo_song_plan`).

Images (:func:`synthesize_image`): hue runs from blue/grey (low valence) to warm yellow/orange
(high valence) and brightness rises with valence; saturation, contrast, the number and sharpness
of shapes and high-frequency texture rise with arousal; random shapes and noise give variety.

Everything is deterministic from ``(id, seed)``: the same call gives bit-identical samples/pixels.
:class:`DemoSource` writes the files once into ``<cache_dir>/demo-src/v1-seed<seed>/`` (reruns
reuse them) and serves songs as ``file://`` URLs so they take the same download path real URLs do.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from pipeline.ids import check_id, split_of
from pipeline.sources.base import SourceItems, register
from pipeline.types import ImageTask, SongTask, VACurve

SYNTH_RATE = 44100  # songs are always synthesised (and written) at this rate
CURVE_PERIOD_S = 0.5  # 2 Hz VA samples, like DEAM's dynamic annotations
ANNOTATION_START_S = 5.0  # first annotated time (DEAM: 15 s)
DEMO_VERSION = "v1"  # bump when the synthesis changes: files live in demo-src/<version>-seed<n>/
LICENSE = "CC0-1.0 (synthetic)"

# Quadrant q: bit 0 -> high valence, bit 1 -> high arousal (0: sad, 1: calm, 2: angry, 3: happy).
_QUADRANT_CENTRES = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from a stable hash of ``parts`` (never Python's salted ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, linear between."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


# ----------------------------------------------------------------------------- VA trajectories


def va_trajectory(
    song_id: str, seed: int, duration_s: float, quadrant: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth VA trajectory of a song from t = 0 at 2 Hz: ``(times_s, valence, arousal)`` in [0, 1].

    The song sits around the centre of VA ``quadrant`` (0..3, see ``_QUADRANT_CENTRES``; drawn
    from the id when None) with jitter, moves between 2-3 sections with their own offsets
    (smoothed over ~2 s) and drifts slowly (a smoothed random walk).
    """
    rng = _rng("demo-va", seed, song_id)
    q = int(rng.integers(4)) if quadrant is None else int(quadrant) % 4
    n = int(np.floor(duration_s / CURVE_PERIOD_S)) + 1
    times = np.arange(n) * CURVE_PERIOD_S
    centre = np.asarray(_QUADRANT_CENTRES[q]) + rng.normal(0.0, 0.06, 2)
    n_sections = int(rng.integers(2, 4))
    cuts = np.sort(rng.uniform(0.2, 0.8, n_sections - 1)) * duration_s
    offsets = rng.normal(0.0, 0.13, (n_sections, 2))
    offsets -= offsets.mean(axis=0)  # the song stays around its quadrant
    step = offsets[np.searchsorted(cuts, times)]
    step = gaussian_filter1d(step, sigma=4.0, axis=0, mode="nearest")
    walk = np.cumsum(rng.normal(0.0, 0.03, (n, 2)), axis=0)
    walk = gaussian_filter1d(walk, sigma=3.0, axis=0, mode="nearest")
    walk -= walk.mean(axis=0)
    va = np.clip(centre + step + walk, 0.03, 0.97)
    return times, va[:, 0], va[:, 1]


def _curve_from_trajectory(
    times: np.ndarray, valence: np.ndarray, arousal: np.ndarray, duration_s: float, start_s: float
) -> VACurve:
    """The annotated part of a trajectory: samples from ``start_s`` whose period ends in time."""
    keep = (times >= start_s - 1e-9) & (times + CURVE_PERIOD_S <= duration_s + 1e-9)
    if not keep.any():
        raise ValueError(
            f"a {duration_s:g} s song has no VA sample from {start_s:g} s: "
            f"use songs longer than annotation start + {CURVE_PERIOD_S:g} s"
        )
    return VACurve(
        times_s=tuple(round(float(t), 6) for t in times[keep]),
        valence=tuple(float(v) for v in valence[keep]),
        arousal=tuple(float(a) for a in arousal[keep]),
        period_s=CURVE_PERIOD_S,
    )


def song_va_curve(
    song_id: str,
    seed: int,
    duration_s: float,
    annotation_start_s: float = ANNOTATION_START_S,
    quadrant: int | None = None,
) -> VACurve:
    """The VA curve :func:`synthesize_song` returns for the same arguments, without the audio."""
    t, v, a = va_trajectory(song_id, seed, duration_s, quadrant)
    return _curve_from_trajectory(t, v, a, duration_s, annotation_start_s)


# ----------------------------------------------------------------------------- audio synthesis

_TABLE_BITS = 11
_TABLE_N = 1 << _TABLE_BITS
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord roots as scale degrees (a progression per song and mode, one chord per bar or half-bar).
# Tonic-centred (every progression starts on the tonic and has a dominant), so the key and mode
# stay unambiguous; minor uses the major V of harmonic minor, never the relative-major cadences.
_MAJOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4))  # I-IV-V-I, I-vi-IV-V, I-IV-I-V
_MINOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4))  # i-iv-V-i, i-VI-iv-V, i-iv-i-V


def _midi_hz(m: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _chord_pcs(tonic: int, minor: bool, degree: int) -> list[int]:
    """Pitch classes (root, third, fifth) of the triad on scale ``degree``; minor's V is major."""
    scale = _MINOR if minor else _MAJOR
    pcs = [scale[(degree + k) % 7] for k in (0, 2, 4)]
    if minor and degree == 4:  # harmonic minor: raised leading tone makes V major
        pcs[1] = 11
    return [(tonic + p) % 12 for p in pcs]


def _place(pc: int, low: float) -> int:
    """The lowest MIDI note of pitch class ``pc`` at or above ``low``."""
    lo = int(np.ceil(low))
    return lo + (pc - lo) % 12


class _Synth:
    """Renders one song into a float32 buffer by overlap-adding notes and drum hits."""

    def __init__(self, n_samples: int, sr: int, rng: np.random.Generator):
        self.sr = sr
        self.out = np.zeros(n_samples + sr, dtype=np.float32)  # one spare second of tails
        self._count = np.arange(len(self.out), dtype=np.uint32)  # shared sample counter
        self._time = self._count.astype(np.float32) / np.float32(sr)
        self.rng = rng
        self._tables: dict[tuple[float, int], np.ndarray] = {}
        self._kits = [self._make_kit(k / (self._KIT_LEVELS - 1)) for k in range(self._KIT_LEVELS)]

    # -- building blocks
    def table(self, rolloff: float, n_harm: int) -> np.ndarray:
        """One period of sum_k k^-rolloff sin(2 pi k x), k <= n_harm, peak-normalised."""
        key = (round(rolloff, 2), int(n_harm))
        tab = self._tables.get(key)
        if tab is None:
            k = np.arange(1, key[1] + 1)
            spec = np.zeros(_TABLE_N // 2 + 1, dtype=np.complex128)
            spec[1 : key[1] + 1] = -0.5j * _TABLE_N * k ** -key[0]
            tab = np.fft.irfft(spec, n=_TABLE_N)
            tab = (tab / np.abs(tab).max()).astype(np.float32)
            self._tables[key] = tab
        return tab

    def osc(
        self, freq: float, n: int, rolloff: float, max_harm: int, phase: float = 0.0
    ) -> np.ndarray:
        """Band-limited wavetable oscillator (harmonics kept below 0.45 * sr).

        A 32-bit fixed-point phase accumulator (uint32 arithmetic wraps around by itself) indexes
        the table (nearest of 2048 samples).
        """
        n_harm = int(max(1, min(max_harm, (0.45 * self.sr) // freq)))
        tab = self.table(rolloff, n_harm)
        acc = self._count[:n] * np.uint32(int(round(freq / self.sr * 2.0**32)) & 0xFFFFFFFF)
        acc += np.uint32(int(phase * 2.0**32) & 0xFFFFFFFF)
        acc >>= np.uint32(32 - _TABLE_BITS)
        return tab[acc]

    def add(self, start_s: float, sig: np.ndarray) -> None:
        s = int(round(start_s * self.sr))
        if s >= len(self.out):
            return
        sig = sig[: len(self.out) - s]
        self.out[s : s + len(sig)] += sig

    def note(
        self,
        start_s: float,
        dur_s: float,
        midi: float,
        gain: float,
        rolloff: float,
        max_harm: int,
        attack_s: float,
        decay_s: float | None,
        release_s: float,
    ) -> None:
        """A tone with linear attack, optional exponential decay and a raised-cosine release."""
        sr = self.sr
        n = min(max(int((dur_s + release_s) * sr), 8), len(self.out))
        freq = float(_midi_hz(midi))
        # Phase from absolute time: a pitch held across a chord change cross-fades in phase.
        sig = self.osc(freq, n, rolloff, max_harm, phase=(freq * start_s) % 1.0)
        n_att = min(n, max(int(attack_s * sr), 1))
        sig[:n_att] *= np.linspace(0.0, 1.0, n_att, endpoint=False, dtype=np.float32)
        if decay_s is not None:
            sig *= np.exp(self._time[:n] * np.float32(-1.0 / decay_s))
        n_hold = min(int(dur_s * sr), n)
        n_rel = n - n_hold
        if n_rel > 0:
            rel = np.cos(np.linspace(0.0, np.pi, n_rel, endpoint=False, dtype=np.float32))
            sig[n_hold:] *= np.float32(0.5) * (np.float32(1.0) + rel)
        sig *= np.float32(gain)
        self.add(start_s, sig)

    # -- drums (one kit per valence level, rendered once per song)
    _KIT_LEVELS = 5

    def kit(self, valence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kick, snare, hat) tuned to ``valence``: the whole kit gets brighter with valence."""
        return self._kits[int(round(np.clip(valence, 0.0, 1.0) * (self._KIT_LEVELS - 1)))]

    def _band_noise(self, n: int, centre_hz: float, octaves: float) -> np.ndarray:
        """Unit-RMS noise with a Gaussian band (in log frequency) around ``centre_hz``."""
        spec = np.fft.rfft(self.rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / self.sr), 1.0)
        spec *= np.exp(-0.5 * (np.log2(f / centre_hz) / octaves) ** 2)
        x = np.fft.irfft(spec, n=n)
        return x / (np.sqrt(np.mean(x**2)) + 1e-12)

    def _make_kit(self, v: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sr, bright = self.sr, 2.0 ** (1.6 * v)  # x3 in frequency from valence 0 to 1
        t = np.arange(int(0.25 * sr)) / sr
        freq = (45.0 + 90.0 * np.exp(-t / 0.03)) * (1.0 + 0.5 * v)
        kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.07)
        kick *= np.minimum(1.0, t / 0.002)
        t = t[: int(0.2 * sr)]
        body = 0.5 * np.sin(2 * np.pi * 160.0 * bright**0.5 * t) * np.exp(-t / 0.04)
        noise = 0.25 * self._band_noise(len(t), 1500.0 * bright, 1.2)
        snare = (noise * np.exp(-t / 0.05) + body) * np.minimum(1.0, t / 0.001)
        t = t[: int(0.06 * sr)]
        hat = 0.35 * self._band_noise(len(t), 3200.0 * bright, 0.6)
        hat *= np.exp(-t / 0.012) * np.minimum(1.0, t / 0.0005)
        return tuple(self._fade_out(x) for x in (kick, snare, hat))

    def _fade_out(self, x: np.ndarray, seconds: float = 0.005) -> np.ndarray:
        n = min(len(x), int(seconds * self.sr))
        x = x.astype(np.float32)
        x[len(x) - n :] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, n + 1) / n))
        return x


@dataclass
class _Bar:
    start_s: float
    beat_s: float
    valence: float
    arousal: float


def _bars(duration_s: float, times: np.ndarray, val: np.ndarray, aro: np.ndarray) -> list[_Bar]:
    """4/4 bars whose tempo (60..170 BPM) follows arousal at each bar's middle."""
    bars: list[_Bar] = []
    t = 0.0
    while t < duration_s:
        beat = 60.0 / (60.0 + 110.0 * float(np.interp(t, times, aro)))
        mid = t + 2.0 * beat
        a = float(np.interp(mid, times, aro))
        beat = 60.0 / (60.0 + 110.0 * a)
        bars.append(_Bar(t, beat, float(np.interp(t + 2.0 * beat, times, val)), a))
        t += 4.0 * beat
    return bars


@dataclass
class _SongState:
    """What carries over from bar to bar: key, progressions, chord counter, mode mixture, melody."""

    tonic: int
    progressions: dict[bool, tuple[int, ...]]  # keyed by "minor"
    chord_index: int = 0
    major_acc: float = 0.5  # error-diffusion accumulator of the major share
    melody: int = 67


def major_share(valence: float) -> float:
    """Share of chords in major: all minor below 0.12, all major above 0.88, mixed between."""
    return _ramp(valence, 0.12, 0.88)


def _render_bar(syn: _Synth, bar: _Bar, state: _SongState) -> None:
    """One 4/4 bar: drone, 1-2 chords (pad + melody + bass), drums; all from the bar's VA."""
    v = bar.valence
    bar_s = 4.0 * bar.beat_s
    # Tonic drone (root + fifth, low and soft): keeps the key unambiguous through mode changes.
    drone_fade = 0.15
    for m in (_place(state.tonic, 45.0), _place(state.tonic, 45.0) + 7):
        syn.note(bar.start_s, bar_s, m, 0.06, 3.0, 3, drone_fade, None, drone_fade)
    n_chords = 2 if bar_s > 2.4 else 1  # slow bars change chord every two beats
    for c in range(n_chords):
        # Mode mixture by error diffusion: a window's share of major chords follows valence.
        state.major_acc += major_share(v)
        minor = state.major_acc < 1.0
        if not minor:
            state.major_acc -= 1.0
        prog = state.progressions[minor]
        degree = prog[state.chord_index % len(prog)]
        state.chord_index += 1
        _render_chord(syn, bar, c, n_chords, minor, degree, state)
    _render_drums(syn, bar)


def _render_chord(syn: _Synth, bar: _Bar, c: int, n_chords: int, minor: bool, degree: int,
                  state: _SongState) -> None:
    """Chord ``c`` of ``n_chords`` in a bar: pad (+ clash when sad), melody and bass."""
    rng = syn.rng
    v, a = bar.valence, bar.arousal
    seg_s = 4.0 * bar.beat_s / n_chords
    start = bar.start_s + c * seg_s
    pcs = _chord_pcs(state.tonic, minor, degree)
    scale_pcs = [(state.tonic + p) % 12 for p in (_MINOR if minor else _MAJOR)]

    # Pad: sustained chord, register and brightness up with valence (and arousal); slow swell when
    # calm; consecutive chords overlap by the release, which cross-fades section boundaries.
    pad_low = 46.0 + 20.0 * v
    pad_gain = 0.16 * (1.0 - 0.15 * a)
    pad_roll = float(np.clip(2.8 - 0.7 * a - 0.9 * v, 0.9, 2.8))
    attack = 0.05 + 0.3 * (1.0 - a)
    release = 0.08 + 0.3 * (1.0 - a)
    detune = 0.12 * _ramp(0.5 - v, 0.0, 0.4)  # semitones; beating for low valence
    voices = [_place(pc, pad_low) for pc in pcs] + [_place(pcs[0], pad_low - 12.0)]
    for k, m in enumerate(voices):
        shift = detune * (1 if k % 2 else -1)
        syn.note(start, seg_s, m + shift, pad_gain, pad_roll, 10, attack, None, release)
    dissonance = _ramp(0.45 - v, 0.0, 0.35)
    clash = _clash_pc(state.tonic, pcs, scale_pcs)
    if dissonance > 0 and clash is not None:
        # Placed a semitone from the chord tone it rubs against.
        near = min((_place(p, pad_low) for p in pcs), key=lambda m: _pc_distance(m, clash))
        m = near + (1 if (clash - near) % 12 == 1 else -1)
        syn.note(start, seg_s, m, 0.7 * pad_gain * dissonance, pad_roll, 10, attack, None, release)

    # Melody: 2..14 plucked notes per bar on a 16th grid (strong positions first), chord tones on
    # eighths, register and brightness up with valence, shorter and brighter with arousal.
    grid = 16 // n_chords
    n_notes = min(grid, max(1, int(round((2 + 12 * a**1.1) / n_chords))))
    # Off-beats get rarer as arousal drops, so a calm song's pulse stays on its (slow) beat.
    off = 0.1 + a
    weights = np.array([8 if p % 4 == 0 else 3 * off if p % 2 == 0 else off for p in range(grid)])
    positions = np.sort(rng.choice(grid, size=n_notes, replace=False, p=weights / weights.sum()))
    step = bar.beat_s / 4.0
    mel_low = 58.0 + 20.0 * v
    mel_notes = sorted({_place(pc, mel_low) + o for pc in scale_pcs for o in (0, 12)})
    chord_notes = [m for m in mel_notes if m % 12 in pcs]
    lead_roll = float(np.clip(2.4 - 1.0 * a - 0.7 * v, 0.6, 2.4))
    decay = 0.08 + 0.6 * (1.0 - a)
    lead_gain = 0.22 * (0.55 + 0.45 * a)
    for j, p in enumerate(positions):
        nxt = positions[j + 1] if j + 1 < len(positions) else grid
        dur = min((nxt - p) * step, 2.0 * bar.beat_s) * 0.9
        pool = chord_notes if p % 2 == 0 else mel_notes
        prev = state.melody
        near = sorted(pool, key=lambda m: abs(m - prev) + rng.random() * 4.0)
        state.melody = near[int(rng.integers(0, min(3, len(near))))]
        accent = 1.0 if p % 4 == 0 else 0.7
        syn.note(start + p * step, dur, state.melody, lead_gain * accent, lead_roll, 24, 0.004,
                 decay, 0.02)

    # Bass on the chord root: a soft sine pulse on every beat when calm, louder, brighter and
    # in eighths when excited.
    g_bass = 0.35 + 0.65 * _ramp(a, 0.25, 0.45)
    hits = (4 if a < 0.75 else 8) // n_chords
    root = _place(pcs[0], 33.0)
    for h in range(hits):
        syn.note(start + h * seg_s / hits, seg_s / hits * 0.85, root, 0.28 * g_bass,
                 float(np.clip(2.2 - 1.2 * a, 1.0, 2.2)), 12, 0.006, 0.25, 0.02)


# Clash tones by preference, relative to the tonic: tonic and fifth first so the key stays clear,
# then the minor third; the minor sixth last (it would make the chroma lean to the VI major key).
_CLASH_PREFERENCE = (0, 7, 3, 2, 5, 10, 11, 4, 9, 8)


def _pc_distance(a: int, b: int) -> int:
    """Distance between two pitch classes in semitones (0..6)."""
    return min((a - b) % 12, (b - a) % 12)


def _clash_pc(tonic: int, chord: list[int], scale_pcs: list[int]) -> int | None:
    """An in-scale pitch class a semitone from a chord tone (a dissonance that keeps the key)."""
    for rel in _CLASH_PREFERENCE:
        pc = (tonic + rel) % 12
        if pc in scale_pcs and pc not in chord and any(_pc_distance(pc, p) == 1 for p in chord):
            return pc
    return None


def _render_drums(syn: _Synth, bar: _Bar) -> None:
    """Kick (from arousal ~0.35), snare on 2 and 4 (~0.45), hi-hat 8ths/16ths (~0.5)."""
    a = bar.arousal
    kick, snare, hat = syn.kit(bar.valence)
    g_kick, g_snare, g_hat = _ramp(a, 0.35, 0.55), _ramp(a, 0.45, 0.65), _ramp(a, 0.5, 0.7)
    for b in range(4):
        t_b = bar.start_s + b * bar.beat_s
        if g_kick > 0 and (b % 2 == 0 or a > 0.7):
            syn.add(t_b, 0.55 * g_kick * kick)
        if g_snare > 0 and b % 2 == 1:
            syn.add(t_b, 0.3 * g_snare * snare)
    if g_hat > 0:
        per_beat = 4 if a > 0.8 else 2
        for h in range(4 * per_beat):
            accent = 1.0 if h % per_beat == 0 else 0.6
            syn.add(bar.start_s + h * bar.beat_s / per_beat, 0.12 * g_hat * accent * hat)


def synthesize_song(
    song_id: str,
    seed: int,
    duration_s: float,
    sample_rate: int = SYNTH_RATE,
    annotation_start_s: float = ANNOTATION_START_S,
    quadrant: int | None = None,
) -> tuple[np.ndarray, VACurve]:
    """Synthesise a song whose music follows its own VA trajectory.

    Returns ``(samples, curve)``: float32 mono samples in (-1, 1) at ``sample_rate`` and the VA
    curve at 2 Hz from ``annotation_start_s``. ``quadrant`` (0..3) picks the song's VA region
    (drawn from ``song_id`` when None). Same arguments -> bit-identical samples.
    """
    times, val, aro = va_trajectory(song_id, seed, duration_s, quadrant)
    curve = _curve_from_trajectory(times, val, aro, duration_s, annotation_start_s)
    rng = _rng("demo-audio", seed, song_id)
    samples = render_audio(times, val, aro, duration_s, sample_rate, rng)
    return samples, curve


def render_audio(
    times: np.ndarray,
    valence: np.ndarray,
    arousal: np.ndarray,
    duration_s: float,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render ``duration_s`` of music following the VA trajectory ``(times, valence, arousal)``."""
    n = int(round(duration_s * sample_rate))
    syn = _Synth(n, sample_rate, rng)
    tonic = int(rng.integers(12))
    state = _SongState(
        tonic=tonic,
        progressions={
            False: _MAJOR_PROGRESSIONS[int(rng.integers(len(_MAJOR_PROGRESSIONS)))],
            True: _MINOR_PROGRESSIONS[int(rng.integers(len(_MINOR_PROGRESSIONS)))],
        },
        melody=_place(tonic, 67.0),
    )
    for bar in _bars(duration_s, times, valence, arousal):
        _render_bar(syn, bar, state)
    # One fixed level mapping for every song: master gain -27..-9 dB with arousal (smooth, per
    # sample), then a soft limiter so peaks stay below 1 without per-song normalisation.
    t = np.arange(n) / sample_rate
    gain_db = -27.0 + 18.0 * np.interp(t, times, arousal)
    y = syn.out[:n] * 10.0 ** (gain_db / 20.0) * 4.0
    fade = min(n // 2, int(0.01 * sample_rate))  # no click at the very start and end
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        y[:fade] *= ramp
        y[n - fade :] *= ramp[::-1]
    y = 0.97 * np.tanh(y / 0.97)
    return y.astype(np.float32)


# ----------------------------------------------------------------------------- images


def synthesize_image(
    image_id: str, valence: float, arousal: float, seed: int, size: int = 96
) -> Image.Image:
    """An RGB ``size`` x ``size`` image whose colour, brightness and texture follow VA.

    Valence: hue from blue/grey (0) to warm yellow/orange (1), brighter. Arousal: more saturated,
    more contrast, more and sharper shapes, more high-frequency texture. Deterministic from
    ``(image_id, seed)`` (VA included).
    """
    rng = _rng("demo-image", seed, image_id)
    v = float(np.clip(valence, 0.0, 1.0))
    a = float(np.clip(arousal, 0.0, 1.0))
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    base_hue = 0.62 + (0.11 - 0.62) * v + rng.normal(0.0, 0.025)
    base_sat = 0.1 + 0.75 * a
    base_val = 0.22 + 0.62 * v
    contrast = 0.06 + 0.3 * a

    # Background: a gentle gradient in a random direction plus smooth low-frequency variation.
    ang = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) * 0.15
    low = gaussian_filter(rng.standard_normal((size, size)), sigma=size / 8, mode="wrap")
    low /= np.abs(low).max() + 1e-9
    hue = np.full((size, size), base_hue) + 0.03 * low
    sat = np.full((size, size), base_sat) + 0.05 * low
    val = base_val + grad + 0.04 * low

    # Shapes: more, sharper-edged and more contrasting with arousal; soft blobs when calm.
    n_shapes = 3 + int(round(10 * a)) + int(rng.integers(0, 3))
    edge = 0.002 + 0.05 * (1.0 - a)  # edge width in image units
    for _ in range(n_shapes):
        cx, cy = rng.uniform(0, 1, 2)
        r = rng.uniform(0.06, 0.25) * (1.0 - 0.4 * a)
        if rng.random() < 0.5:
            dist = np.hypot(xx - cx, yy - cy) - r  # circle
        else:
            rx, ry = r, r * rng.uniform(0.4, 1.6)  # rectangle
            dist = np.maximum(np.abs(xx - cx) - rx, np.abs(yy - cy) - ry)
        mask = 1.0 / (1.0 + np.exp(np.clip(dist / edge, -50, 50)))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        hue += mask * rng.normal(0.0, 0.04)
        sat += mask * rng.normal(0.0, 0.06)
        val += mask * sign * contrast * rng.uniform(0.6, 1.0)

    # Texture: fine noise and thin stripes whose strength rises with arousal.
    fine = rng.standard_normal((size, size))
    freq = rng.uniform(10, 18) * size / 96
    ang2 = rng.uniform(0, np.pi)
    stripes = np.sign(np.sin(2 * np.pi * freq * (np.cos(ang2) * xx + np.sin(ang2) * yy)))
    val += (0.015 + 0.08 * a) * fine + 0.06 * a**1.5 * stripes
    sat += 0.03 * fine * a

    hsv = np.stack([hue % 1.0, np.clip(sat, 0, 1), np.clip(val, 0, 1)], axis=-1)
    arr = np.round(hsv * 255.0).astype(np.uint8)
    return Image.frombytes("HSV", (size, size), arr.tobytes()).convert("RGB")


def stratified_va(n: int, seed: int) -> np.ndarray:
    """``n`` VA points uniform over [0, 1]^2, stratified per axis (Latin hypercube): (n, 2)."""
    rng = _rng("demo-image-va", seed)
    cols = [(rng.permutation(n) + rng.random(n)) / max(n, 1) for _ in range(2)]
    return np.stack(cols, axis=1)


# ----------------------------------------------------------------------------- the source


def _write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _audio_complete(path: Path, frames: int, sr: int) -> bool:
    try:
        info = sf.info(str(path))
    except (OSError, RuntimeError):  # missing or unreadable (sf.LibsndfileError is a RuntimeError)
        return False
    return info.frames == frames and info.samplerate == sr and info.channels == 1


def _image_complete(path: Path, size: int) -> bool:
    try:
        with Image.open(path) as im:
            return im.size == (size, size) and im.format == "PNG"
    except OSError:
        return False


# Container of song i: mostly WAV, every third FLAC, song 2 MP3, so decoding paths get exercised.
_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}


def song_format(number: int) -> str:
    """Container of song ``demo{number:03d}``: WAV, every third FLAC, song 2 MP3 (if supported)."""
    if number == 2 and "MP3" in sf.available_formats():
        return "mp3"
    return "flac" if number % 3 == 1 else "wav"


# Quadrants in the order a split's songs take them: opposite corners first, so a split with two
# songs already spans both valence and arousal.
_QUADRANT_ORDER = (0, 3, 1, 2)
_SPLIT_QUADRANT_OFFSET = {"train": 0, "validation": 2, "test": 0}


def split_targets(n_songs: int) -> dict[str, int]:
    """How many demo songs each split gets: >= 2 validation and test songs from 8 songs on."""
    if n_songs < 3:
        return {"train": n_songs, "validation": 0, "test": 0}
    k = 1 if n_songs < 8 else max(2, round(0.1 * n_songs))
    return {"train": n_songs - 2 * k, "validation": k, "test": k}


def demo_song_plan(n_songs: int) -> list[tuple[int, str, int]]:
    """``(number, split, quadrant)`` of each demo song ``demo{number:03d}``, in number order.

    Splits are a hash of the song id (:func:`pipeline.ids.split_of`) and a handful of consecutive
    ids can all land in train (demo000..demo021 all do), which would leave the demo without
    validation and test songs. So numbers are taken in order, skipping those whose split is
    already full (:func:`split_targets`); within each split the songs cycle through the four VA
    quadrants. A song's number, split and quadrant do not depend on ``n_songs``.
    """
    targets = split_targets(n_songs)
    taken = {name: 0 for name in targets}
    plan: list[tuple[int, str, int]] = []
    number = 0
    while len(plan) < n_songs:
        split = split_of(f"demo{number:03d}")
        if taken[split] < targets[split]:
            order = taken[split] + _SPLIT_QUADRANT_OFFSET[split]
            plan.append((number, split, _QUADRANT_ORDER[order % 4]))
            taken[split] += 1
        number += 1
    return plan


@register("demo")
class DemoSource:
    """Synthetic songs (with 2 Hz VA curves) and images (with VA), written once into the cache.

    Options read from ``opts`` (missing ones take the defaults): ``demo_songs`` (8),
    ``demo_song_seconds`` (30), ``demo_images`` (120), ``demo_image_size`` (96),
    ``demo_annotation_start_s`` (5.0), ``seed`` (0), ``cache_dir`` ("runs/cache"). Songs are
    synthesised at 44.1 kHz whatever the pipeline's target ``sample_rate``.
    """

    name = "demo"

    def __init__(self, opts: argparse.Namespace):
        self.n_songs = int(getattr(opts, "demo_songs", 8))
        self.song_seconds = float(getattr(opts, "demo_song_seconds", 30.0))
        self.n_images = int(getattr(opts, "demo_images", 120))
        self.image_size = int(getattr(opts, "demo_image_size", 96))
        self.annotation_start_s = float(
            getattr(opts, "demo_annotation_start_s", ANNOTATION_START_S)
        )
        self.seed = int(getattr(opts, "seed", 0) or 0)
        self.cache_dir = Path(getattr(opts, "cache_dir", None) or "runs/cache")
        if self.n_songs < 0 or self.n_images < 0:
            raise ValueError("--demo_songs and --demo_images must be >= 0")
        if self.song_seconds < self.annotation_start_s + CURVE_PERIOD_S:
            raise ValueError(
                f"--demo_song_seconds ({self.song_seconds:g}) must be at least the annotation "
                f"start ({self.annotation_start_s:g} s) + {CURVE_PERIOD_S:g} s"
            )

    @property
    def folder(self) -> Path:
        return self.cache_dir / "demo-src" / f"{DEMO_VERSION}-seed{self.seed}"

    def items(self) -> SourceItems:
        out = SourceItems()
        folder = self.folder
        (folder / "images").mkdir(parents=True, exist_ok=True)
        frames = int(round(self.song_seconds * SYNTH_RATE))
        for number, _split, quadrant in demo_song_plan(self.n_songs):
            song_id = check_id(f"demo{number:03d}")
            fmt = song_format(number)
            path = folder / f"{song_id}.{fmt}"
            if _audio_complete(path, frames, SYNTH_RATE):  # written by an earlier run: reuse
                curve = song_va_curve(song_id, self.seed, self.song_seconds,
                                      self.annotation_start_s, quadrant=quadrant)
            else:
                samples, curve = synthesize_song(song_id, self.seed, self.song_seconds, SYNTH_RATE,
                                                 self.annotation_start_s, quadrant=quadrant)
                container, subtype = _FORMATS[fmt]
                _write_atomic(path, lambda tmp: sf.write(tmp, samples, SYNTH_RATE,
                                                         format=container, subtype=subtype))
            out.songs.append(SongTask(song_id=song_id, source=self.name,
                                      uri=path.resolve().as_uri(), license=LICENSE,
                                      va_curve=curve))
        for j, (v, a) in enumerate(stratified_va(self.n_images, self.seed)):
            image_id = check_id(f"demoimg{j:04d}")
            # The VA is part of the file name: image j's VA depends on --demo_images, so a file
            # cached by a run with another count must not be reused under new labels.
            path = folder / "images" / f"{image_id}-v{v:.6f}-a{a:.6f}-s{self.image_size}.png"
            if not _image_complete(path, self.image_size):
                img = synthesize_image(image_id, float(v), float(a), self.seed, self.image_size)
                _write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))
            out.images.append(ImageTask(image_id=image_id, source=self.name,
                                        uri=str(path.resolve()), valence=float(v),
                                        arousal=float(a)))
        return out
