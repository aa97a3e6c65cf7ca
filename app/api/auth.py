"""API authentication: an API token from a dialect's header becomes the acting user."""
from __future__ import annotations

from flask import Request

from app.models import Channel, User
from app.services import accounts
from app.services.audit import Origin


def origin_of(request: Request, channel: Channel) -> Origin:
    """The audit origin of a request (kept for the dialects; see Origin.of)."""
    return Origin.of(request, channel)


def bearer(request: Request, scheme: str) -> str | None:
    """The credential of an `Authorization: <scheme> <credential>` header, else None."""
    value = request.headers.get("Authorization", "")
    kind, _, credential = value.strip().partition(" ")
    if kind.lower() != scheme.lower():
        return None
    return credential.strip() or None


def principal(token: str | None) -> User:
    """The user a token stands for. Raises Unauthorized."""
    return accounts.resolve_token(token)
