"""The pixels behind renditions: reading `size=`/`preview=`/`format=`, and the Pillow, libheif
and pdfium code that makes a PNG fitting a box (or a HEIC's JPEG).

Two kinds of work, bounded differently (see renditions.py for the cache around them):
- rendering from an original (decoding an upload, or a PDF page with pdfium) parses what a
  user sent, so it runs only in an isolated child (render_isolated): time- and memory-capped,
  and at a lower CPU priority, so the worker's other requests go first;
- downscaling a stored rendition (a PNG this app made, at most the largest stored side) runs in
  the worker: it costs at most one decode of a bounded PNG.
"""
from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageOps

from app.errors import BadRequest
from app.services.heif import register_heif
from app.services.isolation import IsolationError, run_isolated

MAX_SIDE = 4096
_SIZE = re.compile(r"^([0-9]{1,4})x([0-9]{1,4})$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Niceness a rendering child adds to itself: a flood of renders then slows renders, not the
# sign-in page or a download served by the same worker.
RENDER_NICENESS = 10
# zlib levels. Stored renditions: 3, not Pillow's 6, which costs 3x the CPU on photos and
# scans (1.4 s vs 0.44 s for a 2048 px scanned page, and no smaller) for ~25 % less on text
# pages. Downscaled answers are never stored: 1, the fastest.
STORED_LEVEL, ANSWER_LEVEL = 3, 1
# What the originals are opened as (all validated already); HEIF is taught to Pillow in the child.
SOURCE_FORMATS = ["PNG", "JPEG", "HEIF"]
JPEG_QUALITY = 90  # a HEIC's JPEG download: no visible loss on a photo
FORMATS = ("jpeg",)


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


def parse_page(value: str | None) -> int | None:
    """A 1-based page number from a query string (`preview=1`); None when absent. Raises BadRequest."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 5 or int(value) < 1:
        raise BadRequest("preview must be a page number (1 for the first page).")
    return int(value)


def parse_format(value: str | None) -> str | None:
    """`jpeg` from a query string (a HEIC's JPEG); None when absent. Raises BadRequest."""
    if value is None or value == "":
        return None
    if value not in FORMATS:
        raise BadRequest("format must be jpeg (or left out for the file as it was uploaded).")
    return value


def _open_source(data: bytes) -> Image.Image:
    register_heif()
    return Image.open(io.BytesIO(data), formats=SOURCE_FORMATS)


def image_png(data: bytes, side: int) -> bytes:
    """Decode a validated PNG/JPEG/HEIC and return a PNG fitting inside `side` x `side`, aspect kept.

    Runs in a child (render_isolated): it decodes an upload. EXIF orientation is applied so
    phone photos stand the right way up (after the resize: the box is square, so turning the
    small image is the same and far cheaper); images smaller than the box are not enlarged.
    A HEIC comes out of libheif turned already (its container says how) and EXIF orientation 1.
    """
    box = (side, side)
    with _open_source(data) as opened:
        opened.draft("RGB", box)  # JPEG: decode at a reduced scale when the box is small
        im: Image.Image = opened
        if im.mode not in ("RGB", "RGBA", "L", "LA"):  # palette and others resize badly
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        im.thumbnail(box, Image.Resampling.LANCZOS)
        im = ImageOps.exif_transpose(im) or im
        return _png(im)


def image_jpeg(data: bytes) -> bytes:
    """Decode a validated HEIC and return the whole picture, full size and upright, as a JPEG.

    Runs in a child (render_isolated). Its colour profile is kept (iPhones shoot in Display P3);
    no EXIF or XMP is written, so the JPEG says nothing of where it was taken.
    """
    with _open_source(data) as im:
        profile = im.info.get("icc_profile")
        # Upright already: libheif applies the container's rotation (and pillow-heif sets EXIF's
        # orientation to 1), so no exif_transpose, which would copy the whole picture once more.
        picture = im if im.mode == "RGB" else im.convert("RGB")  # JPEG has no alpha; a photo has none to lose
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=JPEG_QUALITY, icc_profile=profile)
        return out.getvalue()


def page_png(data: bytes, side: int, page: int) -> bytes:
    """Render one page (1-based) of a validated PDF to a PNG fitting inside `side` x `side`.

    Runs in a child (render_isolated): pdfium parses untrusted bytes. Raises BadRequest when
    the page does not exist.
    """
    import pypdfium2 as pdfium

    box = (side, side)
    pdf = pdfium.PdfDocument(data)
    try:
        if page > len(pdf):
            raise BadRequest(f"The PDF has {len(pdf)} page(s); there is no page {page}.")
        sheet = pdf[page - 1]
        width, height = sheet.get_size()  # points
        scale = min(box[0] / max(width, 1.0), box[1] / max(height, 1.0), 8.0)
        image = sheet.render(scale=scale, draw_annots=True).to_pil()
        image.thumbnail(box, Image.Resampling.LANCZOS)  # guard against rounding past the box
        return _png(image)
    finally:
        pdf.close()


def _png(im: Image.Image, compress_level: int = STORED_LEVEL) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG", optimize=False, compress_level=compress_level)
    return out.getvalue()


def _at_low_priority(fn: Callable[..., bytes], *args: Any) -> bytes:
    """In the child: yield the CPU to the worker's requests, then render."""
    try:
        os.nice(RENDER_NICENESS)
    except OSError:  # raising one's own niceness is always allowed; a sandbox may still refuse
        pass
    return fn(*args)


def render_isolated(fn: Callable[..., bytes], *args: Any, timeout: float, memory: int, what: str) -> bytes:
    """fn(*args) (image_png, image_jpeg or page_png) in an isolated, lower-priority child.

    Args:
        timeout, memory: seconds and bytes of address space the child may use.
        what: how the message names the thing made ("rendition of this image").
    Raises:
        BadRequest: no such page, or it cannot be made within the budget (a clear message).
    """
    try:
        return run_isolated(_at_low_priority, fn, *args, timeout=timeout, memory=memory)
    except IsolationError as exc:
        raise BadRequest(f"No {what} is available ({exc}).") from None
    except BadRequest:
        raise
    except Exception as exc:  # noqa: BLE001 - pdfium raises PdfiumError and others on odd files
        raise BadRequest(f"No {what} is available ({type(exc).__name__}).") from None


def png_dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first 24 bytes of a PNG (its IHDR); None when it is not one."""
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (width, height) if width > 0 and height > 0 else None


def fits(dimensions: tuple[int, int], box: tuple[int, int]) -> bool:
    return dimensions[0] <= box[0] and dimensions[1] <= box[1]


def downscale_png(data: bytes, box: tuple[int, int], max_side: int) -> bytes:
    """A stored rendition (a PNG at most `max_side` a side) made to fit inside `box`, aspect kept.

    Runs in the worker: the input is this app's own output, refused unread when its header
    claims more than `max_side`, so the decode is bounded (2048² RGBA is 16 MiB). The answer is
    not stored, so it is compressed fast rather than small. Raises ValueError on anything else.
    """
    with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
        if max(im.size) > max_side:
            raise ValueError(f"a stored rendition of {im.size} is larger than {max_side} px")
        im.thumbnail(box, Image.Resampling.LANCZOS)
        return _png(im, compress_level=ANSWER_LEVEL)


def rendition_key(public_id: str, side: int, page: int | None = None) -> str:
    """Where a stored rendition lives (under renditions/, apart from originals): one folder per
    file, so purging a file removes its renditions with one listing."""
    prefix = f"p{page}-" if page else ""
    return f"renditions/{public_id[:2]}/{public_id}/{prefix}{side}x{side}.png"
