#!/usr/bin/env python3
"""Generate the Chartbox upload test fixtures in this directory.

Run from anywhere with the project venv:

    .venv/bin/python tests/data/make_samples.py          # (re)write all samples
    .venv/bin/python tests/data/make_samples.py --check  # write, then verify

The output is deterministic: PDFs are written by hand (no timestamps, fixed
/ID), the encrypted PDF uses RC4-128 with a fixed file ID, ZIP members carry a
fixed date_time, and every "random" byte comes from a seeded random.Random.
Raster images depend only on the installed Pillow/libjpeg/zlib versions.

See README.md in this directory for what each file is for.
"""

from __future__ import annotations

import argparse
import io
import random
import struct
import sys
import zipfile
import zlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
SEED = 20240101
PDF_FILE_ID = bytes.fromhex("43686172746278f0a1b2c3d4e5f60718")  # fixed trailer /ID

PIXEL_BOMB_SIZE = 20_000  # 20000 x 20000 = 400M pixels > 2 * Image.MAX_IMAGE_PIXELS
ZIP_BOMB_BYTES = 200 * 1024 * 1024  # uncompressed size of word/document.xml


# --------------------------------------------------------------------------
# PDF (hand-written objects, Helvetica text, exact xref table)
# --------------------------------------------------------------------------

def _pdf_escape(text: str) -> bytes:
    raw = text.encode("latin-1")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _page_content(lines: list[str]) -> bytes:
    ops = [b"BT", b"/F1 24 Tf", b"72 720 Td", b"(" + _pdf_escape(lines[0]) + b") Tj",
           b"/F1 12 Tf", b"0 -36 Td"]
    for line in lines[1:]:
        ops.append(b"(" + _pdf_escape(line) + b") Tj")
        ops.append(b"0 -16 Td")
    ops.append(b"ET")
    # a simple rule under the title so the page has non-text ink as well
    ops += [b"0.2 0.3 0.6 RG", b"2 w", b"72 705 m 540 705 l S"]
    return b"\n".join(ops) + b"\n"


def build_pdf(pages: list[list[str]], title: str, base_offset: int = 0) -> bytes:
    """Build a small, valid PDF 1.4 with one Helvetica text page per entry.

    ``base_offset`` is added to every xref offset; use it when the PDF will be
    appended after ``base_offset`` bytes of something else so that the xref
    stays exact relative to the start of the combined file.
    """
    n = len(pages)
    # object numbers: 1 catalog, 2 pages, 3 font, 4 info, then (page, content) pairs
    page_ids = [5 + 2 * i for i in range(n)]
    objs: dict[int, bytes] = {}
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objs[2] = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n
    objs[3] = (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               b"/Encoding /WinAnsiEncoding >>")
    objs[4] = (b"<< /Title (" + _pdf_escape(title) + b") /Producer (Chartbox make_samples.py) "
               b"/CreationDate (D:20240101000000Z) >>")
    for pid, lines in zip(page_ids, pages, strict=True):
        content = _page_content(lines)
        objs[pid] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                     b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (pid + 1))
        objs[pid + 1] = (b"<< /Length %d >>\nstream\n" % len(content)) + content + b"endstream"

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = base_offset + out.tell()
        out.write(b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n")
    xref_pos = base_offset + out.tell()
    size = max(objs) + 1
    out.write(b"xref\n0 %d\n" % size)
    out.write(b"0000000000 65535 f \n")
    for num in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[num])
    fid = PDF_FILE_ID.hex().upper().encode()
    out.write(b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /ID [<%s> <%s>] >>\n"
              % (size, fid, fid))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref_pos)
    return out.getvalue()


def letter_pdf() -> bytes:
    return build_pdf(
        [
            ["Chartbox sample letter, page 1",
             "Dear Dr. Example,",
             "This is a synthetic test document. It contains no patient data.",
             "Patient: Jane Testcase   DOB: 1970-01-01   MRN: TEST-0001"],
            ["Chartbox sample letter, page 2",
             "Kind regards,",
             "The Chartbox test suite"],
        ],
        title="Chartbox sample letter",
    )


def lab_results_pdf() -> bytes:
    return build_pdf(
        [["Chartbox sample lab results",
          "Test            Result   Units     Range",
          "Hemoglobin      13.9     g/dL      12.0-15.5",
          "WBC             6.1      10^9/L    4.0-11.0",
          "Glucose         92       mg/dL     70-99",
          "Synthetic data for automated tests only."]],
        title="Chartbox sample lab results",
    )


