"""Candid pre-encounter images (the dialect's own service): versioned metadata, and bytes behind a signed URL.

An image is metadata (file name, status, the coverage side or patient it belongs to) whose
every change bumps `version`; a writer names the version it read, so a stale write is a
Conflict carrying the latest one. The bytes arrive by PUT to the image's `signed_url` and are
stored through the file service as a user_document in the patient's chart: an insurance card
is a document of the patient (they and their providers may view, rename and delete it), not a
consent, which patients could not remove.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from flask import current_app
from sqlalchemy import select

from app.api.candid.models import CandidImage, CoverageSide, ImageStatus
from app.api.params import row_id
from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.extensions import db
from app.models import Action, Category, User
from app.models.base import utcnow
from app.services import accounts, audit, files, signing, transaction, viewing
from app.services.audit import Origin
from app.services.viewing import Download

#: The signature purpose of an image's signed URL (PUT or GET its bytes).
CONTENT = "candid-image"

#: Candid's camelCase sort_field values and the columns they sort by.
SORT_FIELDS: dict[str, Any] = {
    "updatedAt": CandidImage.updated_at, "fileName": CandidImage.file_name,
    "displayName": CandidImage.display_name, "fileType": CandidImage.file_type,
    "status": CandidImage.status,
}
_LIMITS = {"file_name": 255, "display_name": 255, "file_type": 255}
MAX_NOTES = 2000
MAX_COVERAGE_ID = 64


@dataclass(frozen=True)
class MutableImage:
    """Candid's MutableImage: the client-owned fields, replaced whole on every write."""

    file_name: str
    display_name: str
    file_type: str
    status: ImageStatus
    coverage_id: str | None = None
    coverage_side: CoverageSide | None = None
    patient_id: str | None = None
    patient_notes: str | None = None


def parse_image(body: Any) -> MutableImage:
    """A MutableImage from a decoded JSON body. Raises BadRequest naming the bad field."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object (a MutableImage).")
    values: dict[str, Any] = {}
    for name, limit in _LIMITS.items():
        value = body.get(name)
        if not isinstance(value, str):
            raise BadRequest(f"{name} is required and must be a string.")
        if len(value) > limit:
            raise BadRequest(f"{name} has at most {limit} characters.")
        values[name] = value
    values["status"] = _enum(ImageStatus, body.get("status"), "status")
    coverage = body.get("coverage")
    if coverage is not None:
        if not isinstance(coverage, dict):
            raise BadRequest("coverage must be an object {\"id\", \"side\"}.")
        cid = coverage.get("id")
        if not isinstance(cid, str) or not cid.strip() or len(cid) > MAX_COVERAGE_ID:
            raise BadRequest(f"coverage.id is required: a string of at most {MAX_COVERAGE_ID} characters.")
        values["coverage_id"] = cid.strip()
        values["coverage_side"] = _enum(CoverageSide, coverage.get("side"), "coverage.side")
    patient = body.get("patient")
    if patient is not None:
        if not isinstance(patient, dict):
            raise BadRequest("patient must be an object {\"id\", \"notes\"}.")
        pid, notes = patient.get("id"), patient.get("notes")
        if isinstance(pid, int) and not isinstance(pid, bool):
            pid = str(pid)
        if not isinstance(pid, str) or not pid.strip():
            raise BadRequest("patient.id is required: the patient's user id, as a string.")
        if notes is not None and (not isinstance(notes, str) or len(notes) > MAX_NOTES):
            raise BadRequest(f"patient.notes must be a string of at most {MAX_NOTES} characters.")
        values["patient_id"], values["patient_notes"] = pid.strip(), notes
    return MutableImage(**values)


def _enum(kind, value: Any, name: str):
    try:
        return kind(value)
    except ValueError:
        raise BadRequest(f"{name} must be one of: {', '.join(k.value for k in kind)}.") from None


def _visible(actor: User):
    """Images the actor may reach: its clinic's; a patient only their own."""
    query = select(CandidImage).where(CandidImage.account_id == actor.account_id)
    if actor.is_patient:
        query = query.where(CandidImage.patient_id == actor.id)
    return query


def get(actor: User, image_id: str) -> CandidImage:
    """An image (deactivated ones too) the actor may reach. Raises NotFound."""
    row = None
    if isinstance(image_id, str) and len(image_id) == 36:
        row = db.session.scalar(_visible(actor).where(CandidImage.id == image_id.lower()))
    if row is None:
        raise NotFound(f"No image with id {image_id!r}.")
    return row


