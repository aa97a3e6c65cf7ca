"""Remove location and identifying metadata from stored photos, without touching the pixels.

JPEG: the marker segments before the scan are rewritten losslessly — EXIF (GPS, maker notes,
serial numbers), XMP, IPTC/Photoshop blocks and comments are dropped; JFIF, the ICC colour
profile and Adobe's colour-transform marker stay (they change how pixels decode); the EXIF
orientation is kept in a minimal EXIF block of its own, so a phone photo still stands upright.
The compressed image data is copied byte for byte. PNG: text chunks (tEXt, zTXt, iTXt), eXIf
and tIME are dropped; every other chunk is copied as it is. HEIC: the bytes stay where they are
(stored as received), but the payloads of its Exif and XMP items (found through meta's iinf and
iloc) and of XMP `uuid` boxes are blanked in place, same length, so every offset in the file
stays valid: an empty EXIF (a TIFF header, no tags) or XMP packet, then zeros (spaces in XMP).
Its orientation lives in the container (irot/imir), which readers follow rather than EXIF's.

The file is streamed, never read whole: a worker holds at most one JPEG segment (64 KiB), one
HEIF box of the `meta` index (at most 1 MiB) and one copy buffer, whatever the photo's size.
"""
from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Iterator
from itertools import pairwise
from typing import IO, TypeAlias

from app.services.heif import iso_boxes
from app.services.validation import HEIC, JPEG, PNG

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
    pieces = {JPEG: _jpeg_pieces, PNG: _png_pieces, HEIC: _heif_pieces}.get(media_type)
    if pieces is None:
        return None
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


# -- HEIC (ISO-BMFF boxes) -----------------------------------------------------------------------

