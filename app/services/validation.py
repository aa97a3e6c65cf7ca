"""Decide what an uploaded file really is, from its bytes, and refuse anything unsafe.

Every door passes uploads through inspect_file(); the name only has to agree with the bytes.
"""
from __future__ import annotations

import codecs
import logging
import os
import re
import unicodedata
import zipfile
from collections.abc import Collection
from dataclasses import dataclass

from PIL import Image
from pypdf import PdfReader  # imported here so each forked parser child inherits it warm

from app.errors import InvalidUpload
from app.services.isolation import IsolationError, run_isolated

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TEXT = "text/plain"
CSV = "text/csv"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Every accepted type, its canonical extension first, and the word used in messages.
TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    PDF: (("pdf",), "a PDF document"),
    PNG: (("png",), "a PNG image"),
    JPEG: (("jpg", "jpeg", "jpe"), "a JPEG image"),
    TEXT: (("txt", "text", "log", "md"), "a plain-text file"),
    CSV: (("csv",), "a CSV file"),
    DOCX: (("docx",), "a Word document"),
    XLSX: (("xlsx",), "an Excel workbook"),
}
ACCEPTED_EXTENSIONS = sorted({e for exts, _ in TYPES.values() for e in exts})
IMAGES = frozenset({PNG, JPEG})

