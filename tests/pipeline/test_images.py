"""The image stage: hostile and odd images in, RGB JPEG/PNG (or a typed ImageError) out."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.images import ImageError, ImageRecord, process_image
from pipeline.types import ImageTask

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_pillow_guard():
    """process_image sets Pillow's process-wide bomb limit; don't leak test limits to other tests."""
    saved = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = saved


def task(image_id: str = "img1", uri: str = "unused") -> ImageTask:
    return ImageTask(image_id=image_id, source="test", uri=uri, valence=0.25, arousal=0.75)


def save(tmp_path: Path, im: Image.Image, name: str, fmt: str, **kw) -> Path:
    path = tmp_path / name
    im.save(path, fmt, **kw)
    return path


def noise(size=(96, 64), mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    arr = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr if channels > 1 else arr[..., 0], mode)


def decoded(rec: ImageRecord) -> Image.Image:
    im = Image.open(io.BytesIO(rec.data))
    im.load()
    return im


def error_of(path, **kw) -> str:
    with pytest.raises(ImageError) as e:
        process_image(task(), str(path), **kw)
    return e.value.error_type


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB, with a tiny IDAT: decoding it would be huge."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_rgb_jpeg_that_fits_keeps_its_bytes(tmp_path):
    path = save(tmp_path, noise(), "a.jpg", "JPEG", quality=90)
    rec = process_image(task("3053"), str(path))
    assert rec.data == path.read_bytes()
    assert (rec.path, rec.width, rec.height) == ("3053.jpg", 96, 64)
    assert (rec.image_id, rec.source, rec.valence, rec.arousal) == ("3053", "test", 0.25, 0.75)


def test_rgb_png_that_fits_keeps_its_bytes(tmp_path):
    path = save(tmp_path, noise(), "a.png", "PNG")
    rec = process_image(task(), str(path))
    assert rec.data == path.read_bytes() and rec.path == "img1.png"


def test_corrupt_bytes_are_undecodable(tmp_path):
    path = tmp_path / "junk.jpg"
    path.write_bytes(b"this is not an image at all" * 10)
    assert error_of(path) == "undecodable"


def test_truncated_jpeg_is_undecodable(tmp_path):
    full = save(tmp_path, noise((256, 256)), "full.jpg", "JPEG").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(full[: len(full) // 2])
    assert error_of(path) == "undecodable"


def test_corrupt_png_crc_is_undecodable(tmp_path):
    data = bytearray(save(tmp_path, noise(), "ok.png", "PNG").read_bytes())
    data[40] ^= 0xFF  # inside the first IDAT: its CRC no longer matches
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    assert error_of(path) == "undecodable"


def test_formats_outside_the_allow_list_are_refused(tmp_path):
    path = tmp_path / "x.eps"  # Pillow's EPS plugin would run Ghostscript
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n")
    assert error_of(path) == "undecodable"


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.jpg") == "missing_image"


def test_cmyk_jpeg_becomes_rgb_jpeg(tmp_path):
    path = save(tmp_path, Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "cmyk.jpg", "JPEG")
    rec = process_image(task(), str(path))
    im = decoded(rec)
    assert rec.path.endswith(".jpg") and im.format == "JPEG" and im.mode == "RGB"
    r, g, b = im.getpixel((32, 24))
    assert r > 200 and g < 60 and b < 60  # cyan-free, full magenta+yellow = red


def test_grayscale_png_becomes_rgb_with_same_levels(tmp_path):
    gray = noise(mode="L")
    rec = process_image(task(), str(save(tmp_path, gray, "g.png", "PNG")))
    im = decoded(rec)
    assert im.mode == "RGB" and rec.path.endswith(".png")
    assert np.array_equal(np.asarray(im)[..., 0], np.asarray(gray))


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.zeros((40, 40), dtype=np.uint16)
    arr[:, :20], arr[:, 20:] = 65535, 32896  # 32896 = 128 * 257
    src = Image.fromarray(arr, "I;16")
    path = save(tmp_path, src, "deep.png", "PNG")
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    im = decoded(process_image(task(), str(path)))
    assert im.getpixel((5, 5)) == (255, 255, 255) and im.getpixel((30, 5)) == (128, 128, 128)


def test_rgba_png_is_composited_on_white(tmp_path):
    arr = np.zeros((40, 40, 4), dtype=np.uint8)
    arr[:, :20] = (255, 0, 0, 255)  # opaque red
    arr[:, 20:] = (0, 0, 255, 0)  # fully transparent blue
    rec = process_image(task(), str(save(tmp_path, Image.fromarray(arr, "RGBA"), "a.png", "PNG")))
    im = decoded(rec)
    assert im.mode == "RGB" and im.getpixel((5, 5)) == (255, 0, 0) and im.getpixel((30, 5)) == (255, 255, 255)


def test_palette_gif_with_transparency_becomes_rgb_png(tmp_path):
    p = Image.new("P", (40, 40), 0)
    p.putpalette([0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 6))
    p.paste(1, (20, 0, 40, 40))
    path = save(tmp_path, p, "p.gif", "GIF", transparency=1)
    rec = process_image(task(), str(path))
    im = decoded(rec)
    assert rec.path.endswith(".png") and im.mode == "RGB"
    assert im.getpixel((5, 5)) == (0, 255, 0) and im.getpixel((30, 5)) == (255, 255, 255)


def test_huge_declared_size_is_refused_without_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(50_000, 50_000))
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self.size))
    assert error_of(path) == "too_large"
    assert loads == []  # 7.5 GB of pixels were never decoded


# 6400 pixels: above 2 * 3000 Pillow itself raises; between 5000 and 10000 it only warns and our
# own check must refuse the image
@pytest.mark.parametrize("max_pixels", [3_000, 5_000])
def test_max_pixels_is_enforced(tmp_path, max_pixels):
    path = save(tmp_path, noise((100, 64)), "big.png", "PNG")
    with pytest.warns(Image.DecompressionBombWarning) if max_pixels == 5_000 else _nothing():
        assert error_of(path, max_pixels=max_pixels) == "too_large"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_tiny_images_are_too_small(tmp_path):
    assert error_of(save(tmp_path, noise((20, 100)), "t.png", "PNG")) == "too_small"
    # an extreme aspect ratio that downscaling would shrink below 32 px
    assert error_of(save(tmp_path, noise((4000, 40)), "w.png", "PNG")) == "too_small"


def test_large_images_are_downscaled_with_lanczos(tmp_path):
    rec = process_image(task(), str(save(tmp_path, noise((2000, 1000)), "l.jpg", "JPEG")), max_side=1024)
    im = decoded(rec)
    assert (rec.width, rec.height) == im.size == (1024, 512) and im.format == "JPEG"


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((40, 80, 3), dtype=np.uint8)  # 80 wide, 40 high: left red, right blue
    arr[:, :40] = (255, 0, 0)
    arr[:, 40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = save(tmp_path, Image.fromarray(arr), "rot.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    rec = process_image(task(), str(path))
    im = decoded(rec)
    assert im.size == (40, 80) and (rec.width, rec.height) == (40, 80)
    top, bottom = im.getpixel((20, 10)), im.getpixel((20, 70))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert 0x0112 not in im.getexif()  # re-encoded without metadata


def test_reencoding_is_deterministic_across_runs_and_processes(tmp_path):
    path = save(tmp_path, Image.new("CMYK", (300, 1500), (10, 200, 30, 5)), "c.jpg", "JPEG")
    a = process_image(task(), str(path)).data
    b = process_image(task(), str(path)).data
    code = ("import sys, hashlib; from pipeline.images import process_image; from pipeline.types import ImageTask;"
            "r = process_image(ImageTask('img1','test','u',0.25,0.75), sys.argv[1]);"
            "print(hashlib.sha256(r.data).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, check=True)
    import hashlib

    assert a == b and out.stdout.strip() == hashlib.sha256(a).hexdigest()
    assert b"Exif" not in a[:200] and b"JFIF" in a[:30]


def test_bad_id_is_refused_before_it_becomes_a_file_name(tmp_path):
    path = save(tmp_path, noise(), "a.png", "PNG")
    with pytest.raises(ImageError) as e:
        process_image(task("../etc/passwd"), str(path))
    assert e.value.error_type == "bad_id"


# -- metadata: nothing of where/when/with what a photo was taken is published ------------------------

def _srgb_icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


SECRETS = (b"SECRET-CAMERA-SERIAL", b"SECRET-XMP", b"SECRET-COMMENT", b"SECRET-TEXT", b"SECRET-ITXT",
           b"SECRET-ZTXT", b"SECRET-TRAILER", b"SECRET-THUMB", b"SECRET-IPTC")


def _gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0110] = "SECRET-CAMERA-SERIAL model"  # Model
    exif[0x0132] = "2024:05:01 12:00:00"  # DateTime
    gps = exif.get_ifd(0x8825)  # GPSInfo
    gps.update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    return exif.tobytes()


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _insert_after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _assert_no_metadata(rec: ImageRecord) -> Image.Image:
    for secret in SECRETS:
        assert secret not in rec.data, secret
    im = decoded(rec)
    assert not im.getexif() and not im.getexif().get_ifd(0x8825)
    assert not {"exif", "xmp", "comment", "photoshop", "XML:com.adobe.xmp"} & set(im.info)
    assert not getattr(im, "text", {})
    return im


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_metadata_is_stripped_losslessly_keeping_icc(tmp_path, progressive):
    icc = _srgb_icc()
    src = noise()
    path = save(tmp_path, src, "gps.jpg", "JPEG", quality=90, progressive=progressive, exif=_gps_exif(),
                icc_profile=icc, comment=b"SECRET-COMMENT", xmp=b"<x:xmpmeta>SECRET-XMP</x:xmpmeta>")
    iptc = _jpeg_segment(0xED, b"Photoshop 3.0\0SECRET-IPTC")
    # a JFIF thumbnail is an uncompressed picture in APP0: 1x1 px of "SEC" bytes, then a trailer
    raw = path.read_bytes()
    assert raw[2:4] == b"\xff\xe0" and raw[6:11] == b"JFIF\0"
    app0_len = struct.unpack(">H", raw[4:6])[0]
    app0 = raw[6:6 + 12] + b"\x01\x01" + b"SEC"
    jpeg = raw[:2] + _jpeg_segment(0xE0, app0) + _jpeg_segment(0xE0, b"JFXX\0\x10SECRET-THUMB") + iptc \
        + raw[4 + app0_len:] + b"SECRET-TRAILER"
    path.write_bytes(jpeg)
    with Image.open(path) as before:
        assert before.getexif().get_ifd(0x8825)  # the input really carries a GPS position
        before_pixels = np.asarray(before.convert("RGB"))

    rec = process_image(task(), str(path))
    im = _assert_no_metadata(rec)
    assert rec.path == "img1.jpg" and im.info.get("icc_profile") == icc
    assert np.array_equal(np.asarray(im), before_pixels)  # lossless: same coded data, no re-encoding
    assert bool(im.info.get("progressive")) == progressive  # the scans were kept as they were
    assert b"SEC" not in rec.data[:40] and len(rec.data) < len(jpeg)
    assert process_image(task(), str(path)).data == rec.data  # deterministic


def test_png_text_chunks_are_stripped_keeping_icc(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    icc = _srgb_icc()
    info = PngInfo()
    info.add_text("Comment", "SECRET-TEXT")
    info.add_text("Author", "SECRET-ZTXT", zip=True)
    info.add_itxt("Description", "SECRET-ITXT", lang="en")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>SECRET-XMP</x:xmpmeta>")
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 1, 12, 0, 0))
    src = noise()
    path = save(tmp_path, src, "t.png", "PNG", pnginfo=info, icc_profile=icc, exif=_gps_exif())
    path.write_bytes(path.read_bytes() + b"SECRET-TRAILER")
    with Image.open(path) as before:
        assert before.text["Comment"] == "SECRET-TEXT" and before.getexif().get_ifd(0x8825)

    rec = process_image(task(), str(path))
    im = _assert_no_metadata(rec)
    assert b"tIME" not in rec.data and b"eXIf" not in rec.data
    assert rec.path == "img1.png" and im.info.get("icc_profile") == icc
    assert np.array_equal(np.asarray(im), np.asarray(src))
    assert process_image(task(), str(path)).data == rec.data


def test_reencoded_images_keep_an_rgb_icc_profile_and_nothing_else(tmp_path):
    icc = _srgb_icc()
    path = save(tmp_path, noise((1500, 300)), "big.jpg", "JPEG", exif=_gps_exif(), icc_profile=icc,
                comment=b"SECRET-COMMENT")
    rec = process_image(task(), str(path))
    assert rec.width == 1024  # downscaled, so re-encoded
    im = _assert_no_metadata(rec)
    assert im.info.get("icc_profile") == icc


def test_cmyk_profile_is_not_attached_to_rgb_pixels(tmp_path):
    from PIL import ImageCms

    rgb_only = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk_icc = rgb_only[:16] + b"CMYK" + rgb_only[20:]  # header colour space is all that is read
    path = save(tmp_path, Image.new("CMYK", (64, 64), (10, 200, 30, 5)), "c.jpg", "JPEG", icc_profile=cmyk_icc)
    im = decoded(process_image(task(), str(path)))
    assert im.mode == "RGB" and "icc_profile" not in im.info
