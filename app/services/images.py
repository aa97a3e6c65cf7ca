"""Renditions: a PNG that fits inside a box (images, or a PDF page), made once and cached."""
from __future__ import annotations

import io
import re
from typing import BinaryIO

from PIL import Image, ImageOps

from app.errors import BadRequest
from app.services.isolation import IsolationError, run_isolated

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
    with Image.open(source, formats=["PNG", "JPEG"]) as opened:
        opened.draft("RGB", box)  # JPEG: decode at a reduced scale when the box is small
        im: Image.Image = ImageOps.exif_transpose(opened)
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        im.thumbnail(box, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, "PNG", optimize=False)
        return out.getvalue()


def parse_page(value: str | None) -> int | None:
    """A 1-based page number from a query string (`preview=1`); None when absent. Raises BadRequest."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 5 or int(value) < 1:
        raise BadRequest("preview must be a page number (1 for the first page).")
    return int(value)


def render_pdf_page(data: bytes, box: tuple[int, int], page: int) -> bytes:
    """Render one page (1-based) of a validated PDF to a PNG fitting inside `box`.

    Call it through pdf_page_png(), which bounds it in time and memory: pdfium parses
    untrusted bytes. Raises BadRequest when the page does not exist.
    """
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        if page > len(pdf):
            raise BadRequest(f"The PDF has {len(pdf)} page(s); there is no page {page}.")
        sheet = pdf[page - 1]
        width, height = sheet.get_size()  # points
        scale = min(box[0] / max(width, 1.0), box[1] / max(height, 1.0), 8.0)
        image = sheet.render(scale=scale, draw_annots=True).to_pil()
        image.thumbnail(box, Image.Resampling.LANCZOS)  # guard against rounding past the box
        out = io.BytesIO()
        image.save(out, "PNG", optimize=False)
        return out.getvalue()
    finally:
        pdf.close()


def pdf_page_png(source: BinaryIO, box: tuple[int, int], page: int, *, timeout: float,
                 memory: int) -> bytes:
    """A PNG of one PDF page, rendered in an isolated child (see isolation.run_isolated).

    Args:
        source: the stored PDF (read whole; uploads are at most UPLOAD_MAX_BYTES).
        box: (width, height) the PNG must fit inside.
        page: 1-based page number.
        timeout, memory: seconds and bytes the renderer may use.
    Raises:
        BadRequest: no such page, or the page cannot be rendered within the budget.
    """
    data = source.read()
    try:
        return run_isolated(render_pdf_page, data, box, page, timeout=timeout, memory=memory)
    except IsolationError as exc:
        raise BadRequest(f"No preview is available for this PDF ({exc}).") from None
    except BadRequest:
        raise
    except Exception as exc:  # noqa: BLE001 - pdfium raises PdfiumError and others on odd files
        raise BadRequest(f"No preview is available for this PDF ({type(exc).__name__}).") from None


def rendition_key(public_id: str, box: tuple[int, int], page: int | None = None) -> str:
    """Where a cached rendition lives in storage (under renditions/, apart from originals)."""
    suffix = f"p{page}-" if page else ""
    return f"renditions/{public_id[:2]}/{public_id}/{suffix}{box[0]}x{box[1]}.png"
