"""Clinics (accounts), their users and API tokens."""
from __future__ import annotations

from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import Model
from app.models.base import UTCDateTime, utcnow
from app.models.enums import Role


class Account(Model):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(UserMixin, Model):
    __tablename__ = "users"
    __table_args__ = (
        # The patient directory's order (directory.find_patients): a page without reading the clinic.
        Index("ix_users_directory", "account_id", "role", "full_name", "id"),
        # A chart number names one patient of a clinic; two clinics may use the same one. Rows
        # without one (NULL) never collide, on SQLite and PostgreSQL alike.
        Index("ix_users_chart_number", "account_id", "chart_number", unique=True),
        # A search by date of birth reads that day's patients only, not the whole clinic.
        Index("ix_users_birth_date", "account_id", "birth_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(150), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    # What tells two patients of the same name apart (the directory shows and searches both).
    birth_date: Mapped[date | None] = mapped_column(Date)
    chart_number: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the password last changed or the user was disabled: sessions and tokens from before
    # it are refused (and signed links minted before it, later).
    credentials_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The pages' language the user chose ("en", "es"); NULL: their browser's.
    locale: Mapped[str | None] = mapped_column(String(16))

    account: Mapped[Account] = relationship(lazy="joined")

    @property
    def is_active(self) -> bool:  # flask-login
        return self.active

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_patient(self) -> bool:
        return self.role == Role.PATIENT

    @property
    def is_staff(self) -> bool:
        """Providers and admins: may act on any patient of their clinic."""
        return self.role in (Role.PROVIDER, Role.ADMIN)


class ApiToken(Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    prefix: Mapped[str] = mapped_column(String(8))  # shown in listings to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")
