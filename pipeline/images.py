"""The image stage: decode and validate an untrusted image file, normalise it to RGB JPEG/PNG.

Images arrive from research sets and the web, so each one is treated as hostile input:
Pillow's decompression-bomb guard is on and the declared size is checked before any pixel is
decoded; only common raster formats are opened (Pillow's EPS/PDF plugins would start
Ghostscript); a file must pass ``verify()`` and a full decode. The output is an RGB image whose
longest side is at most ``max_side``, either the original coded data (an RGB JPEG/PNG that needed
no change, rewritten without its metadata segments by ``pipeline.image_metadata``) or a
deterministic re-encoding. Either way no EXIF (GPS, camera, dates), XMP, comment, thumbnail or
text chunk is published; an ICC profile is kept when it describes the RGB samples published.
The same input always gives the same bytes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.ids import check_id
from pipeline.image_metadata import STRIPPERS, rgb_icc_profile
from pipeline.types import ImageTask, ItemError

# Formats opened at all; anything else is "undecodable". JPEG-family sources are re-encoded as
# JPEG (re-encoding them as PNG would only inflate lossy pixels), the others as PNG.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
_JPEG_LIKE = {"JPEG", "MPO", "WEBP"}  # MPO: multi-picture JPEGs, opened by the JPEG plugin
MIN_SIDE = 32
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 6
_EXIF_ORIENTATION = 0x0112
_RGB_MODES = {"RGB", "RGBA", "RGBa", "RGBX", "P", "PA"}  # samples (or palette entries) are RGB


class ImageError(ItemError):
    """An image that cannot become a row; ``error_type`` names the reason for the failures table."""


@dataclass(frozen=True)
class ImageRecord:
    """A validated image ready for the ``images`` table."""

    image_id: str
    source: str
    data: bytes  # encoded PNG or JPEG
    path: str  # "<image_id>.jpg|png": the id passed check_id, so it is a safe file name
    width: int
    height: int
    valence: float
    arousal: float


def process_image(task: ImageTask, local_path: str, *, max_pixels: int = 40_000_000,
                  max_side: int = 1024) -> ImageRecord:
    """Validate the image at ``local_path`` and return it normalised; ImageError if unusable.

    Error types: "read_error" / "missing_image" (file), "undecodable" (not an image, corrupt,
    truncated, unsupported format), "too_large" (more than ``max_pixels`` declared pixels),
    "too_small" (a side under 32 px), "bad_id".
    """
    try:
        image_id = check_id(task.image_id)
    except ValueError as e:
        raise ImageError("bad_id", str(e)) from None
    data = _read(local_path)
    fmt, size = _open_checked(data, max_pixels)
    im = _decode(data, max_pixels)
    oriented = ImageOps.exif_transpose(im) if _orientation(im) not in (0, 1) else im
    rgb = to_rgb(oriented)
    resized = _fit(rgb, max_side)
    if min(resized.size) < MIN_SIDE:
        raise ImageError("too_small", f"{size[0]}x{size[1]} image would be {resized.size} at max_side={max_side}")
    unchanged = resized is im and im.mode == "RGB" and fmt in ("JPEG", "PNG") \
        and getattr(im, "n_frames", 1) == 1 and "transparency" not in im.info
    stripped = STRIPPERS[fmt](data) if unchanged else None
    if stripped is not None:
        out, ext = stripped, "jpg" if fmt == "JPEG" else "png"
    else:
        out, ext = encode(resized, "JPEG" if fmt in _JPEG_LIKE else "PNG", icc_profile=_icc_of(im))
    return ImageRecord(image_id, task.source, out, f"{image_id}.{ext}", resized.width, resized.height,
                       float(task.valence), float(task.arousal))


def _read(local_path: str) -> bytes:
    """The file's bytes, or ImageError."""
    try:
        with open(local_path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ImageError("missing_image", f"{local_path}: no such file") from None
    except OSError as e:
        raise ImageError("read_error", f"{local_path}: {e.strerror or e}") from None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Image.open with the bomb guard set to ``max_pixels``; header only, no pixels decoded."""
    # Pillow's guard is process-wide: it warns above MAX_IMAGE_PIXELS and raises above twice
    # that, before decoding. The warning band is closed by our own size check right after open
    # (warnings.catch_warnings would be simpler but is not thread-safe, and DoFns run in threads).
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("too_large", str(e)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError("undecodable", f"not a readable image ({', '.join(FORMATS)}): {e}") from None


def _open_checked(data: bytes, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """Format and size from the header, after size checks and Pillow's ``verify()``."""
    im = _open(data, max_pixels)
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError("too_large", f"{w}x{h} = {w * h} pixels > max_pixels={max_pixels}")
    if min(w, h) < MIN_SIDE:
        raise ImageError("too_small", f"{w}x{h}: a side is under {MIN_SIDE} px")
    try:
        im.verify()  # structural check (chunk CRCs, markers); the image is unusable afterwards
    except Exception as e:  # noqa: BLE001 - plugins raise many types for corrupt data
        raise ImageError("undecodable", f"verify failed: {type(e).__name__}: {e}") from None
    return im.format, (w, h)


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    """Reopen after verify() and decode all pixels (first frame); truncation is an error."""
    im = _open(data, max_pixels)
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("too_large", str(e)) from None
    except Exception as e:  # noqa: BLE001 - truncated/corrupt data raises OSError, SyntaxError, ...
        raise ImageError("undecodable", f"decode failed: {type(e).__name__}: {e}") from None
    return im


def _orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 = upright; 0 when absent or unreadable)."""
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 0))
    except Exception:  # noqa: BLE001 - a broken EXIF block only means "no orientation"
        return 0


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB: alpha composited on white, high bit depths scaled (not clipped) to 8 bits."""
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _scale_to_8bit(im).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _scale_to_8bit(im: Image.Image) -> Image.Image:
    """Grayscale of 16/32-bit integer or float samples as mode "L"."""
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        top = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
    else:
        top = 65535.0 if im.mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
    return Image.fromarray(np.clip(np.nan_to_num(a) * (255.0 / top), 0, 255).round().astype(np.uint8), "L")


def _fit(im: Image.Image, max_side: int) -> Image.Image:
    """Downscale (Lanczos) so the longest side is at most ``max_side``; same object if it fits."""
    w, h = im.size
    if max(w, h) <= max_side:
        return im
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, Image.Resampling.LANCZOS)


def _icc_of(im: Image.Image) -> bytes | None:
    """The source's ICC profile if it still describes the pixels after conversion to RGB."""
    # A grey or CMYK profile would be wrong on the RGB output (Pillow converts numerically).
    return rgb_icc_profile(im.info) if im.mode in _RGB_MODES else None


def encode(im: Image.Image, fmt: str, icc_profile: bytes | None = None) -> tuple[bytes, str]:
    """Deterministic JPEG (quality 95) or PNG bytes of an RGB image; no metadata but ``icc_profile``."""
    # A fresh image from raw pixels carries no info dict, so no EXIF/DPI/text can leak in.
    clean = Image.frombytes("RGB", im.size, im.convert("RGB").tobytes())
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    buf = io.BytesIO()
    if fmt == "JPEG":
        clean.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling="4:2:0",
                   **extra)
        return buf.getvalue(), "jpg"
    clean.save(buf, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL, **extra)
    return buf.getvalue(), "png"
