"""The HEIF (ISO-BMFF) container of HEIC photos: walking its boxes, and what it declares.

Pure reads of headers, no decoding: the pixel cap reads the declared image sizes here, in the
web worker, before any decoder runs (decoders.py), and the metadata scrub finds the Exif and
XMP it blanks through the same walk (scrub.py). pillow-heif itself is registered only in the
children that decode (register_heif).
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO

import pillow_heif

MAX_BOXES = 100_000  # boxes one walk visits; a real HEIC has a few hundred


def register_heif() -> None:
    """Teach Pillow HEIF; called only in the children that decode one (validation, renditions),
    so no other Image.open in a worker ever reaches libheif. The main image only: an embedded
    thumbnail could show another picture than the photo, and depth and auxiliary images are
    never shown. One decoding thread, so a child costs one core, as the gates count."""
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False, decode_threads=1)


def iso_boxes(fh: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each ISO-BMFF (HEIF) box from `start` to `end`, reading
    headers only; `fh` may be read and moved between boxes. Raises ValueError for a box that
    does not fit in its parent (or more than MAX_BOXES)."""
    pos = start
    for _ in range(MAX_BOXES):
        if pos >= end:
            return
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("a box header is cut off")
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:  # a 64-bit size follows
            large = fh.read(8)
            if len(large) < 8:
                raise ValueError("a box header is cut off")
            size, header = struct.unpack(">Q", large)[0], 16
        elif size == 0:  # to the end of the parent
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"a {kind!r} box does not fit in its parent")
        yield kind, pos + header, pos + size
        pos += size
    raise ValueError("far too many boxes")


def find_boxes(fh: IO[bytes], route: tuple[bytes, ...], start: int = 0,
               end: int | None = None) -> Iterator[tuple[int, int]]:
    """(payload start, end) of every box at `route` below `start` (meta/iprp/ipco/ispe: each
    image's size). Raises ValueError as iso_boxes."""
    end = fh.seek(0, 2) if end is None else end
    for kind, payload, stop in iso_boxes(fh, start, end):
        if kind == route[0] and len(route) == 1:
            yield payload, stop
        elif kind == route[0]:
            yield from find_boxes(fh, route[1:], payload + (4 if kind == b"meta" else 0), stop)  # meta: a full box


def declared_size(fh: IO[bytes]) -> tuple[int, int] | None:
    """The largest `ispe` (image spatial extents: every coded image has one) in meta/iprp/ipco."""
    best: tuple[int, int] | None = None
    try:
        for start, stop in find_boxes(fh, (b"meta", b"iprp", b"ipco", b"ispe")):
            if stop - start < 12:
                return None  # a size that is not there: the child's decoder decides
            fh.seek(start + 4)  # past version and flags
            width, height = struct.unpack(">II", fh.read(8))
            if best is None or width * height > best[0] * best[1]:
                best = (width, height)
    except (ValueError, struct.error):
        return None
    return best


def end_of_boxes(path: str) -> int:
    """Where the last top-level box ends (the file's size when its boxes tile it exactly), or -1."""
    with open(path, "rb") as fh:
        end = fh.seek(0, 2)
        try:
            for _ in iso_boxes(fh, 0, end):
                pass
        except ValueError:
            return -1
        return end
