"""The file service: the hall every door opens onto.

Upload, list, get, rename, delete and restore files and set their visibility to the patient;
each call checks access, does the storage work and writes its audit event. `store` only
flushes, so a caller that adds rows of its own (a vendor's metadata) commits once for
everything; every other call commits. Doors translate requests into these calls and the
results back into their dialect. Viewing through signed links is in viewing.py; the upload
pipeline is in uploads.py, the listings in listings.py and the trash listing in trash.py (all
three offered here too).
"""
from __future__ import annotations

import hashlib
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select, update

from app.errors import BadRequest, Conflict, DamagedFile, Forbidden, NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, TargetType, User, Visit
from app.models.base import MAX_ID, utcnow
from app.services import access, audit, transaction
from app.services.audit import Origin
from app.services.listings import (  # noqa: F401 - re-exported: the doors call files.list_files, …
    Kind,
    ListQuery,
    Sort,
    Source,
    current_avatar,
    current_avatars,
    list_all_files,
    list_files,
    list_visits_with_files,
)
from app.services.targets import Target
from app.services.trash import in_trash, list_deleted  # noqa: F401 - list_deleted: re-exported, as below
from app.services.uploads import (  # noqa: F401 - re-exported: the doors call files.upload, files.store, …
    CATEGORY_ACCEPTS,
    VISIBLE_BY_DEFAULT,
    Received,
    check_upload,
    default_visibility,
    receive,
    record,
    store,
    upload,
)
from app.services.validation import TYPES, claimed_type, clean_name, describe, name_extension
from app.storage import BlobMissing, get_storage


def parse_category(value: str | None) -> Category:
    """A category from request text (user_document when empty). Raises BadRequest naming the
    accepted values."""
    return parse_category_filter(value) or Category.USER_DOCUMENT


def parse_category_filter(value: str | None) -> Category | None:
    """An optional category from request text (None when empty). Raises BadRequest."""
    if value is None or value == "":
        return None
    try:
        return Category(value)
    except ValueError:
        raise BadRequest(
            f"Unknown category {value!r}; use one of: {', '.join(c.value for c in Category)}."
        ) from None


def resolve_target(actor: User, kind: TargetType, ident: int | str | None) -> Target:
    """The chart (or visit) a door names; the actor's own chart for a user target without id.

    Args:
        kind: USER (ident: a user id) or VISIT (ident: a visit id or its UUID).
    Raises NotFound (absent or outside the actor's clinic; a patient reaches only their own
    visits) or BadRequest (a visit target without an id).
    """
    if kind == TargetType.USER:
        if ident is None:
            return Target.chart(actor)
        user = _row(User, ident)
        if user is None or user.account_id != actor.account_id:
            raise NotFound("No such user.")
        return Target.chart(user)
    if ident is None:
        raise BadRequest("A visit target needs the visit's id.")
    column = Visit.id if isinstance(ident, int) else Visit.public_id
    visit = db.session.scalar(select(Visit).where(column == ident, Visit.account_id == actor.account_id))
    if visit is None or (actor.is_patient and visit.patient_id != actor.id):
        raise NotFound("No such visit.")
    return Target.chart(visit.patient, visit)


def _row(model, ident: int | str):
    return db.session.get(model, ident) if isinstance(ident, int) and 0 < ident <= MAX_ID else None


def get_file(actor: User, file_id: str | int, action: Action = Action.VIEW, *,
             visit: Visit | None = None, held: bool = False) -> StoredFile:
    """A live file by public UUID (or integer id) if the actor may take `action` on it.

    Args:
        visit: only a file attached to this visit.
        held: also a file still held for its visit (found this way only, never by id alone:
            the door that holds files says which may match).
    Raises NotFound (absent, deleted, out of reach or outside the scope given) or
    Forbidden (visible, not allowed).
    """
    row = find_file(file_id)
    if row is None or row.is_deleted:
        raise NotFound(gettext("No such file."))
    if visit is not None and row.visit_id != visit.id:
        raise NotFound(gettext("No such file."))
    if row.is_held and not held:
        raise NotFound(gettext("No such file."))
    access.check(actor, row, action)
    return row


