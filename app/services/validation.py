"""Decide what an uploaded file really is, from its bytes, and refuse anything unsafe.

Every door passes uploads through inspect_file(); the name only has to agree with the bytes.
What needs a decoder (PDF, images, Office ZIPs) is checked in bounded children (decoders.py).
HEIC (what an iPhone camera writes) is stored as received, like any image, and shown through
PNG/JPEG renditions: browsers other than Safari cannot display it.
"""
from __future__ import annotations

import codecs
import mimetypes
import os
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

from flask_babel import gettext

from app.errors import InvalidUpload
from app.i18n import N_
from app.services import decoders

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
HEIC = "image/heic"
TEXT = "text/plain"
CSV = "text/csv"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Every accepted type, its canonical extension first, and the word used in messages.
TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    PDF: (("pdf",), N_("a PDF document")),
    PNG: (("png",), N_("a PNG image")),
    JPEG: (("jpg", "jpeg", "jpe"), N_("a JPEG image")),
    HEIC: (("heic", "heif"), N_("a HEIC photo")),
    TEXT: (("txt", "text", "log", "md"), N_("a plain-text file")),
    CSV: (("csv",), N_("a CSV file")),
    DOCX: (("docx",), N_("a Word document")),
    XLSX: (("xlsx",), N_("an Excel workbook")),
}
ACCEPTED_EXTENSIONS = sorted({e for exts, _ in TYPES.values() for e in exts})
#: Images: thumbnails, the viewer and `size=` show them through PNG renditions.
IMAGES = frozenset({PNG, JPEG, HEIC})
#: Images every browser and client shows as they are (a HEIC only Safari does).
WEB_IMAGES = frozenset({PNG, JPEG})

_OFFICE_KIND = {DOCX: "docx", XLSX: "xlsx"}
# Recognised only to name them in the refusal.
_REFUSED_SIGNATURES = [
    (b"GIF87a", N_("a GIF image")), (b"GIF89a", N_("a GIF image")), (b"II*\x00", N_("a TIFF image")),
    (b"MM\x00*", N_("a TIFF image")), (b"BM", N_("a BMP image")), (b"%!PS", N_("a PostScript/EPS file")),
    (b"\xc5\xd0\xd3\xc6", N_("an EPS file")), (b"RIFF", N_("a RIFF (WebP/AVI/WAV) file")),
    (b"\x7fELF", N_("a program")), (b"MZ", N_("a Windows program")), (b"\xd0\xcf\x11\xe0", N_("an old Office file")),
    (b"Rar!", N_("a RAR archive")), (b"\x1f\x8b", N_("a gzip archive")), (b"7z\xbc\xaf", N_("a 7-Zip archive")),
]
# ISO-BMFF brands (the `ftyp` box, first in the file) of HEIF images coded with HEVC, and of
# AVIF (AV1), which this build cannot decode; the rest (MP4, MOV, 3GP…) are videos.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
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
    pdf_timeout: float  # each decoder child (PDF, image or Office), seconds
    pdf_memory: int  # each decoder child, bytes
    zip_max_uncompressed: int
    pdf_max_pages: int = 2_000
    validation_timeout: float = 20.0  # one whole upload, waits for a slot included
    parse_concurrency: int = 2
    parse_wait: float = 10.0

    @classmethod
    def from_config(cls, config) -> Limits:
        return cls(
            image_max_pixels=config["IMAGE_MAX_PIXELS"],
            pdf_timeout=config["PDF_PARSE_TIMEOUT"],
            pdf_memory=config["PDF_PARSE_MEMORY"],
            zip_max_uncompressed=config["ZIP_MAX_UNCOMPRESSED"],
            pdf_max_pages=config["PDF_MAX_PAGES"],
            validation_timeout=config["VALIDATION_TIMEOUT"],
            parse_concurrency=config["PARSE_CONCURRENCY"],
            parse_wait=config["PARSE_WAIT"],
        )

    def budget(self) -> decoders.Budget:
        """The clock of one upload's checks, starting now."""
        return decoders.Budget(self.validation_timeout, self.pdf_timeout, self.pdf_memory,
                               self.parse_concurrency, self.parse_wait)


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


# Python's own table of extensions, not the machine's /etc/mime.types: the same answer everywhere.
_KNOWN_EXTENSIONS = mimetypes.MimeTypes(filenames=())


