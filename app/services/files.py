"""The file service: the hall every door opens onto.

Upload, list, get, rename, delete, restore and share files; each call checks access, does the
storage work, writes its audit event and commits once. Doors translate requests into these
calls and the results back into their dialect. Viewing through signed links is in viewing.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import or_, select

from app.errors import BadRequest, Conflict, InvalidUpload, NotFound
from app.extensions import db
from app.models import Action, Category, Role, StoredFile, TargetType, User, Visit
from app.models.base import MAX_ID, utcnow
from app.services import access, audit
from app.services.audit import Origin
from app.services.paging import Page, paginate
from app.services.spool import spool
from app.services.validation import JPEG, PNG, TYPES, Limits, clean_name, inspect_file, name_extension
from app.storage import BlobMissing, get_storage, new_key


@dataclass(frozen=True)
class Target:
    """Where a file goes: a patient's chart, optionally one of their visits."""

    patient: User
    visit: Visit | None = None

    @property
    def type(self) -> TargetType:
        return TargetType.VISIT if self.visit else TargetType.USER

    @property
    def id(self) -> int:
        return self.visit.id if self.visit else self.patient.id

    @property
    def account_id(self) -> int:
        return self.patient.account_id

    @property
    def patient_id(self) -> int:
        return self.patient.id

    @property
    def visit_id(self) -> int | None:
        return self.visit.id if self.visit else None


@dataclass(frozen=True)
class WaitingTarget:
    """A visit still to come: the file waits in a clinic for the visit with this external id
    (Candid charge capture; see charge_capture.py). No patient until then, so staff only."""

    account_id: int
    external_id: str
    type = TargetType.VISIT
    id = patient_id = visit_id = None


def parse_id(value: str | None) -> int | None:
    """An integer row id from request text: ASCII digits in 1..MAX_ID, else None (never raises).

    str.isdigit() alone is not enough: '²' passes it and breaks int(); '٣' passes int().
    """
    if not value or not value.isascii() or not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def parse_category(value: str | None, default: Category | None = Category.USER_DOCUMENT) -> Category | None:
    """A category from request text. Raises BadRequest naming the accepted values."""
    if value is None or value == "":
        return default
    try:
        return Category(value)
    except ValueError:
        raise BadRequest(
            f"Unknown category {value!r}; use one of: {', '.join(c.value for c in Category)}."
        ) from None


def resolve_target(actor: User, target_type: str | None, target_id: str | int | None) -> Target:
    """The chart named by a (type, id) pair from a request; the actor itself when both are empty.

    User targets are integer user ids; visit targets are visit UUIDs (or integer ids).
    Raises BadRequest (malformed) or NotFound (absent or outside the actor's clinic).
    """
    target_id = "" if target_id is None else str(target_id).strip()
    kind = (target_type or "").strip() or TargetType.USER.value
    if kind not in (TargetType.USER, TargetType.VISIT):
        raise BadRequest("meta.target.type must be 'user' or 'visit'.")
    if kind == TargetType.USER:
        if not target_id or target_id == "-":
            return Target(patient=actor)
        if not (target_id.isascii() and target_id.isdigit()) or len(target_id) > 18:
            raise BadRequest("A user target id must be a number.")
        user_id = parse_id(target_id)
        user = db.session.get(User, user_id) if user_id is not None else None
        if user is None or user.account_id != actor.account_id:
            raise NotFound("No such user.")
        return Target(patient=user)
    if not target_id:
        raise BadRequest("A visit target needs meta.target.id.")
    visit_id = parse_id(target_id)
    column = Visit.id if visit_id is not None else Visit.public_id
    visit = db.session.scalar(
        select(Visit).where(column == (visit_id if visit_id is not None else target_id),
                            Visit.account_id == actor.account_id)
    )
    if visit is None or (actor.is_patient and visit.patient_id != actor.id):
        raise NotFound("No such visit.")
    return Target(patient=visit.patient, visit=visit)


