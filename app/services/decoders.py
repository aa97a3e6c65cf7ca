"""The decoders of uploads (pypdf, Pillow, zipfile), each run in a bounded child, cheap checks first.

A hostile file can make a decoder loop, allocate or take seconds per page; in a forked child
(isolation.run_isolated) the web worker survives it. Every child of one upload runs under the
process's "parse" gate (PARSE_CONCURRENCY children at once, the rest wait PARSE_WAIT, then
503) and within one Budget (VALIDATION_TIMEOUT, waits included). What is cheap and decisive is
done first: the pixel cap from the image header (a HEIC's from its container), in the parent;
the page count from the PDF's page tree root, in the child, before any page is touched.

What a library raises never reaches a client: each failure becomes a sentence saying what is
wrong and what to do, and the library's own message is logged at info level.
"""
from __future__ import annotations

import logging
import struct
import time
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium  # imported here so each forked child inherits them warm
from flask_babel import gettext
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

from app.errors import InvalidUpload, ServerBusy
from app.i18n import N_
from app.services import heif
from app.services.isolation import ChildOutOfMemory, ChildTimeout, IsolationError, gate, run_isolated

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024

# Translated where raised (gettext), in the language of the request that sent the file.
TOO_LONG = N_("The file took too long to check; save it again (or split it into smaller files) "
              "and upload it again.")
TOO_BIG = N_("The file needs too much memory to check; save it at a smaller size "
             "(or split it into smaller files) and upload it again.")
NOT_CHECKED = N_("The file could not be checked; it may be damaged. Save it again and upload it again.")
INCOMPLETE = N_("The image is incomplete (the file ends early); save it again and upload it again.")


def refuse(message: str, raw: object = None) -> InvalidUpload:
    """An InvalidUpload saying `message`; what the library said (`raw`) goes to the log only."""
    err = InvalidUpload(gettext(message))
    if raw is not None:
        err.detail = f"{type(raw).__name__}: {raw}"[:500]  # type: ignore[attr-defined]
    return err


