"""Candid pre-encounter image metadata, and the enumerations of both Candid dialects."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.accounts import Account
from app.models.base import UTCDateTime, new_uuid, utcnow
from app.models.files import StoredFile


# Only the live (non-deactivated) image may hold a coverage side; the partial index makes
# that hold under concurrent writers too (the service checks first for a friendly 409).
_ACTIVE = text("NOT deactivated")


class CandidImage(db.Model):
    """One image's metadata; every change bumps `version` (optimistic concurrency)."""

    __tablename__ = "candid_images"
    __table_args__ = (
        Index("uq_candid_images_active_coverage", "account_id", "coverage_id", "coverage_side",
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