_OFFICE_MAIN = {
    DOCX: (b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
           "word/document.xml"),
    XLSX: (b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
           "xl/workbook.xml"),
}
# Recognised only to name them in the refusal.
_REFUSED_SIGNATURES = [
    (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"), (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"), (b"BM", "a BMP image"), (b"%!PS", "a PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", "an EPS file"), (b"RIFF", "a RIFF (WebP/AVI/WAV) file"),
    (b"\x7fELF", "a program"), (b"MZ", "a Windows program"), (b"\xd0\xcf\x11\xe0", "an old Office file"),
    (b"Rar!", "a RAR archive"), (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"),
]
_MARKUP = re.compile(rb"^\s*(<\?xml|<svg|<!doctype|<html|<script)", re.I)
_EMBEDDED = re.compile(rb"%PDF-|<script|<html|<svg", re.I)
_BIDI_AND_CONTROLS = re.compile(
    "[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Inspection:
    """What a file turned out to be."""

    media_type: str
    ext: str
    page_count: int | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Limits:
    """The budgets validation works within (from the app config)."""

    image_max_pixels: int
    pdf_timeout: float
    pdf_memory: int
    zip_max_uncompressed: int

    @classmethod
    def from_config(cls, config) -> Limits:
        return cls(
            image_max_pixels=config["IMAGE_MAX_PIXELS"],
            pdf_timeout=config["PDF_PARSE_TIMEOUT"],
            pdf_memory=config["PDF_PARSE_MEMORY"],
            zip_max_uncompressed=config["ZIP_MAX_UNCOMPRESSED"],
        )


def clean_name(name: str | None, max_length: int = 255) -> str:
    """A display name: decoded, folder parts, controls and bidi marks removed, <= 255 chars.

    Returns "" when nothing printable is left; the caller decides the fallback.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _BIDI_AND_CONTROLS.sub("", name).strip().strip(".").strip()
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: max_length - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:max_length].rstrip()
    return name


def name_extension(name: str) -> str:
    """The lower-case extension of a display name, without the dot ('' when none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem and ext and " " not in ext else ""


def describe(media_type: str) -> str:
    return TYPES[media_type][1] if media_type in TYPES else media_type


def describe_types(media_types: Collection[str]) -> str:
    """'a PNG image or a JPEG image' (in TYPES order), for messages naming what is accepted."""
    words = [what for media_type, (_, what) in TYPES.items() if media_type in media_types]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def sniff(head: bytes, name_ext: str) -> str:
    """The media type from the first bytes; raise InvalidUpload for anything not accepted."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"PK\x03\x04"):
        return DOCX if name_ext == "docx" else XLSX if name_ext == "xlsx" else "zip"
    for signature, what in _REFUSED_SIGNATURES:
        # A note may well begin "BMI …" or "MZ …": printable signatures only count in binary files.
        if head.startswith(signature) and (signature == b"%!PS" or not _plausible_text(head)):
            raise InvalidUpload(f"This file is {what}; {_accepted_sentence()}")
    if b"%PDF-" in head[:1024]:
        raise InvalidUpload("This PDF has data before its header; save it again as a plain PDF.")
    if _MARKUP.match(head):
        raise InvalidUpload(f"Web pages, SVG and XML files are not accepted; {_accepted_sentence()}")
    return CSV if name_ext == "csv" else TEXT


def _plausible_text(head: bytes) -> bool:
    """No NUL and valid UTF-8 (a character cut off at the end of `head` is fine)."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _office_type(path: str) -> str:
    """DOCX or XLSX for a ZIP holding a Word or Excel main part; refuse any other ZIP."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise InvalidUpload("The file is a damaged ZIP archive.") from None
    for media_type, (_, main_part) in _OFFICE_MAIN.items():
        if main_part in names and "[Content_Types].xml" in names:
            return media_type
    raise InvalidUpload("ZIP archives are not accepted; Word and Excel files must end in .docx or .xlsx.")


def _accepted_sentence() -> str:
    return "accepted types are PDF, PNG, JPEG, plain text, CSV, Word (.docx) and Excel (.xlsx)."


def inspect_file(path: str, name: str, limits: Limits, accept: Collection[str] | None = None,
                 purpose: str = "") -> Inspection:
    """Check the spooled upload at `path`, named `name`, and say what it is.

    Args:
        accept: the media types the caller takes (all of TYPES when None); anything else is
            refused from its first bytes, before any parser runs.
        purpose: the sentence that says what is accepted, for that refusal.
    Raises:
        InvalidUpload: empty, of a type not accepted, contradicting its name, damaged,
            encrypted, too many pixels, a ZIP bomb, or not UTF-8 text.
    """
    if os.path.getsize(path) == 0:
        raise InvalidUpload("The file is empty.")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    ext = name_extension(name)
    media_type = sniff(head, ext)
    if media_type == "zip":  # not named .docx/.xlsx: the parts say whether it is one
        media_type = _office_type(path)
    allowed_exts, what = TYPES[media_type]
    if accept is not None and media_type not in accept:
        raise InvalidUpload(purpose or f"This file is {what}; only {describe_types(accept)} can be uploaded here.")
    if ext and ext not in allowed_exts:
        if media_type in (TEXT, CSV) and ext not in ACCEPTED_EXTENSIONS:
            raise InvalidUpload(f"Files of type .{ext} are not accepted; {_accepted_sentence()}")
        raise InvalidUpload(
            f"The name ends in .{ext} but the file is {what}; rename it to .{allowed_exts[0]}."
        )
    result = {
        PDF: _check_pdf, PNG: _check_image, JPEG: _check_image, TEXT: _check_text,
        CSV: _check_text, DOCX: _check_office, XLSX: _check_office,
    }[media_type](path, media_type, limits)
    return Inspection(media_type=media_type, ext=ext or allowed_exts[0], **result)


# -- PDF ---------------------------------------------------------------------------------------

def _check_pdf(path: str, media_type: str, limits: Limits) -> dict:
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - 2048))
        if b"%%EOF" not in fh.read():
            raise InvalidUpload("The PDF is damaged or incomplete (it has no end marker).")
    try:
        pages = run_isolated(_parse_pdf, path, timeout=limits.pdf_timeout, memory=limits.pdf_memory)
    except IsolationError as exc:
        raise InvalidUpload(f"The PDF could not be read: {exc}.") from None
    return {"page_count": pages}


def _parse_pdf(path: str) -> int:
    """Runs in the isolated child: count pages, touching each page's tree."""
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            raise InvalidUpload("The PDF is password-protected; remove the password and upload it again.")
        count = len(reader.pages)
        for page in reader.pages:
            page.mediabox  # noqa: B018 - resolving each page catches broken page trees
    except InvalidUpload:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise InvalidUpload(f"The PDF is damaged and cannot be opened ({type(exc).__name__}).") from None
    if count < 1:
        raise InvalidUpload("The PDF has no pages.")
    return count


# -- Images ------------------------------------------------------------------------------------

def _check_image(path: str, media_type: str, limits: Limits) -> dict:
    fmt = "PNG" if media_type == PNG else "JPEG"
    what = describe(media_type)
    try:
        with Image.open(path, formats=[fmt]) as im:
            width, height = im.size
            if width * height > limits.image_max_pixels:
                raise InvalidUpload(
                    f"The image is {width}x{height} pixels; the limit is "
                    f"{limits.image_max_pixels:,} pixels."
                )
            if fmt == "PNG":
                im.verify()  # chunk CRCs
        with Image.open(path, formats=[fmt]) as im:
            im.load()  # a full decode catches truncation
    except InvalidUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidUpload("The image has far too many pixels to be a real photo or scan.") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError…
        raise InvalidUpload(f"The file is not a complete, readable {what.split(' ', 1)[1]} ({exc}).") from None
    _check_no_trailer(path, media_type)
    return {"width": width, "height": height}


def _check_no_trailer(path: str, media_type: str) -> None:
    """Refuse polyglots: nothing may hide after the image's end or be embedded in it."""
    if media_type == PNG:
        end = _png_end(path)
        if end != os.path.getsize(path):
            raise InvalidUpload("The PNG has extra data after the image; save it again and re-upload.")
    with open(path, "rb") as fh:
        tail = b""
        while chunk := fh.read(CHUNK):
            if _EMBEDDED.search(tail + chunk):
                raise InvalidUpload("The image has another document embedded in it; save it again and re-upload.")
            tail = chunk[-16:]


def _png_end(path: str) -> int:
    """The offset just past the IEND chunk (walks chunk headers only)."""
    with open(path, "rb") as fh:
        pos = 8
        while True:
            fh.seek(pos)
            header = fh.read(8)
            if len(header) < 8:
                return -1
            length = int.from_bytes(header[:4], "big")
            pos += 12 + length
            if header[4:8] == b"IEND":
                return pos


# -- Text --------------------------------------------------------------------------------------

def _check_text(path: str, media_type: str, limits: Limits) -> dict:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(CHUNK):
                if b"\x00" in chunk:
                    raise InvalidUpload("The file contains binary data; only UTF-8 text is accepted as .txt or .csv.")
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidUpload("The text is not UTF-8; save it as UTF-8 and upload it again.") from None
    return {}


# -- Office (DOCX / XLSX) ----------------------------------------------------------------------

def _check_office(path: str, media_type: str, limits: Limits) -> dict:
    main_type, main_part = _OFFICE_MAIN[media_type]
    noun = describe(media_type).split(" ", 1)[1]
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > 10_000:
                raise InvalidUpload(f"The file is not a valid {noun}: too many parts.")
            if sum(i.file_size for i in infos) > limits.zip_max_uncompressed:
                raise InvalidUpload(f"The {noun} expands to more than {limits.zip_max_uncompressed:,} bytes.")
            names = {i.filename for i in infos}
            if "[Content_Types].xml" not in names or main_part not in names:
                raise InvalidUpload(f"The file is not a valid {noun}.")
            small = zf.getinfo("[Content_Types].xml").file_size < 1024 * 1024
            content_types = zf.read("[Content_Types].xml") if small else b""
            if main_type not in content_types:
                raise InvalidUpload(f"The file is not a valid {noun}.")
            total = 0
            for info in infos:  # read every part: CRCs and real sizes, bounded
                with zf.open(info) as part:
                    while chunk := part.read(CHUNK):
                        total += len(chunk)
                        if total > limits.zip_max_uncompressed:
                            raise InvalidUpload(
                                f"The {noun} expands to more than {limits.zip_max_uncompressed:,} bytes.")
    except InvalidUpload:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as exc:
        raise InvalidUpload(f"The {noun} is damaged ({exc}).") from None
    return {}
