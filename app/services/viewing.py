"""Serving a file's bytes through a signed link, and the renditions behind `size=`, `preview=`
and `format=jpeg` (a HEIC photo as a JPEG).

Every original this process sends is checked against the sha256 its row recorded at upload,
so a damaged blob (a flipped bit on disk, a bad copy) is never served as if it were the file.
What follows is DOWNLOADS="stream" (the default). With "x-accel" a small file is checked and
sent as below, and a large one is hashed whole before nginx sends it (or was hashed by this
process within OFFLOAD_VERIFIED_FOR, inode, size and mtime unchanged), so its damage answers
DamagedFile before any byte and Range requests are covered; with "presigned" S3 sends the
bytes and only their size is compared. delivery.py says exactly what each checks and not.

- a file up to VERIFY_BEFORE_SEND_BYTES is read and hashed before the first byte goes out
  (whatever part was asked for, Range requests included); damaged, it answers DamagedFile
  (503 with a clear message), logged and audited;
- a larger one is hashed as it streams (VerifiedStream). Its size is compared before sending;
  its digest is known only once the last byte has been read, and then, on a mismatch, the
  stream raises *instead of* returning the last chunk, so the WSGI server aborts the response
  and the client sees a short transfer (fewer bytes than Content-Length), never a complete
  wrong file. The mismatch is logged and audited in a transaction of its own. A Range request
  reads only part of the file, so it cannot be checked against the whole-file hash: it is
  sent unchecked (unless the file is small enough to be checked first);
- a large file on local disk that this process hashed whole and found intact (streamed to its
  end, or before an x-accel offload) within OFFLOAD_VERIFIED_FOR, with the same inode, size and
  mtime (delivery.VerifiedBlobs), is sent as the plain file, so gunicorn can sendfile() it, and
  a Range request of it is covered by that hash; what this leaves unchecked is the damage
  delivery.py names for x-accel (bits changed in place, mtime kept, within that window);
- a rendition (a PNG behind `size=` or `preview=`, see renditions.py, or a HEIC's JPEG) is made
  only from a source checked first; the stored PNG itself has no recorded hash and is served as
  stored.

The audit event of a mismatch is an Action.VIEW with detail {"integrity": "mismatch"}.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, cast

from flask import Flask, current_app
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import lazyload

from app.errors import BadRequest, DamagedFile, Forbidden, NotFound
from app.extensions import db
from app.models import Action, StoredFile, User
from app.services import access, audit, delivery, renditions, signing
from app.services.audit import Origin
from app.services.delivery import Offload
from app.services.files import damaged, download_name, missing_blob
from app.services.images import parse_format, parse_page, parse_size
from app.services.validation import HEIC, IMAGES
from app.storage import BlobMissing, get_storage

CHUNK = 1024 * 1024


@dataclass
class Download:
    """Bytes ready to send: an open stream and what the response needs to describe it.

    With `offload` set, nginx or S3 sends the bytes (delivery.py) and `stream` is empty.
    """

    stream: BinaryIO
    size: int
    media_type: str
    etag: str
    name: str
    last_modified: datetime
    offload: Offload | None = None


# A PDF page preview without an explicit size fits this box: a readable page on screen, and a
# stored size (RENDITION_SIZES), so it is served without a downscale.
PREVIEW_BOX = (1280, 1280)


def open_view(file_id: str, auth_code: str | None, stamp: str | None, size: str | None,
              origin: Origin, preview: str | None = None, by: str | None = None, *,
              offload: bool = False, attachment: bool = False, as_format: str | None = None) -> Download:
    """Check a signed link and open the file (or its rendition) for sending.

    Args:
        file_id: the file's public UUID from the path.
        auth_code, stamp, by: the link's signature, mint time and the user it was minted
            for, as given. The view is theirs; the link stops working once they may no longer
            see the file, are disabled, or changed their password since.
        size: optional `WxH`; images come back as a PNG fitting the box, others ignore it.
        preview: optional 1-based page number; a PDF then comes back as a PNG of that page
            (fitting `size`, else PREVIEW_BOX). Ignored for other types, so plain `size=`
            on a PDF still returns the PDF, as the view links' contract says.
        offload, attachment: as open_file.
        as_format: optional `jpeg`; a HEIC then comes back as a JPEG of the whole photo
            (`size` still answers a PNG). Ignored for other types: the others are shown as they are.
    Raises:
        Forbidden: bad, tampered or expired link.
        NotFound: unknown, deleted or purged file (or its bytes are missing).
        BadRequest: a malformed size, preview or format, a page the PDF does not have or past
            PREVIEW_MAX_PAGES, or a rendition that cannot be made within its budget.
        ServerBusy: every render slot of this process stayed busy (503 + Retry-After).
    """
    try:
        signing.verify(signing.VIEW, signing.view_subject(file_id, by or ""), auth_code, stamp)
    except Forbidden as err:  # before anything else is read
        err.audit = {"reason": "signed link rejected", "file_public_id": file_id[:36]}
        raise
    box = parse_size(size)
    page = parse_page(preview)
    as_jpeg = parse_format(as_format) == "jpeg"
    row, viewer = _file_and_viewer(file_id, by)
    if row is None or viewer is None or row.is_deleted or not _may_use_link(viewer, stamp) \
            or not access.can(viewer, row, Action.VIEW):
        raise NotFound("No such file.")
    return open_file(row, origin, box, page, viewer=viewer, offload=offload, attachment=attachment,
                     as_jpeg=as_jpeg)


# Built once: every link view runs it. One statement for the file and the user the link was
# minted for, each row alone (their clinics and creators load only if touched).
_FILE_AND_VIEWER = (select(StoredFile, User).join(User, User.id == bindparam("user_id"))  # 1 x 1 row
                    .where(StoredFile.public_id == bindparam("public_id")).options(lazyload("*")))


def _file_and_viewer(file_id: str, by: str | None) -> tuple[StoredFile, User] | tuple[None, None]:
    """The file (deleted ones too) and the link's user, or (None, None) if either is unknown."""
    user_id = int(by) if by and by.isascii() and by.isdigit() and len(by) <= 10 else None
    if user_id is None or not isinstance(file_id, str) or len(file_id) != 36:
        return None, None
    found = db.session.execute(_FILE_AND_VIEWER, {"public_id": file_id.lower(), "user_id": user_id}).first()
    return (found[0], found[1]) if found is not None else (None, None)