def encrypted_pdf(plain: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    fixed_id = ArrayObject((ByteStringObject(PDF_FILE_ID), ByteStringObject(PDF_FILE_ID)))
    writer._ID = fixed_id  # encrypt() keys off _ID[0]; keep it fixed
    # RC4-128 needs no random salt (AES variants draw random IVs), so the
    # output is reproducible.
    writer.encrypt(user_password="secret", owner_password="chartbox-owner",
                   algorithm="RC4-128")
    writer._ID = fixed_id  # encrypt() regenerated _ID[1] randomly; pin it again
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Raster images
# --------------------------------------------------------------------------

def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # very old Pillow without sized default font
        return ImageFont.load_default()


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def landscape() -> Image.Image:
    """The photo-like 640x480 landscape of photo.jpg and phone-photo.heic."""
    w, h = 640, 480
    rng = random.Random(SEED)
    sky = Image.linear_gradient("L").resize((w, h))
    r = sky.point(lambda v: 60 + v * 120 // 255)
    g = sky.point(lambda v: 120 + v * 80 // 255)
    b = sky.point(lambda v: 220 - v * 90 // 255)
    img = Image.merge("RGB", (r, g, b))
    d = ImageDraw.Draw(img)
    d.ellipse((470, 40, 570, 140), fill=(255, 225, 140))  # sun
    for i in range(4):  # hills
        y = 280 + i * 45
        col = (40 + i * 25, 110 + i * 20, 50 + i * 10)
        pts = [(0, h)] + [(x, y + int(30 * ((x * (i + 3)) % 97) / 97)) for x in range(0, w + 1, 40)] + [(w, h)]
        d.polygon(pts, fill=col)
    for _ in range(25):  # some "trees"
        x = rng.randrange(0, w)
        y = rng.randrange(300, 460)
        s = rng.randrange(10, 30)
        d.ellipse((x - s, y - 2 * s, x + s, y), fill=(20, 70 + rng.randrange(40), 30))
    return img.filter(ImageFilter.GaussianBlur(1.5))


def photo_jpg() -> bytes:
    return _jpeg_bytes(landscape(), 85)


def scan_png() -> bytes:
    w, h = 800, 1000
    rng = random.Random(SEED + 1)
    img = Image.new("RGB", (w, h), (250, 250, 247))
    d = ImageDraw.Draw(img)
    d.rectangle((70, 60, 480, 90), fill=(30, 30, 30))  # heading block
    y = 130
    while y < h - 80:
        if rng.random() < 0.12:  # paragraph break
            y += 28
            continue
        x = 70
        end = rng.randrange(560, 730)
        while x < end:  # "words"
            ww = rng.randrange(18, 70)
            d.rectangle((x, y, min(x + ww, end), y + 9), fill=(45, 45, 50))
            x += ww + rng.randrange(8, 14)
        y += 22
    d.line((70, h - 60, 300, h - 60), fill=(20, 20, 90), width=2)  # signature line
    return _png_bytes(img)


def xray_png() -> bytes:
    size = 512
    base = Image.radial_gradient("L").resize((size, size))
    img = base.point(lambda v: max(0, 200 - v))  # bright centre, dark edges
    d = ImageDraw.Draw(img)
    d.rectangle((244, 40, 268, 480), fill=210)  # spine
    for i in range(9):  # ribs
        y = 90 + i * 40
        d.arc((90, y - 30, 250, y + 50), 180, 300, fill=185, width=9)
        d.arc((262, y - 30, 422, y + 50), 240, 360, fill=185, width=9)
    img = img.filter(ImageFilter.GaussianBlur(3))
    img = img.point(lambda v: v & 0xF8)  # mild posterise keeps the PNG small
    assert img.mode == "L"
    return _png_bytes(img)


def insurance_card(side: str) -> bytes:
    w, h = 856, 540
    img = Image.new("RGB", (w, h), (235, 238, 242))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((8, 8, w - 9, h - 9), radius=36, fill=(255, 255, 255),
                        outline=(120, 130, 150), width=3)
    big, small = _font(40), _font(24)
    if side == "front":
        d.rounded_rectangle((8, 8, w - 9, 120), radius=36, fill=(20, 80, 160))
        d.rectangle((8, 80, w - 9, 120), fill=(20, 80, 160))
        d.text((40, 40), "EXAMPLE HEALTH PLAN", font=big, fill=(255, 255, 255))
        rows = ["Member: JANE TESTCASE", "Member ID: XZT-000-000-001",
                "Group: 00000   Plan: SAMPLE PPO", "Copay: PCP $0 / ER $0"]
        for i, row in enumerate(rows):
            d.text((40, 170 + i * 60), row, font=small, fill=(20, 20, 30))
        d.ellipse((660, 330, 800, 470), outline=(20, 80, 160), width=6)
    else:
        d.rectangle((8, 50, w - 9, 130), fill=(25, 25, 25))  # magnetic stripe
        rows = ["Claims: PO Box 0000, Nowhere, ZZ 00000",
                "Member services: 555-0100 (fictional)",
                "This card is a synthetic test fixture."]
        for i, row in enumerate(rows):
            d.text((40, 190 + i * 55), row, font=small, fill=(20, 20, 30))
        for x in range(40, 520, 6):  # fake barcode
            if (x * 7) % 11 < 6:
                d.rectangle((x, 400, x + 3, 480), fill=(0, 0, 0))
    return _jpeg_bytes(img, 85)


def gif_gif() -> bytes:
    img = Image.new("P", (64, 64), 0)
    img.putpalette([255, 255, 255, 200, 30, 30, 30, 30, 200] + [0] * (256 - 3) * 3)
    d = ImageDraw.Draw(img)
    d.ellipse((8, 8, 56, 56), fill=1)
    d.rectangle((24, 24, 40, 40), fill=2)
    buf = io.BytesIO()
    img.save(buf, "GIF")
    return buf.getvalue()


def tiny_png() -> bytes:
    img = Image.new("RGB", (16, 16), (200, 40, 40))
    ImageDraw.Draw(img).rectangle((4, 4, 11, 11), fill=(255, 255, 255))
    return _png_bytes(img)


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + ctype + data
            + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF))


def pixel_bomb_png(side: int = PIXEL_BOMB_SIZE) -> bytes:
    """Syntactically valid 1-bit grayscale PNG, side x side, all black.

    The IDAT is produced row by row with a streaming compressobj so the raw
    image (side * (side/8 + 1) bytes) is never held in memory.
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0 + packed 1-bit pixels
    comp = zlib.compressobj(9)
    parts = []
    batch = row * 256
    full, rest = divmod(side, 256)
    for _ in range(full):
        parts.append(comp.compress(batch))
    parts.append(comp.compress(row * rest))
    parts.append(comp.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    out = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", ihdr)]
    step = 1 << 20  # split IDAT into 1 MiB chunks like real encoders do
    for i in range(0, len(idat), step):
        out.append(_png_chunk(b"IDAT", idat[i:i + step]))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


# --------------------------------------------------------------------------
# HEIC (pillow-heif: libheif with the x265 encoder, single-threaded so the bytes repeat)
# --------------------------------------------------------------------------

HEIC_BOMB_SIZE = 50_000  # 50000 x 50000 = 2.5G pixels declared; the coded picture is 64x64
GPS_IFD, ORIENTATION = 0x8825, 0x0112
PHONE_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
             b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,31.2083N" '
             b'exif:GPSLongitude="13,24.6E"/></rdf:RDF></x:xmpmeta>')


def _heif():
    import pillow_heif
    pillow_heif.register_heif_opener(decode_threads=1)
    pillow_heif.options.PREFERRED_ENCODER["HEIF"] = "x265"
    return pillow_heif


def _heic_bytes(img: Image.Image, **params) -> bytes:
    _heif()
    buf = io.BytesIO()
    img.save(buf, "HEIF", quality=50, enc_params={"x265:pools": "none", "x265:frame-threads": "1"}, **params)
    return buf.getvalue()


def phone_photo_heic() -> bytes:
    """The landscape as an iPhone writes it: grid tiles (256 px here, 512 on a phone), turned by
    the container (irot: EXIF orientation 6 on save), EXIF with GPS, make and model, and XMP."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[ORIENTATION] = "PhoneCo", "Phone 15", 6
    exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.0)}
    return _heic_bytes(landscape(), exif=exif.tobytes(), xmp=PHONE_XMP, tile_size=256)


