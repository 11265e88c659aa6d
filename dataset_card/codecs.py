"""How clip audio is stored: the codecs the `music` table's `audio` column may hold.

Part of the data contract: the pipeline encodes clips with :func:`encode`, the card names the
codec, the explorer encodes its previews with the same code. Every codec here is one that
`datasets`' ``Audio`` feature decodes (through torchcodec/FFmpeg) and that soundfile reads back
sample-exact (FLAC; Ogg Opus, whose decoders play at 48 kHz; MP3 with LAME's gapless header),
so a clip decodes to exactly ``end_s - start_s`` seconds whatever the codec.

All three are written by libsndfile (soundfile) in this process: no encoder process per clip
(starting FFmpeg costs ~50 ms, more than encoding a 10 s clip losslessly). libsndfile numbers each
Ogg stream with a random serial, so Opus output is made byte-stable by setting the serial to a
constant and recomputing each page's checksum (:func:`_fixed_ogg_serial`); FLAC and LAME output
are byte-stable as written. Measured costs (size, encode time, what a lossy round trip changes in
the descriptors): ``docs/dataset.md``.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import soundfile as sf

# libopus takes 8/12/16/24/48 kHz, but FFmpeg (so `datasets`) decodes every Opus stream at 48 kHz
# while libsndfile decodes at the rate the header names: only 48 kHz decodes alike everywhere.
OPUS_RATES = (48000,)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # MPEG-1/2/2.5
OGG_SERIAL = 0x494D4543  # "IMEC": one constant logical-stream number for every Ogg file we write
_RESAMPLE_QUALITY = "HQ"  # as pipeline.audio decodes


@dataclass(frozen=True)
class Codec:
    """One storable codec: its flag value, what the card calls it, and its limits."""

    name: str
    label: str
    extension: str  # of the ``path`` stored beside the bytes
    lossy: bool
    rates: tuple[int, ...] | None  # sample rates it takes (None: any)
    default_rate: int | None  # None: the pipeline's analysis rate (--sample_rate)
    kbps_range: tuple[int, int] | None  # bitrate bounds for mono (None: lossless)
    default_kbps: int | None
    write: Callable[[np.ndarray, int, int | None], bytes]


def _flac(x: np.ndarray, rate: int, kbps: int | None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _opus(x: np.ndarray, rate: int, kbps: int | None) -> bytes:
    # libsndfile maps compression level q to int((1 - q) * 250000 + 6000) bit/s per channel;
    # the 1e-9 keeps the product from rounding just below the wanted integer.
    level = 1.0 - (kbps * 1000 - 6000) / 250000 - 1e-9
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="OGG", subtype="OPUS", compression_level=min(1.0, max(0.0, level)))
    return _fixed_ogg_serial(buf.getvalue())


def _mp3(x: np.ndarray, rate: int, kbps: int | None) -> bytes:
    # Average bitrate (LAME ABR): about kbps on average, more bits where the music needs them.
    # libsndfile maps level c to 320 - c * 288 kbps at MPEG-1 rates, 160 - c * 152 at MPEG-2's
    # and 64 - c * 56 at MPEG-2.5's.
    top, bottom = (320, 32) if rate >= 32000 else (160, 8) if rate >= 16000 else (64, 8)
    level = (top - kbps) / (top - bottom) - 1e-9
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="AVERAGE",
             compression_level=min(1.0, max(0.0, level)))
    return buf.getvalue()


CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("flac", "FLAC (lossless, 16-bit)", ".flac", False, None, None, None, None, _flac),
    Codec("opus", "Opus in Ogg (lossy)", ".opus", True, OPUS_RATES, 48000, (6, 256), 96, _opus),
    Codec("mp3", "MP3 (lossy, LAME average bitrate)", ".mp3", True, MP3_RATES, None, (8, 320), 160, _mp3),
)}


@dataclass(frozen=True)
class AudioFormat:
    """How clips are stored: codec, sample rate and (lossy codecs) bitrate; None picks the codec's
    default (:meth:`resolved`)."""

    codec: str = "flac"
    sample_rate: int | None = None
    kbps: int | None = None

    def __post_init__(self):
        check(self)

    @property
    def spec(self) -> Codec:
        return CODECS[self.codec]

    @property
    def extension(self) -> str:
        return self.spec.extension

    def resolved(self, analysis_rate: int) -> "AudioFormat":
        """The same format with every default filled in, for audio analysed at ``analysis_rate``."""
        c = self.spec
        rate = self.sample_rate or c.default_rate or analysis_rate
        if c.rates and rate not in c.rates:  # e.g. MP3 of audio analysed at 37 kHz: the next rate up
            rate = next((r for r in c.rates if r >= rate), c.rates[-1])
        return AudioFormat(self.codec, rate, self.kbps or c.default_kbps)

    def describe(self) -> str:
        """One line for people: codec, bitrate, channels, rate."""
        c = self.spec
        rate = f"{self.sample_rate / 1000:g} kHz" if self.sample_rate else "the analysis rate"
        bitrate = f", {self.kbps} kbit/s" if c.lossy and self.kbps else ""
        return f"{c.label}{bitrate}, mono, {rate}"


def check(fmt: AudioFormat) -> None:
    """ValueError naming the flag when ``fmt`` cannot be encoded."""
    if fmt.codec not in CODECS:
        raise ValueError(f"--audio_codec {fmt.codec!r}: choose one of {', '.join(CODECS)}")
    c = CODECS[fmt.codec]
    if fmt.sample_rate is not None and c.rates and fmt.sample_rate not in c.rates:
        raise ValueError(f"--audio_sample_rate {fmt.sample_rate}: {c.name} takes "
                         f"{', '.join(map(str, c.rates))} Hz")
    if fmt.kbps is not None:
        if c.kbps_range is None:
            raise ValueError(f"--audio_bitrate applies to lossy codecs, not {c.name}")
        lo, hi = c.kbps_range
        if not lo <= fmt.kbps <= hi:
            raise ValueError(f"--audio_bitrate {fmt.kbps}: {c.name} takes {lo}-{hi} kbit/s (mono)")


def encode(x: np.ndarray, sample_rate: int, fmt: AudioFormat) -> bytes:
    """Mono float ``x`` at ``sample_rate`` (clipped to [-1, 1]) as ``fmt``'s bytes, resampled with
    soxr HQ when the format stores another rate; the same input gives the same bytes."""
    fmt = fmt.resolved(sample_rate)
    x = np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0)
    if fmt.sample_rate != sample_rate:
        import soxr

        x = np.clip(soxr.resample(x, sample_rate, fmt.sample_rate, quality=_RESAMPLE_QUALITY), -1.0, 1.0)
    return fmt.spec.write(x, fmt.sample_rate, fmt.kbps)


def codec_of(data: bytes) -> str | None:
    """The codec name of stored bytes, from their first bytes (None: not one of ours)."""
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "opus" if data[28:36] == b"OpusHead" else None
    if data[:3] == b"ID3" or _is_mp3_frame(data[:2]):
        return "mp3"
    return None


def _is_mp3_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a known version (1, 2 or 2.5), layer III."""
    return (len(head) == 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
            and (head[1] >> 3) & 0b11 != 0b01 and (head[1] >> 1) & 0b11 == 0b01)


# --- Ogg pages ----------------------------------------------------------------------------------

_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, MSB first, initial value 0, no final
    xor. zlib's CRC-32 is the same polynomial bit-reversed; fed bit-reversed bytes from a zero
    register (zlib's start value is complemented inside) it yields the bit-reversed Ogg CRC."""
    reflected = zlib.crc32(page.translate(_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _fixed_ogg_serial(data: bytes, serial: int = OGG_SERIAL) -> bytes:
    """``data`` (one logical Ogg stream) with every page's serial number set to ``serial`` and
    its checksum recomputed."""
    out, pos = bytearray(data), 0
    while pos < len(out):
        if out[pos:pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        segments = out[pos + 26]
        size = 27 + segments + sum(out[pos + 27:pos + 27 + segments])
        struct.pack_into("<I", out, pos + 14, serial)
        struct.pack_into("<I", out, pos + 22, 0)
        struct.pack_into("<I", out, pos + 22, _ogg_crc(bytes(out[pos:pos + size])))
        pos += size
    return bytes(out)
