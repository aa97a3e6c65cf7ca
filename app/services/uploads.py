"""Uploads: an upload's way in, from the access check to its row.

Check where a file may go (`check_upload`), then validate its bytes and write them to storage
(`receive`), then add its row and audit event (`record`); `store` does all three and `upload`
commits as well. A new file's visibility to the patient starts at the category's default
(VISIBLE_BY_DEFAULT), and a new profile picture retires the old one. files.py, the hall, offers
these calls to the doors under the same names.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from flask import current_app
from flask_babel import gettext
from sqlalchemy import func, select

from app.errors import BadRequest, CannotReceive, InvalidUpload, TooLarge
from app.extensions import db
from app.models import Action, Category, Role, StoredFile, TargetType, User
from app.models.base import utcnow
from app.services import access, audit, scrub, search_index, text_extract, transaction
from app.services.audit import Origin
from app.services.spool import digests_and_size, spool
from app.services.spool import folder as spool_folder
from app.services.targets import Target
from app.services.validation import (
    TYPES,
    WEB_IMAGES,
    Inspection,
    Limits,
    clean_name,
    inspect_file,
    name_extension,
)
from app.storage import get_storage, new_key

#: What each category accepts beyond the door's own choice (a profile picture is a photo that
#: every client shows as it is: no HEIC), and how a refusal says so.
CATEGORY_ACCEPTS: dict[Category, tuple[frozenset[str], str]] = {
    Category.USER_AVATAR: (WEB_IMAGES, "A profile picture must be a PNG or JPEG image."),
}

#: Whether staff uploads are visible to the patient at once, per category: documents are;
#: visit attachments and consents wait until staff release them. A patient's own uploads and
#: profile pictures are always visible.
VISIBLE_BY_DEFAULT = {
    Category.USER_DOCUMENT: True, Category.INTAKE_ATTACHMENT: False, Category.USER_CONSENT: False,
    Category.USER_AVATAR: True,
}


def default_visibility(actor: User, category: Category, target: Target) -> bool:
    """Visible to the patient when they upload it themselves, else by the category's default."""
    return target.patient_id == actor.id or VISIBLE_BY_DEFAULT[category]


def check_upload(actor: User, category: Category, target: Target) -> None:
    """Whether the actor may add a file of `category` there (call before reading a body).

    Raises NotFound (out of reach), Forbidden (the role may not) or BadRequest (a category
    and target that do not fit together).
    """
    access.check_upload(actor, category, target.patient_id, target.account_id)
    if target.is_held:
        return
    if category == Category.INTAKE_ATTACHMENT and target.visit is None:
        raise BadRequest(gettext("Intake attachments belong to a visit; upload them to one of the patient's visits."))
    if category != Category.USER_AVATAR and target.patient is not None and target.patient.role != Role.PATIENT:
        raise BadRequest(gettext("Documents belong to a patient; name the patient whose chart the file is for."))


def upload(actor: User, origin: Origin, stream: IO[bytes], filename: str | None,
           category: Category = Category.USER_DOCUMENT, target: Target | None = None, *,
           accept: Collection[str] | None = None, add_extension: bool = False) -> StoredFile:
    """Validate, store and commit one upload; return its row. See `store` for the arguments."""
    row = store(actor, origin, stream, filename, category, target, accept=accept, add_extension=add_extension)
    transaction.commit()
    return row