def _may_use_link(user: User, stamp: str | None) -> bool:
    """Whether the user a verified link was minted for may still use it."""
    if not user.active:
        return False
    changed = user.credentials_changed_at
    # minted before a password change or a disable: revoked
    return changed is None or stamp is None or int(stamp) >= int(changed.timestamp())


def open_file(row: StoredFile, origin: Origin, box: tuple[int, int] | None = None,
              page: int | None = None, viewer: User | None = None, *, offload: bool = False,
              attachment: bool = False, as_jpeg: bool = False) -> Download:
    """Open a live file (or its rendition, as open_view) for a caller that has already
    authorised the read; audited as a view by `viewer` through `origin` (with {"format":
    "jpeg"} when a HEIC was sent as a JPEG).

    `offload`: the caller can send a Download whose bytes nginx or S3 sends (links.send_download
    can), so an original may be handed over as DOWNLOADS says (delivery.py; the audit detail
    then says {"delivered": "x-accel"|"presigned"}); `attachment` is the name's disposition for
    a presigned URL.

    Raises NotFound (bytes missing), BadRequest (a PDF page it does not have, or past
    PREVIEW_MAX_PAGES, or a rendition or JPEG that cannot be made within its budget),
    ServerBusy (no render slot) or DamagedFile (the bytes do not match
    the row's sha256; see the module docstring).
    """
    is_image = row.media_type in IMAGES
    as_jpeg = as_jpeg and row.media_type == HEIC and not box
    try:
        if page and row.is_pdf:
            download = _pdf_preview(row, box or PREVIEW_BOX, page, origin)
        elif box and is_image:
            download = _rendition(row, box, origin)
        elif as_jpeg:
            download = _jpeg(row, origin)
        else:
            sent_by = delivery.offload_original(row, origin, attachment) if offload else None
            download = Download(io.BytesIO() if sent_by else _open_original(row, origin), row.size,
                                row.media_type, row.sha256, download_name(row), row.modified_at, sent_by)
    except BlobMissing:
        raise missing_blob(row) from None
    size = f"{box[0]}x{box[1]}" if box and is_image else None
    detail: dict[str, Any] = {"size": size}
    if page and row.is_pdf:
        detail["preview"] = page
    if as_jpeg:
        detail["format"] = "jpeg"
    if download.offload:
        detail["delivered"] = download.offload.via.value
    audit.record_read(Action.VIEW, origin, actor=viewer, file=row, **detail)
    return download


