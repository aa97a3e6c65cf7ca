"""The file service: the hall every door opens onto.

Upload, list, get, rename, delete, restore and share files; each call checks access, does the
storage work and writes its audit event. `store` only flushes, so a caller that adds rows of
its own (a vendor's metadata) commits once for everything; every other call commits. Doors
translate requests into these calls and the results back into their dialect. Viewing through
signed links is in viewing.py.
"""
from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, or_, select, update

from app.errors import BadRequest, Conflict, InvalidUpload, NotFound
from app.extensions import db
from app.models import Action, Category, Role, StoredFile, TargetType, User, Visit
from app.models.base import MAX_ID, utcnow
from app.services import access, audit, scrub, transaction
from app.services.audit import Origin
from app.services.paging import Page, paginate
from app.services.spool import spool
from app.services.validation import (
    IMAGES,
    TYPES,
    Inspection,
    Limits,
    clean_name,
    inspect_file,
    name_extension,
)
from app.storage import BlobMissing, get_storage, new_key

#: What each category accepts beyond the door's own choice (a profile picture is a photo), and
#: how a refusal says so.
CATEGORY_ACCEPTS: dict[Category, tuple[frozenset[str], str]] = {
    Category.USER_AVATAR: (IMAGES, "A profile picture must be a PNG or JPEG image."),
}


@dataclass(frozen=True)
class Target:
    """Where a file goes: a patient's chart, one of its visits, or a clinic's holding area
    (no chart yet: a file kept, staff only, until the visit it belongs to is opened)."""

    account_id: int
    patient: User | None = None
    visit: Visit | None = None

    @classmethod
    def chart(cls, patient: User, visit: Visit | None = None) -> Target:
        return cls(patient.account_id, patient, visit)

    @classmethod
    def held(cls, account_id: int) -> Target:
        return cls(account_id)

    @property
    def is_held(self) -> bool:
        return self.patient is None

    @property
    def type(self) -> TargetType:
        return TargetType.USER if self.patient is not None and self.visit is None else TargetType.VISIT

    @property
    def id(self) -> int | None:
        if self.visit is not None:
            return self.visit.id
        return self.patient.id if self.patient is not None else None

    @property
    def patient_id(self) -> int | None:
        return self.patient.id if self.patient is not None else None

    @property
    def visit_id(self) -> int | None:
        return self.visit.id if self.visit is not None else None


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


def check_upload(actor: User, category: Category, target: Target) -> None:
    """Whether the actor may add a file of `category` there (call before reading a body).

    Raises NotFound (out of reach), Forbidden (the role may not) or BadRequest (a category
    and target that do not fit together).
    """
    access.check_upload(actor, category, target.patient_id, target.account_id)
    if target.is_held:
        return
    if category == Category.INTAKE_ATTACHMENT and target.visit is None:
        raise BadRequest("Intake attachments belong to a visit; upload them to one of the patient's visits.")
    if category != Category.USER_AVATAR and target.patient is not None and target.patient.role != Role.PATIENT:
        raise BadRequest("Documents belong to a patient; name the patient whose chart the file is for.")


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


def receive(stream: IO[bytes], filename: str | None, category: Category = Category.USER_DOCUMENT, *,
            accept: Collection[str] | None = None, add_extension: bool = False) -> Received:
    """Validate an upload's bytes and write them to storage; no row yet (see `store`).

    Photos are stored without their location and identifying metadata (scrub.py); the size
    and sha256 are of what is kept. The blob is removed again unless the current transaction
    commits (transaction.track_blob).
    Raises TooLarge or InvalidUpload as `store`.
    """
    config = current_app.config
    narrowed, purpose = CATEGORY_ACCEPTS.get(category, (frozenset(TYPES), ""))
    accepted = frozenset(accept if accept is not None else TYPES) & narrowed
    with spool(stream, config["UPLOAD_MAX_BYTES"], _tmp_dir()) as spooled:
        name = clean_name(filename)
        found = inspect_file(spooled.path, name, Limits.from_config(config), accept=accepted, purpose=purpose)
        if not name or (add_extension and not name_extension(name)):
            name = f"{name or 'upload'}.{found.ext}"
        try:
            cleaned = scrub.strip_metadata(spooled.path, found.media_type)
        except scrub.NotScrubbable:
            raise InvalidUpload("The image could not be read to remove its metadata; save it again and re-upload.") \
                from None
        path, size, sha256 = spooled.path, spooled.size, spooled.sha256
        try:
            if cleaned is not None:
                path = cleaned
                with open(cleaned, "rb") as fh:
                    sha256, size = scrub.sha256_and_size(fh)
            storage = get_storage()
            key = new_key()
            with open(path, "rb") as fh:
                storage.put(key, fh)
        finally:
            if cleaned is not None:
                os.unlink(cleaned)
    transaction.track_blob(key)
    return Received(name, found, size, sha256, storage.name, key)


