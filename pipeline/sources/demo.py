"""The built-in ``demo`` source: songs played by sampled instruments and synthetic images, whose
content follows known VA.

What ``make run`` processes by default, and what the MMVA model is first trained on, so the
valence/arousal (VA) -> content mapping is deliberately clear yet music-like:

Songs (:func:`synthesize_song`) first draw a smooth VA trajectory (2 Hz, like DEAM's per-second
annotations; one of four VA quadrants per song plus a few sections and a slow random walk), then
are composed bar by bar (:func:`compose`: notes of a General MIDI ensemble, each bar from the VA
at its middle) and played through a General MIDI soundfont (:mod:`.demo_soundfont`):

=============  ======================================================================
instruments    one ensemble per song, chosen by its VA quadrant (:data:`QUADRANT_ENSEMBLES`):
               calm songs get solo piano, strings, choir, flute, violin, cello, acoustic
               guitar; excited ones a drum kit with organ and distorted guitar, synths, or
               electric guitar, piano and electric bass
arousal        tempo 60..170 BPM (the bass on every beat keeps slow tempos from being heard
               double); melody notes per bar 2..14, fewer off-beats when calm; chords held,
               struck or broken more often; louder velocities and master gain (about -24 dBFS
               at arousal 0.15, -9 to -13 at 0.85); busier drums (kick on every beat, 16th hats)
valence        share of major chords in a tonic-centred progression (all minor below 0.12, all
               major above 0.88, a mixture between: mostly major above 0.5); chord and melody
               register +20 semitones from 0 to 1; below 0.45 an in-scale semitone clash
brightness     a spectral tilt around 1 kHz: +-10 dB with valence, +-4 dB with arousal
=============  ======================================================================

Levels use one fixed mapping per ensemble (no per-song normalisation) and a soft limiter keeps
peaks below 1. A :class:`Score` keeps what was written (tonic, bars with their tempo, chords with
their mode, notes), so tests and benchmarks know the true key, tempo and instruments of any clip.

Songs are spread evenly over the four VA quadrants and their ids are chosen so that the
train/validation/test splits (a hash of the song id) all get songs (:func:`demo_song_plan`, which
also names each song's ensemble: the default 12 songs have three piano-only songs and six with
a drum kit).

Images (:func:`synthesize_image`): hue runs from blue/grey (low valence) to warm yellow/orange
(high valence) and brightness rises with valence; saturation, contrast, the number and sharpness
of shapes and high-frequency texture rise with arousal; random shapes and noise give variety.

Everything is deterministic from ``(id, seed)``: the same call gives bit-identical samples/pixels.
:class:`DemoSource` writes the files once into ``<cache_dir>/demo-src/v2-seed<seed>/`` (reruns
reuse them) with ``songs.json`` (each song's instruments, key and tempo range), and serves songs
as ``file://`` URLs so they take the same download path real URLs do. Without the soundfont or
its renderer it stops with a message saying how to install them (:class:`.SoundfontMissing`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.signal import lfilter

from pipeline.ids import check_id, split_of
from pipeline.sources.base import SourceItems, register
from pipeline.sources.demo_soundfont import INSTRUMENTS, SOUNDFONT_LICENSE, Instrument, Note
from pipeline.sources.demo_soundfont import render as render_notes
from pipeline.types import ImageTask, SongTask, VACurve

SYNTH_RATE = 44100  # songs are always synthesised (and written) at this rate
CURVE_PERIOD_S = 0.5  # 2 Hz VA samples, like DEAM's dynamic annotations
ANNOTATION_START_S = 5.0  # first annotated time (DEAM: 15 s)
DEMO_VERSION = "v2"  # bump when the synthesis changes: files live in demo-src/<version>-seed<n>/
# The score is ours (CC0); the audio carries the soundfont's samples, so it takes their licence.
LICENSE = f"synthetic; samples {SOUNDFONT_LICENSE}"

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


# ----------------------------------------------------------------------------- composition

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord roots as scale degrees (a progression per song and mode, one chord per bar or half-bar).
# Tonic-centred (every progression starts on the tonic and has a dominant), so the key and mode
# stay unambiguous; minor uses the major V of harmonic minor, never the relative-major cadences.
_MAJOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4))  # I-IV-V-I, I-vi-IV-V, I-IV-I-V
_MINOR_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4))  # i-iv-V-i, i-VI-iv-V, i-iv-i-V
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


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


def _velocity(x: float) -> int:
    return int(np.clip(round(x), 1, 127))


@dataclass(frozen=True)
class Ensemble:
    """Who plays what: an instrument of ``demo_soundfont.INSTRUMENTS`` per role (None: silent)."""

    name: str
    chords: str | None
    chord_style: str  # a key of _CHORD_STYLES: how the chord part plays its chords
    melody: str | None
    bass: str | None
    drums: bool = False
    trim_db: float = 0.0  # fixed make-up gain: each ensemble reads about -24 dBFS at arousal 0.15

    def roles(self) -> list[tuple[str, Instrument]]:
        """``(role, instrument)`` of each part, in part (MIDI channel) order."""
        named = [("chords", self.chords), ("melody", self.melody), ("bass", self.bass),
                 ("drums", "drums" if self.drums else None)]
        return [(role, INSTRUMENTS[name]) for role, name in named if name is not None]

    @property
    def instruments(self) -> tuple[str, ...]:
        """The distinct instruments that play, in part order (what a tagger should hear)."""
        return tuple(dict.fromkeys(inst.name for _, inst in self.roles()))


ENSEMBLES: dict[str, Ensemble] = {e.name: e for e in (
    Ensemble("solo piano", "piano", "comp", "piano", "piano", trim_db=16.3),
    Ensemble("string ensemble", "strings", "sustain", "violin", "cello", trim_db=4.9),
    Ensemble("choir and strings", "choir", "sustain", "violin", "cello", trim_db=2.7),
    Ensemble("flute and strings", "strings", "sustain", "flute", "cello", trim_db=2.9),
    Ensemble("guitar and violin", "acoustic guitar", "arpeggio", "violin", "cello", trim_db=5.0),
    Ensemble("rock band", "organ", "sustain", "distorted guitar", "electric bass", True, 4.1),
    Ensemble("electronic", "synth pad", "sustain", "synth lead", "synth bass", True, 1.2),
    Ensemble("pop band", "electric guitar", "comp", "piano", "electric bass", True, 5.7),
)}
# Instrumentation by VA quadrant (0 sad, 1 calm, 2 angry, 3 happy; see _QUADRANT_CENTRES): calm
# songs get piano, strings, choir, harp, flute and acoustic guitar without drums; excited ones a
# drum kit with distorted or electric guitars, synths and electric bass. Valence picks among them
# (dark strings and choir when sad, flute, harp and guitar when content, a rock band when angry)
# on top of the mode, register and brightness it sets for every ensemble. The same choice in the
# two quadrants of one arousal half is a similar sound (piano / piano, strings / acoustic
# guitar, choir / harp; rock band / pop band, electronic / electronic).
QUADRANT_ENSEMBLES: tuple[tuple[str, ...], ...] = (
    ("solo piano", "string ensemble", "choir and strings"),
    ("solo piano", "flute and strings", "guitar and violin"),
    ("rock band", "electronic", "rock band"),
    ("pop band", "electronic", "pop band"),
)


def ensemble_for(valence: float, arousal: float, pick: int) -> Ensemble:
    """Ensemble ``pick`` (modulo the choice) of the VA quadrant that ``(valence, arousal)`` is in."""
    choices = QUADRANT_ENSEMBLES[int(valence >= 0.5) | int(arousal >= 0.5) << 1]
    return ENSEMBLES[choices[pick % len(choices)]]


@dataclass(frozen=True)
class Bar:
    start_s: float
    beat_s: float
    valence: float
    arousal: float

    @property
    def end_s(self) -> float:
        return self.start_s + 4.0 * self.beat_s


@dataclass(frozen=True)
class Chord:
    start_s: float
    end_s: float
    minor: bool
    degree: int  # scale degree of the root (0: tonic)


def _overlap(start_s: float, end_s: float, lo: float, hi: float) -> float:
    return max(0.0, min(end_s, hi) - max(start_s, lo))


@dataclass
class Score:
    """A composed song: its key, ensemble, bars (tempo), chords (mode) and notes, all known."""

    tonic: int
    ensemble: Ensemble
    bars: list[Bar]
    chords: list[Chord]
    notes: list[Note]

    @property
    def key(self) -> str:
        return KEY_NAMES[self.tonic]

    def tempo_bpm(self, start_s: float, end_s: float) -> float:
        """Mean tempo over ``[start_s, end_s)``, each bar weighted by its time inside it."""
        w = np.array([_overlap(b.start_s, b.end_s, start_s, end_s) for b in self.bars])
        return float(w @ np.array([60.0 / b.beat_s for b in self.bars]) / w.sum())

    def major_share(self, start_s: float, end_s: float) -> float:
        """Share of ``[start_s, end_s)`` under major chords."""
        w = np.array([_overlap(c.start_s, c.end_s, start_s, end_s) for c in self.chords])
        return float(w @ np.array([0.0 if c.minor else 1.0 for c in self.chords]) / w.sum())


def _bars(duration_s: float, times: np.ndarray, val: np.ndarray, aro: np.ndarray) -> list[Bar]:
    """4/4 bars whose tempo (60..170 BPM) follows arousal at each bar's middle."""
    bars: list[Bar] = []
    t = 0.0
    while t < duration_s:
        beat = 60.0 / (60.0 + 110.0 * float(np.interp(t, times, aro)))
        mid = t + 2.0 * beat
        a = float(np.interp(mid, times, aro))
        beat = 60.0 / (60.0 + 110.0 * a)
        bars.append(Bar(t, beat, float(np.interp(t + 2.0 * beat, times, val)), a))
        t += 4.0 * beat
    return bars


