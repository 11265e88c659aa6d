"""Test audio made in-test: tones, chords, click tracks, noise, silence and a music-like song.

Everything is deterministic (fixed seeds) and returned as mono float32 numpy arrays in [-1, 1],
plus writers to wav/flac/mp3/ogg (libsndfile) and m4a/webm/opus (the ffmpeg CLI) bytes or files.
No audio data ships with the project: tests build what they need from these helpers.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Chord progressions as MIDI notes (bass + triad). Cadences that spell the key unambiguously:
# I-IV-V-I in C major; i-iv-V-i in A minor (harmonic minor: the G# leading tone tells A minor
# apart from its relative C major).
C_MAJOR_PROGRESSION = ((48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 62, 67), (48, 60, 64, 67))
A_MINOR_PROGRESSION = ((45, 57, 60, 64), (50, 57, 62, 65), (52, 56, 59, 64), (45, 57, 60, 64))


def midi_hz(note: float) -> float:
    """Frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(round(seconds * sr))) / sr


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5, harmonics: int = 1,
         rolloff: float = 0.5) -> np.ndarray:
    """A (harmonic) tone: ``harmonics`` partials, partial k at amplitude ``rolloff**(k-1)``.

    The sum is scaled so its peak is about ``amp``; partials above Nyquist are skipped.
    """
    t = _t(seconds, sr)
    x = np.zeros_like(t)
    weights = 0.0
    for k in range(1, harmonics + 1):
        if k * freq >= sr / 2:
            break
        w = rolloff ** (k - 1)
        x += w * np.sin(2 * np.pi * k * freq * t)
        weights += w
    return (amp * x / max(weights, 1e-12)).astype(np.float32)


def chord(notes: tuple[float, ...], seconds: float, sr: int, amp: float = 0.5,
          harmonics: int = 4) -> np.ndarray:
    """Several harmonic tones (MIDI notes) summed, with short fades so joins do not click."""
    x = sum(tone(midi_hz(n), seconds, sr, 1.0, harmonics) for n in notes)
    return _fade(amp * x / len(notes), sr)


def progression(chords: tuple[tuple[float, ...], ...], seconds_each: float, sr: int,
                repeats: int = 1, amp: float = 0.5, harmonics: int = 4) -> np.ndarray:
    """Chords played one after another, the whole sequence ``repeats`` times."""
    parts = [chord(c, seconds_each, sr, amp, harmonics) for c in chords] * repeats
    return np.concatenate(parts).astype(np.float32)


def click_track(bpm: float, seconds: float, sr: int, amp: float = 0.8,
                click_s: float = 0.02, freq: float = 1500.0) -> np.ndarray:
    """Short decaying sine bursts, one per beat, starting at t=0."""
    x = np.zeros(int(round(seconds * sr)), dtype=np.float32)
    n = int(round(click_s * sr))
    burst = (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr) * np.exp(-np.arange(n) / (n / 5)))
    for start in np.arange(0.0, seconds, 60.0 / bpm):
        i = int(round(start * sr))
        m = min(n, len(x) - i)
        x[i:i + m] += burst[:m].astype(np.float32)
    return x