def claimed_type(ext: str, media_type: str) -> str | None:
    """What a name ending in `.ext` says a file is, when that is not `media_type` (a PDF named
    "letter.docx": N_("a Word document")); None when the ending fits, or names no known type.
    A plain-text file may end in any text type's extension (notes.md, data.json, script.py)."""
    if not ext or ext in TYPES.get(media_type, ((), ""))[0]:
        return None
    for exts, what in TYPES.values():
        if ext in exts:
            return gettext(what)
    guessed, _ = _KNOWN_EXTENSIONS.guess_type("name." + ext, strict=False)
    if guessed is None or (media_type == TEXT and guessed.startswith("text/")):
        return None
    return gettext("a .%(ext)s file", ext=ext)


def describe(media_type: str) -> str:
    """'a PDF document', in the request's language."""
    return gettext(TYPES[media_type][1]) if media_type in TYPES else media_type


def describe_types(media_types: Collection[str]) -> str:
    """'a PNG image or a JPEG image' (in TYPES order), for messages naming what is accepted."""
    words = [gettext(what) for media_type, (_, what) in TYPES.items() if media_type in media_types]
    if len(words) == 1:
        return words[0]
    return gettext("%(some)s or %(last)s", some=", ".join(words[:-1]), last=words[-1])


def sniff(head: bytes, name_ext: str) -> str:
    """The media type from the first bytes; raise InvalidUpload for anything not accepted."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a ZIP (or an empty one)
        return DOCX if name_ext == "docx" else XLSX if name_ext == "xlsx" else "zip"
    if head[4:8] == b"ftyp" and not _plausible_text(head):  # a note may say "The ftyp box…"
        brands = _iso_brands(head)
        if brands & _AVIF_BRANDS:  # AVIF lists mif1 too: it must be told apart first
            raise InvalidUpload(gettext("This file is an AVIF image; %(accepted)s", accepted=_accepted_sentence()))
        if brands & _HEIC_BRANDS:
            return HEIC
        raise InvalidUpload(gettext("This file is a video or another kind of media file; %(accepted)s",
                                    accepted=_accepted_sentence()))
    for signature, what in _REFUSED_SIGNATURES:
        # A note may well begin "BMI …" or "MZ …": printable signatures only count in binary files.
        if head.startswith(signature) and (signature == b"%!PS" or not _plausible_text(head)):
            raise InvalidUpload(gettext("This file is %(what)s; %(accepted)s", what=gettext(what),
                                        accepted=_accepted_sentence()))
    if b"%PDF-" in head[:1024]:
        raise InvalidUpload(gettext("This PDF has data before its header; save it again as a plain PDF."))
    if _MARKUP.match(head):
        raise InvalidUpload(gettext("Web pages, SVG and XML files are not accepted; %(accepted)s",
                                    accepted=_accepted_sentence()))
    return CSV if name_ext == "csv" else TEXT


def _iso_brands(head: bytes) -> frozenset[bytes]:
    """The major and compatible brands of the `ftyp` box at the start of `head` (none when the
    box is malformed or does not fit in it)."""
    size = int.from_bytes(head[:4], "big")
    if size < 16 or size > len(head) or size % 4:
        return frozenset()
    return frozenset({head[8:12]} | {head[i:i + 4] for i in range(16, size, 4)})


def _plausible_text(head: bytes) -> bool:
    """No NUL and valid UTF-8 (a character cut off at the end of `head` is fine)."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _accepted_sentence() -> str:
    return gettext("accepted types are PDF, PNG, JPEG, HEIC, plain text, CSV, Word (.docx) and Excel (.xlsx).")