def major_share(valence: float) -> float:
    """Share of chords in major: all minor below 0.12, all major above 0.88, mixed between."""
    return _ramp(valence, 0.12, 0.88)


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


@dataclass
class _Segment:
    """One chord's stretch of a bar, with what its parts need to know."""

    bar: Bar
    start_s: float
    seg_s: float
    n_chords: int
    pcs: list[int]
    scale_pcs: list[int]


class _Composer:
    """Writes a song's notes bar by bar, each bar from the VA at its middle."""

    def __init__(self, tonic: int, ensemble: Ensemble, rng: np.random.Generator):
        self.rng = rng
        self.tonic = tonic
        self.ensemble = ensemble
        self.part = {role: k for k, (role, _) in enumerate(ensemble.roles())}
        self.progressions = {False: _MAJOR_PROGRESSIONS[int(rng.integers(len(_MAJOR_PROGRESSIONS)))],
                             True: _MINOR_PROGRESSIONS[int(rng.integers(len(_MINOR_PROGRESSIONS)))]}
        self.chord_index = 0
        self.bars_done = 0
        self.major_acc = 0.5  # error-diffusion accumulator of the major share
        self.melody = _place(tonic, 67.0)
        self.notes: list[Note] = []
        self.chords: list[Chord] = []

    def note(self, role: str, start_s: float, dur_s: float, key: int, velocity: float) -> None:
        if role in self.part:
            self.notes.append(Note(start_s, start_s + dur_s, self.part[role], int(key), _velocity(velocity)))

    def bar(self, bar: Bar) -> None:
        """One 4/4 bar: 1-2 chords (chord part, melody, bass), then the drums."""
        n_chords = 2 if 4.0 * bar.beat_s > 2.4 else 1  # slow bars change chord every two beats
        seg_s = 4.0 * bar.beat_s / n_chords
        for c in range(n_chords):
            # Mode mixture by error diffusion: a window's share of major chords follows valence.
            self.major_acc += major_share(bar.valence)
            minor = self.major_acc < 1.0
            if not minor:
                self.major_acc -= 1.0
            prog = self.progressions[minor]
            degree = prog[self.chord_index % len(prog)]
            self.chord_index += 1
            start = bar.start_s + c * seg_s
            self.chords.append(Chord(start, start + seg_s, minor, degree))
            scale = [(self.tonic + p) % 12 for p in (_MINOR if minor else _MAJOR)]
            seg = _Segment(bar, start, seg_s, n_chords, _chord_pcs(self.tonic, minor, degree), scale)
            _CHORD_STYLES[self.ensemble.chord_style](self, seg)
            self._melody(seg)
            self._bass(seg)
        if self.ensemble.drums:
            self._drums(bar)
        self.bars_done += 1

    def voicing(self, seg: _Segment) -> list[int]:
        """Chord tones from a register that rises 20 semitones with valence, root doubled below;
        below valence 0.45 an in-scale tone a semitone from a chord tone (the clash) joins."""
        low = 46.0 + 20.0 * seg.bar.valence
        voices = [_place(pc, low) for pc in seg.pcs] + [_place(seg.pcs[0], low - 12.0)]
        clash = _clash_pc(self.tonic, seg.pcs, seg.scale_pcs)
        if seg.bar.valence < 0.45 and clash is not None:
            near = min((_place(p, low) for p in seg.pcs), key=lambda m: _pc_distance(m, clash))
            voices.append(near + (1 if (clash - near) % 12 == 1 else -1))
        return sorted(voices)

    def _melody(self, seg: _Segment) -> None:
        """2..14 notes per bar on a 16th grid (strong positions first), chord tones on eighths,
        register up with valence; off-beats rarer when calm, so a slow pulse stays on its beat."""
        rng, bar, a = self.rng, seg.bar, seg.bar.arousal
        grid = 16 // seg.n_chords
        n_notes = min(grid, max(1, int(round((2 + 12 * a**1.1) / seg.n_chords))))
        off = 0.1 + a
        weights = np.array([8 if p % 4 == 0 else 3 * off if p % 2 == 0 else off for p in range(grid)])
        positions = np.sort(rng.choice(grid, size=n_notes, replace=False, p=weights / weights.sum()))
        step = bar.beat_s / 4.0
        mel_low = 58.0 + 20.0 * bar.valence
        mel_notes = sorted({_place(pc, mel_low) + o for pc in seg.scale_pcs for o in (0, 12)})
        chord_notes = [m for m in mel_notes if m % 12 in seg.pcs]
        for j, p in enumerate(positions):
            nxt = positions[j + 1] if j + 1 < len(positions) else grid
            dur = min((nxt - p) * step, 2.0 * bar.beat_s) * 0.9
            pool = chord_notes if p % 2 == 0 else mel_notes
            near = sorted(pool, key=lambda m: abs(m - self.melody) + rng.random() * 4.0)
            self.melody = near[int(rng.integers(0, min(3, len(near))))]
            accent = 1.0 if p % 4 == 0 else 0.85
            self.note("melody", seg.start_s + p * step, dur, self.melody, (62 + 50 * a) * accent)

    def _bass(self, seg: _Segment) -> None:
        """A note on every beat (the pulse that keeps a slow tempo from reading double), in
        eighths when excited: the chord's root, and under a minor chord its third on the last
        hit. A bass of roots alone sounds major: its fifth harmonic is each root's major third."""
        a = seg.bar.arousal
        hits = (4 if a < 0.75 else 8) // seg.n_chords
        root = _place(seg.pcs[0], 33.0 if self.ensemble.bass != "piano" else 36.0)
        minor = (seg.pcs[1] - seg.pcs[0]) % 12 == 3
        for h in range(hits):
            key = _place(seg.pcs[1], root) if minor and h == hits - 1 and hits > 1 else root
            self.note("bass", seg.start_s + h * seg.seg_s / hits, seg.seg_s / hits * 0.85, key,
                      (58 + 50 * a) * (1.0 if h % 2 == 0 else 0.85))

    def _drums(self, bar: Bar) -> None:
        """Kick on 1 and 3 (every beat from arousal 0.7), snare on 2 and 4, hi-hat in eighths
        (sixteenths from 0.8), a crash every fourth bar; all louder with arousal."""
        a, beat = bar.arousal, bar.beat_s
        for b in range(4):
            t = bar.start_s + b * beat
            if b % 2 == 0 or a > 0.7:
                self.note("drums", t, 0.1, 36, 70 + 55 * a)
            if b % 2 == 1:
                self.note("drums", t, 0.1, 38, 55 + 65 * a)
        per_beat = 4 if a > 0.8 else 2
        for h in range(4 * per_beat):
            self.note("drums", bar.start_s + h * beat / per_beat, 0.05, 42,
                      (40 + 45 * a) * (1.0 if h % per_beat == 0 else 0.7))
        if self.bars_done % 4 == 0 and a > 0.6:
            self.note("drums", bar.start_s, 0.5, 49, 50 + 40 * a)


