"""Strip metadata from JPEG and PNG files without touching their coded pixels.

A published dataset must not say where, when or with which camera a photo was taken: EXIF (GPS
position, serial numbers, dates), XMP, IPTC, comments, thumbnails, PNG text chunks and bytes
after the end of the image all go. What decoders need to show the same colours stays: JPEG's
quantisation/Huffman tables, frames and scans, the JFIF header (without its thumbnail), Adobe's
colour-transform segment and the ICC profile; PNG's critical chunks and its colour chunks
(iCCP, sRGB, gAMA, cHRM, cICP, sBIT).

Both functions work on segments/chunks only, so the result is lossless and a pure function of
the input bytes. They return None for a structure they do not know (an unexpected marker or
critical chunk): the caller then re-encodes from pixels, which drops everything anyway.
"""
from __future__ import annotations

import struct

ICC_COLOUR_SPACE = slice(16, 20)  # bytes of an ICC header naming the profile's colour space

# -- JPEG ----------------------------------------------------------------------------------------

_SOI, _EOI, _SOS, _APP0, _APP2, _APP14 = 0xD8, 0xD9, 0xDA, 0xE0, 0xE2, 0xEE
# Frames (SOF0-15 less DHT/JPG/DAC, which are listed apart), tables, restart interval, scan, DNL
_CODING = {*range(0xC0, 0xD0)} - {0xC8} | {0xDB, 0xDD, _SOS, 0xDC}
_JFIF_FIELDS = 12  # "JFIF\0", version, units, x/y density: the thumbnail size bytes follow
_ADOBE_FIELDS = 12  # "Adobe", version, flags0, flags1, colour transform


def _jpeg_keep(marker: int, payload: bytes) -> bytes | None:
    """The payload to write for a marker segment, b"" to drop it, None if the marker is unknown."""
    if marker in _CODING:
        return payload
    if marker == _APP0:
        if payload.startswith(b"JFIF\0") and len(payload) >= _JFIF_FIELDS + 2:
            return payload[:_JFIF_FIELDS] + b"\0\0"  # no thumbnail: it is a copy of the photo
        return b""  # JFXX thumbnails and others
    if marker == _APP2:
        return payload if payload.startswith(b"ICC_PROFILE\0") else b""
    if marker == _APP14:
        if payload.startswith(b"Adobe") and len(payload) >= _ADOBE_FIELDS:
            return payload[:_ADOBE_FIELDS]  # says whether samples are YCbCr or RGB/CMYK
        return b""
    if 0xE0 <= marker <= 0xEF or marker == 0xFE:  # other APPn (EXIF, XMP, IPTC, ...) and COM
        return b""
    return None


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _scan_end(data: bytes, i: int) -> int | None:
    """Index of the marker ending the entropy-coded data that starts at ``i``."""
    while True:
        j = data.find(b"\xff", i)
        if j < 0 or j + 1 >= len(data):
            return None
        nxt = data[j + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:  # stuffed 0xFF byte, restart marker
            i = j + 2
            continue
        return j


def strip_jpeg(data: bytes) -> bytes | None:
    """``data`` with only the segments decoders need, ending at EOI; None if not plain JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    out, i, n = [data[:2]], 2, len(data)
    while True:
        if i >= n or data[i] != 0xFF:
            return None
        while i < n and data[i] == 0xFF:  # fill bytes before a marker
            i += 1
        if i >= n:
            return None
        marker, i = data[i], i + 1
        if marker == _EOI:
            out.append(b"\xff\xd9")
            return b"".join(out)
        if i + 2 > n:
            return None
        length = struct.unpack(">H", data[i:i + 2])[0]
        if length < 2 or i + length > n:
            return None
        keep = _jpeg_keep(marker, data[i + 2:i + length])
        if keep is None:
            return None
        if keep or marker in _CODING:
            out.append(_segment(marker, keep))
        i += length
        if marker == _SOS:
            end = _scan_end(data, i)
            if end is None:
                return None
            out.append(data[i:end])
            i = end


# -- PNG -----------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP", b"sRGB", b"gAMA", b"cHRM",
             b"cICP", b"sBIT"}


def strip_png(data: bytes) -> bytes | None:
    """``data`` with only pixel and colour chunks, ending at IEND; None if not plain PNG."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    out, i, n = [_PNG_SIGNATURE], len(_PNG_SIGNATURE), len(data)
    while i + 12 <= n:
        length = struct.unpack(">I", data[i:i + 4])[0]
        kind = data[i + 4:i + 8]
        end = i + 12 + length
        if end > n:
            return None
        if kind in _PNG_KEEP:
            out.append(data[i:end])
        elif not kind[0] & 0x20:  # an unknown critical chunk: decoders would need it
            return None
        i = end
        if kind == b"IEND":
            return b"".join(out)
    return None


STRIPPERS = {"JPEG": strip_jpeg, "PNG": strip_png}


def rgb_icc_profile(info: dict) -> bytes | None:
    """The ICC profile in a Pillow ``info`` dict when it describes RGB samples, else None."""
    icc = info.get("icc_profile")
    if isinstance(icc, bytes) and len(icc) >= 128 and icc[ICC_COLOUR_SPACE] == b"RGB ":
        return icc
    return None
