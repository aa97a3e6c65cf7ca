"""Chart images (tscharts' own service): PNG/JPEG files of a patient tagged with an image
type, clinic and station.

They are ordinary `user_document` files of the patient (one store: every door and the pages
see them); the tags live in tscharts' own indexed table. Only files uploaded with a type are
chart images: any other file id answers NotFound here.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace

from sqlalchemy import Select, select

from app.api.tscharts.models import ChartImage, ImageType
from app.errors import NotFound
from app.extensions import db
from app.models import Action, Category, StoredFile, User
from app.services import accounts, audit, files, transaction
from app.services.audit import Origin
from app.services.validation import WEB_IMAGES


@dataclass(frozen=True)
class ImageQuery:
    """A tscharts image search; None means "any"."""

    patient_id: int | None = None
    image_type: ImageType | None = None
    clinic: int | None = None
    station: int | None = None
    newest_first: bool = False


def upload_image(actor: User, origin: Origin, data: bytes, patient_id: int, image_type: ImageType,
                 clinic: int | None = None, station: int | None = None) -> StoredFile:
    """Store decoded image bytes as a chart image of a patient, in one commit.

    Args:
        data: the image's bytes (PNG or JPEG; validated like any upload).
        patient_id: the patient's user id.
        image_type, clinic, station: the tscharts tags (clinic/station are the client's ids).
    Raises:
        NotFound: no such patient within the actor's reach.
        InvalidUpload: not a complete, valid PNG or JPEG.
        TooLarge: over UPLOAD_MAX_BYTES.
    """
    patient = accounts.get_patient(actor, patient_id)
    row = files.store(actor, origin, io.BytesIO(data), f"{image_type.value.lower()}-{patient.id}",
                      Category.USER_DOCUMENT, files.Target.chart(patient), accept=WEB_IMAGES, add_extension=True)
    db.session.add(ChartImage(file_id=row.id, image_type=image_type.value, clinic=clinic, station=station))
    transaction.commit()
    return row


def _image(actor: User, image_id: int, action: Action) -> tuple[StoredFile, ChartImage]:
    row = files.get_file(actor, image_id, action)
    tags = db.session.get(ChartImage, row.id)
    if tags is None or not row.is_image:
        raise NotFound("Not found.")
    return row, tags


def get_image(actor: User, origin: Origin, image_id: int) -> tuple[StoredFile, ChartImage, bytes]:
    """A chart image, its tags and its bytes (audited as a view). Raises NotFound."""
    _, tags = _image(actor, image_id, Action.VIEW)
    row, data = files.read_content(actor, origin, image_id)
    return row, tags, data


def delete_image(actor: User, origin: Origin, image_id: int) -> None:
    """Soft-delete a chart image, like any file. Raises NotFound (or Forbidden)."""
    row, _ = _image(actor, image_id, Action.DELETE)
    files.delete(actor, origin, row.id)


def _search(actor: User, query: ImageQuery) -> Select:
    stmt = select(StoredFile.id).join(ChartImage, ChartImage.file_id == StoredFile.id).where(
        StoredFile.account_id == actor.account_id,
        StoredFile.deleted_at.is_(None),
    )
    if query.patient_id is not None:
        patient = accounts.get_patient(actor, query.patient_id)
        stmt = stmt.where(StoredFile.patient_id == patient.id)
    if actor.is_patient:  # a patient sees their own chart only
        stmt = stmt.where(StoredFile.patient_id == actor.id)
    if query.image_type is not None:
        stmt = stmt.where(ChartImage.image_type == query.image_type.value)
    if query.clinic is not None:
        stmt = stmt.where(ChartImage.clinic == query.clinic)
    if query.station is not None:
        stmt = stmt.where(ChartImage.station == query.station)
    if query.newest_first:
        return stmt.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
    return stmt.order_by(StoredFile.id)


def find_image_ids(actor: User, origin: Origin, query: ImageQuery) -> list[int]:
    """Ids of the live chart images the actor may see that match, ids ascending or newest first
    (audited as a listing).

    Raises NotFound: the patient is out of reach, or nothing matches (tscharts' own answer).
    """
    ids = list(db.session.scalars(_search(actor, query)))
    audit.record(Action.LIST, origin, actor=actor, patient_id=query.patient_id, files=len(ids),
                 image_type=query.image_type.value if query.image_type else None)
    transaction.commit()
    if not ids:
        raise NotFound("No images match.")
    return ids


def newest_image(actor: User, origin: Origin, query: ImageQuery) -> tuple[StoredFile, ChartImage, bytes]:
    """The newest matching chart image, its tags and its bytes. Raises NotFound as find_image_ids."""
    newest = db.session.scalar(_search(actor, replace(query, newest_first=True)).limit(1))
    if newest is None:
        raise NotFound("No images match.")
    return get_image(actor, origin, newest)