def _sustain(comp: _Composer, seg: _Segment) -> None:
    """Held chords (strings, choir, pads) that overlap the next chord slightly (legato)."""
    for m in comp.voicing(seg):
        comp.note("chords", seg.start_s, seg.seg_s + 0.05, m, 42 + 40 * seg.bar.arousal)


def _comp(comp: _Composer, seg: _Segment) -> None:
    """Struck chords (piano): once per chord when calm, on every beat, then in eighths."""
    a = seg.bar.arousal
    per_seg = 1 if a < 0.4 else int(round(seg.seg_s / seg.bar.beat_s)) * (1 if a < 0.7 else 2)
    step = seg.seg_s / per_seg
    voices = comp.voicing(seg)
    for h in range(per_seg):
        for m in voices:
            comp.note("chords", seg.start_s + h * step, step * 0.95, m,
                      (40 + 40 * a) * (1.0 if h % 2 == 0 else 0.85))


def _arpeggio(comp: _Composer, seg: _Segment) -> None:
    """Broken chords (plucked guitar, harp), each note ringing to the chord's end: quarters
    when calm, eighths from arousal 0.4."""
    a = seg.bar.arousal
    step = seg.bar.beat_s / (1 if a < 0.4 else 2)
    voices = comp.voicing(seg)
    for h in range(max(1, int(round(seg.seg_s / step)))):
        t = h * step
        comp.note("chords", seg.start_s + t, seg.seg_s - t, voices[h % len(voices)],
                  (48 + 40 * a) * (1.0 if h % 2 == 0 else 0.85))


