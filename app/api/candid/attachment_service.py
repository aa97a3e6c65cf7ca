"""Candid encounter attachments, and files held for a visit not opened yet ("charge capture
external id"): the dialect's own service over the core file service.

A clinic's billing system uploads an attachment naming the external id the visit will carry.
Until a visit with that id is opened, the file is held in the clinic (core: Target.held): only
staff reach it and no visit lists it. `attach_held` listens to accounts.visit_opened, so the
visit and its files commit together; both sides take the clinic's lock first, so an upload
racing the visit's creation always sees it or is seen by it.
"""
from __future__ import annotations

from typing import IO, Any

from sqlalchemy import select

from app.api.candid.models import AttachmentType, CandidAttachment
from app.errors import BadRequest, Forbidden, NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, User, Visit
from app.services import access, accounts, files, transaction
from app.services.audit import Origin
from app.services.validation import HEIC, TYPES

MAX_EXTERNAL_ID = 200  # Visit.external_id's column size
#: The seven content types Candid's encounter-attachment documents list (no HEIC).
DOCUMENTED_TYPES = TYPES.keys() - {HEIC}
MAX_DESCRIPTION = 1000


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


def upload(actor: User, origin: Origin, stream: IO[bytes], filename: str | None,
           target: files.Target, attachment_type: AttachmentType,
           description: str | None = None) -> StoredFile:
    """Attach a file to an encounter (a visit target) with its Candid details; one commit.

    Raises BadRequest (a description over MAX_DESCRIPTION), or what files.store raises.
    """
    _check_description(description)
    row = files.store(actor, origin, stream, filename, Category.INTAKE_ATTACHMENT, target, accept=DOCUMENTED_TYPES)
    _add_details(row, attachment_type, description)
    transaction.commit()
    return row


def upload_for_external_id(actor: User, origin: Origin, stream: IO[bytes], filename: str | None,
                           external_id: str, attachment_type: AttachmentType,
                           description: str | None = None) -> StoredFile:
    """Store an intake attachment for the visit with `external_id`, now or when it is opened.

    If that visit exists the file joins it at once (the usual upload rules apply). Otherwise
    it is held in the actor's clinic; only staff may hold files, and a patient gets the same
    Forbidden whether or not someone else's visit has that id (nothing leaks). One commit.
    Raises:
        BadRequest: empty or too long external id, or what files.store raises.
        Forbidden: a patient naming a visit that is not theirs, or none.
        TooLarge, InvalidUpload, NotFound: as files.store.
    """
    external_id = clean_external_id(external_id)
    _check_description(description)
    visit = _visit(actor.account_id, external_id)
    if actor.is_patient and (visit is None or visit.patient_id != actor.id):
        raise Forbidden("Only clinic staff may upload files for an encounter that does not exist yet.")
    # Checked early (no body read for a refusal), then again under the lock after the bytes are
    # validated: the visit may have been opened meanwhile.
    files.check_upload(actor, Category.INTAKE_ATTACHMENT,
                       files.Target.chart(visit.patient, visit) if visit else files.Target.held(actor.account_id))
    received = files.receive(stream, filename, Category.INTAKE_ATTACHMENT, accept=DOCUMENTED_TYPES)
    accounts.lock_clinic(actor.account_id)
    visit = _visit(actor.account_id, external_id)
    target = files.Target.chart(visit.patient, visit) if visit else files.Target.held(actor.account_id)
    row = files.record(actor, origin, received, Category.INTAKE_ATTACHMENT, target)
    _add_details(row, attachment_type, description, external_id)
    transaction.commit()
    return row


def _check_description(description: str | None) -> None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise BadRequest(f"description has at most {MAX_DESCRIPTION} characters.")


def _add_details(row: StoredFile, attachment_type: AttachmentType, description: str | None,
                 external_id: str | None = None) -> None:
    db.session.add(CandidAttachment(file_id=row.id, account_id=row.account_id,
                                    attachment_type=attachment_type.value, description=description or None,
                                    charge_capture_external_id=external_id))


@accounts.visit_opened.connect
def attach_held(visit: Visit, origin: Origin, actor: User | None = None, **_: Any) -> None:
    """File every live or deleted file held for this visit's external id into it (audited as
    ATTACH); runs inside the visit's transaction, so the visit comes with its files. Deleted
    held files are filed too, so a restore puts them where they belong."""
    if not visit.external_id:
        return
    held = db.session.scalars(
        select(StoredFile).join(CandidAttachment, CandidAttachment.file_id == StoredFile.id).where(
            CandidAttachment.account_id == visit.account_id,
            CandidAttachment.charge_capture_external_id == visit.external_id,
            StoredFile.patient_id.is_(None),
        )
    )
    for row in held:
        files.file_to_visit(row, visit, origin, actor)


def details(rows: list[StoredFile]) -> dict[int, CandidAttachment]:
    """The Candid details of these files, by file id, in one query (files from other doors
    have none)."""
    ids = [row.id for row in rows]
    if not ids:
        return {}
    return {a.file_id: a for a in db.session.scalars(select(CandidAttachment).where(CandidAttachment.file_id.in_(ids)))}


def list_for_external_id(actor: User, external_id: str) -> list[tuple[StoredFile, CandidAttachment]]:
    """The live files uploaded for an external id (held or filed) the actor may view, with
    their details, oldest first (the order they were uploaded in). Raises BadRequest for an
    empty id."""
    external_id = clean_external_id(external_id)
    rows = db.session.execute(
        select(StoredFile, CandidAttachment).join(CandidAttachment, CandidAttachment.file_id == StoredFile.id)
        .where(CandidAttachment.account_id == actor.account_id,
               CandidAttachment.charge_capture_external_id == external_id,
               StoredFile.deleted_at.is_(None))
        .order_by(StoredFile.created_at, StoredFile.id)
    ).all()
    return [(row, detail) for row, detail in rows if access.can(actor, row, Action.VIEW)]


def delete_for_external_id(actor: User, origin: Origin, file_id: str, external_id: str) -> StoredFile:
    """Soft-delete one file uploaded for this external id (held or filed).

    Raises NotFound (no such file for that id in the actor's clinic) or Forbidden.
    """
    external_id = clean_external_id(external_id)
    row = files.find_file(file_id)
    detail = db.session.get(CandidAttachment, row.id) if row is not None else None
    if row is None or detail is None or detail.charge_capture_external_id != external_id \
            or detail.account_id != actor.account_id:
        raise NotFound("No such file.")
    return files.delete(actor, origin, row.id, held=True)