def store(actor: User, origin: Origin, stream: IO[bytes], filename: str | None,
          category: Category = Category.USER_DOCUMENT, target: Target | None = None, *,
          accept: Collection[str] | None = None, add_extension: bool = False) -> StoredFile:
    """Validate and store one upload and add its row and audit event (flushed, not committed).

    The caller commits (transaction.commit); if the transaction ends without a commit the
    bytes are removed again, so storage never keeps bytes without a row.
    Args:
        actor: who uploads (becomes the creator).
        origin: the door and client, for the audit trail.
        stream: the file's bytes, read once in chunks.
        filename: the client's name for it (cleaned; its extension must agree with the bytes).
        category: one of Category; intake attachments need a visit target.
        target: the chart (and visit); the actor's own when None.
        accept: the media types this door takes (validation.TYPES keys); all when None. The
            category may narrow it further (CATEGORY_ACCEPTS).
        add_extension: give a name without an extension the detected type's own.
    Raises:
        NotFound / Forbidden: the target is out of reach / the role may not upload there.
        BadRequest: a category and target that do not fit together.
        TooLarge: over UPLOAD_MAX_BYTES.
        InvalidUpload: not an accepted, intact file of an accepted type matching its name.
    """
    target = target or Target.chart(actor)
    check_upload(actor, category, target)  # before the body is read
    check_quota(actor, target, 1, lock=False)  # a full quota refuses before the body is read too
    received = receive(stream, filename, category, accept=accept, add_extension=add_extension)
    return record(actor, origin, received, category, target)


@dataclass(frozen=True)
class Received:
    """An upload whose bytes are validated and stored, its row not yet written."""

    name: str
    found: Inspection
    size: int
    sha256: str
    backend: str
    key: str
    sha1: str | None = None  # hex; what FHIR's Attachment.hash carries (base64 there)
    text: str | None = None  # the words inside it, for search (text_extract.py)


def receive(stream: IO[bytes], filename: str | None, category: Category = Category.USER_DOCUMENT, *,
            accept: Collection[str] | None = None, add_extension: bool = False) -> Received:
    """Validate an upload's bytes and write them to storage; no row yet (see `store`).

    Photos are stored without their location and identifying metadata (scrub.py); the size
    and digests are of what is kept. The blob is removed again unless the current transaction
    commits (transaction.track_blob).
    Raises TooLarge or InvalidUpload as `store`.
    """
    config = current_app.config
    narrowed, purpose = CATEGORY_ACCEPTS.get(category, (frozenset(TYPES), ""))
    accepted = frozenset(accept if accept is not None else TYPES) & narrowed
    with spool(stream, config["UPLOAD_MAX_BYTES"], spool_folder()) as spooled:
        name = clean_name(filename)
        limits = Limits.from_config(config)
        budget = limits.budget()
        found = inspect_file(spooled.path, name, limits, accept=accepted, purpose=purpose, budget=budget)
        # Within the same clock and gate; a file whose text cannot be read is still uploaded.
        text = text_extract.extract(spooled.path, found.media_type, limits, budget,
                                    config["SEARCH_TEXT_MAX_CHARS"])
        if not name or (add_extension and not name_extension(name)):
            name = f"{name or 'upload'}.{found.ext}"
        try:
            cleaned = scrub.strip_metadata(spooled.path, found.media_type)
        except scrub.NotScrubbable:
            raise InvalidUpload(gettext(
                "The image could not be read to remove its metadata; save it again and re-upload.")) from None
        except OSError as exc:  # the temp folder is full or gone: an outage, not the file's fault
            current_app.logger.error("cannot write a cleaned copy in %s: %s", spool_folder(), exc)
            raise CannotReceive() from None
        path, size, sha256, sha1 = spooled.path, spooled.size, spooled.sha256, spooled.sha1
        try:
            if cleaned is not None:
                path = cleaned
                with open(cleaned, "rb") as fh:
                    sha256, sha1, size = digests_and_size(fh)
            storage = get_storage()
            key = new_key()
            storage.put_file(key, path)  # moved where the store can: the spool (or copy) is gone then
        finally:
            if cleaned is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(cleaned)
    transaction.track_blob(key)
    return Received(name, found, size, sha256, storage.name, key, sha1, text)