def _power(comp: _Composer, seg: _Segment) -> None:
    """Power chords (distorted guitar) in eighths: root, fifth and octave, plus the chord's third
    above them (a bare power chord has no third, and then the mode would not be heard)."""
    a = seg.bar.arousal
    root = _place(seg.pcs[0], 40.0)
    third = _place(seg.pcs[1], root + 12.0)
    step = seg.bar.beat_s / 2.0
    for h in range(int(round(seg.seg_s / step))):
        for m in (root, root + 7, root + 12, third):
            comp.note("chords", seg.start_s + h * step, step * 0.9, m,
                      (60 + 50 * a) * (1.0 if h % 2 == 0 else 0.8))


_CHORD_STYLES = {"sustain": _sustain, "comp": _comp, "arpeggio": _arpeggio, "power": _power}


def compose(
    times: np.ndarray,
    valence: np.ndarray,
    arousal: np.ndarray,
    duration_s: float,
    rng: np.random.Generator,
    ensemble: str | None = None,
) -> Score:
    """The score of ``duration_s`` of music following the VA trajectory ``(times, valence, arousal)``.

    ``ensemble`` (a key of :data:`ENSEMBLES`) names who plays; None: one of the ensembles of the
    quadrant the trajectory's mean VA is in, drawn from ``rng``.
    """
    tonic = int(rng.integers(12))
    pick = int(rng.integers(1 << 16))  # drawn always, so naming the ensemble changes nothing else
    chosen = (ENSEMBLES[ensemble] if ensemble is not None
              else ensemble_for(float(np.mean(valence)), float(np.mean(arousal)), pick))
    comp = _Composer(tonic, chosen, rng)
    bars = _bars(duration_s, times, valence, arousal)
    for bar in bars:
        comp.bar(bar)
    return Score(tonic, chosen, bars, comp.chords, comp.notes)


