"""StoredFile: one uploaded file's metadata; the bytes live in storage under storage_key."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.accounts import Account, User
from app.models.base import UTCDateTime, new_uuid, utcnow
from app.models.enums import Category, TargetType
from app.models.visits import Visit


class StoredFile(Model):
    __tablename__ = "stored_files"
    __table_args__ = (
        Index("ix_stored_files_target_listing", "target_type", "target_id", "deleted_at", "created_at"),
        Index("ix_stored_files_visible_listing", "patient_id", "visible", "deleted_at"),
        # A chart's live files newest first, walked in order and stopped after the page (0012).
        Index("ix_stored_files_live_chart", "account_id", "target_type", "target_id", "created_at", "id",
              postgresql_where=text("deleted_at IS NULL"), sqlite_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # integer-addressed dialects use this
    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    ext: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Hex SHA-1 of the same bytes, for FHIR's Attachment.hash; NULL for files stored before it
    # was recorded until `chartbox files backfill-sha1` fills it in.
    sha1: Mapped[str | None] = mapped_column(String(40))
    media_type: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    # The user or visit the file is attached to (by internal id, per target_type).
    # NULL while the file is held in its clinic for a visit not opened yet (see is_held).
    target_id: Mapped[int | None]
    # The patient whose chart holds the file (the target user, or the visit's patient); the
    # access rules and listings key on it, so it is stored rather than joined each time.
    # NULL while the file is held for its visit: such a file is staff-only (access.in_scope).
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), index=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Whether the patient whose chart holds it may see it: always for their own uploads; staff
    # uploads by category (files.VISIBLE_BY_DEFAULT), then as staff set it.
    visible: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # bytes removed for good
    storage_backend: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(200))
    page_count: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]

    account: Mapped[Account] = relationship(lazy="joined")
    creator: Mapped[User] = relationship(foreign_keys=[creator_id], lazy="joined")
    deleted_by: Mapped[User | None] = relationship(foreign_keys=[deleted_by_id])
    patient: Mapped[User | None] = relationship(foreign_keys=[patient_id])
    visit: Mapped[Visit | None] = relationship()

    @property
    def category_enum(self) -> Category:
        return Category(self.category)

    @property
    def target_type_enum(self) -> TargetType:
        return TargetType(self.target_type)

    @property
    def is_held(self) -> bool:
        """Held in its clinic for a visit not opened yet (no chart, staff only)."""
        return self.patient_id is None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_image(self) -> bool:
        return self.media_type in ("image/png", "image/jpeg", "image/heic")

    @property
    def is_pdf(self) -> bool:
        return self.media_type == "application/pdf"