def record(actor: User, origin: Origin, received: Received, category: Category, target: Target) -> StoredFile:
    """Add the row and audit event of a received upload (flushed, not committed).

    Raises NotFound, Forbidden or BadRequest as check_upload (checked again: the target may
    have been looked up anew since).
    """
    check_upload(actor, category, target)
    now = utcnow()
    found = received.found
    row = StoredFile(
        account_id=target.account_id, name=received.name, ext=found.ext, size=received.size,
        sha256=received.sha256, media_type=found.media_type, category=category.value,
        target_type=target.type.value, target_id=target.id, patient_id=target.patient_id,
        visit_id=target.visit_id, creator_id=actor.id,
        created_at=now, modified_at=now, storage_backend=received.backend, storage_key=received.key,
        page_count=found.page_count, width=found.width, height=found.height,
    )
    if category == Category.USER_AVATAR and target.patient is not None:
        _retire_avatars(actor, origin, target.patient, now)
    db.session.add(row)
    db.session.flush()
    audit.record(Action.UPLOAD, origin, actor=actor, file=row, name=row.name, size=row.size)
    return row


def _retire_avatars(actor: User, origin: Origin, user: User, now: datetime) -> None:
    """One avatar per user: a new one replaces (soft-deletes) the old."""
    for old in db.session.scalars(_live().where(
        StoredFile.patient_id == user.id, StoredFile.category == Category.USER_AVATAR,
        StoredFile.target_type == TargetType.USER,
    )):
        old.deleted_at, old.deleted_by_id = now, actor.id
        audit.record(Action.DELETE, origin, actor=actor, file=old, reason="replaced")


def _tmp_dir() -> str:
    return os.path.join(current_app.instance_path, "tmp")


def _live() -> Select:
    return select(StoredFile).where(StoredFile.deleted_at.is_(None))


def list_files(actor: User, target: Target | None = None, category: Category | None = None,
               include_shared: bool = False, page: int = 1, per_page: int | None = None) -> Page:
    """The files of one chart (or one visit) that the actor may see, newest first.

    Args:
        target: the chart; the actor's own when None. A visit target lists that visit's files.
        category: only this category (all when None).
        include_shared: also files of any target that a provider shared with this patient.
        page, per_page: 1-based page; per_page defaults to API_PAGE_SIZE, capped at the max.
    Raises:
        NotFound: the chart is outside the actor's reach.
    """
    query = _listing(actor, target or Target.chart(actor), category, include_shared)
    return paginate(query, page, _page_size(per_page), *_NEWEST_FIRST)


def list_all_files(actor: User, target: Target, category: Category | None = None) -> list[StoredFile]:
    """Every live file of a chart or visit the actor may see, newest first, unpaged.

    For listings whose dialect or page has no paging and whose size a visit bounds (a visit's
    attachments). Raises NotFound as list_files.
    """
    query = _listing(actor, target, category, include_shared=False)
    return list(db.session.scalars(query.order_by(*_NEWEST_FIRST)))


def list_visits_with_files(actor: User, patient: User) -> list[tuple[Visit, list[StoredFile]]]:
    """A patient's visits, newest first, each with its live files the actor may see (newest
    first), in one query. Raises NotFound when the chart is out of the actor's reach."""
    if not access.in_scope(actor, patient.id, patient.account_id):
        raise NotFound("No such user.")
    on = and_(StoredFile.visit_id == Visit.id, StoredFile.target_type == TargetType.VISIT.value,
              StoredFile.deleted_at.is_(None))
    rows = db.session.execute(
        select(Visit, StoredFile).outerjoin(StoredFile, on).where(Visit.patient_id == patient.id)
        .order_by(Visit.created_at.desc(), Visit.id.desc(), *_NEWEST_FIRST)
    ).all()
    groups: dict[int, tuple[Visit, list[StoredFile]]] = {}
    for visit, row in rows:
        group = groups.setdefault(visit.id, (visit, []))
        if row is not None:
            group[1].append(row)
    return list(groups.values())


_NEWEST_FIRST = (StoredFile.created_at.desc(), StoredFile.id.desc())


def _listing(actor: User, target: Target, category: Category | None, include_shared: bool) -> Select:
    """The query behind the listings: one chart (or visit), live files, the actor's scope."""
    if target.patient is None or not access.in_scope(actor, target.patient.id, target.account_id):
        raise NotFound("No such user.")
    condition: ColumnElement[bool] = (StoredFile.target_type == target.type.value) & (StoredFile.target_id == target.id)
    if category is not None:
        condition = condition & (StoredFile.category == category.value)
    if include_shared:
        condition = or_(condition, (StoredFile.patient_id == target.patient.id) & StoredFile.shared.is_(True))
    query = _live().where(StoredFile.account_id == target.account_id, condition)
    if actor.is_patient:  # a patient sees their own chart only; avatars of others never
        query = query.where(StoredFile.patient_id == actor.id)
    return query