def record(actor: User, origin: Origin, received: Received, category: Category, target: Target) -> StoredFile:
    """Add the row and audit event of a received upload (flushed, not committed).

    Raises NotFound, Forbidden or BadRequest as check_upload (checked again: the target may
    have been looked up anew since), TooLarge past a storage quota (check_quota; the
    transaction is then rolled back, so the received bytes go too).
    """
    check_upload(actor, category, target)
    try:
        check_quota(actor, target, received.size)
    except TooLarge:
        transaction.abandon()  # the blob was written for this row; a door may go on to the next file
        raise
    now = utcnow()
    found = received.found
    row = StoredFile(
        account_id=target.account_id, name=received.name, ext=found.ext, size=received.size,
        sha256=received.sha256, sha1=received.sha1, media_type=found.media_type, category=category.value,
        target_type=target.type.value, target_id=target.id, patient_id=target.patient_id,
        visit_id=target.visit_id, creator_id=actor.id,
        created_at=now, modified_at=now, storage_backend=received.backend, storage_key=received.key,
        page_count=found.page_count, width=found.width, height=found.height,
        visible=default_visibility(actor, category, target),
    )
    if category == Category.USER_AVATAR and target.patient is not None:
        _retire_avatars(actor, origin, target.patient, now)
    db.session.add(row)
    db.session.flush()
    if received.text:
        search_index.add_text(row, received.text)
    audit.record(Action.UPLOAD, origin, actor=actor, file=row, name=row.name, size=row.size)
    return row


def check_quota(actor: User, target: Target, incoming: int, *, lock: bool = True) -> None:
    """Refuse an upload of `incoming` bytes that would pass USER_QUOTA_BYTES (what a patient
    uploaded) or CLINIC_QUOTA_BYTES (everything the clinic keeps).

    Files in the trash count until they are purged: their bytes are still stored, and an
    upload-delete loop must not fill the disk. With `lock`, the clinic's write lock is taken
    first (accounts.lock_clinic, held until the transaction ends), so two concurrent uploads
    cannot both fit in the last free bytes. Staff uploads count towards the clinic only.
    Raises TooLarge with a message naming the quota.
    """
    config = current_app.config
    user_quota = int(config.get("USER_QUOTA_BYTES") or 0) if actor.role == Role.PATIENT else 0
    clinic_quota = int(config.get("CLINIC_QUOTA_BYTES") or 0)
    if not user_quota and not clinic_quota:
        return
    if lock:
        from app.services.accounts import lock_clinic  # accounts sits above uploads

        lock_clinic(target.account_id)
    kept = select(func.coalesce(func.sum(StoredFile.size), 0)).where(StoredFile.purged_at.is_(None))
    if user_quota:
        # A patient uploads into their own chart only, so patient_id's index finds their files.
        used = db.session.scalar(kept.where(StoredFile.patient_id == actor.id, StoredFile.creator_id == actor.id))
        if (used or 0) + incoming > user_quota:
            raise TooLarge(gettext("This upload would take your files past your %(quota)s storage "
                                   "quota (deleted files count until they are removed for good, "
                                   "%(days)s days after); ask the clinic to make room.",
                                   quota=human_bytes(user_quota), days=config["TRASH_RETENTION_DAYS"]))
    if clinic_quota:
        used = db.session.scalar(kept.where(StoredFile.account_id == target.account_id))
        if (used or 0) + incoming > clinic_quota:
            raise TooLarge(gettext("This upload would take the clinic's files past its %(quota)s "
                                   "storage quota; ask the clinic's administrator to make room.",
                                   quota=human_bytes(clinic_quota)))


def human_bytes(n: int) -> str:
    """2147483648 -> "2 GB" (binary units, as people read their disks)."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return gettext("%(num)s bytes", num=f"{n:,}")


def _retire_avatars(actor: User, origin: Origin, user: User, now: datetime) -> None:
    """One avatar per user: a new one replaces (soft-deletes) the old."""
    for old in db.session.scalars(select(StoredFile).where(StoredFile.deleted_at.is_(None)).where(
        StoredFile.patient_id == user.id, StoredFile.category == Category.USER_AVATAR,
        StoredFile.target_type == TargetType.USER,
    )):
        old.deleted_at, old.deleted_by_id = now, actor.id
        audit.record(Action.DELETE, origin, actor=actor, file=old, reason="replaced")
