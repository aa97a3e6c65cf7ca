"""Real file bytes for tests and benchmarks, built with Pillow and pypdf.

Hostile files are built small on disk: a single-colour PNG of 7700x7700 pixels is about 170 KB
but decodes to 178 MB; a PDF of 100,000 blank pages is about 8 MB. Costly ones (noisy photos,
scanned PDFs) compress like the real thing, so decoding and rendering them is real work.

Tests import these as `from builders import ...` (tests/ is on sys.path, as for conftest);
bench scripts put tests/ on sys.path first.
"""
from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter

# -- images ----------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flat_png(width: int, height: int, mode: str = "RGB") -> bytes:
    """A single-colour (black) PNG, compressed row by row: tiny on disk whatever its size, and
    built without ever holding the pixels. `mode` is "L" (grey) or "RGB"."""
    color_type, channels = {"L": (0, 1), "RGB": (2, 3)}[mode]
    packer = zlib.compressobj(6)
    row = bytes(1 + width * channels)  # filter byte 0, then black
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def small_png(width: int = 32, height: int = 32, color: tuple[int, int, int] = (20, 120, 200)) -> bytes:
    """A small single-colour PNG (32x32 by default: about 100 bytes), cheap to upload often."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def noisy_photo(width: int, height: int, quality: int = 90) -> bytes:
    """A JPEG that compresses like a real photo (noise over a radial gradient; a flat gradient
    would be tiny): ~10 MB at 16 MP and quality 90."""
    gradient = Image.radial_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    im = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()


# -- PDFs ------------------------------------------------------------------------------------------


def tiny_pdf() -> bytes:
    """A valid one-page PDF (a blank 1-inch page), a few hundred bytes."""
    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_pdf(pages: int, side: int = 600) -> bytes:
    """A real PDF whose every page is a noisy scan of `side` x 4/3 `side` pixels (each page
    render costs real work)."""
    images = [Image.effect_noise((side, side * 4 // 3), 30 + i % 20).convert("RGB") for i in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=72, quality=70)
    return out.getvalue()


def pdf_from_objects(objects: dict[int, bytes], root: int = 1) -> bytes:
    """A PDF 1.4 file of these numbered objects, with an exact xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
                    for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref)
    return bytes(out)


def blank_pages_pdf(pages: int, count: int | None = None) -> bytes:
    """`pages` blank pages in one flat page tree whose root says /Count `count` (default: the
    truth): 100,000 pages are about 8 MB."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Count %d /MediaBox [0 0 612 792] /Kids [%s] >>" % (
            pages if count is None else count, kids),
    }
    for i in range(pages):
        objects[3 + i] = b"<< /Type /Page /Parent 2 0 R >>"
    return pdf_from_objects(objects)