def find_file(file_id: str | int) -> StoredFile | None:
    """Any file row (deleted ones too) by public UUID or integer id; no access check."""
    if isinstance(file_id, int):
        return _row(StoredFile, file_id)
    if not isinstance(file_id, str) or len(file_id) != 36:
        return None
    return db.session.scalar(select(StoredFile).where(StoredFile.public_id == file_id.lower()))


def _for_change(actor: User, file_id: str | int, action: Action, *, visit: Visit | None = None,
                held: bool = False) -> StoredFile:
    """The file, locked for this transaction and read again, if the actor may change it.

    Concurrent changes of one file serialize on its row (a row lock on PostgreSQL, the write
    lock on SQLite), so each sees the other's commit: a change after a delete finds the file
    gone (NotFound), and `version` rises once per change, never lost.
    """
    row = find_file(file_id) if action == Action.RESTORE else get_file(actor, file_id, action, visit=visit, held=held)
    if row is None:
        raise NotFound(gettext("No such file."))
    db.session.execute(update(StoredFile).where(StoredFile.id == row.id).values(version=StoredFile.version)
                       .execution_options(synchronize_session=False))
    db.session.refresh(row)
    try:
        if action != Action.RESTORE and row.is_deleted:
            raise NotFound(gettext("No such file."))
        access.check(actor, row, action)
    except (NotFound, Forbidden):
        _release()
        raise
    return row


def _release() -> None:
    """Give the row lock back at once when a change is refused after taking it."""
    db.session.rollback()


def rename(actor: User, origin: Origin, file_id: str | int, new_name: str | None, *,
           expected_version: int | None = None, keep_extension: bool = False) -> StoredFile:
    """Change a file's display name only; `ext` follows when the new extension fits the type.

    A name whose extension names another type ("letter.docx" for a PDF) is refused: it would
    mislabel the file wherever it is saved. With `keep_extension` (the pages, where the stem is
    what a person edits) a name without the type's extension gets the file's own.

    Args:
        expected_version: when given, the version the caller last saw (If-Match): a file
            changed since answers Conflict instead of overwriting that change.
    Raises NotFound/Forbidden (access), BadRequest (empty, unprintable or mislabelling name)
    or Conflict.
    """
    name = clean_name(new_name)
    if not name:
        raise BadRequest(gettext("The new name must contain at least one printable character."))
    row = _for_change(actor, file_id, Action.RENAME)
    if expected_version is not None and row.version != expected_version:
        _release()
        raise Conflict(f"The file has changed since version {expected_version} (it is at version {row.version}); "
                       "reload it and try again.", version=row.version)
    ext = name_extension(name)
    claimed = claimed_type(ext, row.media_type)
    if claimed is not None:
        _release()
        raise BadRequest(gettext("“%(name)s” would make it look like %(claimed)s, but it is %(what)s: "
                                 "keep “.%(ext)s” at the end of the name, or leave the ending off.",
                                 name=name, claimed=claimed, what=describe(row.media_type), ext=row.ext))
    if ext in TYPES[row.media_type][0]:
        row.ext = ext
    elif keep_extension:
        name = f"{clean_name(name, 254 - len(row.ext))}.{row.ext}"
    old = row.name
    row.name = name
    row.modified_at = utcnow()
    row.version += 1
    audit.record(Action.RENAME, origin, actor=actor, file=row, old_name=old, new_name=name)
    transaction.commit()
    return row


def delete(actor: User, origin: Origin, file_id: str | int, *, visit: Visit | None = None,
           held: bool = False, reason: str | None = None) -> StoredFile:
    """Soft-delete: hidden everywhere, restorable for TRASH_RETENTION_DAYS, then purged.

    `visit` / `held` narrow which file may match, as in get_file. `reason` (why staff remove a
    record) is kept in the audit trail.
    """
    row = _for_change(actor, file_id, Action.DELETE, visit=visit, held=held)
    row.deleted_at = row.modified_at = utcnow()
    row.deleted_by_id = actor.id
    row.version += 1
    detail: dict[str, Any] = {"reason": reason.strip()[:500]} if reason and reason.strip() else {}
    audit.record(Action.DELETE, origin, actor=actor, file=row, **detail)
    transaction.commit()
    return row


