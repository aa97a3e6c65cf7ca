"""Remove location and identifying metadata from stored photos, without touching the pixels.

JPEG: the marker segments before the scan are rewritten losslessly — EXIF (GPS, maker notes,
serial numbers), XMP, IPTC/Photoshop blocks and comments are dropped; JFIF, the ICC colour
profile and Adobe's colour-transform marker stay (they change how pixels decode); the EXIF
orientation is kept in a minimal EXIF block of its own, so a phone photo still stands upright.
The compressed image data is copied byte for byte. PNG: text chunks (tEXt, zTXt, iTXt), eXIf
and tIME are dropped; every other chunk is copied as it is.
"""
from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from typing import IO

from app.services.validation import JPEG, PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
# APPn markers kept: APP0 (JFIF), APP2 (ICC profile), APP14 (Adobe colour transform).
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}
_SOS, _COM, _APP1 = 0xDA, 0xFE, 0xE1
ORIENTATION_TAG = 0x0112


class NotScrubbable(Exception):
    """The bytes do not parse as the format they were validated as (never expected)."""


def strip_metadata(path: str, media_type: str) -> str | None:
    """Write a copy of the file at `path` without identifying metadata, next to it.

    Returns the copy's path (the caller removes it), or None when the type carries none we
    remove or nothing had to go. Raises NotScrubbable for a file that does not parse.
    """
    if media_type not in (JPEG, PNG):
        return None
    with open(path, "rb") as source:
        data = source.read()
    cleaned = _jpeg(data) if media_type == JPEG else _png(data)
    if cleaned == data:
        return None
    fd, out = tempfile.mkstemp(dir=os.path.dirname(path), prefix="upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cleaned)
    except BaseException:
        os.unlink(out)  # never a partial copy left behind
        raise
    return out


def _png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise NotScrubbable("not a PNG")
    out, pos = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise NotScrubbable("truncated PNG chunk")
        if kind not in _PNG_DROP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out)


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(marker, whole segment bytes) up to and including SOS, then (SOS, the rest verbatim)."""
    if not data.startswith(b"\xff\xd8"):
        raise NotScrubbable("not a JPEG")
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise NotScrubbable("bad JPEG marker")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            yield marker, bytes([0xFF, marker])
            continue
        length = struct.unpack(">H", data[pos:pos + 2])[0]
        segment = bytes([0xFF, marker]) + data[pos:pos + length]
        pos += length
        if marker == _SOS:
            yield marker, segment + data[pos:]  # entropy-coded data and everything after
            return
        yield marker, segment


def _jpeg(data: bytes) -> bytes:
    out = [b"\xff\xd8"]
    orientation = None
    for marker, segment in _jpeg_segments(data):
        if marker == _APP1 and segment[4:10] == b"Exif\x00\x00":
            orientation = _exif_orientation(segment[10:]) or orientation
            continue
        if marker == _COM or (0xE0 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP):
            continue
        if marker == _SOS and orientation and orientation != 1:
            out.append(_orientation_segment(orientation))
        out.append(segment)
    return b"".join(out)


def _exif_orientation(tiff: bytes) -> int | None:
    """The Orientation tag (1..8) of IFD0 in a TIFF-structured EXIF block, if present."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", tiff[4:8])[0]
    if offset + 2 > len(tiff):
        return None
    count = struct.unpack(order + "H", tiff[offset:offset + 2])[0]
    for i in range(count):
        entry = offset + 2 + 12 * i
        if entry + 12 > len(tiff):
            return None
        tag, kind, _n = struct.unpack(order + "HHI", tiff[entry:entry + 8])
        if tag == ORIENTATION_TAG and kind == 3:  # SHORT
            value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
            return value if 1 <= value <= 8 else None
    return None


def _orientation_segment(orientation: int) -> bytes:
    """A minimal APP1 EXIF block holding only the orientation."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def sha256_and_size(fh: IO[bytes]) -> tuple[str, int]:
    """The hex sha256 and length of a stream, read in chunks."""
    import hashlib

    digest, size = hashlib.sha256(), 0
    while chunk := fh.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