def _open_original(row: StoredFile, origin: Origin) -> BinaryIO:
    """The file's stored bytes, checked (small files) or checking themselves (large ones).

    Raises BlobMissing, or DamagedFile (logged and audited) when the damage shows before
    anything is sent.
    """
    stream = get_storage().open(row.storage_key)
    handed_over = False
    try:
        stored = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        if stored != row.size:
            raise _damaged(row, origin, f"the blob has {stored} bytes, the row says {row.size}")
        if row.size > current_app.config["VERIFY_BEFORE_SEND_BYTES"]:
            handed_over = True  # the response (or the VerifiedStream) owns and closes it now
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            identity = delivery.blob_identity(row, stream)
            if identity is not None and delivery.recently_verified(app, identity):
                return stream  # a file hashed whole lately: the server may sendfile() it
            intact = (lambda: delivery.remember_verified(app, identity)) if identity else None
            return cast(BinaryIO, VerifiedStream(stream, row.size, row.sha256, _reporter(row, origin), intact))
        data = _read_exactly(stream, row.size)
    finally:
        if not handed_over:
            stream.close()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise _damaged(row, origin, "sha256 mismatch")
    return io.BytesIO(data)


def checked_chunks(row: StoredFile, origin: Origin) -> Iterator[bytes]:
    """A file's bytes for a caller that sends them after the request (an export): opened only
    when the first chunk is asked for, and checked against the row's sha256 as they go (on a
    mismatch DamagedFile comes in place of the last chunk, logged and audited)."""
    storage, report = get_storage(), _reporter(row, origin)
    key, size, sha256 = row.storage_key, row.size, row.sha256  # the row is gone by the time it is sent

    def chunks() -> Iterator[bytes]:
        with VerifiedStream(storage.open(key), size, sha256, report) as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    return chunks()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    parts, have = [], 0
    while have < size and (chunk := stream.read(min(CHUNK, size - have))):
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def _damaged(row: StoredFile, origin: Origin, why: str) -> DamagedFile:
    """Log and audit (committed now) a damaged file found before sending; the error to raise."""
    return damaged(row, origin, why)