def inspect_file(path: str, name: str, limits: Limits, accept: Collection[str] | None = None,
                 purpose: str = "", budget: decoders.Budget | None = None) -> Inspection:
    """Check the spooled upload at `path`, named `name`, and say what it is.

    Args:
        accept: the media types the caller takes (all of TYPES when None); anything else is
            refused from its first bytes, before any parser runs (a ZIP not named .docx or
            .xlsx is read first, to tell which it is).
        purpose: the sentence that says what is accepted, for that refusal.
        budget: the upload's clock, when the caller goes on to do more within it (its text
            for search); a new one from `limits` when None.
    Raises:
        InvalidUpload: empty, of a type not accepted, contradicting its name, damaged,
            encrypted, too many pixels or pages, a ZIP bomb, not UTF-8 text, or taking
            longer than limits.validation_timeout to check; always in plain words.
        ServerBusy: every decoder slot of this process stayed busy (503, retry shortly).
    """
    budget = budget or limits.budget()
    if os.path.getsize(path) == 0:
        raise InvalidUpload(gettext("The file is empty; check that you chose the right file and upload it again."))
    with open(path, "rb") as fh:
        head = fh.read(8192)
    ext = name_extension(name)
    media_type = sniff(head, ext)
    checked = False
    if media_type == "zip":  # not named .docx/.xlsx: its parts say whether it is one (fully read)
        kind = budget.run(decoders.check_office, path, None, limits.zip_max_uncompressed)
        media_type, checked = DOCX if kind == "docx" else XLSX, True
    allowed_exts, what = TYPES[media_type][0], describe(media_type)
    if accept is not None and media_type not in accept:
        raise InvalidUpload(purpose or gettext("This file is %(what)s; only %(accepted)s can be uploaded here.",
                                               what=what, accepted=describe_types(accept)))
    if ext and ext not in allowed_exts:
        if media_type in (TEXT, CSV) and ext not in ACCEPTED_EXTENSIONS:
            raise InvalidUpload(gettext("Files of type .%(ext)s are not accepted; %(accepted)s", ext=ext,
                                        accepted=_accepted_sentence()))
        raise InvalidUpload(gettext("The name ends in .%(ext)s but the file is %(what)s; rename it to .%(right)s.",
                                    ext=ext, what=what, right=allowed_exts[0]))
    result = {} if checked else {
        PDF: _check_pdf, PNG: _check_image, JPEG: _check_image, HEIC: _check_image, TEXT: _check_text,
        CSV: _check_text, DOCX: _check_office, XLSX: _check_office,
    }[media_type](path, media_type, limits, budget)
    return Inspection(media_type=media_type, ext=ext or allowed_exts[0], **result)


# -- PDF ---------------------------------------------------------------------------------------

def _check_pdf(path: str, media_type: str, limits: Limits, budget: decoders.Budget) -> dict:
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - 2048))
        if b"%%EOF" not in fh.read():
            raise InvalidUpload(gettext("The PDF is damaged or incomplete (it has no end marker); save it again "
                                        "and upload it again."))
    return {"page_count": budget.run(decoders.count_pdf_pages, path, limits.pdf_max_pages)}


# -- Images ------------------------------------------------------------------------------------

_PILLOW_FORMAT = {PNG: "PNG", JPEG: "JPEG", HEIC: "HEIF"}


def _check_image(path: str, media_type: str, limits: Limits, budget: decoders.Budget) -> dict:
    fmt = _PILLOW_FORMAT[media_type]
    size = decoders.image_size(path, fmt)  # the header only: refused before any decoder runs
    if size is not None and size[0] * size[1] > limits.image_max_pixels:
        raise InvalidUpload(decoders.too_many_pixels(size, limits.image_max_pixels))
    width, height, end = budget.run(decoders.decode_image, path, fmt, limits.image_max_pixels)
    _check_no_trailer(path, media_type, end)
    return {"width": width, "height": height}


def _check_no_trailer(path: str, media_type: str, end: int) -> None:
    """Refuse polyglots: nothing may hide after the image's end or be embedded in it."""
    if media_type == PNG and end != os.path.getsize(path):
        raise InvalidUpload(gettext("The PNG has extra data after the image; save it again and re-upload."))
    if media_type == HEIC and end != os.path.getsize(path):  # its boxes must end where the file does
        raise InvalidUpload(gettext("The HEIC photo has extra data after the image; save it again and re-upload."))
    with open(path, "rb") as fh:
        tail = b""
        while chunk := fh.read(CHUNK):
            if _EMBEDDED.search(tail + chunk):
                raise InvalidUpload(gettext(
                    "The image has another document embedded in it; save it again and re-upload."))
            tail = chunk[-16:]


# -- Text --------------------------------------------------------------------------------------

def _check_text(path: str, media_type: str, limits: Limits, budget: decoders.Budget) -> dict:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(CHUNK):
                if b"\x00" in chunk:
                    raise InvalidUpload(gettext(
                        "The file contains binary data; only UTF-8 text is accepted as .txt or .csv."))
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidUpload(gettext("The text is not UTF-8; save it as UTF-8 and upload it again.")) from None
    return {}


# -- Office (DOCX / XLSX) ----------------------------------------------------------------------

def _check_office(path: str, media_type: str, limits: Limits, budget: decoders.Budget) -> dict:
    budget.run(decoders.check_office, path, _OFFICE_KIND[media_type], limits.zip_max_uncompressed)
    return {}