_EXIF, _XMP, _ENCODED_XMP = "exif", "xmp", "encoded xmp"
_EMPTY = {  # what a blanked payload starts with (when it has room), then its fill byte
    _EXIF: (b"\x00\x00\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00", b"\x00"),  # offset 0, IFD0 empty
    _XMP: (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>', b" "),  # whitespace after the element is XML
    _ENCODED_XMP: (b"", b"\x00"),  # compressed: nothing readable stays
}
_XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")  # Adobe's XMP box
_MAX_INDEX_BOX = 1024 * 1024  # an iinf entry or the iloc, read whole (a phone photo's: a few KB)


def _heif_pieces(source: IO[bytes]) -> Iterator[Piece]:
    """Runs of the file as it is, and in place of each metadata payload its blank, chunk by chunk."""
    blanks = _heif_blanks(source)
    source.seek(0)
    pos = 0
    for offset, length, kind in blanks:
        yield offset - pos
        head, fill = _EMPTY[kind]
        head = head if len(head) <= length else b""
        done = 0
        while done < length:
            size = min(_CHUNK, length - done)
            chunk = (head + fill * (size - len(head))) if done == 0 else fill * size
            yield chunk
            source.seek(size, os.SEEK_CUR)
            done += size
        pos = offset + length
    yield _remaining(source)


def _heif_blanks(source: IO[bytes]) -> list[tuple[int, int, str]]:
    """(offset, length, kind) of every metadata payload, in file order. Raises NotScrubbable for
    boxes that do not parse, and for metadata that cannot be blanked without touching anything
    else: stored outside the data boxes (mdat, or meta's idat) or in another file, or sharing
    bytes with a picture or another payload."""
    try:
        end = source.seek(0, os.SEEK_END)
        top = list(iso_boxes(source, 0, end))
        if not top or top[0][0] != b"ftyp" or [kind for kind, _, _ in top].count(b"meta") != 1:
            raise NotScrubbable("not a HEIF file with one meta box")
        if any(kind == b"moov" for kind, _, _ in top):
            raise NotScrubbable("an image sequence (its tracks' metadata is not read)")
        meta_start, meta_end = next((start, stop) for kind, start, stop in top if kind == b"meta")
        boxes = list(iso_boxes(source, meta_start + 4, meta_end))  # meta is a full box
        blanks = [(start + 16, stop - start - 16, _XMP) for kind, start, stop in top + boxes
                  if kind == b"uuid" and stop - start >= 16 and _read(source, start, 16) == _XMP_UUID]
        kinds = _item_kinds(source, [(start, stop) for kind, start, stop in boxes if kind == b"iinf"])
        # Where an extent's offsets count from, and the boxes it must lie in: construction
        # method 0 is the file (its mdat boxes), 1 meta's idat box.
        data = {0: (0, end, [(start, stop) for kind, start, stop in top if kind == b"mdat"])}
        idats = [(start, stop) for kind, start, stop in boxes if kind == b"idat"]
        if len(idats) > 1:
            raise ValueError("two idat boxes")
        if idats:
            data[1] = (*idats[0], idats)
        pictures: list[tuple[int, int]] = []
        for kind, start, stop in boxes:
            if kind != b"iloc":
                continue
            for item_id, method, reference, extents in _item_locations(_read(source, start, stop - start)):
                what = kinds.get(item_id)
                if what is None:  # a picture (or another item): its bytes must stay as they are
                    if reference == 0 and method in data:
                        base, limit, _ = data[method]
                        pictures += [(base + offset, base + offset + length if length else limit)
                                     for offset, length in extents]
                    continue
                if reference != 0 or method not in data:
                    raise NotScrubbable("metadata stored elsewhere than in the file's data boxes")
                blanks += [(*_inside(data[method], offset, length), what) for offset, length in extents]
    except (ValueError, struct.error, IndexError) as exc:
        raise NotScrubbable(f"HEIF boxes do not parse: {exc}") from None
    blanks.sort()
    for (offset, length, _), (after, _, _) in pairwise(blanks):
        if offset + length > after:
            raise NotScrubbable("metadata payloads overlap")
    for offset, length, _ in blanks:
        if any(offset < p_end and p_start < offset + length for p_start, p_end in pictures):
            raise NotScrubbable("metadata shares bytes with a picture")
    return blanks


def _read(source: IO[bytes], offset: int, length: int) -> bytes:
    if length > _MAX_INDEX_BOX:
        raise ValueError("an index box is implausibly large")
    source.seek(offset)
    data = source.read(length)
    if len(data) != length:
        raise ValueError("a box is cut off")
    return data


def _inside(data: tuple[int, int, list[tuple[int, int]]], offset: int, length: int) -> tuple[int, int]:
    """An extent's (offset, length) in the file, checked to lie inside one of the data boxes.
    `data` is (where offsets count from, where a length of 0 runs to, the boxes)."""
    base, limit, boxes = data
    at = base + offset
    stop = limit if length == 0 else at + length
    if not any(start <= at and stop <= box_end for start, box_end in boxes):
        raise ValueError("an item's data lies outside the file's data boxes")
    return at, stop - at


def _item_kinds(source: IO[bytes], iinfs: list[tuple[int, int]]) -> dict[int, str]:
    """The metadata items of the iinf box: item id -> _EXIF, _XMP or _ENCODED_XMP."""
    if len(iinfs) > 1:
        raise ValueError("two iinf boxes")
    kinds: dict[int, str] = {}
    for start, stop in iinfs:
        count_size = 2 if _read(source, start, 1)[0] == 0 else 4
        for kind, entry, entry_end in iso_boxes(source, start + 4 + count_size, stop):
            if kind != b"infe":
                continue
            data = _read(source, entry, entry_end - entry)
            if data[0] < 2:  # versions 0 and 1: item_ID(16) protection(16) name content_type [encoding]
                item_id, item_type, strings = int.from_bytes(data[4:6], "big"), b"mime", data[8:]
            else:  # item_ID(16, or 32 in version 3) protection(16) item_type name [content_type [encoding]]
                id_end = 6 if data[0] == 2 else 8
                item_id, item_type, strings = int.from_bytes(data[4:id_end], "big"), data[id_end + 2:id_end + 6], \
                    data[id_end + 6:]
            fields = strings.split(b"\x00")[1:]  # what follows the name
            if item_type == b"Exif":
                kinds[item_id] = _EXIF
            elif item_type == b"mime" and fields and fields[0].split(b";")[0].strip().lower() == b"application/rdf+xml":
                kinds[item_id] = _ENCODED_XMP if len(fields) > 1 and fields[1].strip() else _XMP
    return kinds


def _item_locations(data: bytes) -> Iterator[tuple[int, int, int, list[tuple[int, int]]]]:
    """(item id, construction method, data reference index, [(offset, length)]) of each item of
    an iloc box's payload (ISO/IEC 14496-12 8.11.3, versions 0 to 2)."""
    version = data[0]
    if version > 2:
        raise ValueError(f"iloc version {version}")
    offset_size, length_size = data[4] >> 4, data[4] & 15
    base_size, index_size = data[5] >> 4, (data[5] & 15 if version else 0)
    if any(size not in (0, 4, 8) for size in (offset_size, length_size, base_size, index_size)):
        raise ValueError("iloc field sizes")
    pos = 6

    def number(size: int) -> int:
        nonlocal pos
        if pos + size > len(data):
            raise ValueError("iloc is cut off")
        value = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        return value

    for _ in range(number(4 if version == 2 else 2)):
        item_id = number(4 if version == 2 else 2)
        method = number(2) & 15 if version else 0
        reference, base = number(2), number(base_size)
        extents = []
        for _ in range(number(2)):
            number(index_size)
            extents.append((base + number(offset_size), number(length_size)))
        yield item_id, method, reference, extents
