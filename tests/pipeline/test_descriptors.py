"""pipeline.descriptors: each descriptor measures what it says, on signals whose answer we know."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dataset_card.schema import DESCRIPTOR_FIELDS
from pipeline.audio import clip_grid
from pipeline.descriptors import KEY_NAMES, analyze, clip_descriptors
from tests import audiogen as g

SR = 22050


def describe(x: np.ndarray, sr: int = SR) -> dict:
    """Descriptors of a whole signal as one clip."""
    return clip_descriptors(analyze(x, sr), 0.0, len(x) / sr)


def _transpose(prog, semitones):
    return tuple(tuple(n + semitones for n in c) for c in prog)


# --- contract ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: g.music_like_song(10.0, SR),
    lambda: g.silence(10.0, SR),
    lambda: g.noise(10.0, SR, amp=1e-5),
    lambda: g.tone(440.0, 10.0, SR),
    lambda: np.concatenate([g.silence(5.0, SR), g.click_track(120, 5.0, SR)]),
], ids=["song", "silence", "faint-noise", "tone", "half-silent"])
def test_keys_types_and_finite(make):
    d = describe(make())
    assert list(d) == list(DESCRIPTOR_FIELDS)
    for k, kind in DESCRIPTOR_FIELDS.items():
        if kind == "string":
            assert type(d[k]) is str
        else:
            assert type(d[k]) is float and math.isfinite(d[k]), (k, d[k])
    assert d["key"] in KEY_NAMES and d["mode"] in ("major", "minor")


def test_silence_has_defined_values():
    d = describe(g.silence(10.0, SR))
    assert d == {"tempo_bpm": 0.0, "beat_strength": 1.0, "key": "C", "mode": "major",
                 "key_strength": 0.0, "loudness_db": -100.0, "dynamic_range_db": 0.0,
                 "brightness": 0.0, "onset_rate": 0.0, "percussive_ratio": 0.0, "loudness_trend_db": 0.0,
                 "harmonic_change_rate": 0.0, "noisiness": 0.0}


# --- rhythm ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_click_track_tempo(bpm):
    d = describe(g.click_track(bpm, 10.0, SR))
    assert d["tempo_bpm"] == pytest.approx(bpm, rel=0.015)  # no octave error tolerated
    assert d["beat_strength"] > 3.0  # every beat is a click


def test_song_tempo_and_beats():
    d = describe(g.music_like_song(10.0, SR, bpm=100.0))
    assert d["tempo_bpm"] == pytest.approx(100.0, rel=0.015)
    assert d["beat_strength"] > 2.0


def test_onset_rate_counts_onsets():
    slow, fast = describe(g.click_track(120, 10.0, SR)), describe(g.click_track(240, 10.0, SR))
    assert slow["onset_rate"] == pytest.approx(2.0, abs=0.2)
    assert fast["onset_rate"] == pytest.approx(4.0, abs=0.3)


@pytest.mark.parametrize("make", [lambda: g.noise(10.0, SR), lambda: g.chord((60, 64, 67), 10.0, SR),
                                  lambda: g.noise(10.0, SR, amp=3e-5)], ids=["noise", "chord", "dither"])
def test_steady_sounds_have_no_pulse(make):
    d = describe(make())
    assert d["onset_rate"] <= 0.2 and d["tempo_bpm"] == 0.0 and d["beat_strength"] == 1.0


# --- key ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [0, 2, 7])
def test_major_progression_key(shift):
    x = g.progression(_transpose(g.C_MAJOR_PROGRESSION, shift), 1.0, SR, repeats=2)
    d = describe(x)
    assert (d["key"], d["mode"]) == (KEY_NAMES[shift], "major")
    assert d["key_strength"] > 0.7


@pytest.mark.parametrize("shift", [0, 4, -2])
def test_minor_progression_key(shift):
    x = g.progression(_transpose(g.A_MINOR_PROGRESSION, shift), 1.0, SR, repeats=2)
    d = describe(x)
    assert (d["key"], d["mode"]) == (KEY_NAMES[(9 + shift) % 12], "minor")
    assert d["key_strength"] > 0.6


def test_key_survives_detuning():
    # 30 cents sharp: the song's tuning estimate puts the chroma bins back on the notes
    x = g.progression(_transpose(g.C_MAJOR_PROGRESSION, 0.3), 1.0, SR, repeats=2)
    assert (describe(x)["key"], describe(x)["mode"]) == ("C", "major")


# --- level and timbre --------------------------------------------------------------------------


def test_loudness_is_rms_dbfs():
    x = g.tone(440.0, 5.0, SR, amp=1.0)
    assert describe(x)["loudness_db"] == pytest.approx(-3.01, abs=0.05)  # full-scale sine


@pytest.mark.parametrize("make", [lambda: g.music_like_song(5.0, SR), lambda: g.noise(5.0, SR)],
                         ids=["song", "noise"])
def test_doubling_amplitude_adds_6_db(make):
    x = make()
    assert describe(x)["loudness_db"] - describe(0.5 * x)["loudness_db"] == pytest.approx(6.02, abs=0.05)


def test_dynamic_range():
    steady = g.tone(440.0, 10.0, SR, amp=0.5)
    stepped = np.concatenate([g.tone(440.0, 5.0, SR, amp=0.5), g.tone(440.0, 5.0, SR, amp=0.05)])
    assert describe(steady)["dynamic_range_db"] < 0.1
    assert describe(stepped)["dynamic_range_db"] == pytest.approx(20.0, abs=0.5)


def test_brightness_follows_upper_harmonics():
    dull = g.tone(220.0, 5.0, SR, harmonics=1)
    bright = g.tone(220.0, 5.0, SR, harmonics=20, rolloff=0.9)
    assert describe(dull)["brightness"] == pytest.approx(220.0, rel=0.02)
    assert describe(bright)["brightness"] > 2 * describe(dull)["brightness"]
    assert describe(g.noise(5.0, SR))["brightness"] > describe(bright)["brightness"]


# --- one analysis per song ---------------------------------------------------------------------


def test_clip_windows_match_clips_analysed_alone():
    song = g.music_like_song(45.0, 44100, bpm=110.0)
    a = analyze(song, 44100)
    for _, start, end in clip_grid(45.0, 10.0, 5 / 3, (15.0, 45.0))[::3]:
        window = clip_descriptors(a, start, end)
        alone = describe(song[int(round(start * 44100)):int(round(end * 44100))], 44100)
        assert window["loudness_db"] == pytest.approx(alone["loudness_db"], abs=0.1)
        assert window["brightness"] == pytest.approx(alone["brightness"], rel=0.01)
        assert window["tempo_bpm"] == pytest.approx(alone["tempo_bpm"], rel=0.01)
        assert (window["key"], window["mode"]) == (alone["key"], alone["mode"])
        assert window["onset_rate"] == pytest.approx(alone["onset_rate"], abs=0.2)


def test_input_rate_does_not_change_descriptors():
    # the same band-limited music made at 44.1 and 22.05 kHz: analyze() resamples the former
    def make(sr):
        return g.progression(g.C_MAJOR_PROGRESSION, 2.0, sr, amp=0.3) + g.click_track(120, 8.0, sr, amp=0.3)

    d44, d22 = describe(make(44100), 44100), describe(make(SR), SR)
    for k in ("loudness_db", "dynamic_range_db"):
        assert d44[k] == pytest.approx(d22[k], abs=0.2)
    for k in ("tempo_bpm", "brightness", "onset_rate"):
        assert d44[k] == pytest.approx(d22[k], rel=0.02)
    assert (d44["key"], d44["mode"]) == (d22["key"], d22["mode"]) == ("C", "major")


def test_bad_inputs():
    a = analyze(g.tone(440.0, 5.0, SR), SR)
    with pytest.raises(ValueError, match="no frames"):
        clip_descriptors(a, 10.0, 20.0)
    with pytest.raises(ValueError, match="empty"):
        analyze(np.zeros(0, np.float32), SR)


# --- texture facts (each known by construction) -------------------------------------------------


def test_percussive_ratio_orders_chord_song_clicks():
    chord = describe(g.chord(g.C_MAJOR_PROGRESSION[0], 10.0, SR))["percussive_ratio"]
    song = describe(g.music_like_song(10.0, SR))["percussive_ratio"]
    clicks = describe(g.click_track(120, 10.0, SR))["percussive_ratio"]
    assert chord < 0.2 < song < 0.5 < clicks, (chord, song, clicks)  # the vocabulary's bands
    assert describe(g.silence(10.0, SR))["percussive_ratio"] == 0.0


@pytest.mark.parametrize("db_change", [-30.0, -10.0, 0.0, 10.0, 30.0])
def test_loudness_trend_reads_a_ramp(db_change):
    ramp = (10.0 ** (np.linspace(0.0, db_change, 10 * SR) / 20.0)).astype(np.float32)
    x = g.chord(g.C_MAJOR_PROGRESSION[0], 10.0, SR) * ramp
    assert describe(x)["loudness_trend_db"] == pytest.approx(db_change, abs=1.5)


@pytest.mark.parametrize("seconds_each, changes", [(10.0, 0), (2.5, 3), (1.0, 9)])
def test_harmonic_change_rate_counts_chord_changes(seconds_each, changes):
    # I-IV-V-vi-ii-... : every neighbour differs (a repeated chord would not be a change)
    chords = ((48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 62, 67), (57, 60, 64, 69), (50, 62, 65, 69))
    x = g.progression(chords * 2, seconds_each, SR)[: 10 * SR]
    assert describe(x)["harmonic_change_rate"] == pytest.approx(changes / 10.0, abs=0.1)


def test_noisiness_tone_song_noise():
    tone = describe(g.tone(440.0, 10.0, SR, harmonics=4))["noisiness"]
    song = describe(g.music_like_song(10.0, SR))["noisiness"]
    noise = describe(g.noise(10.0, SR))["noisiness"]
    assert tone < 0.01 and song < 0.08 and noise > 0.5, (tone, song, noise)


# --- long songs: the spectrogram is analysed chunk by chunk ---------------------------------------


def _fields(a) -> dict:
    return {f: getattr(a, f) for f in ("ms", "centroid", "chroma", "onset_env", "percussive", "harmonic", "flatness")}


@pytest.mark.parametrize("samples", [SR * 30, SR * 30 + 511, SR * 30 + 1])  # frame grid ends in every way
def test_chunks_of_the_stft_are_the_whole_stft(samples):
    import librosa

    from pipeline.descriptors import HOP, N_FFT, _stft_frames

    y = g.music_like_song(samples / SR + 1, SR)[:samples]
    whole = librosa.stft(y, n_fft=N_FFT, hop_length=HOP)
    n = whole.shape[1]
    parts = np.concatenate([_stft_frames(y, f, min(f + 300, n)) for f in range(0, n, 300)], axis=1)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_a_song_analysed_in_chunks_equals_one_analysis(monkeypatch):
    """Chunk by chunk (and two passes, for chroma) gives the whole-song features.

    Everything derived from the spectrogram's products is exact (they are rounded to float32 from
    float64 sums, whatever the blocking). HPSS energies are float64 running sums of a moving average
    that starts at each chunk's first neighbour instead of the song's first frame: they may differ
    by float64 rounding of that sum, whose size is set by the largest energies summed (a quiet frame
    beside loud ones inherits their error), about 1e-16 per term over a few thousand frames: so an
    absolute 1e-12 of the largest value."""
    from pipeline import descriptors

    x = np.concatenate([g.music_like_song(20.0, SR), g.silence(3.0, SR), g.music_like_song(17.0, SR, minor=True)])
    monkeypatch.setattr(descriptors, "CHUNK_FRAMES", 10**9)
    whole = analyze(x, SR)
    monkeypatch.setattr(descriptors, "CHUNK_FRAMES", 333)  # 6 chunks, the last a short one
    chunked = analyze(x, SR)
    assert chunked.tuning == whole.tuning and chunked.duration_s == whole.duration_s
    for name, value in _fields(whole).items():
        if name in ("percussive", "harmonic"):
            np.testing.assert_allclose(_fields(chunked)[name], value, rtol=0, atol=1e-12 * value.max(), err_msg=name)
        else:
            np.testing.assert_array_equal(_fields(chunked)[name], value, err_msg=name)
    for start in range(0, 30, 5):
        a, b = clip_descriptors(whole, start, start + 10), clip_descriptors(chunked, start, start + 10)
        assert {k: np.float32(v) if not isinstance(v, str) else v for k, v in a.items()} == {
            k: np.float32(v) if not isinstance(v, str) else v for k, v in b.items()}  # as stored


def test_tuning_from_chunked_peaks_is_librosas_estimate():
    import librosa

    from pipeline.descriptors import HOP, N_FFT, _pitch_peaks, _tuning

    y = g.progression(((61.3, 65.3, 68.3), (66.3, 70.3, 73.3)), 4.0, SR)  # a third of a semitone sharp
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    expected = librosa.estimate_tuning(S=power, sr=SR, bins_per_octave=12)
    assert _tuning([_pitch_peaks(power[:, i:i + 50], SR) for i in range(0, power.shape[1], 50)]) == expected
    assert abs(expected - 0.3) < 0.05


def test_analysis_memory_does_not_grow_with_the_spectrogram():
    """Peak allocations of a 4x longer song grow by its features and audio, not by its spectrogram."""
    import tracemalloc

    from pipeline.descriptors import CHUNK_FRAMES, HOP

    def peak(seconds: float) -> int:
        x = g.noise(seconds, SR, amp=0.1)
        tracemalloc.start()
        analyze(x, SR)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    short_s = CHUNK_FRAMES * HOP / SR * 1.2  # just over one chunk: the two-pass path already
    extra_frames = 3 * short_s * SR / HOP
    spectrogram = extra_frames * 1025 * 8  # complex64 STFT of the extra length
    growth = peak(4 * short_s) - peak(short_s)
    assert growth < 0.5 * spectrogram, (growth, spectrogram)  # a whole-song STFT: about 3x it


# --- the same values whatever the BLAS kernel and thread count --------------------------------------

_FINGERPRINT = """
import hashlib, json, sys
import numpy as np
from threadpoolctl import threadpool_limits
from tests import audiogen as g
from pipeline.descriptors import analyze, clip_descriptors