def _reporter(row: StoredFile, origin: Origin) -> Callable[[str], None]:
    """What a VerifiedStream calls on a mismatch: log, and audit in a transaction of its own.

    It runs while the WSGI server iterates the body, after the request has returned and its
    app context (and with it the request's session, already committed) is gone; a fresh app
    context gives Flask-SQLAlchemy a fresh session, so the event commits alone.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    file_id, label = row.id, f"{row.public_id} ({row.name}) at {row.storage_backend}:{row.storage_key}"

    def report(why: str) -> None:
        app.logger.error("file %s is damaged, sending stopped: %s", label, why)
        with app.app_context():
            try:
                audit.record(Action.VIEW, origin, actor=None, file=db.session.get(StoredFile, file_id),
                             integrity="mismatch", reason=why, streamed=True)
                db.session.commit()
            except SQLAlchemyError as exc:  # the response is cut either way; the log line stays
                db.session.rollback()
                app.logger.error("could not audit the damaged file %s: %s", label, exc)

    return report


class VerifiedStream(io.RawIOBase):
    """A stored file's stream that checks the whole-file sha256 as it is read start to end.

    Reads never go past `size`. When the read that completes the file (or an early end of the
    blob) shows a digest other than `sha256`, `report` is called and DamagedFile raised in
    place of that last chunk, and on every read after. A seek away from the position read so
    far (a Range request) turns checking off: a part cannot be checked against the whole.
    `intact` is called once the whole file has been read and matched.
    No `fileno`, so a server cannot sendfile() around the check.
    """

    def __init__(self, raw: BinaryIO, size: int, sha256: str, report: Callable[[str], None],
                 intact: Callable[[], None] | None = None):
        super().__init__()
        self._raw, self._size, self._expected, self._report = raw, size, sha256, report
        self._intact = intact
        self._digest = hashlib.sha256()
        self._pos = 0
        self._hashed = 0
        self._checking = True
        self._failed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._raw.seek(offset, whence)
        if self._pos != self._hashed:
            self._checking = False
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if self._failed:
            raise DamagedFile()
        want = max(self._size - self._pos, 0)
        if size is not None and size >= 0:
            want = min(want, size)
        data = self._raw.read(want) if want > 0 else b""
        self._pos += len(data)
        if self._checking:
            self._digest.update(data)
            self._hashed = self._pos
            if self._pos == self._size or (want > 0 and not data):
                self._verify()
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _verify(self) -> None:
        if self._pos == self._size and self._digest.hexdigest() == self._expected:
            self._checking = False  # checked; further reads are past the end
            if self._intact is not None:
                self._intact()
            return
        self._failed = True
        why = (f"sha256 mismatch after {self._pos} bytes" if self._pos == self._size
               else f"the blob ended after {self._pos} of {self._size} bytes")
        self._report(why)
        raise DamagedFile()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _read_source(row: StoredFile, origin: Origin) -> bytes:
    """A rendition's source, read whole and checked against the row before it is rendered
    (uploads are at most UPLOAD_MAX_BYTES). Raises BlobMissing or DamagedFile."""
    with get_storage().open(row.storage_key) as source:
        data = _read_exactly(source, row.size + 1)  # one byte more shows a blob that grew
    if len(data) != row.size or hashlib.sha256(data).hexdigest() != row.sha256:
        raise _damaged(row, origin, f"sha256 mismatch in the source of a rendition ({len(data)} bytes)")
    return data


def _rendition(row: StoredFile, box: tuple[int, int], origin: Origin) -> Download:
    natural = (row.width, row.height) if row.width and row.height else None
    made = renditions.of_image(row.public_id, box, lambda: _read_source(row, origin), natural)
    return _png_download(row, made, f"{box[0]}x{box[1]}")


def _pdf_preview(row: StoredFile, box: tuple[int, int], page: int, origin: Origin) -> Download:
    if page > (row.page_count or 1):
        raise BadRequest(f"The PDF has {row.page_count} page(s); there is no page {page}.")
    last = current_app.config["PREVIEW_MAX_PAGES"]
    if page > last:  # each page is a render from the original: a long PDF must not be a flood
        raise BadRequest(f"Previews are made of pages 1 to {last} only; open the PDF itself to see page {page}.")
    made = renditions.of_pdf_page(row.public_id, box, page, lambda: _read_source(row, origin))
    return _png_download(row, made, f"page{page}-{box[0]}x{box[1]}")


def _jpeg(row: StoredFile, origin: Origin) -> Download:
    made = renditions.as_jpeg(lambda: _read_source(row, origin))
    stem = row.name.rsplit(".", 1)[0] if "." in row.name else row.name
    return Download(made.stream, made.size, "image/jpeg", f"{row.sha256[:32]}-jpeg", f"{stem}.jpg", row.modified_at)


def _png_download(row: StoredFile, made: renditions.Rendition, label: str) -> Download:
    stem = row.name.rsplit(".", 1)[0] if "." in row.name else row.name
    return Download(made.stream, made.size, "image/png", f"{row.sha256[:32]}-{label}", f"{stem}-{label}.png",
                    row.modified_at)
