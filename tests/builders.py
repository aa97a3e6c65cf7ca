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
import zipfile
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


def text_pdf(pages: list[list[str]]) -> bytes:
    """A real PDF whose pages carry these lines of text (Helvetica, WinAnsi: Latin letters), as
    a word processor writes it: text that pypdf extracts and pdfium renders."""
    count = len(pages)
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Count %d /Kids [%s] >>" % (count, b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, lines in enumerate(pages):
        ops = [b"BT /F1 14 Tf 72 720 Td 18 TL"]
        for line in lines:
            escaped = line.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
            ops.append(b"(" + escaped + b") Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        objects[4 + 2 * i] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                              b"/Contents %d 0 R >>" % (5 + 2 * i))
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    return pdf_from_objects(objects)


def docx(paragraphs: list[str]) -> bytes:
    """A minimal valid Word document with these paragraphs (each one run)."""
    from xml.sax.saxutils import escape

    body = "".join(f"<w:p><w:r><w:t xml:space=\"preserve\">{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        "word/document.xml": '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>",
    }
    return _zip(parts)


def xlsx(shared: list[str], inline: tuple[str, ...] = ()) -> bytes:
    """A minimal valid workbook: one sheet whose first row uses these shared strings and whose
    second row holds these inline strings."""
    from xml.sax.saxutils import escape

    sst = "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
    row1 = "".join(f'<c r="{chr(65 + i)}1" t="s"><v>{i}</v></c>' for i in range(len(shared)))
    row2 = "".join(f'<c r="{chr(65 + i)}2" t="inlineStr"><is><t>{escape(s)}</t></is></c>' for i, s in enumerate(inline))
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{ns}" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/sharedStrings.xml": f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{ns}" count="{len(shared)}" uniqueCount="{len(shared)}">{sst}</sst>',
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{ns}"><sheetData>'
        f'<row r="1">{row1}</row><row r="2">{row2}</row></sheetData></worksheet>',
    }
    return _zip(parts)


def _zip(parts: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), text)
    return out.getvalue()