# Level mapping, the same for every song of an ensemble: its trim plus a master gain of
# GAIN_DB_CALM..GAIN_DB_CALM+GAIN_DB_SPAN with arousal (smooth, per sample), on top of velocities
# that rise with arousal, then a soft limiter. No per-song normalisation.
GAIN_DB_CALM = -12.5
GAIN_DB_SPAN = 15.0


# Brightness: a spectral tilt around TILT_HZ (first-order shelves: above it raised, below it
# lowered by half the tilt each, so the level stays about the same) of TILT_DB_V per unit of
# valence and TILT_DB_A per unit of arousal, 0 dB at VA (0.5, 0.5). Register and instruments also
# follow VA, but timbres differ more between ensembles than a register shift moves them; the
# tilt keeps brighter = happier and more excited across ensembles.
TILT_HZ = 1000.0
TILT_DB_V = 20.0
TILT_DB_A = 8.0


def _tilt(y: np.ndarray, valence: np.ndarray, arousal: np.ndarray, sample_rate: int) -> np.ndarray:
    """``y`` tilted around ``TILT_HZ`` per sample by the VA there."""
    pole = float(np.exp(-2.0 * np.pi * TILT_HZ / sample_rate))
    low = lfilter([1.0 - pole], [1.0, -pole], y.astype(np.float64))
    half = 10.0 ** ((TILT_DB_V * (valence - 0.5) + TILT_DB_A * (arousal - 0.5)) / 40.0)
    return low / half + (y - low) * half


