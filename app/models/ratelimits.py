"""The counters of the rate limits and the sign-in throttle when they are kept in the app's
own database (RATELIMIT_STORAGE_URI=database://, the default; app/services/limit_store.py)."""
from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Model

#: Longer keys are stored as their sha256 (limit keys are built from hashes and addresses, so
#: this is only a guard).
KEY_LENGTH = 255


class RateLimitCounter(Model):
    """One key's hits in its current window, and when that window ends (unix seconds)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)  # expired rows are pruned by it