def _ispe(data: bytes) -> list[int]:
    """Offsets of the width field of every `ispe` box (found by name: a sample's own bytes)."""
    found, at = [], data.find(b"ispe")
    while at != -1:
        found.append(at + 8)  # past the type, version and flags
        at = data.find(b"ispe", at + 1)
    return found


def heic_bomb() -> bytes:
    """A real 64x64 HEIC whose container says 50000x50000 (every ispe patched)."""
    data = bytearray(_heic_bytes(Image.new("RGB", (64, 64), (90, 90, 90))))
    for at in _ispe(bytes(data)):
        data[at:at + 8] = struct.pack(">II", HEIC_BOMB_SIZE, HEIC_BOMB_SIZE)
    return bytes(data)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def avif_header() -> bytes:
    """The start of an AVIF file (no AV1 encoder here): ftyp avif/mif1/miaf, a meta box naming
    one av01 item, and a tiny mdat. What counts is the brand."""
    ftyp = _box(b"ftyp", b"avif" + b"\x00" * 4 + b"avifmif1miaf")
    hdlr = _box(b"hdlr", b"\x00" * 8 + b"pict" + b"\x00" * 13)
    pitm = _box(b"pitm", b"\x00" * 4 + b"\x00\x01")
    infe = _box(b"infe", b"\x02\x00\x00\x00\x00\x01\x00\x00av01\x00")
    iinf = _box(b"iinf", b"\x00" * 4 + b"\x00\x01" + infe)
    meta = _box(b"meta", b"\x00" * 4 + hdlr + pitm + iinf)
    return ftyp + meta + _box(b"mdat", bytes(range(64)))