def render_score(score: Score, times: np.ndarray, valence: np.ndarray, arousal: np.ndarray,
                 duration_s: float, sample_rate: int) -> np.ndarray:
    """The score played through the soundfont, tilted brighter with VA, levelled by arousal,
    faded and soft-limited."""
    n = int(round(duration_s * sample_rate))
    parts = [inst for _, inst in score.ensemble.roles()]
    y = render_notes(parts, score.notes, n, sample_rate)[:n]
    t = np.arange(n) / sample_rate
    gain_db = score.ensemble.trim_db + GAIN_DB_CALM + GAIN_DB_SPAN * np.interp(t, times, arousal)
    y = _tilt(y, np.interp(t, times, valence), np.interp(t, times, arousal), sample_rate)
    y = y * 10.0 ** (gain_db / 20.0)
    fade = min(n // 2, int(0.01 * sample_rate))  # no click at the very start and end
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        y[:fade] *= ramp
        y[n - fade :] *= ramp[::-1]
    y = 0.97 * np.tanh(y / 0.97)
    return y.astype(np.float32)


def compose_song(song_id: str, seed: int, duration_s: float, quadrant: int | None = None,
                 ensemble: str | None = None) -> Score:
    """The score :func:`synthesize_song` renders for the same arguments (cheap: no audio)."""
    times, val, aro = va_trajectory(song_id, seed, duration_s, quadrant)
    return compose(times, val, aro, duration_s, _rng("demo-audio", seed, song_id), ensemble)


def synthesize_song(
    song_id: str,
    seed: int,
    duration_s: float,
    sample_rate: int = SYNTH_RATE,
    annotation_start_s: float = ANNOTATION_START_S,
    quadrant: int | None = None,
    ensemble: str | None = None,
) -> tuple[np.ndarray, VACurve]:
    """Compose and render a song whose music follows its own VA trajectory.

    Returns ``(samples, curve)``: float32 mono samples in (-1, 1) at ``sample_rate`` and the VA
    curve at 2 Hz from ``annotation_start_s``. ``quadrant`` (0..3) picks the song's VA region
    (drawn from ``song_id`` when None); ``ensemble`` who plays (see :func:`compose`). Same
    arguments -> bit-identical samples.
    """
    times, val, aro = va_trajectory(song_id, seed, duration_s, quadrant)
    curve = _curve_from_trajectory(times, val, aro, duration_s, annotation_start_s)
    score = compose(times, val, aro, duration_s, _rng("demo-audio", seed, song_id), ensemble)
    return render_score(score, times, val, aro, duration_s, sample_rate), curve


def render_audio(
    times: np.ndarray,
    valence: np.ndarray,
    arousal: np.ndarray,
    duration_s: float,
    sample_rate: int,
    rng: np.random.Generator,
    ensemble: str | None = None,
) -> np.ndarray:
    """Compose and render ``duration_s`` of music following the VA trajectory ``(times, valence, arousal)``."""
    score = compose(times, valence, arousal, duration_s, rng, ensemble)
    return render_score(score, times, valence, arousal, duration_s, sample_rate)


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


@dataclass(frozen=True)
class PlannedSong:
    """A demo song as planned: its number, split, VA quadrant and who plays it."""

    number: int
    split: str
    quadrant: int
    ensemble: str  # a key of ENSEMBLES

    @property
    def song_id(self) -> str:
        return f"demo{self.number:03d}"

    @property
    def instruments(self) -> tuple[str, ...]:
        """The instruments that play in this song (names of ``demo_soundfont.INSTRUMENTS``)."""
        return ENSEMBLES[self.ensemble].instruments


def demo_song_plan(n_songs: int) -> list[PlannedSong]:
    """Each demo song ``demo{number:03d}`` as planned, in number order.

    Splits are a hash of the song id (:func:`pipeline.ids.split_of`) and a handful of consecutive
    ids can all land in train (demo000..demo021 all do), which would leave the demo without
    validation and test songs. So numbers are taken in order, skipping those whose split is
    already full (:func:`split_targets`); within each split the songs cycle through the four VA
    quadrants. A song's ensemble is choice ``number // 4`` of its quadrant's
    (:data:`QUADRANT_ENSEMBLES`): train songs come four at a time, one per quadrant, so each
    quadrant's next song takes its next ensemble (the default 12 songs have three solo-piano
    songs and six with a drum kit). A song's plan does not depend on ``n_songs``.
    """
    targets = split_targets(n_songs)
    taken = {name: 0 for name in targets}
    plan: list[PlannedSong] = []
    number = 0
    while len(plan) < n_songs:
        split = split_of(f"demo{number:03d}")
        if taken[split] < targets[split]:
            quadrant = _QUADRANT_ORDER[(taken[split] + _SPLIT_QUADRANT_OFFSET[split]) % 4]
            choices = QUADRANT_ENSEMBLES[quadrant]
            plan.append(PlannedSong(number, split, quadrant, choices[(number // 4) % len(choices)]))
            taken[split] += 1
        number += 1
    return plan


@register("demo")
class DemoSource:
    """Songs played by sampled instruments (with 2 Hz VA curves) and synthetic images (with VA),
    written once into the cache with the songs' plan (``songs.json``).

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

    @property
    def manifest_path(self) -> Path:
        """``songs.json``: each song's file, split, quadrant, key, tempo range and instruments."""
        return self.folder / "songs.json"

    def items(self) -> SourceItems:
        out = SourceItems()
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        manifest = []
        for planned in demo_song_plan(self.n_songs):
            task, entry = self._song(planned)
            out.songs.append(task)
            manifest.append(entry)
        text = json.dumps({"soundfont": SOUNDFONT_LICENSE, "seed": self.seed,
                           "song_seconds": self.song_seconds, "songs": manifest}, indent=1) + "\n"
        path = self.manifest_path
        if not path.is_file() or path.read_text() != text:  # rewritten only when the plan changed
            _write_atomic(path, lambda tmp: Path(tmp).write_text(text))
        for j, (v, a) in enumerate(stratified_va(self.n_images, self.seed)):
            out.images.append(self._image(j, float(v), float(a)))
        return out

    def _song(self, planned: PlannedSong) -> tuple[SongTask, dict]:
        """The song's task (its file written unless an earlier run wrote it) and manifest entry."""
        song_id = check_id(planned.song_id)
        fmt = song_format(planned.number)
        path = self.folder / f"{song_id}.{fmt}"
        score = compose_song(song_id, self.seed, self.song_seconds, planned.quadrant, planned.ensemble)
        if _audio_complete(path, int(round(self.song_seconds * SYNTH_RATE)), SYNTH_RATE):
            curve = song_va_curve(song_id, self.seed, self.song_seconds, self.annotation_start_s,
                                  quadrant=planned.quadrant)
        else:
            samples, curve = synthesize_song(song_id, self.seed, self.song_seconds, SYNTH_RATE,
                                             self.annotation_start_s, planned.quadrant, planned.ensemble)
            container, subtype = _FORMATS[fmt]
            _write_atomic(path, lambda tmp: sf.write(tmp, samples, SYNTH_RATE, format=container,
                                                     subtype=subtype))
        bpm = [60.0 / b.beat_s for b in score.bars]
        entry = {"song_id": song_id, "file": path.name, "split": planned.split,
                 "quadrant": planned.quadrant, "ensemble": planned.ensemble,
                 "instruments": list(planned.instruments),
                 "parts": {role: inst.name for role, inst in score.ensemble.roles()},
                 "key": score.key, "tempo_bpm": [round(min(bpm), 2), round(max(bpm), 2)]}
        task = SongTask(song_id=song_id, source=self.name, uri=path.resolve().as_uri(),
                        license=LICENSE, va_curve=curve)
        return task, entry

    def _image(self, j: int, v: float, a: float) -> ImageTask:
        image_id = check_id(f"demoimg{j:04d}")
        # The VA is part of the file name: image j's VA depends on --demo_images, so a file
        # cached by a run with another count must not be reused under new labels.
        path = self.folder / "images" / f"{image_id}-v{v:.6f}-a{a:.6f}-s{self.image_size}.png"
        if not _image_complete(path, self.image_size):
            img = synthesize_image(image_id, v, a, self.seed, self.image_size)
            _write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))
        return ImageTask(image_id=image_id, source=self.name, uri=str(path.resolve()),
                         valence=v, arousal=a)
