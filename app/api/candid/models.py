"""Candid's own tables: pre-encounter image metadata and encounter-attachment details, and the
enumerations of both Candid dialects. The bytes are core StoredFiles; these rows point at them.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models import Account, StoredFile
from app.models.base import UTCDateTime, new_uuid, utcnow


class ImageStatus(StrEnum):
    """Pre-encounter image upload states."""

    PENDING = "PENDING"
    UPLOADED = "UPLOADED"
    FAILED = "FAILED"


class CoverageSide(StrEnum):
    FRONT = "FRONT"
    BACK = "BACK"


class AttachmentType(StrEnum):
    """Encounter attachment types (CandidAttachment.attachment_type): every value Candid's
    SDK offers (candidhealth's EncounterAttachmentType)."""

    DOCUMENTATION = "DOCUMENTATION"
    EOB = "EOB"
    OTHER = "OTHER"
    APPEAL_LETTER = "APPEAL_LETTER"
    CERTIFICATION = "CERTIFICATION"
    CONSENT_FORM = "CONSENT_FORM"
    JUSTIFICATION_OF_ADMISSION = "JUSTIFICATION_OF_ADMISSION"
    LABORATORY_RESULTS = "LABORATORY_RESULTS"
    MEDICAL_RECORD_ATTACHMENT = "MEDICAL_RECORD_ATTACHMENT"
    OPERATIVE_NOTE = "OPERATIVE_NOTE"
    PHYSICAL_THERAPY_NOTE = "PHYSICAL_THERAPY_NOTE"
    REFERRAL_FORM = "REFERRAL_FORM"
    SUPPORT_DATA_FOR_CLAIM = "SUPPORT_DATA_FOR_CLAIM"


# Only the live (non-deactivated) image may hold a patient's coverage side; the partial index
# makes that hold under concurrent writers too (the service checks first for a friendly 409).
_ACTIVE = text("NOT deactivated")


class CandidImage(Model):
    """One image's metadata; every change bumps `version` (optimistic concurrency)."""

    __tablename__ = "candid_images"
    __table_args__ = (
        Index("uq_candid_images_active_coverage", "account_id", "patient_id", "coverage_id", "coverage_side",
              unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE),
        Index("ix_candid_images_search", "account_id", "deactivated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    version: Mapped[int] = mapped_column(default=1)
    deactivated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updating_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    file_name: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    file_type: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # an ImageStatus
    coverage_id: Mapped[str | None] = mapped_column(String(64))
    coverage_side: Mapped[str | None] = mapped_column(String(8))  # a CoverageSide
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    patient_notes: Mapped[str | None] = mapped_column(String(2000))
    # The uploaded bytes: a user_document in the patient's chart (None until uploaded).
    file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))

    account: Mapped[Account] = relationship(lazy="joined")
    file: Mapped[StoredFile | None] = relationship()


class CandidAttachment(Model):
    """What Candid keeps about a file uploaded as an encounter attachment (one row per file).

    A charge-capture upload names the external id of its visit; the file is held in the
    clinic until a visit with that id is opened, and the id stays so the
    by-charge-capture-external-id endpoints find the file before and after.
    """

    __tablename__ = "candid_attachments"
    __table_args__ = (
        Index("ix_candid_attachments_charge_capture", "account_id", "charge_capture_external_id"),
    )

    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    attachment_type: Mapped[str] = mapped_column(String(32))  # an AttachmentType
    description: Mapped[str | None] = mapped_column(String(1000))
    charge_capture_external_id: Mapped[str | None] = mapped_column(String(200))

    file: Mapped[StoredFile] = relationship(lazy="joined")