def set_visible(actor: User, origin: Origin, file_id: str | int, visible: bool) -> StoredFile:
    """Make a file visible to the patient whose chart holds it, or hide it from them (staff).

    Raises NotFound/Forbidden (access) or Conflict (a patient's own upload is always visible).
    """
    row = _for_change(actor, file_id, Action.SHARE if visible else Action.UNSHARE)
    if not visible and row.creator_id == row.patient_id:
        _release()
        raise Conflict(gettext("The patient uploaded this file themselves, so it is always visible to them."))
    if row.visible != visible:
        row.visible = visible
        row.modified_at = utcnow()
        row.version += 1
        audit.record(Action.SHARE if visible else Action.UNSHARE, origin, actor=actor, file=row)
        transaction.commit()
    return row


def file_to_visit(row: StoredFile, visit: Visit, origin: Origin, actor: User | None) -> None:
    """Move a held file into the visit it was kept for (audited as ATTACH; no commit: the
    caller's unit of work carries it)."""
    row.patient_id, row.visit_id = visit.patient_id, visit.id
    row.target_type, row.target_id = TargetType.VISIT.value, visit.id
    row.modified_at = utcnow()
    audit.record(Action.ATTACH, origin, actor=actor, file=row, visit=visit.public_id)


def restore(origin: Origin, file_id: str | int, actor: User | None = None) -> StoredFile:
    """Undo a soft delete.

    With an actor (pages, API): under the access rules (a patient restores what they deleted;
    staff what their role may delete) and only within TRASH_RETENTION_DAYS. Without one (the
    administrator's CLI): any file whose bytes are not purged yet.
    Raises NotFound (absent, out of reach, past retention) or Conflict (purged, not deleted).
    """
    if actor is not None:
        row = _for_change(actor, file_id, Action.RESTORE)
        if not in_trash(row):
            _release()
            raise NotFound(gettext("No such file."))
    else:
        found = find_file(file_id)
        if found is None:
            raise NotFound(f"No file {file_id}.")
        row = found
    if row.purged_at is not None:
        raise Conflict(gettext("The file's bytes were purged; it cannot be restored."))
    if row.deleted_at is None:
        raise Conflict(gettext("The file is not deleted."))
    row.deleted_at = row.deleted_by_id = None
    row.modified_at = utcnow()
    row.version += 1
    audit.record(Action.RESTORE, origin, actor=actor, file=row)
    transaction.commit()
    return row


def read_content(actor: User, origin: Origin, file_id: str | int) -> tuple[StoredFile, bytes]:
    """A live file the actor may view and its bytes, whole; audited as a view.

    For dialects that inline a file in JSON (base64 fields); files are at most
    UPLOAD_MAX_BYTES, so holding one in memory is bounded.
    Raises NotFound (absent, deleted, out of reach, or its bytes are missing) or Forbidden.
    """
    row = get_file(actor, file_id, Action.VIEW)
    try:
        with get_storage().open(row.storage_key) as fh:
            data = fh.read()
    except BlobMissing:
        raise missing_blob(row) from None
    if len(data) != row.size or hashlib.sha256(data).hexdigest() != row.sha256:
        raise damaged(row, origin, "sha256 mismatch on read", actor)
    audit.record_read(Action.VIEW, origin, actor=actor, file=row)
    return row, data


def damaged(row: StoredFile, origin: Origin, why: str, actor: User | None = None) -> DamagedFile:
    """Log and audit (committed at once) bytes that do not match their row; the error to raise."""
    current_app.logger.error("file %s (%s) is damaged at %s:%s: %s", row.public_id, row.name,
                             row.storage_backend, row.storage_key, why)
    audit.record(Action.VIEW, origin, actor=actor, file=row, integrity="mismatch", reason=why)
    transaction.commit()
    return DamagedFile()


def missing_blob(row: StoredFile) -> NotFound:
    """The error for a row whose bytes are gone, logged so an administrator sees it
    (`chartbox files check` lists every such row)."""
    current_app.logger.error("file %s (%s) has no blob at %s:%s", row.public_id, row.name,
                             row.storage_backend, row.storage_key)
    return NotFound("The file's contents are missing; an administrator has been told.")


def download_name(row: StoredFile) -> str:
    """The name to save the file under: its display name, with the real extension if missing."""
    if name_extension(row.name) in TYPES[row.media_type][0]:
        return row.name
    return f"{row.name}.{row.ext}"

