"""Signed-in browser sessions: one server-side record per sign-in (the cookie holds only its secret)."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.accounts import User
from app.models.base import UTCDateTime, utcnow


class EndReason(StrEnum):
    """Why a session ended (UserSession.end_reason)."""

    SIGNED_OUT = "signed_out"
    IDLE = "idle"  # no request for SESSION_IDLE_MINUTES
    EXPIRED = "expired"  # older than SESSION_MAX_HOURS
    REVOKED = "revoked"  # `chartbox sessions revoke`, or the user signed it out from another device
    DISABLED = "disabled"  # `chartbox users disable`
    PASSWORD_CHANGED = "password_changed"  # `chartbox users set-password`


class UserSession(Model):
    """One sign-in to the pages. Ended for good (ended_at, end_reason) or still open."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_open", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the cookie's secret
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))  # an EndReason
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship(lazy="joined")
