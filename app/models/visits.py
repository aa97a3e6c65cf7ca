"""Visits (a dialect may call them encounters)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.accounts import User
from app.models.base import UTCDateTime, new_uuid, utcnow
from app.models.enums import VisitStatus


class Visit(Model):
    __tablename__ = "visits"
    __table_args__ = (UniqueConstraint("account_id", "external_id", name="uq_visits_account_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The clinician the visit is with (staff of the same clinic), when known.
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default=VisitStatus.OPEN.value,
                                        server_default=VisitStatus.OPEN.value)

    patient: Mapped[User] = relationship(lazy="joined", foreign_keys=[patient_id])
    provider: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[provider_id])
