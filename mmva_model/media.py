"""Decoding the media columns for the encoders: audio bytes to fixed-length mono, images to RGB."""
from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf
import soxr
from PIL import Image

MAX_IMAGE_PIXELS = 40_000_000  # Pillow's decompression-bomb guard, as in the pipeline


class MediaError(ValueError):
    """Media bytes that cannot be decoded."""


def _decode_torchcodec(data: bytes) -> tuple[np.ndarray, int]:
    from torchcodec.decoders import AudioDecoder  # lazily: it loads the FFmpeg libraries

    samples = AudioDecoder(data).get_all_samples()
    return samples.data.numpy().T, int(samples.sample_rate)


def decode_audio(data: bytes, sample_rate: int, seconds: float | None = None) -> np.ndarray:
    """Mono float32 at ``sample_rate``; cropped or zero-padded to ``seconds`` when given.

    libsndfile first (FLAC/WAV/OGG, what the dataset stores), FFmpeg through torchcodec for the
    rest (MP3 in old libsndfile, M4A, WebM).
    """
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as first:
        try:
            x, sr = _decode_torchcodec(data)
        except Exception as e:  # noqa: BLE001 - torchcodec raises plain RuntimeError/ValueError
            raise MediaError(f"undecodable audio ({first}; ffmpeg: {str(e).splitlines()[-1][:200]})") from e
    if x.size == 0:
        raise MediaError("audio has no samples")
    mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)  # the same values; no reduction over one channel
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate).astype(np.float32)
    if seconds is not None:
        n = int(round(seconds * sample_rate))
        mono = np.pad(mono[:n], (0, max(0, n - len(mono))))
    return mono


def decode_image(data: bytes) -> Image.Image:
    """RGB image with the decompression-bomb guard on."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, Image.DecompressionBombError, SyntaxError) as e:
        # Pillow names the buffer object (with its address) in some messages: keep them stable.
        reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(e))
        raise MediaError(f"undecodable image ({reason})") from e


def media_bytes(value) -> bytes:
    """The bytes of a dataset media cell (``{"bytes": ..., "path": ...}`` or raw bytes)."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise MediaError("no media bytes in the cell")
    return bytes(value)
