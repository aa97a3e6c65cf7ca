"""Audit events: every upload, view, rename, delete, restore and share leaves one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.extensions import db
from app.models import Action, AuditEvent, Channel, StoredFile, User

if TYPE_CHECKING:
    from flask import Request


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the door, the client address and its user agent."""

    channel: str  # a Channel, or the name a dialect declares
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def cli(cls) -> Origin:
        return cls(Channel.CLI)

    @classmethod
    def of(cls, request: Request, channel: str) -> Origin:
        """A request's origin: its door, client address and user agent (the door passes it in)."""
        return cls(channel, request.remote_addr, request.headers.get("User-Agent"))


def record(action: Action, origin: Origin, *, actor: User | None, file: StoredFile | None = None,
           account_id: int | None = None, **detail) -> AuditEvent:
    """Add an event to the session; the calling service commits it with its own change."""
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        account_id=account_id or (file.account_id if file else actor.account_id if actor else None),
        action=action.value,
        file_id=file.id if file else None,
        channel=str(origin.channel),
        ip=(origin.ip or None) and origin.ip[:64],
        user_agent=(origin.user_agent or None) and origin.user_agent[:300],
        detail=detail or None,
    )
    db.session.add(event)
    return event