def upload(actor: User, origin: Origin, stream: BinaryIO, filename: str | None,
           category: Category = Category.USER_DOCUMENT, target: Target | WaitingTarget | None = None,
           attrs: dict[str, Any] | None = None) -> StoredFile:
    """Validate and store one upload; return its row.

    Args:
        actor: who uploads (becomes the creator).
        origin: the door and client, for the audit trail.
        stream: the file's bytes, read once in chunks.
        filename: the client's name for it (cleaned; must agree with the bytes).
        category: one of Category; intake attachments need a visit target.
        target: the chart (and visit); defaults to the actor's own. A WaitingTarget leaves
            the file without a chart until its visit is created (staff only).
        attrs: extra StoredFile columns a dialect keeps (e.g. tscharts image type).
    Raises:
        NotFound / Forbidden: the target is out of reach / the role may not upload there.
        BadRequest: a category and target that do not fit together.
        TooLarge: over UPLOAD_MAX_BYTES.
        InvalidUpload: the bytes are not an accepted, intact file matching the name.
    """
    target = target or Target(patient=actor)
    _check_target(actor, category, target)
    config = current_app.config
    with spool(stream, config["UPLOAD_MAX_BYTES"], _tmp_dir()) as received:
        name = clean_name(filename)
        found = inspect_file(received.path, name, Limits.from_config(config))
        if category == Category.USER_AVATAR and found.media_type not in (PNG, JPEG):
            raise InvalidUpload("A profile picture must be a PNG or JPEG image.")
        name = name or f"upload.{found.ext}"
        storage = get_storage()
        key = new_key()
        with received.open() as fh:
            storage.put(key, fh)
    now = utcnow()
    row = StoredFile(
        account_id=target.account_id, name=name, ext=found.ext, size=received.size,
        sha256=received.sha256, media_type=found.media_type, category=category.value,
        target_type=target.type.value, target_id=target.id, patient_id=target.patient_id,
        visit_id=target.visit_id, creator_id=actor.id,
        created_at=now, modified_at=now, storage_backend=storage.name, storage_key=key,
        page_count=found.page_count, width=found.width, height=found.height,
        **(attrs or {}),
    )
    try:
        if category == Category.USER_AVATAR:
            _retire_avatars(actor, origin, target.patient, now)
        db.session.add(row)
        db.session.flush()
        audit.record(Action.UPLOAD, origin, actor=actor, file=row, name=name, size=row.size)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        storage.delete(key)  # never leave bytes without a row
        raise
    return row


def _check_target(actor: User, category: Category, target: Target | WaitingTarget) -> None:
    if isinstance(target, WaitingTarget):
        access.check_waiting_upload(actor, category)
        return
    access.check_upload(actor, category, target.patient, target.patient.account_id)
    if category == Category.INTAKE_ATTACHMENT and target.visit is None:
        raise BadRequest("Intake attachments belong to a visit: set meta.target.type=visit and its id.")
    if category != Category.USER_AVATAR and target.patient.role != Role.PATIENT:
        raise BadRequest("Documents belong to a patient: set meta.target.id to the patient's user id.")


def _retire_avatars(actor: User, origin: Origin, user: User, now) -> None:
    """One avatar per user: a new one replaces (soft-deletes) the old."""
    for old in db.session.scalars(_live().where(
        StoredFile.patient_id == user.id, StoredFile.category == Category.USER_AVATAR,
        StoredFile.target_type == TargetType.USER,
    )):
        old.deleted_at, old.deleted_by_id = now, actor.id
        audit.record(Action.DELETE, origin, actor=actor, file=old, reason="replaced")


def _tmp_dir() -> str:
    return os.path.join(current_app.instance_path, "tmp")


def _live():
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
    query = _listing(actor, target or Target(patient=actor), category, include_shared)
    return paginate(query, page, _page_size(per_page), *_NEWEST_FIRST)


def list_all_files(actor: User, target: Target, category: Category | None = None) -> list[StoredFile]:
    """Every live file of a chart or visit the actor may see, newest first, unpaged.

    For listings whose dialect or page has no paging and whose size a visit bounds (a visit's
    attachments). Raises NotFound as list_files.
    """
    query = _listing(actor, target, category, include_shared=False)
    return list(db.session.scalars(query.order_by(*_NEWEST_FIRST)))


_NEWEST_FIRST = (StoredFile.created_at.desc(), StoredFile.id.desc())


