"""Files that wait for a visit not created yet (Candid "charge capture external id").

A clinic's billing system uploads an encounter attachment naming the external id the visit
will carry. Until accounts.create_visit opens that visit the file has no patient and no
target: only staff reach it, and no visit listing shows it. create_visit calls
attach_waiting() inside its own transaction, so a visit never exists without its files.
"""
from __future__ import annotations

from typing import Any, BinaryIO

from sqlalchemy import select

from app.errors import BadRequest, Forbidden
from app.extensions import db
from app.models import Action, Category, StoredFile, TargetType, User, Visit
from app.models.base import utcnow
from app.services import access, audit, files
from app.services.audit import Origin

MAX_EXTERNAL_ID = 200  # Visit.external_id's column size


def clean_external_id(value: str | None) -> str:
    """An external id from a request. Raises BadRequest when empty or too long."""
    value = (value or "").strip()
    if not value:
        raise BadRequest("charge_capture_external_id is required.")
    if len(value) > MAX_EXTERNAL_ID:
        raise BadRequest(f"charge_capture_external_id has at most {MAX_EXTERNAL_ID} characters.")
    return value


def _visit(account_id: int, external_id: str) -> Visit | None:
    return db.session.scalar(
        select(Visit).where(Visit.account_id == account_id, Visit.external_id == external_id)
    )


def upload(actor: User, origin: Origin, stream: BinaryIO, filename: str | None, external_id: str,
           attrs: dict[str, Any] | None = None) -> StoredFile:
    """Store an intake attachment for the visit with `external_id`, now or when it is created.

    If that visit exists the file joins it at once (the usual upload rules apply). Otherwise
    it waits in the actor's clinic; only staff may leave files waiting, and a patient gets the
    same Forbidden whether or not someone else's visit has that id (nothing leaks).
    Args:
        attrs: extra StoredFile columns (attachment_type, description).
    Raises:
        BadRequest: empty or too long external id, or what files.upload raises.
        Forbidden: a patient naming a visit that is not theirs, or none.
        TooLarge, InvalidUpload, NotFound: as files.upload.
    """
    external_id = clean_external_id(external_id)
    attrs = {**(attrs or {}), "charge_capture_external_id": external_id}
    visit = _visit(actor.account_id, external_id)
    if visit is not None and (actor.is_staff or visit.patient_id == actor.id):
        target: files.Target | files.WaitingTarget = files.Target(visit.patient, visit)
    elif actor.is_patient:
        raise Forbidden("Only clinic staff may upload files for an encounter that does not exist yet.")
    else:
        target = files.WaitingTarget(actor.account_id, external_id)
    row = files.upload(actor, origin, stream, filename, Category.INTAKE_ATTACHMENT, target, attrs)
    if row.is_waiting:
        # The visit may have been created while the bytes were being checked.
        visit = _visit(actor.account_id, external_id)
        if visit is not None and attach_waiting(visit, origin, actor):
            db.session.commit()
    return row


def attach_waiting(visit: Visit, origin: Origin, actor: User | None = None) -> int:
    """Attach every file waiting for this visit's external id to it; return how many.

    Each attachment is audited (Action.ATTACH) as done by `actor` through `origin`.

    Called by accounts.create_visit before its commit (no commit here), so the visit and
    its files appear together. Deleted waiting files are attached too, so a restore puts
    them where they belong.
    """
    if not visit.external_id:
        return 0
    rows = list(db.session.scalars(select(StoredFile).where(
        StoredFile.account_id == visit.account_id,
        StoredFile.charge_capture_external_id == visit.external_id,
        StoredFile.patient_id.is_(None),
    )))
    now = utcnow()
    for row in rows:
        row.patient_id, row.visit_id = visit.patient_id, visit.id
        row.target_type, row.target_id = TargetType.VISIT.value, visit.id
        row.modified_at = now
        audit.record(Action.ATTACH, origin, actor=actor, file=row, visit=visit.public_id,
                     external_id=visit.external_id)
    return len(rows)


def list_files(actor: User, external_id: str) -> list[StoredFile]:
    """The live files uploaded for an external id (waiting or attached) the actor may view.

    Oldest first, the order they were uploaded in. Raises BadRequest for an empty id.
    """
    external_id = clean_external_id(external_id)
    rows = db.session.scalars(select(StoredFile).where(
        StoredFile.account_id == actor.account_id,
        StoredFile.charge_capture_external_id == external_id,
        StoredFile.deleted_at.is_(None),
    ).order_by(StoredFile.created_at, StoredFile.id))
    return [row for row in rows if access.can(actor, row, Action.VIEW)]
