"""Serving a file's bytes through a signed link, and the image renditions behind `size=`."""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from flask import current_app

from app.errors import BadRequest, NotFound
from app.models import Action, StoredFile
from app.services import audit, signing, transaction
from app.services.audit import Origin
from app.services.files import download_name, find_file, missing_blob
from app.services.images import fit_png, parse_page, parse_size, pdf_page_png, rendition_key
from app.storage import BlobMissing, get_storage


@dataclass
class Download:
    """Bytes ready to send: an open stream and what the response needs to describe it."""

    stream: BinaryIO
    size: int
    media_type: str
    etag: str
    name: str
    last_modified: datetime


# A PDF page preview without an explicit size fits this box (a readable page on screen).
PREVIEW_BOX = (1200, 1600)


def open_view(file_id: str, auth_code: str | None, stamp: str | None, size: str | None,
              origin: Origin, preview: str | None = None) -> Download:
    """Check a signed link and open the file (or its rendition) for sending.

    Args:
        file_id: the file's public UUID from the path.
        auth_code, stamp: the link's signature and mint time, as given.
        size: optional `WxH`; images come back as a PNG fitting the box, others ignore it.
        preview: optional 1-based page number; a PDF then comes back as a PNG of that page
            (fitting `size`, else PREVIEW_BOX). Ignored for other types, so plain `size=`
            on a PDF still returns the PDF, as the view links' contract says.
    Raises:
        Forbidden: bad, tampered or expired link.
        NotFound: unknown, deleted or purged file (or its bytes are missing).
        BadRequest: a malformed size or preview, a page the PDF does not have, or a PDF
            page that cannot be rendered.
    """
    signing.verify(signing.VIEW, file_id, auth_code, stamp)  # before anything else is read
    box = parse_size(size)
    page = parse_page(preview)
    row = find_file(file_id)
    if row is None or row.is_deleted:
        raise NotFound("No such file.")
    return open_file(row, origin, box, page)


def open_file(row: StoredFile, origin: Origin, box: tuple[int, int] | None = None,
              page: int | None = None) -> Download:
    """Open a live file (or its rendition, as open_view) for a caller that has already
    authorised the read; audited as an anonymous view through `origin`.

    Raises NotFound (bytes missing) or BadRequest (a PDF page it does not have).
    """
    storage = get_storage()
    try:
        if page and row.is_pdf:
            download = _pdf_preview(row, box or PREVIEW_BOX, page)
        elif box and row.is_image:
            download = _rendition(row, box)
        else:
            download = Download(storage.open(row.storage_key), row.size, row.media_type,
                                row.sha256, download_name(row), row.modified_at)
    except BlobMissing:
        raise missing_blob(row) from None
    size = f"{box[0]}x{box[1]}" if box and row.is_image else None
    audit.record(Action.VIEW, origin, actor=None, file=row, size=size,
                 **({"preview": page} if page and row.is_pdf else {}))
    transaction.commit()
    return download


def _rendition(row: StoredFile, box: tuple[int, int]) -> Download:
    return _cached_png(row, rendition_key(row.public_id, box), f"{box[0]}x{box[1]}",
                       lambda source: fit_png(source, box))


def _pdf_preview(row: StoredFile, box: tuple[int, int], page: int) -> Download:
    if page > (row.page_count or 1):
        raise BadRequest(f"The PDF has {row.page_count} page(s); there is no page {page}.")
    config = current_app.config
    return _cached_png(row, rendition_key(row.public_id, box, page=page), f"page{page}-{box[0]}x{box[1]}",
                       lambda source: pdf_page_png(source, box, page, timeout=config["PDF_PARSE_TIMEOUT"],
                                                   memory=config["PDF_PARSE_MEMORY"]))


def _cached_png(row: StoredFile, key: str, label: str, make: Callable[[BinaryIO], bytes]) -> Download:
    """A PNG rendition of the file, made from its bytes on first use and kept under `key`."""
    storage = get_storage()
    if not storage.exists(key):
        with storage.open(row.storage_key) as source:
            storage.put(key, io.BytesIO(make(source)))
    stem = row.name.rsplit(".", 1)[0] if "." in row.name else row.name
    return Download(storage.open(key), storage.size(key), "image/png", f"{row.sha256[:32]}-{label}",
                    f"{stem}-{label}.png", row.modified_at)