def noise(seconds: float, sr: int, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """White noise, uniform in [-amp, amp]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-amp, amp, int(round(seconds * sr))).astype(np.float32)


def silence(seconds: float, sr: int) -> np.ndarray:
    """Digital silence."""
    return np.zeros(int(round(seconds * sr)), dtype=np.float32)


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two mono signals as a (samples, 2) array, the layout soundfile writes."""
    return np.stack([left, right], axis=1).astype(np.float32)


def music_like_song(seconds: float, sr: int, bpm: float = 120.0, minor: bool = False,
                    seed: int = 0) -> np.ndarray:
    """Chords (one per bar) plus kick, snare and hi-hat at ``bpm``: a stand-in for a real song."""
    beat = 60.0 / bpm
    prog = A_MINOR_PROGRESSION if minor else C_MAJOR_PROGRESSION
    bars = int(np.ceil(seconds / (4 * beat)))
    harmony = progression(prog, 4 * beat, sr, repeats=int(np.ceil(bars / len(prog))), amp=0.35)
    x = harmony[: int(round(seconds * sr))].copy()
    x = np.pad(x, (0, max(0, int(round(seconds * sr)) - len(x))))
    rng = np.random.default_rng(seed)
    kick = tone(55.0, 0.15, sr, 0.6) * np.exp(-np.arange(int(round(0.15 * sr))) / (0.03 * sr))
    snare = rng.uniform(-0.3, 0.3, int(0.1 * sr)) * np.exp(-np.arange(int(0.1 * sr)) / (0.02 * sr))
    hat = rng.uniform(-0.1, 0.1, int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr))
    for k, start in enumerate(np.arange(0.0, seconds, beat / 2)):
        _add(x, hat, start, sr)
        if k % 2 == 0:
            _add(x, kick if (k // 2) % 2 == 0 else snare, start, sr)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _add(x: np.ndarray, y: np.ndarray, start_s: float, sr: int) -> None:
    i = int(round(start_s * sr))
    m = min(len(y), len(x) - i)
    if m > 0:
        x[i:i + m] += y[:m]


def _fade(x: np.ndarray, sr: int, fade_s: float = 0.01) -> np.ndarray:
    n = min(int(fade_s * sr), len(x) // 2)
    if n:
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x.astype(np.float32)


# --- writing -----------------------------------------------------------------------------------

# libsndfile container + subtype per format; the rest go through the ffmpeg CLI.
_SNDFILE = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"),
            "mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS")}
_FFMPEG = {"m4a": ("ipod", ["-c:a", "aac", "-b:a", "128k"]),
           "webm": ("webm", ["-c:a", "libopus", "-b:a", "96k"]),
           "opus": ("opus", ["-c:a", "libopus", "-b:a", "96k"])}
FORMATS = tuple(_SNDFILE) + tuple(_FFMPEG)


def has_ffmpeg() -> bool:
    """Whether the ffmpeg CLI needed for m4a/webm/opus is on PATH."""
    return shutil.which("ffmpeg") is not None


def to_bytes(x: np.ndarray, sr: int, fmt: str) -> bytes:
    """Encode ``x`` (mono, or (samples, channels)) as ``fmt`` bytes.

    ``fmt`` is one of :data:`FORMATS`. Opus only takes 8/12/16/24/48 kHz, so ffmpeg resamples
    other rates to 48 kHz for webm/opus; decoders always report Opus at 48 kHz anyway.
    """
    x = np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0)
    if fmt in _SNDFILE:
        return _sndfile_encode(x, sr, *_SNDFILE[fmt])
    if fmt in _FFMPEG:
        return _ffmpeg_encode(x, sr, *_FFMPEG[fmt])
    raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")


def _sndfile_encode(x: np.ndarray, sr: int, container: str, subtype: str) -> bytes:
    # Written in blocks: libsndfile 1.2's Vorbis encoder segfaults on one large write
    # (seen with 45 s of 48 kHz stereo).
    buf = io.BytesIO()
    channels = 1 if x.ndim == 1 else x.shape[1]
    with sf.SoundFile(buf, "w", sr, channels, format=container, subtype=subtype) as f:
        for i in range(0, len(x), 16384):
            f.write(x[i:i + 16384])
    return buf.getvalue()


def _ffmpeg_encode(x: np.ndarray, sr: int, container: str, codec_args: list[str]) -> bytes:
    channels = 1 if x.ndim == 1 else x.shape[1]
    extra = ["-ar", "48000"] if "libopus" in codec_args and sr not in (8000, 12000, 16000, 24000, 48000) else []
    cmd = ["ffmpeg", "-v", "error", "-f", "f32le", "-ar", str(sr), "-ac", str(channels), "-i", "pipe:0",
           *codec_args, *extra, "-f", container, "pipe:1"]
    if container == "ipod":  # mp4 needs a seekable output unless the moov atom is fragmented
        cmd[-3:-3] = ["-movflags", "frag_keyframe+empty_moov"]
    return subprocess.run(cmd, input=x.astype("<f4").tobytes(), capture_output=True, check=True).stdout


def write(path: str | Path, x: np.ndarray, sr: int, fmt: str | None = None) -> Path:
    """Write ``x`` to ``path`` as ``fmt`` (default: the file's suffix); returns the path."""
    path = Path(path)
    path.write_bytes(to_bytes(x, sr, fmt or path.suffix.lstrip(".")))
    return path
