"""The words inside an upload, for search: a PDF's text, a note or CSV, a Word document's
paragraphs, a workbook's cells.

Extraction runs after validation, on the same spooled file and within the same Budget: a PDF
(pypdf) and an Office ZIP (zipfile + expat) are read in a bounded child (decoders.Budget.try_run),
text and CSV in the parent (they are already known to be UTF-8). Text is a bonus, never a
condition: whatever fails or runs out of time leaves the file without text (logged at info),
and the upload goes on. What is kept is capped at SEARCH_TEXT_MAX_CHARS, so one huge file
cannot bloat the index.
"""
from __future__ import annotations

import codecs
import logging
import re
import zipfile
from xml.parsers import expat

from pypdf import PdfReader

from app.services import decoders, validation

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
#: NUL and other controls (PostgreSQL's text cannot hold NUL), runs of blanks.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_BLANKS = re.compile(r"[ \t\r\f\v\u00a0]+")
_LINES = re.compile(r"\n\s*\n+")

WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def extract(path: str, media_type: str, limits: validation.Limits, budget: decoders.Budget,
            max_chars: int) -> str | None:
    """The text of the validated file at `path`, at most `max_chars` characters.

    Args:
        media_type: what validation found it to be (validation.PDF, TEXT, CSV, DOCX, XLSX;
            any other type has no text).
        limits: the upload's limits (the Office parts' size bound is ZIP_MAX_UNCOMPRESSED).
        budget: the upload's clock and the "parse" gate; the child gets what is left of it.
    Returns:
        The text, whitespace tidied; None when the file has none, or it could not be read.
        Never raises for the file's sake.
    """
    if max_chars <= 0:
        return None
    if media_type in (validation.TEXT, validation.CSV):
        try:
            raw, problem = read_text(path, max_chars), None
        except (OSError, UnicodeDecodeError) as exc:
            raw, problem = None, f"{type(exc).__name__}: {exc}"
    elif media_type in (validation.PDF, validation.DOCX, validation.XLSX):
        if media_type == validation.PDF:
            answer = budget.try_run(pdf_text, path, max_chars)
        else:
            kind = "docx" if media_type == validation.DOCX else "xlsx"
            answer = budget.try_run(office_text, path, kind, max_chars, limits.zip_max_uncompressed)
        if answer is None:  # busy, out of time or memory: try_run said so in the log
            return None
        raw, problem = answer
    else:
        return None
    if problem:  # half a text would make a search miss without saying why: none at all
        log.info("no text kept for a %s upload: %s", media_type, problem[:300])
        return None
    return tidy(raw, max_chars) if raw else None


def tidy(text: str, max_chars: int) -> str | None:
    """`text` without controls and with tidy blanks, cut at `max_chars`; None when blank."""
    text = _CONTROLS.sub(" ", text[: max_chars * 2])
    text = _LINES.sub("\n\n", _BLANKS.sub(" ", text)).strip()
    return text[:max_chars] or None


def read_text(path: str, max_chars: int) -> str:
    """The first `max_chars` characters of a UTF-8 file (its BOM dropped)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    parts: list[str] = []
    got = 0
    with open(path, "rb") as fh:
        while got < max_chars and (chunk := fh.read(CHUNK)):
            piece = decoder.decode(chunk)
            parts.append(piece)
            got += len(piece)
    return "".join(parts)[:max_chars]


def pdf_text(path: str, max_chars: int) -> tuple[str | None, str | None]:
    """Runs in the child: (the text of the PDF's pages in order, None), or (None, what went
    wrong). Stops once `max_chars` characters are read."""
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    parts: list[str] = []
    got = 0
    try:
        with open(path, "rb") as fh:
            reader = PdfReader(fh, strict=False)
            for page in reader.pages:
                text = page.extract_text() or ""
                parts.append(text)
                got += len(text)
                if got >= max_chars:
                    break
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on odd input; no text then
        return None, f"{type(exc).__name__}: {exc}"[:300]
    return "\n\n".join(parts), None


class _Found(Exception):
    """Enough text read (or a part refused): stops the XML parser."""


def office_text(path: str, kind: str, max_chars: int, max_bytes: int) -> tuple[str | None, str | None]:
    """Runs in the child: (the text of a DOCX's body or an XLSX's strings, None), or (None,
    what went wrong).

    A DOCX's text is the `w:t` runs of word/document.xml (a paragraph per line); an XLSX's the
    shared strings (xl/sharedStrings.xml) and the inline strings of its sheets. The parts are
    read in chunks, at most `max_bytes` in all (validation already refused more), through expat
    with no DOCTYPE allowed (so no entity of any kind is expanded).
    """
    texts: list[str] = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if kind == "docx":
                parts, ns, breaks = ["word/document.xml"], WORD_NS, {"p", "tr", "br"}
            else:
                sheets = sorted((n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)),
                                key=lambda n: int(re.sub(r"\D", "", n) or 0))
                parts, ns, breaks = ["xl/sharedStrings.xml", *sheets], SHEET_NS, {"si", "is", "row"}
            budget = [max_bytes, max_chars]
            for part in parts:
                if part in names and budget[1] > 0:
                    _parse_part(zf, part, ns, breaks, texts, budget)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and expat raise many types
        return None, f"{type(exc).__name__}: {exc}"[:300]
    return "".join(texts), None


def _parse_part(zf: zipfile.ZipFile, part: str, ns: str, breaks: set[str], texts: list[str],
                budget: list[int]) -> None:
    """Add the text of the `t` elements of one part to `texts`; budget = [bytes, chars] left."""
    parser = expat.ParserCreate(namespace_separator=" ")
    depth = [0]  # inside how many `t` elements
    t_name = f"{ns} t"
    tab_name = f"{ns} tab"
    break_names = {f"{ns} {b}" for b in breaks}

    def no_doctype(*_args) -> None:
        raise ValueError("a DOCTYPE in an Office part")

    def start(name: str, _attrs) -> None:
        if name == t_name:
            depth[0] += 1
        elif name == tab_name:
            texts.append(" ")

    def end(name: str) -> None:
        if name == t_name:
            depth[0] -= 1
        elif name in break_names:
            texts.append("\n")

    def chars(data: str) -> None:
        if depth[0] > 0:
            taken = data[: budget[1]]
            texts.append(taken)
            budget[1] -= len(taken)
            if budget[1] <= 0:
                raise _Found()

    parser.StartDoctypeDeclHandler = no_doctype
    parser.EntityDeclHandler = no_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        with zf.open(part) as fh:
            while chunk := fh.read(CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise ValueError("the Office parts are larger than allowed")
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _Found:
        return