# --------------------------------------------------------------------------
# Office documents / ZIPs
# --------------------------------------------------------------------------

CT_DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
CT_XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
CT_XLSX_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
REL_OFFICE_DOC = ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
                  "officeDocument")
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

DOCX_CONTENT_TYPES = (
    XML_DECL
    + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/word/document.xml" ContentType="{CT_DOCX_MAIN}"/>'
    "</Types>"
)
DOCX_RELS = (
    XML_DECL
    + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{REL_OFFICE_DOC}" Target="word/document.xml"/>'
    "</Relationships>"
)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _zinfo(name: str, level: int = 9) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.create_system = 3
    zi.external_attr = 0o644 << 16
    # ZipFile.open()/writestr() read the level from the ZipInfo; the attribute
    # is private in 3.11/3.12 and public (compress_level) from 3.13.
    zi._compresslevel = level  # type: ignore[attr-defined]
    if hasattr(zi, "compress_level"):
        zi.compress_level = level  # type: ignore[attr-defined]
    return zi


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(_zinfo(name), data)
    return buf.getvalue()


def referral_docx() -> bytes:
    doc = (
        XML_DECL
        + f'<w:document xmlns:w="{W_NS}"><w:body>'
        "<w:p><w:r><w:t>Chartbox sample referral: please see Jane Testcase (synthetic).</w:t></w:r></w:p>"
        "</w:body></w:document>"
    )
    return _zip([
        ("[Content_Types].xml", DOCX_CONTENT_TYPES.encode()),
        ("_rels/.rels", DOCX_RELS.encode()),
        ("word/document.xml", doc.encode()),
    ])


def claims_xlsx() -> bytes:
    ct = (
        XML_DECL
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{CT_XLSX_MAIN}"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{CT_XLSX_SHEET}"/>'
        "</Types>"
    )
    rels = (
        XML_DECL
        + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{REL_OFFICE_DOC}" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    workbook = (
        XML_DECL
        + '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Claims" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    wb_rels = (
        XML_DECL
        + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>'
    )
    sheet = (
        XML_DECL
        + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>Claim</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>Amount</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>CLM-0001</t></is></c>'
        '<c r="B2"><v>125.5</v></c></row>'
        '<row r="3"><c r="A3" t="inlineStr"><is><t>CLM-0002</t></is></c>'
        '<c r="B3"><v>80</v></c></row>'
        "</sheetData></worksheet>"
    )
    return _zip([
        ("[Content_Types].xml", ct.encode()),
        ("_rels/.rels", rels.encode()),
        ("xl/workbook.xml", workbook.encode()),
        ("xl/_rels/workbook.xml.rels", wb_rels.encode()),
        ("xl/worksheets/sheet1.xml", sheet.encode()),
    ])


