"""Sampled instruments for the demo source: General MIDI notes -> audio through a soundfont.

The demo's songs are written as notes (:class:`Note`) for a few instruments (:data:`INSTRUMENTS`,
General MIDI programs) and rendered here by TinySoundFont (the ``tinysoundfont`` wheel, MIT, no
system library) with the TimGM6mb General MIDI soundfont (Tim Brechbill, GPL-2.0, 6 MB). The
soundfont is the copy the ``pretty-midi`` wheel ships (pinned, so every machine renders the same
bytes; its SHA-256 is checked); both wheels are installed ``--no-deps`` by the Makefile
(tinysoundfont declares PyAudio, needed only for live playback; pretty-midi's code is not used).

Rendering is one synthesiser in this thread, driven sample by sample between note events (no
sequencer clock), so the same notes give bit-identical samples whatever the thread count.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOUNDFONT_PACKAGE = "pretty_midi"
SOUNDFONT_FILE = "TimGM6mb.sf2"
SOUNDFONT_SHA256 = "82475b91a76de15cb28a104707d3247ba932e228bada3f47bba63c6b31aaf7a1"
SOUNDFONT_LICENSE = "GPL-2.0 (TimGM6mb, Tim Brechbill)"
INSTALL_HINT = (".venv/bin/python -m pip install --no-deps tinysoundfont==0.3.7 "
                "pretty-midi==0.2.11.post0   (`make` installs both)")
DRUM_CHANNEL = 9  # General MIDI's percussion channel
TAIL_S = 2.0  # rendered past the last note-off, so releases ring out before the cut


class SoundfontMissing(OSError):
    """The renderer or its soundfont is not installed (the message says how to install them)."""


@dataclass(frozen=True)
class Instrument:
    """A General MIDI instrument: ``name`` is the word a music tagger would use for it."""

    name: str
    program: int  # 0-based GM program (bank 0), or the drum kit's preset on bank 128
    drums: bool = False


# Names follow MagnaTagATune's tag words where one exists (piano, guitar, strings, violin, cello,
# harp, flute, choir, synth, drums), so a tagger's answer can be checked against the plan.
INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument("piano", 0),
    Instrument("organ", 16),
    Instrument("acoustic guitar", 24),
    Instrument("electric guitar", 27),
    Instrument("distorted guitar", 30),
    Instrument("acoustic bass", 32),
    Instrument("electric bass", 33),
    Instrument("synth bass", 38),
    Instrument("violin", 40),
    Instrument("cello", 42),
    Instrument("harp", 46),
    Instrument("strings", 48),
    Instrument("choir", 52),
    Instrument("flute", 73),
    Instrument("synth lead", 81),
    Instrument("synth pad", 89),
    Instrument("drums", 0, drums=True),
)}


@dataclass(frozen=True)
class Note:
    """One note of part ``part`` (an index into the parts list given to :func:`render`)."""

    start_s: float
    end_s: float
    part: int
    key: int  # MIDI note number
    velocity: int  # 1..127


def _import_tinysoundfont():
    try:
        import tinysoundfont
    except ImportError as e:
        raise SoundfontMissing(f"the demo renders its songs with tinysoundfont, which is not installed: "
                               f"{INSTALL_HINT}") from e
    return tinysoundfont


@functools.lru_cache(maxsize=1)
def soundfont_bytes() -> bytes:
    """The TimGM6mb soundfont shipped by the pinned pretty-midi wheel (checked by SHA-256)."""
    spec = importlib.util.find_spec(SOUNDFONT_PACKAGE)  # found, not imported: only its data is used
    path = Path(spec.origin).parent / SOUNDFONT_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise SoundfontMissing(f"the demo's General MIDI soundfont ({SOUNDFONT_FILE}, shipped by the "
                               f"pretty-midi wheel) is not installed: {INSTALL_HINT}")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOUNDFONT_SHA256:
        raise SoundfontMissing(f"{path} is not the pinned TimGM6mb soundfont (sha256 {digest[:12]}…, "
                               f"expected {SOUNDFONT_SHA256[:12]}…): {INSTALL_HINT}")
    return data


def check_installed() -> None:
    """Raise :class:`SoundfontMissing` (saying how to install them) unless renderer and soundfont are here."""
    _import_tinysoundfont()
    soundfont_bytes()


def _channels(parts: Sequence[Instrument]) -> list[int]:
    """MIDI channel of each part: drums on channel 10, the others in order around it."""
    melodic = iter(c for c in range(16) if c != DRUM_CHANNEL)
    channels = [DRUM_CHANNEL if p.drums else next(melodic) for p in parts]
    if channels.count(DRUM_CHANNEL) > 1:
        raise ValueError("at most one drum part")
    return channels


def _events(notes: Iterable[Note], channels: list[int], sr: int, n: int) -> list[tuple[int, int, int, int, int]]:
    """``(sample, on, channel, key, velocity)`` sorted; note-offs first at a shared sample.

    A MIDI note-off releases every sounding voice of its key on its channel, so a note that
    overlaps the next one of the same key and channel ends where that one starts (else its late
    note-off would cut the new note short).
    """
    by_key: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for note in notes:
        start = int(round(note.start_s * sr))
        if start < n:
            end = max(start + 1, int(round(note.end_s * sr)))
            by_key.setdefault((channels[note.part], note.key), []).append(
                (start, end, int(np.clip(note.velocity, 1, 127))))
    events = []
    for (ch, key), spans in by_key.items():
        spans.sort()
        for k, (start, end, vel) in enumerate(spans):
            if k + 1 < len(spans):
                end = max(start + 1, min(end, spans[k + 1][0]))
            events.append((start, 1, ch, key, vel))
            events.append((end, 0, ch, key, 0))
    events.sort()
    return events


def render(parts: Sequence[Instrument], notes: Iterable[Note], n_samples: int, sample_rate: int) -> np.ndarray:
    """Mono float32 samples (``n_samples`` + ``TAIL_S`` s) of ``notes`` played by ``parts``."""
    tsf = _import_tinysoundfont()
    synth = tsf.Synth(samplerate=sample_rate)
    sfid = synth.sfload(soundfont_bytes())
    channels = _channels(parts)
    for part, ch in zip(parts, channels):
        synth.program_select(ch, sfid, 128 if part.drums else 0, part.program, is_drums=part.drums)
    total = n_samples + int(TAIL_S * sample_rate)
    buf = memoryview(bytearray(total * 2 * 4))  # interleaved stereo float32
    pos = 0
    for sample, on, ch, key, vel in _events(notes, channels, sample_rate, n_samples):
        sample = min(sample, total)
        if sample > pos:
            synth.generate_simple(sample - pos, buffer=buf[pos * 8 : sample * 8])
            pos = sample
        if on:
            synth.noteon(ch, key, vel)
        else:
            synth.noteoff(ch, key)
    if total > pos:
        synth.generate_simple(total - pos, buffer=buf[pos * 8 :])
    stereo = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)
    return (np.float32(0.5) * (stereo[:, 0] + stereo[:, 1])).astype(np.float32)
