"""Remove location and identifying metadata from stored photos, without touching the pixels.

JPEG: the marker segments before the scan are rewritten losslessly — EXIF (GPS, maker notes,
serial numbers), XMP, IPTC/Photoshop blocks and comments are dropped; JFIF, the ICC colour
profile and Adobe's colour-transform marker stay (they change how pixels decode); the EXIF
orientation is kept in a minimal EXIF block of its own, so a phone photo still stands upright.
The compressed image data is copied byte for byte. PNG: text chunks (tEXt, zTXt, iTXt), eXIf
and tIME are dropped; every other chunk is copied as it is.

The file is streamed, never read whole: a worker holds at most one JPEG segment (64 KiB) and
one copy buffer, whatever the photo's size.
"""
from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Iterator
from typing import IO, TypeAlias

from app.services.validation import JPEG, PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
# APPn markers kept: APP0 (JFIF), APP2 (ICC profile), APP14 (Adobe colour transform).
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}
_SOS, _COM, _APP1 = 0xDA, 0xFE, 0xE1
ORIENTATION_TAG = 0x0112
_CHUNK = 1024 * 1024  # the copy buffer for image data

#: A piece of a cleaned copy: bytes to write, or a count of the source's next bytes, copied as they are.
Piece: TypeAlias = "bytes | int"


class NotScrubbable(Exception):
    """The bytes do not parse as the format they were validated as (never expected)."""


def strip_metadata(path: str, media_type: str) -> str | None:
    """Write a copy of the file at `path` without identifying metadata, next to it.

    Returns the copy's path (the caller removes it), or None when the type carries none we
    remove or nothing had to go. Raises NotScrubbable for a file that does not parse.
    """
    if media_type not in (JPEG, PNG):
        return None
    pieces = _jpeg_pieces if media_type == JPEG else _png_pieces
    with open(path, "rb") as source, open(path, "rb") as original:
        # A first pass writes nothing and reads only the headers: a file that does not parse
        # fails before any copy exists, and one with nothing to drop gets none.
        if _unchanged(pieces(source), source, original):
            return None
        source.seek(0)
        fd, out = tempfile.mkstemp(dir=os.path.dirname(path), prefix="upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                _write(pieces(source), source, fh)
        except BaseException:
            os.unlink(out)  # never a partial copy left behind
            raise
    return out


def _unchanged(pieces: Iterator[Piece], source: IO[bytes], original: IO[bytes]) -> bool:
    """Whether the copy `pieces` make of `source` would be `original` byte for byte.

    Copied runs are skipped, not read: a run matches when it lands at the offset it came from.
    Elsewhere, it follows a dropped or the added orientation segment, and the copy's length
    differs anyway: the JPEG's one run goes to the end, and PNG only drops.
    """
    same = True
    for piece in pieces:  # to the end even once different: the rest must still parse
        if isinstance(piece, int):
            same = same and original.tell() == source.tell()
            source.seek(piece, os.SEEK_CUR)
            original.seek(piece, os.SEEK_CUR)
        elif same:
            same = original.read(len(piece)) == piece
    return same and original.read(1) == b""


def _write(pieces: Iterator[Piece], source: io.BufferedIOBase, out: IO[bytes]) -> None:
    buffer = memoryview(bytearray(_CHUNK))
    for piece in pieces:
        if isinstance(piece, bytes):
            out.write(piece)
            continue
        while piece:
            got = source.readinto(buffer[:min(piece, _CHUNK)])
            if not got:
                raise NotScrubbable("the file got shorter while it was copied")
            out.write(buffer[:got])
            piece -= got


def _remaining(fh: IO[bytes]) -> int:
    here = fh.tell()
    end = fh.seek(0, os.SEEK_END)
    fh.seek(here)
    return end - here


def _png_pieces(source: IO[bytes]) -> Iterator[Piece]:
    """The signature, then each kept chunk's header and a run of its data and CRC, up to IEND
    (anything after it is left out)."""
    if source.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
        raise NotScrubbable("not a PNG")
    yield _PNG_SIGNATURE
    left = _remaining(source)
    while len(head := source.read(8)) == 8:
        length, kind = struct.unpack(">I", head[:4])[0], head[4:]
        left -= 8 + length + 4
        if left < 0:
            raise NotScrubbable("truncated PNG chunk")
        if kind in _PNG_DROP:
            source.seek(length + 4, os.SEEK_CUR)
        else:
            yield head
            yield length + 4
        if kind == b"IEND":
            break


def _jpeg_segments(source: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(marker, whole segment) after SOI up to and including SOS; `source` is then where the
    entropy-coded data starts (or at its end: a file cut short ends the segments)."""
    while byte := source.read(1):
        if byte != b"\xff":
            raise NotScrubbable("bad JPEG marker")
        while byte == b"\xff":  # fill bytes
            byte = source.read(1)
        if not byte:
            raise NotScrubbable("truncated JPEG marker")
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            yield marker, b"\xff" + byte
            continue
        size = source.read(2)
        if len(size) < 2 or (length := struct.unpack(">H", size)[0]) < 2:
            raise NotScrubbable("bad JPEG segment length")
        yield marker, b"\xff" + byte + size + source.read(length - 2)  # at most 64 KiB
        if marker == _SOS:
            return


def _jpeg_pieces(source: IO[bytes]) -> Iterator[Piece]:
    """SOI, each kept segment, then the scan data and everything after it as one run."""
    if source.read(2) != b"\xff\xd8":
        raise NotScrubbable("not a JPEG")
    yield b"\xff\xd8"
    orientation = None
    for marker, segment in _jpeg_segments(source):
        if marker == _APP1 and segment[4:10] == b"Exif\x00\x00":
            orientation = _exif_orientation(segment[10:]) or orientation
            continue
        if marker == _COM or (0xE0 <= marker <= 0xEF and marker not in _JPEG_KEEP_APP):
            continue
        if marker == _SOS and orientation and orientation != 1:
            yield _orientation_segment(orientation)
        yield segment
    yield _remaining(source)


def _jpeg(data: bytes) -> bytes:
    """The cleaned copy of a JPEG held in memory."""
    source, out = io.BytesIO(data), io.BytesIO()
    _write(_jpeg_pieces(source), source, out)
    return out.getvalue()


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