def create(actor: User, origin: Origin, body: Any) -> CandidImage:
    """Create an image at version 1 from a MutableImage body.

    Raises:
        BadRequest: a malformed body, or a patient token not naming itself as patient.
        NotFound: patient.id is not a patient the actor may reach.
        Conflict: an active image already holds that coverage side.
    """
    fields = parse_image(body)
    row = CandidImage(account_id=actor.account_id, version=1, deactivated=False, created_at=utcnow())
    _apply(actor, row, fields)
    db.session.add(row)
    db.session.flush()
    _audit(Action.CREATE, origin, actor, row)
    transaction.commit(conflict=_clash_message(fields))
    return row


def update(actor: User, origin: Origin, image_id: str, version: str, body: Any) -> CandidImage:
    """Replace an image's fields; `version` must be the current one. Returns it at version+1.

    Updating a deactivated image reactivates it (as Candid's other pre-encounter objects do),
    so the coverage side must then be free.
    Raises NotFound, BadRequest, Conflict (stale version, with latest_version; or the
    coverage side is taken).
    """
    row = get(actor, image_id)
    _check_version(row, version)
    fields = parse_image(body)
    _apply(actor, row, fields)
    row.deactivated = False
    row.version += 1
    _audit(Action.UPDATE, origin, actor, row)
    transaction.commit(conflict=_clash_message(fields))
    return row


def deactivate(actor: User, origin: Origin, image_id: str, version: str) -> CandidImage:
    """Deactivate (hide from search; still readable by id) at the current `version`.

    Deactivating a deactivated image changes nothing. Raises NotFound or Conflict.
    """
    row = get(actor, image_id)
    _check_version(row, version)
    if not row.deactivated:
        row.deactivated = True
        _touch(actor, row)
        row.version += 1
        _audit(Action.DEACTIVATE, origin, actor, row)
        transaction.commit()
    return row


def search(actor: User, origin: Origin, params: Mapping[str, str]) -> list[CandidImage]:
    """Active images matching Candid's Get Multi filters (exact matches), sorted.

    Args:
        params: query parameters: patient_id, coverage_id, file_type, patient_notes,
            sort_field (a SORT_FIELDS key, default updatedAt), sort_direction (asc|desc,
            default desc). Empty values count as absent.
    Raises BadRequest for an unknown sort_field or sort_direction.
    """
    sort_name = params.get("sort_field") or "updatedAt"
    if sort_name not in SORT_FIELDS:
        raise BadRequest(f"sort_field must be one of: {', '.join(SORT_FIELDS)}.")
    direction = params.get("sort_direction") or "desc"
    if direction not in ("asc", "desc"):
        raise BadRequest("sort_direction must be asc or desc.")
    query = _visible(actor).where(CandidImage.deactivated.is_(False))
    patient_id = params.get("patient_id")
    if patient_id:
        number = row_id(patient_id)
        if number is None:
            return []
        query = query.where(CandidImage.patient_id == number)
    for name, column in (("coverage_id", CandidImage.coverage_id), ("file_type", CandidImage.file_type),
                         ("patient_notes", CandidImage.patient_notes)):
        if params.get(name):
            query = query.where(column == params[name])
    column = SORT_FIELDS[sort_name]
    order = (column.asc(), CandidImage.id.asc()) if direction == "asc" else (column.desc(), CandidImage.id.desc())
    rows = list(db.session.scalars(query.order_by(*order)))
    # record_read, not record + commit: a commit expires the rows just read, and rendering each
    # one would then reload it (one SELECT per image, an N+1).
    audit.record_read(Action.LIST, origin, actor=actor, images=len(rows), patient_filter=(patient_id or None))
    return rows


def _apply(actor: User, row: CandidImage, fields: MutableImage) -> None:
    patient_id = None
    if fields.patient_id is not None:
        number = row_id(fields.patient_id)
        if number is None:
            raise NotFound(f"No patient with id {fields.patient_id!r}.")
        patient_id = accounts.get_patient(actor, number).id
    elif actor.is_patient:
        raise BadRequest("With a patient's token, set patient.id to your own user id.")
    if fields.coverage_id is not None:
        # Per patient: a caller only ever learns about coverages of patients in their reach.
        same_patient = CandidImage.patient_id.is_(None) if patient_id is None else CandidImage.patient_id == patient_id
        clash = db.session.scalar(select(CandidImage.id).where(
            CandidImage.account_id == row.account_id, same_patient, CandidImage.coverage_id == fields.coverage_id,
            CandidImage.coverage_side == (fields.coverage_side.value if fields.coverage_side else None),
            CandidImage.deactivated.is_(False), CandidImage.id != (row.id or ""),
        ))
        if clash is not None:
            raise Conflict(_clash_message(fields))
    row.file_name, row.display_name = fields.file_name, fields.display_name
    row.file_type, row.status = fields.file_type, fields.status.value
    row.coverage_id = fields.coverage_id
    row.coverage_side = fields.coverage_side.value if fields.coverage_side else None
    row.patient_id, row.patient_notes = patient_id, fields.patient_notes
    _touch(actor, row)