def zip_bomb_docx(path: Path, total: int = ZIP_BOMB_BYTES) -> None:
    """Valid-looking .docx whose word/document.xml inflates to ~200 MB.

    Written straight to ``path`` in 1 MiB chunks so memory stays low.
    """
    head = (XML_DECL + f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t xml:space="preserve">').encode()
    tail = b"</w:t></w:r></w:p></w:body></w:document>"
    chunk = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_zinfo("[Content_Types].xml"), DOCX_CONTENT_TYPES.encode())
        zf.writestr(_zinfo("_rels/.rels"), DOCX_RELS.encode())
        with zf.open(_zinfo("word/document.xml"), "w", force_zip64=True) as fh:
            fh.write(head)
            remaining = total - len(head) - len(tail)
            while remaining > 0:
                n = min(remaining, len(chunk))
                fh.write(chunk[:n])
                remaining -= n
            fh.write(tail)


def plain_zip() -> bytes:
    return _zip([("readme.txt", b"Just an ordinary zip archive, not an Office document.\n")])


# --------------------------------------------------------------------------
# Text-ish files
# --------------------------------------------------------------------------

NOTES_TXT = (
    "Chartbox sample clinical notes (synthetic)\n"
    "Patient visited the Café – naïve résumé of symptoms recorded.\n"
    "Temperature 37.2 °C; SpO₂ 98 %; no allergies (ß-lactam tolerated).\n"
    "Follow-up in 2 weeks — Dr. Zoë Ångström.\n"
)

VITALS_CSV = (
    "date,patient_id,heart_rate_bpm,systolic_mmhg,diastolic_mmhg,temp_c,notes\n"
    "2024-01-01,TEST-0001,72,118,76,36.8,baseline\n"
    "2024-01-08,TEST-0001,75,121,79,37.0,\n"
    "2024-01-15,TEST-0001,70,116,74,36.7,après exercice\n"
    "2024-01-22,TEST-0001,68,115,73,36.6,\"note, with comma\"\n"
    "2024-01-29,TEST-0001,74,119,77,36.9,stable\n"
)

SVG_SVG = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100" viewBox="0 0 100 100">\n'
    '  <rect x="10" y="10" width="80" height="80" fill="#1450a0"/>\n'
    '  <script type="text/javascript">alert(document.cookie)</script>\n'
    "</svg>\n"
)

MACRO_HTML = (
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Lab report</title></head>\n"
    "<body><h1>Lab report</h1><script>alert(1)</script></body></html>\n"
)


def binary_junk() -> bytes:
    rng = random.Random(SEED + 2)
    data = bytearray(rng.randbytes(2048))
    for i in range(0, len(data), 37):
        data[i] = 0  # guarantee plenty of NUL bytes
    return bytes(data)


# --------------------------------------------------------------------------

