"""Image renditions: a PNG that fits inside a box, made once and cached in storage."""
from __future__ import annotations

import io
import re
from typing import BinaryIO

from PIL import Image, ImageOps

from app.errors import BadRequest

MAX_SIDE = 4096
_SIZE = re.compile(r"^([0-9]{1,4})x([0-9]{1,4})$")


def parse_size(value: str | None) -> tuple[int, int] | None:
    """`WxH` (1..4096 each) from a query string; None when absent. Raises BadRequest."""
    if value is None or value == "":
        return None
    match = _SIZE.match(value.strip().lower())
    if not match:
        raise BadRequest("size must look like 320x240 (width x height in pixels).")
    width, height = int(match[1]), int(match[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise BadRequest(f"size must be between 1x1 and {MAX_SIDE}x{MAX_SIDE}.")
    return width, height


def fit_png(source: BinaryIO, box: tuple[int, int]) -> bytes:
    """Decode a validated PNG/JPEG and return a PNG no larger than `box`, aspect kept.

    EXIF orientation is applied so phone photos stand the right way up; images smaller than
    the box are not enlarged.
    """
    with Image.open(source, formats=["PNG", "JPEG"]) as im:
        im.draft("RGB", box)  # JPEG: decode at a reduced scale when the box is small
        im = ImageOps.exif_transpose(im)
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        im.thumbnail(box, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, "PNG", optimize=False)
        return out.getvalue()


def rendition_key(public_id: str, box: tuple[int, int], page: int | None = None) -> str:
    """Where a cached rendition lives in storage (under renditions/, apart from originals)."""
    suffix = f"p{page}-" if page else ""
    return f"renditions/{public_id[:2]}/{public_id}/{suffix}{box[0]}x{box[1]}.png"