def _audit(action: Action, origin: Origin, actor: User, row: CandidImage) -> None:
    """Metadata changes leave an event too (on the image's file once it has bytes)."""
    audit.record(action, origin, actor=actor, file=row.file, account_id=row.account_id,
                 candid_image=row.id, version=row.version)


def _touch(actor: User, row: CandidImage) -> None:
    row.updated_at, row.updating_user_id = utcnow(), actor.id


def _clash_message(fields: MutableImage) -> str:
    side = fields.coverage_side.value if fields.coverage_side else ""
    return f"An active {side} image already exists for coverage {fields.coverage_id}."


def _check_version(row: CandidImage, version: str) -> None:
    if row_id(version) is None:
        raise BadRequest("The version in the path must be a whole number.")
    if int(version) != row.version:
        raise Conflict(f"Version {version} is not the latest ({row.version}).",
                       latest_version=row.version)


def content_grant(actor: User, row: CandidImage) -> dict[str, Any]:
    """The query parameters of a fresh signed URL that PUTs or GETs the image's bytes as
    `actor`: {"by", "v", "auth_code", "time"} (the door builds the URL).

    The signature covers the image's current version: a PUT is accepted only at that version
    and within SIGNED_UPLOAD_TTL, so the URL uploads once (the upload bumps the version) and
    only for minutes; reading the bytes with it works for SIGNED_URL_TTL.
    """
    code, stamp = signing.sign(CONTENT, _signed_id(row.id, actor.id, row.version))
    return {"by": actor.id, "v": row.version, "auth_code": code, "time": stamp}


def _signed_id(image_id: str, user_id: int | str, version: int | str) -> str:
    return f"{image_id}|{user_id}|{version}"


def _link_user(image_id: str, by: str | None, auth_code: str | None, stamp: str | None,
               version: str | None = None) -> User:
    """The user a signed image URL acts for. Raises Forbidden for a bad or expired link."""
    by = by or ""
    signing.verify(CONTENT, _signed_id(image_id, by, version or ""), auth_code, stamp)
    user_id = row_id(by)
    user = accounts.get_user_by_id(user_id) if user_id is not None else None
    if user is None or not user.active:
        raise Forbidden("This link is not valid.")
    changed = user.credentials_changed_at
    if changed is not None and stamp is not None and int(stamp) < int(changed.timestamp()):
        raise Forbidden("This link is not valid.")  # minted before a password change or a disable
    return user


def upload_content(origin: Origin, image_id: str, by: str | None, auth_code: str | None,
                   stamp: str | None, stream: IO[bytes], version: str | None = None) -> CandidImage:
    """Store the bytes PUT to a signed URL and mark the image UPLOADED (version+1), in one
    commit, audited both as the file's upload and as the image's update.

    The bytes are validated like any upload (named by the image's file_name) and become a
    user_document in the image patient's chart, uploaded as the user the URL was minted for.
    A new upload replaces the image's bytes; the earlier file stays in the chart.
    Raises:
        Forbidden: bad or expired link, or one already used to upload (or older than the image's
            current version, or than SIGNED_UPLOAD_TTL). NotFound: the image is out of reach.
        BadRequest: the image has no patient. Conflict: the image is deactivated.
        TooLarge, InvalidUpload: as files.upload.
    """
    user = _link_user(image_id, by, auth_code, stamp, version)
    row = get(user, image_id)
    if row.deactivated:
        raise Conflict("The image is deactivated; update it first to upload its bytes.")
    if str(row.version) != (version or "") or not signing.younger_than(stamp, current_app.config["SIGNED_UPLOAD_TTL"]):
        raise Forbidden("This upload link was used already or has expired; get the image again for a fresh one.")
    if row.patient_id is None:
        raise BadRequest("The image has no patient; set patient.id before uploading its bytes.")
    patient = accounts.get_patient(user, row.patient_id)
    stored = files.store(user, origin, stream, row.file_name or None, Category.USER_DOCUMENT,
                         files.Target.chart(patient))
    row.file, row.file_id = stored, stored.id
    row.status = ImageStatus.UPLOADED.value
    _touch(user, row)
    row.version += 1
    _audit(Action.UPDATE, origin, user, row)
    transaction.commit()
    return row


def open_content(origin: Origin, image_id: str, by: str | None, auth_code: str | None,
                 stamp: str | None, version: str | None = None) -> Download:
    """The bytes behind a signed image URL, served like a signed view link (audited).

    Raises Forbidden (bad link) or NotFound (no such image, or no bytes uploaded yet).
    """
    user = _link_user(image_id, by, auth_code, stamp, version)
    row = get(user, image_id)
    if row.file_id is None:
        raise NotFound("No bytes have been uploaded for this image yet.")
    return viewing.open_file(files.get_file(user, row.file_id), origin, viewer=user, offload=True)