x = np.concatenate([g.music_like_song(20.0, 44100), g.music_like_song(15.0, 44100, minor=True)])  # resampled too
prints = {}
for threads in (1, 2, 4):
    with threadpool_limits(threads):
        a = analyze(x, 44100)
    h = hashlib.sha256()
    for f in ("ms", "centroid", "chroma", "onset_env", "percussive", "harmonic", "flatness"):
        h.update(np.ascontiguousarray(getattr(a, f)).tobytes())
    for start in range(0, 26, 5):
        d = clip_descriptors(a, start, start + 10)
        h.update(json.dumps({k: v if isinstance(v, str) else float(np.float32(v)) for k, v in d.items()}).encode())
    prints[threads] = h.hexdigest()
print(json.dumps(prints))
"""


def _fingerprints(coretype: str | None) -> dict[str, str]:
    """Analysis fingerprints at 1, 2 and 4 BLAS threads, in a process whose OpenBLAS uses ``coretype``."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                                                             "OMP_NUM_THREADS")}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run([sys.executable, "-c", _FINGERPRINT], env=env, capture_output=True, text=True,
                         timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"),
                    reason="OpenBLAS kernel names below are x86-64 ones")
def test_analysis_is_the_same_for_every_blas_kernel_and_thread_count():
    """The CPU's own kernel (OPENBLAS_CORETYPE unset), Haswell's (AVX2, what some machines of ours
    force) and Sandybridge's (AVX, no FMA) sum products in different orders; threads split them."""
    prints = {core: _fingerprints(core) for core in (None, "Haswell", "Sandybridge")}
    values = {p for by_threads in prints.values() for p in by_threads.values()}
    assert len(values) == 1, prints