class Budget:
    """The time one upload may spend being checked, waits for a slot included.

    Args:
        seconds: VALIDATION_TIMEOUT.
        child_timeout, child_memory: PDF_PARSE_TIMEOUT and PDF_PARSE_MEMORY, for each child.
        slots, wait: PARSE_CONCURRENCY and PARSE_WAIT, for the "parse" gate.
    """

    def __init__(self, seconds: float, child_timeout: float, child_memory: int, slots: int, wait: float):
        self.deadline = time.monotonic() + seconds
        self.child_timeout, self.child_memory = child_timeout, child_memory
        self.slots, self.wait = slots, wait

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in a child, once a parse slot is free; its result, or a plain refusal.

        Raises:
            ServerBusy: no slot freed within PARSE_WAIT (or within what is left of the budget).
            InvalidUpload: fn refused the file, or it ran out of time or memory, or crashed.
        """
        asked = time.monotonic()
        if self.remaining() <= 0:
            raise InvalidUpload(gettext(TOO_LONG))
        with gate("parse", self.slots, min(self.wait, self.remaining())):
            remaining = self.remaining()
            if remaining <= 0:  # the slot came as the budget ran out: busy if waiting spent it
                raise ServerBusy() if time.monotonic() - asked > 0.1 else InvalidUpload(gettext(TOO_LONG))
            try:
                return run_isolated(fn, *args, timeout=min(self.child_timeout, remaining),
                                    memory=self.child_memory)
            except InvalidUpload as exc:
                if getattr(exc, "detail", None):
                    log.info("upload refused: %s (%s)", exc.message, exc.detail)  # type: ignore[attr-defined]
                raise
            except ChildTimeout:
                log.info("upload refused: the check of %s ran out of time", fn.__name__)
                raise InvalidUpload(gettext(TOO_LONG)) from None
            except ChildOutOfMemory:
                log.info("upload refused: the check of %s ran out of memory", fn.__name__)
                raise InvalidUpload(gettext(TOO_BIG)) from None
            except IsolationError as exc:
                log.warning("upload refused: the check of %s failed: %s %s", fn.__name__, exc,
                            getattr(exc, "detail", ""))
                raise InvalidUpload(gettext(NOT_CHECKED)) from None


    def try_run(self, fn: Callable[..., Any], *args: Any) -> Any | None:
        """fn(*args) in a child under the same gate and clock as `run`; None when it cannot
        run or fails (busy, out of time or memory, crashed, or it raised): for work an upload
        may do without (its text for search). Each failure is logged at info, never raised."""
        try:
            if self.remaining() <= 0:
                raise ChildTimeout("no time left")
            with gate("parse", self.slots, min(self.wait, self.remaining())):
                remaining = self.remaining()
                if remaining <= 0:
                    raise ChildTimeout("no time left")
                return run_isolated(fn, *args, timeout=min(self.child_timeout, remaining),
                                    memory=self.child_memory)
        except Exception as exc:  # noqa: BLE001 - busy, killed, or fn raised: optional work, never fatal
            log.info("%s gave up: %s: %s", fn.__name__, type(exc).__name__, exc)
            return None


# -- PDF ---------------------------------------------------------------------------------------

def too_many_pages(count: int | None, max_pages: int) -> str:
    said = f"{count:,}" if count is not None else gettext("more than %(max)s", max=f"{max_pages:,}")
    return gettext("The PDF has %(said)s pages; at most %(max)s pages can be uploaded. "
                   "Split it into smaller files and upload those.", said=said, max=f"{max_pages:,}")


DAMAGED_PDF = N_("The PDF is damaged and cannot be opened; save it again (for example with “Print to PDF”) "
                 "and upload it again.")


def count_pdf_pages(path: str, max_pages: int) -> int:
    """Runs in the child: the number of pages, refusing more than `max_pages`.

    pdfium reads the page tree root's /Count without touching a page (milliseconds for 100,000
    pages). A /Count can lie low, so pypdf then walks the tree itself, stopping one page past
    the cap, before it resolves each page (catching broken trees).
    """
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    declared = _pdfium_page_count(path)
    if declared is not None and declared > max_pages:
        raise InvalidUpload(too_many_pages(declared, max_pages))
    try:
        # An open file, not the path: given a path pypdf first reads the whole file into memory
        # (a 22 MB scan: 32 ms, 7 ms from the file; fresh pages are dear in a forked child); from
        # a file it reads what it parses: the xref, the page tree, the pages' dictionaries.
        with open(path, "rb") as fh:
            reader = PdfReader(fh, strict=False)
            if reader.is_encrypted:
                raise InvalidUpload(gettext("The PDF is password-protected; remove the password and upload it again."))
            _walk_page_tree(reader, max_pages)
            count = 0
            for page in reader.pages:
                page.mediabox  # noqa: B018 - resolving each page catches broken page trees
                count += 1
    except (InvalidUpload, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise refuse(DAMAGED_PDF, exc) from None
    if count < 1:
        raise InvalidUpload(gettext("The PDF has no pages; save it again and upload it again."))
    return count


def _pdfium_page_count(path: str) -> int | None:
    """The count pdfium reads from the page tree root; None when it cannot open the file
    (a password, damage): pypdf then says what is wrong."""
    try:
        doc = pdfium.PdfDocument(path)
    except Exception:  # noqa: BLE001 - PdfiumError and others; pypdf decides
        return None
    try:
        return len(doc)
    finally:
        doc.close()


def _walk_page_tree(reader: PdfReader, max_pages: int) -> None:
    """Count the leaves of the page tree as pypdf flattens it, but give up one past the cap.

    A node reached twice counts twice (as pypdf copies it), so shared nodes cannot hide 2**40
    pages in a small file; the entries looked at are bounded too, so junk or a cycle ends it.
    """
    catalog = reader.trailer["/Root"].get_object()
    root = catalog["/Pages"].get_object() if isinstance(catalog, DictionaryObject) else None
    if not isinstance(root, DictionaryObject):
        raise ValueError("the page tree root is not a dictionary")
    budget = 4 * max_pages + 1000  # entries: pages, intermediate nodes and skipped junk
    leaves = 0
    stack = [(id(root), iter(_kids(root)))]
    on_path = {id(root)}
    while stack:
        node_id, kids = stack[-1]
        kid = next(kids, _END)
        if kid is _END:
            stack.pop()
            on_path.discard(node_id)
            continue
        budget -= 1
        if budget < 0:
            raise ValueError("the page tree is far larger than its pages")
        child = kid.get_object() if isinstance(kid, IndirectObject) else kid
        if not isinstance(child, DictionaryObject) or not child:
            continue  # pypdf skips these too
        kind = child.get("/Type")
        if kind == "/Pages" or (kind is None and "/Kids" in child):
            if id(child) in on_path or len(stack) >= 100:
                raise ValueError("the page tree is cyclic or too deep")
            stack.append((id(child), iter(_kids(child))))
            on_path.add(id(child))
        elif kind in ("/Page", None):
            leaves += 1
            if leaves > max_pages:
                raise InvalidUpload(too_many_pages(None, max_pages))


_END = object()


def _kids(node: DictionaryObject) -> ArrayObject:
    kids = node.get("/Kids")
    kids = kids.get_object() if kids is not None else ArrayObject()
    if not isinstance(kids, ArrayObject):
        raise ValueError("/Kids is not an array")
    return kids


# -- Images ------------------------------------------------------------------------------------

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
def image_size(path: str, fmt: str) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when the header is not understood (the
    child's decoder then decides). For a JPEG the largest frame header before the scan counts;
    for a HEIC the largest image its container declares (tiles, thumbnails and the whole grid)."""
    with open(path, "rb") as fh:
        if fmt == "HEIF":
            return heif.declared_size(fh)
        if fmt == "PNG":
            head = fh.read(24)
            if len(head) < 24 or head[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", head[16:24])
            return width, height
        return _jpeg_size(fh)


def _jpeg_size(fh) -> tuple[int, int] | None:
    fh.seek(2)
    best: tuple[int, int] | None = None
    for _ in range(10_000):  # real files have a few dozen segments before the scan
        if fh.read(1) != b"\xff":
            return best
        marker = fh.read(1)
        for _ in range(64):  # fill bytes
            if marker != b"\xff":
                break
            marker = fh.read(1)
        if not marker or marker[0] in (0xDA, 0xD9):  # the scan (or the end) begins
            return best
        if marker[0] == 0x01 or 0xD0 <= marker[0] <= 0xD8:
            continue  # markers without a length
        raw = fh.read(2)
        if len(raw) < 2 or (length := struct.unpack(">H", raw)[0]) < 2:
            return best
        if marker[0] in _SOF:
            frame = fh.read(5)
            if len(frame) < 5:
                return best
            height, width = struct.unpack(">HH", frame[1:5])
            if best is None or width * height > best[0] * best[1]:
                best = (width, height)
            fh.seek(length - 7, 1)
        else:
            fh.seek(length - 2, 1)
    return best


def too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> str:
    megapixels = f"{max_pixels / 1e6:,.1f}".removesuffix(".0")
    said = (gettext("The image is %(width)sx%(height)s pixels", width=f"{size[0]:,}", height=f"{size[1]:,}")
            if size else gettext("The image has far too many pixels"))
    return gettext("%(said)s; the limit is %(max)s pixels (about %(megapixels)s megapixels). "
                   "Save it at a smaller size and upload it again.", said=said, max=f"{max_pixels:,}",
                   megapixels=megapixels)


#: What the image messages call each format (bare: the Spanish needs no article for them).
_IMAGE_NOUNS = {"HEIF": N_("HEIC photo"), "PNG": N_("PNG image"), "JPEG": N_("JPEG image")}


def decode_image(path: str, fmt: str, max_pixels: int) -> tuple[int, int, int]:
    """Runs in the child: decode the image fully (and verify a PNG's chunks); (width, height,
    where the image ends in the file: just past IEND for a PNG, past the last box for a HEIC
    (-1: its boxes do not parse), -1 for a JPEG). A HEIC's size is as shown (rotations applied)."""
    noun = gettext(_IMAGE_NOUNS[fmt])
    if fmt == "HEIF":
        heif.register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
            with Image.open(path, formats=[fmt]) as im:
                size = im.size
                if size[0] * size[1] > max_pixels:
                    raise InvalidUpload(too_many_pixels(size, max_pixels))
                if size[0] < 1 or size[1] < 1:
                    raise ValueError("an image without pixels")
                if fmt == "PNG":
                    im.verify()  # chunk CRCs
            with Image.open(path, formats=[fmt]) as im:
                im.load()  # a full decode catches truncation
        end = _png_end(path) if fmt == "PNG" else heif.end_of_boxes(path) if fmt == "HEIF" else -1
    except (InvalidUpload, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise refuse(too_many_pixels(None, max_pixels), exc) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, ValueError…
        if fmt == "HEIF" and heif.end_of_boxes(path) == -1:  # its last box is cut off: libheif only says "cannot read"
            raise refuse(INCOMPLETE, exc) from None
        raise refuse(_image_sentence(exc, noun), exc) from None
    return size[0], size[1], end


def _image_sentence(exc: Exception, noun: str) -> str:
    said = str(exc).lower()
    if isinstance(exc, EOFError) or "truncat" in said or "end of file" in said:
        return INCOMPLETE
    if "cannot identify" in said:
        return gettext("The file is not a readable %(noun)s; save it again as a PNG or JPEG and upload it again.",
                       noun=noun)
    return gettext("The %(noun)s is damaged and cannot be read; save it again and upload it again.", noun=noun)


def _png_end(path: str) -> int:
    """The offset just past the IEND chunk (walks chunk headers only; -1 when there is none)."""
    with open(path, "rb") as fh:
        pos = 8
        while True:
            fh.seek(pos)
            header = fh.read(8)
            if len(header) < 8:
                return -1
            pos += 12 + int.from_bytes(header[:4], "big")
            if header[4:8] == b"IEND":
                return pos


# -- Office (DOCX / XLSX) ----------------------------------------------------------------------

OFFICE_MAIN = {
    "docx": (b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
             "word/document.xml", N_("Word document")),
    "xlsx": (b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
             "xl/workbook.xml", N_("Excel workbook")),
}
MAX_PARTS = 10_000


def check_office(path: str, kind: str | None, max_uncompressed: int) -> str:
    """Runs in the child: read every part of the ZIP (CRCs and real sizes, bounded) and say
    which Office kind it is ("docx"/"xlsx"). `kind` is what its name says, or None to tell
    from its parts (a ZIP not named .docx or .xlsx)."""
    noun = gettext(OFFICE_MAIN[kind][2] if kind else N_("ZIP archive"))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            if kind is None:
                kind = next((k for k, (_, main, _) in OFFICE_MAIN.items()
                             if main in names and "[Content_Types].xml" in names), None)
                if kind is None:
                    raise InvalidUpload(gettext("ZIP archives are not accepted; Word and Excel files must end in "
                                                ".docx or .xlsx."))
                noun = gettext(OFFICE_MAIN[kind][2])
            main_type, main_part, _ = OFFICE_MAIN[kind]
            invalid = gettext("The file is not a valid %(noun)s; save it again from Word or Excel and upload it again.",
                              noun=noun)
            if len(infos) > MAX_PARTS:
                raise InvalidUpload(invalid)
            too_big = gettext("The %(noun)s expands to more than %(max)s bytes when opened; save it "
                              "as a PDF (or with smaller pictures) and upload it again.", noun=noun,
                              max=f"{max_uncompressed:,}")
            if sum(i.file_size for i in infos) > max_uncompressed:
                raise InvalidUpload(too_big)
            if "[Content_Types].xml" not in names or main_part not in names:
                raise InvalidUpload(invalid)
            small = zf.getinfo("[Content_Types].xml").file_size < CHUNK
            if main_type not in (zf.read("[Content_Types].xml") if small else b""):
                raise InvalidUpload(invalid)
            total = 0
            for info in infos:
                with zf.open(info) as part:
                    while chunk := part.read(CHUNK):
                        total += len(chunk)
                        if total > max_uncompressed:
                            raise InvalidUpload(too_big)
    except (InvalidUpload, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile and zlib raise many types on hostile input
        raise refuse(gettext("The %(noun)s is damaged and cannot be opened; save it again and upload it again.",
                             noun=noun), exc) from None
    return kind