def current_avatar(user: User) -> StoredFile | None:
    """The user's live profile picture (one per user), if any; no access check (it is their own)."""
    return db.session.scalar(_live().where(
        StoredFile.patient_id == user.id, StoredFile.category == Category.USER_AVATAR,
        StoredFile.target_type == TargetType.USER,
    ).order_by(*_NEWEST_FIRST).limit(1))


def _page_size(per_page: int | None) -> int:
    config = current_app.config
    if per_page is None:
        return config["API_PAGE_SIZE"]
    return max(1, min(per_page, config["API_PAGE_SIZE_MAX"]))


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
        raise NotFound("No such file.")
    if visit is not None and row.visit_id != visit.id:
        raise NotFound("No such file.")
    if row.is_held and not held:
        raise NotFound("No such file.")
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
        raise NotFound("No such file.")
    db.session.execute(update(StoredFile).where(StoredFile.id == row.id).values(version=StoredFile.version)
                       .execution_options(synchronize_session=False))
    db.session.refresh(row)
    if action != Action.RESTORE and row.is_deleted:
        raise NotFound("No such file.")
    access.check(actor, row, action)
    return row


def rename(actor: User, origin: Origin, file_id: str | int, new_name: str | None, *,
           expected_version: int | None = None) -> StoredFile:
    """Change a file's display name only; `ext` follows when the new extension fits the type.

    Args:
        expected_version: when given, the version the caller last saw (If-Match): a file
            changed since answers Conflict instead of overwriting that change.
    Raises NotFound/Forbidden (access), BadRequest (empty or unprintable name) or Conflict.
    """
    name = clean_name(new_name)
    if not name:
        raise BadRequest("The new name must contain at least one printable character.")
    row = _for_change(actor, file_id, Action.RENAME)
    if expected_version is not None and row.version != expected_version:
        raise Conflict(f"The file has changed since version {expected_version} (it is at version {row.version}); "
                       "reload it and try again.", version=row.version)
    old = row.name
    ext = name_extension(name)
    if ext in TYPES[row.media_type][0]:
        row.ext = ext
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


def set_shared(actor: User, origin: Origin, file_id: str | int, shared: bool) -> StoredFile:
    """Share a file with (or withdraw it from) the patient whose chart holds it."""
    row = _for_change(actor, file_id, Action.SHARE if shared else Action.UNSHARE)
    if row.shared != shared:
        row.shared = shared
        row.modified_at = utcnow()
        row.version += 1
        audit.record(Action.SHARE if shared else Action.UNSHARE, origin, actor=actor, file=row)
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
        if not _in_trash(row):
            raise NotFound("No such file.")
    else:
        found = find_file(file_id)
        if found is None:
            raise NotFound(f"No file {file_id}.")
        row = found
    if row.purged_at is not None:
        raise Conflict("The file's bytes were purged; it cannot be restored.")
    if row.deleted_at is None:
        raise Conflict("The file is not deleted.")
    row.deleted_at = row.deleted_by_id = None
    row.modified_at = utcnow()
    row.version += 1
    audit.record(Action.RESTORE, origin, actor=actor, file=row)
    transaction.commit()
    return row


def _retention_cutoff() -> datetime:
    return utcnow() - timedelta(days=current_app.config["TRASH_RETENTION_DAYS"])


def _in_trash(row: StoredFile) -> bool:
    return row.deleted_at is not None and row.purged_at is None and row.deleted_at > _retention_cutoff()


def list_deleted(actor: User, patient: User) -> list[StoredFile]:
    """A chart's recently deleted files the actor may restore, most recently deleted first.

    A patient sees what they deleted themselves; staff everything deleted on the chart that
    their role may restore (with who deleted it and when: `deleted_by`, `deleted_at`). Only
    files within TRASH_RETENTION_DAYS and not purged. Raises NotFound for a chart out of reach.
    """
    if not access.in_scope(actor, patient.id, patient.account_id):
        raise NotFound("No such user.")
    query = select(StoredFile).where(
        StoredFile.account_id == patient.account_id, StoredFile.patient_id == patient.id,
        StoredFile.deleted_at.is_not(None), StoredFile.deleted_at > _retention_cutoff(),
        StoredFile.purged_at.is_(None),
    ).order_by(StoredFile.deleted_at.desc(), StoredFile.id.desc())
    if actor.is_patient:
        query = query.where(StoredFile.deleted_by_id == actor.id)
    return [row for row in db.session.scalars(query) if access.can(actor, row, Action.RESTORE)]


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
    audit.record(Action.VIEW, origin, actor=actor, file=row)
    transaction.commit()
    return row, data


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