def write_all(out_dir: Path = HERE) -> dict[str, Path]:
    files: dict[str, bytes] = {}

    letter = letter_pdf()
    files["letter.pdf"] = letter
    files["lab-results.pdf"] = lab_results_pdf()
    files["photo.jpg"] = photo_jpg()
    scan = scan_png()
    files["scan.png"] = scan
    files["xray.png"] = xray_png()
    files["insurance-front.jpg"] = insurance_card("front")
    files["insurance-back.jpg"] = insurance_card("back")
    files["notes.txt"] = NOTES_TXT.encode("utf-8")
    files["vitals.csv"] = VITALS_CSV.encode("utf-8")
    files["referral.docx"] = referral_docx()
    files["claims.xlsx"] = claims_xlsx()

    files["encrypted.pdf"] = encrypted_pdf(letter)
    files["truncated.pdf"] = letter[: len(letter) // 2]
    files["not-really.pdf"] = scan
    # PNG first (whole, valid) + a complete PDF appended after IEND.
    files["polyglot.png"] = tiny_png() + files["lab-results.pdf"]
    # A PDF preceded by a PNG: %PDF- is not at byte 0, but the xref offsets are
    # exact for the combined file, so lenient PDF readers open it cleanly.
    prefix = tiny_png()
    files["polyglot-pdf-in-png.pdf"] = prefix + build_pdf(
        [["Chartbox polyglot test", "This PDF is hiding behind a PNG header."]],
        title="Chartbox polyglot", base_offset=len(prefix))
    files["truncated.jpg"] = files["photo.jpg"][: len(files["photo.jpg"]) * 6 // 10]
    files["truncated.png"] = scan[: len(scan) * 6 // 10]
    files["empty.bin"] = b""
    files["pixel-bomb.png"] = pixel_bomb_png()
    files["gif.gif"] = gif_gif()
    files["svg.svg"] = SVG_SVG.encode("utf-8")
    files["binary-junk.txt"] = binary_junk()
    files["latin1.txt"] = "Café résumé – naïve\n".replace("–", "-").encode("latin-1")
    files["plain.zip"] = plain_zip()
    files["macro.html"] = MACRO_HTML.encode("utf-8")
    heic = phone_photo_heic()
    files["phone-photo.heic"] = heic
    files["truncated.heic"] = heic[: len(heic) * 6 // 10]
    files["heic-bomb.heic"] = heic_bomb()
    files["avif.avif"] = avif_header()

    paths = {}
    for name, data in files.items():
        p = out_dir / name
        p.write_bytes(data)
        paths[name] = p
    p = out_dir / "zip-bomb.docx"
    zip_bomb_docx(p)
    paths["zip-bomb.docx"] = p
    return paths


# --------------------------------------------------------------------------
# Verification (prints a table; exit status 1 if anything is off)
# --------------------------------------------------------------------------

GOOD_PDF_PAGES = {"letter.pdf": 2, "lab-results.pdf": 1}
GOOD_IMAGES = {
    "photo.jpg": ("JPEG", (640, 480), "RGB"),
    "scan.png": ("PNG", (800, 1000), "RGB"),
    "xray.png": ("PNG", (512, 512), "L"),
    "insurance-front.jpg": ("JPEG", (856, 540), "RGB"),
    "insurance-back.jpg": ("JPEG", (856, 540), "RGB"),
}
GOOD_HEIC = {"phone-photo.heic": ((480, 640), "RGB")}  # as shown: the container turns it upright
SIZE_LIMITS = {"pixel-bomb.png": 2 * 1024 * 1024, "zip-bomb.docx": 500 * 1024}
DEFAULT_LIMIT = 60 * 1024


def _strict_pdf(data: bytes) -> str:
    from pypdf import PdfReader
    if not data.startswith(b"%PDF-"):
        raise ValueError("no %PDF- at byte 0")
    r = PdfReader(io.BytesIO(data), strict=True)
    if r.is_encrypted:
        raise ValueError("encrypted")
    n = len(r.pages)
    for page in r.pages:
        page.extract_text()
    return f"{n} page(s)"


def _strict_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.format not in ("PNG", "JPEG"):
            raise ValueError(f"format {im.format} not allowed")
        return im.copy()


def _office(data: bytes, main_ct: str) -> str:
    import xml.etree.ElementTree as ET
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        total = sum(i.file_size for i in zf.infolist())
        if total > 50 * 1024 * 1024:
            raise ValueError(f"uncompressed {total / 2**20:.0f} MiB")
        ct = zf.read("[Content_Types].xml").decode()
        if main_ct not in ct:
            raise ValueError("main content type missing")
        for info in zf.infolist():
            if info.filename.endswith((".xml", ".rels")):
                ET.fromstring(zf.read(info))
    return f"{len(zf.infolist())} parts"


def _render_not_blank(data: bytes) -> str:
    import pypdfium2 as pdfium
    pdf = pdfium.PdfDocument(data)
    try:
        bitmap = pdf[0].render(scale=1)
        img = bitmap.to_pil().convert("L")
        lo, hi = img.getextrema()
        dark = sum(img.histogram()[:128])
        if hi - lo < 100 or dark < 200:
            raise ValueError(f"page 1 looks blank (extrema {lo}-{hi}, {dark} dark px)")
        return f"rendered {img.size[0]}x{img.size[1]}, {dark} dark px"
    finally:
        pdf.close()


def verify(out_dir: Path = HERE) -> bool:
    rows: list[tuple[str, int, str, bool, str]] = []

    def check(name: str, kind: str, fn, expect_ok: bool) -> None:
        path = out_dir / name
        data = path.read_bytes() if name != "zip-bomb.docx" else None
        size = path.stat().st_size
        try:
            detail = fn(data if data is not None else path.read_bytes())
            ok = True
        except Exception as exc:  # noqa: BLE001 - we want every failure mode
            detail = f"{type(exc).__name__}: {exc}"[:70]
            ok = False
        limit = SIZE_LIMITS.get(name, DEFAULT_LIMIT)
        passed = (ok == expect_ok) and size <= limit
        if size > limit:
            detail += f" [TOO BIG > {limit}]"
        rows.append((name, size, ("accept" if expect_ok else "reject") + " " + kind,
                     passed, detail))

    # --- good samples --------------------------------------------------------
    for name, pages in GOOD_PDF_PAGES.items():
        def fn(d, pages=pages, name=name):
            res = _strict_pdf(d)
            if res != f"{pages} page(s)":
                raise ValueError(f"expected {pages} pages, got {res}")
            if name == "letter.pdf":
                res += "; " + _render_not_blank(d)
            return res
        check(name, "pdf", fn, True)
    for name, (fmt, size, mode) in GOOD_IMAGES.items():
        def fn(d, fmt=fmt, size=size, mode=mode):
            im = _strict_image(d)
            with Image.open(io.BytesIO(d)) as raw:
                got = (raw.format, raw.size, raw.mode)
            if got != (fmt, size, mode):
                raise ValueError(f"got {got}")
            return f"{fmt} {size[0]}x{size[1]} {im.mode}"
        check(name, "image", fn, True)

    def heic(d, size=None, mode=None):
        _heif()
        with Image.open(io.BytesIO(d), formats=["HEIF"]) as im:
            im.load()
            got = (im.size, im.mode)
            gps = im.getexif().get_ifd(GPS_IFD)
        if size and got != (size, mode):
            raise ValueError(f"got {got}")
        if size and not gps:
            raise ValueError("no GPS in its EXIF")
        return f"HEIF {got[0][0]}x{got[0][1]} {got[1]}, GPS {gps[1]} {gps[3]}"
    for name, (size, mode) in GOOD_HEIC.items():
        check(name, "heic", lambda d, size=size, mode=mode: heic(d, size, mode), True)
    for name in ("truncated.heic", "heic-bomb.heic", "avif.avif"):
        check(name, "heic", heic, False)

    def utf8_text(d):
        s = d.decode("utf-8")
        if "\x00" in s:
            raise ValueError("NUL byte")
        return f"{len(s.splitlines())} lines utf-8"
    check("notes.txt", "text", utf8_text, True)

    def csv_check(d):
        import csv
        rows_ = list(csv.reader(io.StringIO(d.decode("utf-8"))))
        if len(rows_) != 6 or len({len(r) for r in rows_}) != 1:
            raise ValueError(f"{len(rows_)} rows")
        return "header + 5 rows"
    check("vitals.csv", "csv", csv_check, True)
    check("referral.docx", "docx", lambda d: _office(d, CT_DOCX_MAIN), True)
    check("claims.xlsx", "xlsx", lambda d: _office(d, CT_XLSX_MAIN), True)

    # --- hostile samples ---------------------------------------------------
    for name in ("encrypted.pdf", "truncated.pdf", "not-really.pdf", "polyglot-pdf-in-png.pdf"):
        check(name, "pdf", _strict_pdf, False)

    def image_no_trailer(d):
        im = _strict_image(d)
        if d.startswith(b"\x89PNG") and not d.endswith(_png_chunk(b"IEND", b"")):
            raise ValueError("data after IEND")
        if b"%PDF-" in d:
            raise ValueError("embedded %PDF-")
        return f"{im.format} {im.size}"
    check("polyglot.png", "image", image_no_trailer, False)
    for name in ("truncated.jpg", "truncated.png", "empty.bin", "pixel-bomb.png", "gif.gif"):
        check(name, "image", _strict_image, False)

    def text_no_markup(d):
        s = utf8_text(d)
        if b"<script" in d.lower():
            raise ValueError("<script> found")
        return s
    check("svg.svg", "text/markup", text_no_markup, False)
    check("macro.html", "text/markup", text_no_markup, False)
    check("binary-junk.txt", "text", utf8_text, False)
    check("latin1.txt", "text", utf8_text, False)
    check("zip-bomb.docx", "docx", lambda d: _office(d, CT_DOCX_MAIN), False)
    check("plain.zip", "docx/xlsx", lambda d: _office(d, CT_DOCX_MAIN), False)

    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  {'bytes':>9}  {'expect':<18} {'ok':<4} detail")
    for name, size, kind, passed, detail in rows:
        print(f"{name:<{width}}  {size:>9}  {kind:<18} {'PASS' if passed else 'FAIL':<4} {detail}")
    return all(r[3] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the samples after writing")
    ap.add_argument("--verify-only", action="store_true", help="verify without rewriting")
    args = ap.parse_args(argv)
    if not args.verify_only:
        write_all()
    if args.check or args.verify_only:
        return 0 if verify() else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
