"""Audio in and out: probe, decode (mono, resampled, time range), silence test, clip grid, clip VA.

Decoding reads the file at its own rate — libsndfile (soundfile) for WAV/FLAC/OGG/MP3, FFmpeg
(torchcodec) for everything else yt-dlp may bring (m4a, webm, opus in webm...) — then a mean
downmix in numpy and soxr (high quality) for the rate change. libsndfile first because importing
torchcodec imports torch (~3 s per worker process, most of a cold worker's start). Measured on
45 s of 48 kHz stereo (see ``tests/benchmarks``): soxr costs the same as FFmpeg's own resampler
but FFmpeg's default swresample lets a 23 kHz tone alias to 21.1 kHz at -20 dB on 48k->44.1k
where soxr keeps it below -85 dB, and FFmpeg's mono downmix is (L+R)/sqrt(2), not the mean.

Bad audio is data: every problem with a file's content raises :class:`AudioError` with an
``error_type`` the pipeline records as a failure row. What the C decoders print about a file
(mpg123 inside libsndfile: "Note: Illegal Audio-MPEG-Header ...", FFmpeg's log) goes into that
failure's message, never to the terminal (:class:`DecoderNotes`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Iterator, Union

import numpy as np
import soundfile as sf
import soxr

from pipeline.types import ItemError, VACurve

log = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]", bytes]
ERROR_TYPES = ("undecodable", "empty", "silent", "too_long", "too_short")
EPS = 1e-6  # seconds; float slack for grid and window comparisons
_RESAMPLE_QUALITY = "HQ"


class AudioError(ItemError):
    """A file whose audio cannot be used; ``error_type`` is one of :data:`ERROR_TYPES`."""

    def __init__(self, error_type: str, message: str):
        if error_type not in ERROR_TYPES:
            raise ValueError(f"unknown audio error type {error_type!r}")
        super().__init__(error_type, message)


@dataclass(frozen=True)
class AudioInfo:
    """Header metadata of the best audio stream; ``duration_s`` is None when the container
    does not state it (e.g. a streamed webm)."""

    duration_s: float | None
    sample_rate: int
    channels: int
    codec: str


# --- decoder chatter ---------------------------------------------------------------------------

_NOTES_LOCK = threading.RLock()  # one redirection of fd 2 at a time in this process
_NOTES_LIMIT = 400  # characters of decoder notes kept in a failure message
# Lines the C decoders print: mpg123 ("Note: ...", "Warning: ...", "[src/libmpg123/...] error: ..."),
# FFmpeg's log ("[mp3float @ 0x...] ..."). Anything else written to fd 2 meanwhile (another
# thread's log line) is passed on to the real stderr.
_DECODER_LINE = re.compile(r"^(Note|Warning|Error|error): |^\[src/lib|^\[[\w:.-]+ @ (0x)?[0-9a-fA-F]+\]")


class DecoderNotes:
    """Capture what C decoders print to stderr while decoding one file, at the file-descriptor
    level (their fprintf calls bypass Python's ``sys.stderr``).

    ``DecoderNotes(path).run(fn, ...)``: an :class:`AudioError` raised by ``fn`` leaves with the
    notes in its message; after a success they are logged at DEBUG. Nested use (decode calls
    probe) captures once, in the outermost.
    """

    _depth = threading.local()

    def __init__(self, path: PathLike):
        self.name = "<bytes>" if isinstance(path, bytes) else os.path.basename(os.fspath(path))
        self.text = ""
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "DecoderNotes":
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        if depth == 0:
            self._stack.enter_context(_NOTES_LOCK)
            self._stack.enter_context(self._redirected())
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._depth.n -= 1

    @contextlib.contextmanager
    def _redirected(self) -> Iterator[None]:
        sys.stderr.flush()  # Python's own buffered text goes out before the switch
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to redirect (closed): nothing can reach a terminal either
            yield
            return
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield
                finally:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
                    sink.seek(0)
                    self._sort(sink.read().decode("utf-8", "replace"), saved)
        finally:
            os.close(saved)

    def _sort(self, captured: str, stderr_fd: int) -> None:
        ours, others = [], []
        for line in captured.splitlines():
            (ours if _DECODER_LINE.search(line.strip()) else others).append(line)
        if others:
            os.write(stderr_fd, ("\n".join(others) + "\n").encode())
        lines = list(dict.fromkeys(ln.strip() for ln in ours if ln.strip()))  # repeated notes once
        self.text = "; ".join(lines)

    def run(self, fn, *args):
        """``fn(*args)`` with stderr captured; its AudioError gets the notes once the capture has ended."""
        outermost = getattr(self._depth, "n", 0) == 0
        try:
            with self:
                result = fn(*args)
        except AudioError as e:
            if outermost and self.text:
                raise AudioError(e.error_type, f"{e.message} (decoder said: {_clip(self.text)})") from None
            raise
        if outermost and self.text:
            log.debug("%s decoded; the decoder said: %s", self.name, _clip(self.text))
        return result


def _clip(text: str) -> str:
    return text if len(text) <= _NOTES_LIMIT else text[:_NOTES_LIMIT - 1] + "\u2026"


# --- readers -----------------------------------------------------------------------------------


def _torchcodec(source: PathLike):
    from torchcodec.decoders import AudioDecoder  # imported lazily: it loads FFmpeg libraries

    return AudioDecoder(source)


def _sf_source(source: PathLike):
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _reason(e: Exception | None) -> str:
    """The readable end of a torchcodec error (it prefixes C++ function and source line)."""
    return re.sub(r"^.*\.cpp:\d+, ", "", str(e).strip()).splitlines()[0] if e else "unknown format"


def _check_readable(source: PathLike) -> None:
    """A missing file is not bad audio (it is a bug upstream): let it raise as such."""
    if isinstance(source, bytes):
        if not source:
            raise AudioError("empty", "the audio data is zero bytes long")
        return
    if not os.path.exists(source):
        raise FileNotFoundError(source)
    if os.path.getsize(source) == 0:
        raise AudioError("empty", f"{os.fspath(source)!s} is zero bytes long")


def _probe_torchcodec(path: PathLike) -> tuple[AudioInfo | None, Exception | None]:
    try:
        m = _torchcodec(path).metadata
    except (RuntimeError, ValueError) as e:
        return None, e
    duration = float(m.duration_seconds) if m.duration_seconds else None
    return AudioInfo(duration, int(m.sample_rate), int(m.num_channels), str(m.codec)), None


_FFPROBE_TIMEOUT_S = 60


def _ffmpeg_rejects(path: PathLike) -> str | None:
    """Why FFmpeg finds no audio in ``path``, asked of ``ffprobe``; None when it finds some or
    cannot be asked (no ffprobe on PATH, data given as bytes, torch already loaded).

    A file libsndfile cannot read goes to torchcodec, whose import loads torch: about 0.3 GB that a
    worker keeps for the rest of the run, and ~3 s. For a file that is not audio at all (a broken
    download, a truncated upload) FFmpeg's own probe gives the same verdict without either.
    """
    exe = shutil.which("ffprobe")
    if exe is None or isinstance(path, bytes) or "torch" in sys.modules:
        return None
    cmd = [exe, "-v", "error", "-select_streams", "a", "-show_entries", "stream=codec_name",
           "-of", "csv=p=0", os.fspath(path)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=_FFPROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None  # no verdict: torchcodec decides
    if r.returncode == 0 and r.stdout.strip():
        return None
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
    return (lines[-1] if lines else "no audio stream").replace(os.fspath(path) + ": ", "")


def _probe_soundfile(path: PathLike) -> AudioInfo | None:
    try:
        i = sf.info(_sf_source(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    codec = {"OGG": i.subtype.lower(), "MPEG": "mp3"}.get(i.format, i.format.lower())
    return AudioInfo(i.frames / i.samplerate, int(i.samplerate), int(i.channels), codec)


def probe(path: PathLike) -> AudioInfo:
    """Read header metadata without decoding the audio (soundfile, else FFmpeg: ffprobe's verdict
    on data that is not audio, then torchcodec).

    ``path`` may also be the file's bytes. Raises :class:`AudioError` ("undecodable") when
    neither reader recognises the data as audio; what the decoders printed is in its message.
    """
    return DecoderNotes(path).run(_probe, path)


def _probe(path: PathLike) -> AudioInfo:
    _check_readable(path)
    info = _probe_soundfile(path)
    if info is not None:
        return info
    rejected = _ffmpeg_rejects(path)
    if rejected is not None:
        raise AudioError("undecodable", f"not decodable audio: {rejected}")
    info, error = _probe_torchcodec(path)
    if info is None:
        raise AudioError("undecodable", f"not decodable audio: {_reason(error)}")
    return info


_READ_BLOCK = 1 << 18  # frames read and downmixed at once (~6 s at 44.1 kHz)


def _read_range(path: PathLike, start_s: float, end_s: float | None) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 and the native rate for [start_s, end_s) of the file.

    Times count from the first decoded sample. FFmpeg gives mp3/aac a first timestamp after 0
    (encoder delay, ~25 ms) while its decoded samples already start at the true t=0, so a range
    is asked for in the stream's own timestamps: time + first timestamp.
    """
    dec = _torchcodec(path)
    if start_s <= 0 and end_s is None:
        s = dec.get_all_samples()
    else:
        first = dec.get_samples_played_in_range(0.0, max(0.0, dec.metadata.begin_stream_seconds or 0.0) + 0.5)
        offset = first.pts_seconds
        stop = None if end_s is None else end_s + offset
        s = _torchcodec(path).get_samples_played_in_range(start_s + offset, stop)
    y = s.data.numpy()
    if end_s is not None:
        y = y[:, : int(round((end_s - start_s) * s.sample_rate))]
    return y, int(s.sample_rate)


def _read_range_soundfile(path: PathLike, start_s: float, end_s: float | None) -> tuple[np.ndarray, int]:
    """Like :func:`_read_range`; several channels come back already averaged, (1, samples).

    Averaging block by block keeps one mono copy of the song in memory, not every channel of it
    (a 9-minute stereo song: 95 MB instead of 285 MB); the values are those of ``decode``'s mean.
    """
    with sf.SoundFile(_sf_source(path)) as f:
        sr = f.samplerate
        f.seek(min(int(round(start_s * sr)), f.frames))
        n = -1 if end_s is None else int(round((end_s - start_s) * sr))
        if f.channels == 1:
            return f.read(n, dtype="float32", always_2d=True).T, sr
        left = f.frames - f.tell() if n < 0 else min(n, f.frames - f.tell())
        mono = np.empty(max(0, left), dtype=np.float32)
        done = 0
        while done < len(mono):
            block = f.read(min(_READ_BLOCK, len(mono) - done), dtype="float32", always_2d=True)
            if len(block) == 0:  # the header promised more frames than the stream holds
                break
            mono[done:done + len(block)] = block.mean(axis=1, dtype=np.float32)
            done += len(block)
        return mono[None, :done], sr


def _read(path: PathLike, start_s: float, end_s: float | None) -> tuple[np.ndarray, int]:
    try:
        return _read_range_soundfile(path, start_s, end_s)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass  # not a libsndfile format (m4a, webm, opus...): FFmpeg reads it
    try:
        return _read_range(path, start_s, end_s)
    except (RuntimeError, ValueError) as e:
        if "No audio frames were decoded" in str(e):
            raise AudioError("empty", f"no audio samples in [{start_s}, {end_s}) s") from None
        raise AudioError("undecodable", f"not decodable audio: {_reason(e)}") from None


# --- decode ------------------------------------------------------------------------------------


def _check_length(info: AudioInfo, start: float, end_s: float | None, max_seconds: float | None) -> None:
    """Refuse before decoding when the header says the wanted range is too long."""
    if max_seconds is None or info.duration_s is None:
        return
    end = info.duration_s if end_s is None else min(end_s, info.duration_s)
    if end - start > max_seconds + EPS:
        raise AudioError(
            "too_long",
            f"audio range {start:.1f}-{end:.1f} s is {end - start:.1f} s long, over the "
            f"{max_seconds:g} s limit; raise --max_song_seconds or give the source a start/end range",
        )


def decode(path: PathLike, sample_rate: int, *, start_s: float | None = None,
           end_s: float | None = None, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``[start_s, end_s)`` of a file as mono float32 at ``sample_rate``.

    Channels are averaged (opposite-phase stereo cancels, as it would on a mono speaker), then
    resampled with soxr HQ. Raises :class:`AudioError`: "too_long" (before decoding, from the
    header; or after decoding at most ``max_seconds`` + 1 s when the header has no duration),
    "undecodable" for data that is not audio, "empty" when no samples fall in the range; what the
    decoders printed about the file is in its message (and logged at DEBUG when decoding succeeds).
    """
    return DecoderNotes(path).run(_decode, path, sample_rate, start_s, end_s, max_seconds)


def _decode(path: PathLike, sample_rate: int, start_s: float | None, end_s: float | None,
            max_seconds: float | None) -> np.ndarray:
    start = max(0.0, start_s or 0.0)
    if end_s is not None and end_s <= start:
        raise ValueError(f"end_s ({end_s}) must be after start_s ({start})")
    info = _probe(path)
    _check_length(info, start, end_s, max_seconds)
    stop = end_s
    if max_seconds is not None and info.duration_s is None:  # cap what an unknown length may cost
        stop = min(end_s if end_s is not None else math.inf, start + max_seconds + 1.0)
    y, native = _read(path, start, stop)
    if y.size == 0:
        raise AudioError("empty", f"no audio samples in [{start}, {end_s}) s")
    if max_seconds is not None and stop != end_s and y.shape[1] / native > max_seconds + EPS:
        raise AudioError("too_long", f"audio from {start:.1f} s runs past the {max_seconds:g} s limit "
                         "(its header states no duration); raise --max_song_seconds")
    x = y.mean(axis=0, dtype=np.float32) if y.shape[0] > 1 else y[0].astype(np.float32)
    if native != sample_rate:
        x = soxr.resample(x, native, sample_rate, quality=_RESAMPLE_QUALITY)
    return np.ascontiguousarray(x, dtype=np.float32)


def is_silent(x: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level of ``x`` is below ``threshold_db`` dBFS (or ``x`` is empty)."""
    if len(x) == 0:
        return True
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
    return 20.0 * math.log10(rms + 1e-12) < threshold_db


# --- clips -------------------------------------------------------------------------------------


def clip_grid(duration_s: float, clip_s: float, hop_s: float,
              span: tuple[float, float] | None = None) -> list[tuple[int, float, float]]:
    """Clip windows ``(index, start_s, end_s)`` with ``start = index * hop_s`` from t=0.

    Counting from the song start (not from the span) keeps clip ids equal to IMEMNet-C's: a 45 s
    DEAM excerpt annotated over [15, 45) with 10 s clips every 5/3 s gives indices 9..21. Only
    windows fully inside [0, duration] and, when given, fully inside ``span`` are kept.
    """
    if clip_s <= 0 or hop_s <= 0:
        raise ValueError(f"clip_s and hop_s must be positive (got {clip_s}, {hop_s})")
    lo, hi = 0.0, duration_s
    if span is not None:
        lo, hi = max(lo, span[0]), min(hi, span[1])
    index = max(0, math.ceil((lo - EPS) / hop_s))
    out = []
    while index * hop_s + clip_s <= hi + EPS:
        start = index * hop_s
        out.append((index, round(start, 3), round(start + clip_s, 3)))
        index += 1
    return out


def clip_va(curve: VACurve, start_s: float, end_s: float) -> tuple[float, float, float, float]:
    """(valence_mean, arousal_mean, valence_std, arousal_std) of curve samples in [start, end).

    Population std (the spread of the annotation over the clip). Raises ValueError when no
    sample falls in the window.
    """
    t = np.asarray(curve.times_s, dtype=np.float64)
    mask = (t >= start_s - EPS) & (t < end_s - EPS)
    if not mask.any():
        raise ValueError(f"no VA sample in [{start_s}, {end_s}) s (curve spans {curve.span})")
    v = np.asarray(curve.valence, dtype=np.float64)[mask]
    a = np.asarray(curve.arousal, dtype=np.float64)[mask]
    return float(v.mean()), float(a.mean()), float(v.std()), float(a.std())


def encode_flac(x: np.ndarray, sample_rate: int) -> bytes:
    """16-bit FLAC bytes of mono ``x`` (clipped to [-1, 1]); identical input, identical bytes.
    (Clips are stored in the format ``--audio_codec`` names: :func:`dataset_card.codecs.encode`.)"""
    from dataset_card.codecs import AudioFormat, encode

    return encode(x, sample_rate, AudioFormat("flac", sample_rate))