def _listing(actor: User, target: Target, category: Category | None, include_shared: bool):
    """The query behind the listings: one chart (or visit), live files, the actor's scope."""
    if not access.in_scope(actor, target.patient.id, target.patient.account_id):
        raise NotFound("No such user.")
    condition = (StoredFile.target_type == target.type.value) & (StoredFile.target_id == target.id)
    if category is not None:
        condition = condition & (StoredFile.category == category.value)
    if include_shared:
        condition = or_(condition, (StoredFile.patient_id == target.patient.id) & StoredFile.shared.is_(True))
    query = _live().where(StoredFile.account_id == target.patient.account_id, condition)
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
             visit: Visit | None = None, external_id: str | None = None) -> StoredFile:
    """A live file by public UUID (or integer id) if the actor may take `action` on it.

    Args:
        visit: only a file attached to this visit.
        external_id: only a file uploaded for this Candid charge-capture external id; files
            still waiting for their visit are found this way only, never by id alone.
    Raises NotFound (absent, deleted, out of reach or outside the scope given) or
    Forbidden (visible, not allowed).
    """
    row = find_file(file_id)
    if row is None or row.is_deleted:
        raise NotFound("No such file.")
    if visit is not None and row.visit_id != visit.id:
        raise NotFound("No such file.")
    if external_id is not None:
        if row.charge_capture_external_id != external_id or row.account_id != actor.account_id:
            raise NotFound("No such file.")
    elif row.is_waiting:
        raise NotFound("No such file.")
    access.check(actor, row, action)
    return row


def find_file(file_id: str | int) -> StoredFile | None:
    """Any file row (deleted ones too) by public UUID or integer id; no access check."""
    if isinstance(file_id, int):
        return db.session.get(StoredFile, file_id) if 0 < file_id <= MAX_ID else None
    if not isinstance(file_id, str) or len(file_id) != 36:
        return None
    return db.session.scalar(select(StoredFile).where(StoredFile.public_id == file_id.lower()))


def rename(actor: User, origin: Origin, file_id: str | int, new_name: str | None) -> StoredFile:
    """Change a file's display name only; `ext` follows when the new extension fits the type.

    Raises NotFound/Forbidden (access) or BadRequest (empty or unprintable name).
    """
    row = get_file(actor, file_id, Action.RENAME)
    name = clean_name(new_name)
    if not name:
        raise BadRequest("The new name must contain at least one printable character.")
    old = row.name
    ext = name_extension(name)
    if ext in TYPES[row.media_type][0]:
        row.ext = ext
    row.name = name
    row.modified_at = utcnow()
    row.version += 1
    audit.record(Action.RENAME, origin, actor=actor, file=row, old_name=old, new_name=name)
    db.session.commit()
    return row


def delete(actor: User, origin: Origin, file_id: str | int, *, visit: Visit | None = None,
           external_id: str | None = None) -> StoredFile:
    """Soft-delete: hidden everywhere, bytes kept until `files cleanup` purges them.

    `visit` / `external_id` narrow which file may match, as in get_file.
    """
    row = get_file(actor, file_id, Action.DELETE, visit=visit, external_id=external_id)
    row.deleted_at = row.modified_at = utcnow()
    row.deleted_by_id = actor.id
    audit.record(Action.DELETE, origin, actor=actor, file=row)
    db.session.commit()
    return row


def set_shared(actor: User, origin: Origin, file_id: str | int, shared: bool) -> StoredFile:
    """Share a file with (or withdraw it from) the patient whose chart holds it."""
    row = get_file(actor, file_id, Action.SHARE if shared else Action.UNSHARE)
    if row.shared != shared:
        row.shared = shared
        row.modified_at = utcnow()
        audit.record(Action.SHARE if shared else Action.UNSHARE, origin, actor=actor, file=row)
        db.session.commit()
    return row


def restore(origin: Origin, file_id: str | int, actor: User | None = None) -> StoredFile:
    """Undo a soft delete (admins, through the CLI). Raises NotFound or Conflict."""
    row = find_file(file_id)
    if row is None:
        raise NotFound(f"No file {file_id}.")
    if row.purged_at is not None:
        raise Conflict("The file's bytes were purged; it cannot be restored.")
    if row.deleted_at is None:
        raise Conflict("The file is not deleted.")
    row.deleted_at = row.deleted_by_id = None
    row.modified_at = utcnow()
    audit.record(Action.RESTORE, origin, actor=actor, file=row)
    db.session.commit()
    return row


def read_content(actor: User, origin: Origin, file_id: str | int) -> tuple[StoredFile, bytes]:
    """A live file the actor may view and its bytes, whole; audited as a view.

    For dialects that inline a file in JSON (tscharts' base64 `data`); files are at most
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
    db.session.commit()
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
