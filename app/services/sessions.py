"""Signed-in page sessions: one server-side record per sign-in, ended for good.

The browser's cookie (Flask's signed session) carries only a random secret; the record is found
by the secret's SHA-256, so neither the cookie nor the database alone is a way in. A record
ends — and is never opened again — when its holder signs out, after SESSION_IDLE_MINUTES
without a request (idle), SESSION_MAX_HOURS after sign-in (expired), when it is signed out from
elsewhere (revoked: an admin, or its user on another device), or when its user is disabled or
their password changes. The API never accepts a session; it has its tokens.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from app.errors import BadRequest, NotFound
from app.extensions import db
from app.models import Action, Channel, EndReason, User, UserSession
from app.models.base import MAX_ID, utcnow
from app.services import audit, transaction
from app.services.audit import Origin

#: What session_state says of a record that is still open and usable.
ACTIVE = "active"
#: last_seen_at is stamped at most this often (and at most a tenth of the idle timeout), so
#: pages do not write on every request.
TOUCH_INTERVAL = timedelta(minutes=1)
_SECRET_BYTES = 32


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest a record is stored under."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def idle_timeout() -> timedelta:
    """SESSION_IDLE_MINUTES as a timedelta."""
    return timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])


def max_age() -> timedelta:
    """SESSION_MAX_HOURS as a timedelta."""
    return timedelta(hours=current_app.config["SESSION_MAX_HOURS"])


def start(user: User, origin: Origin, replacing: str | None = None) -> str:
    """Open a session for `user`, who has just proved who they are; one commit.

    Args:
        origin: the sign-in's client address and user agent, kept to tell sessions apart.
        replacing: the secret the browser's previous session carried, if any; that session
            is ended (signed_out) in the same commit, so signing in again never leaves it open.
    Returns:
        The new secret for the cookie (random, 256 bits; only its hash is stored).
    """
    now = utcnow()
    previous = _row(replacing)
    if previous is not None:
        _end(previous, EndReason.SIGNED_OUT, now)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    db.session.add(UserSession(
        key_hash=hash_secret(secret), user_id=user.id, created_at=now, last_seen_at=now,
        ip=(origin.ip or None) and origin.ip[:64],
        user_agent=(origin.user_agent or None) and origin.user_agent[:300],
    ))
    transaction.commit()
    return secret


def resolve(secret: str | None, user_id: str | int | None = None) -> User | None:
    """The user of the open session behind `secret`, or None.

    A session that has lapsed — idle past SESSION_IDLE_MINUTES, older than SESSION_MAX_HOURS,
    its user disabled, or from before their credentials changed — is ended with that reason
    and refused. An open one has last_seen_at stamped (coarsely, see TOUCH_INTERVAL). Both
    writes are bookkeeping: while the database is read-only they are skipped and logged, and
    the answer is the same.
    Args:
        user_id: the user id the cookie names besides (flask-login's); a record of another
            user is refused. The record, never this id, says who is signed in.
    """
    row = _row(secret)
    if row is None or row.ended_at is not None:
        return None
    if user_id is not None and str(row.user_id) != str(user_id):
        return None
    now = utcnow()
    reason = _lapsed(row, now)
    if reason is not None:
        _end(row, reason, now)
        transaction.commit_bookkeeping(f"that session {row.id} ended ({reason})")
        return None
    user = row.user
    if now - row.last_seen_at >= min(TOUCH_INTERVAL, idle_timeout() / 10):
        row.last_seen_at = now
        user_key = row.user_id
        if not transaction.commit_bookkeeping(f"that session {row.id} was used"):
            user = db.session.get(User, user_key) or user
    return user


def end(secret: str | None, reason: EndReason = EndReason.SIGNED_OUT) -> None:
    """End the session behind `secret` (sign-out); one commit. Unknown or ended: nothing to do."""
    row = _row(secret)
    if row is not None and row.ended_at is None:
        _end(row, reason, utcnow())
        transaction.commit()


def get_session(session_id: int) -> UserSession:
    """One session by its id (any state). Raises NotFound."""
    row = db.session.get(UserSession, session_id) if 0 < session_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"No session with id {session_id}.")
    return row


def revoke(session_id: int) -> UserSession:
    """End one session by its id (an admin's `sessions revoke`); ending an ended one is a no-op.

    Raises NotFound for an unknown id.
    """
    row = get_session(session_id)
    if row.ended_at is None:
        _end(row, EndReason.REVOKED, utcnow())
        transaction.commit()
    return row


def revoke_all(user: User) -> int:
    """End every open session of `user` (revoked); one commit. Returns how many were open."""
    count = end_open_sessions(user, EndReason.REVOKED)
    transaction.commit()
    return count


def end_open_sessions(user: User, reason: EndReason, keep: UserSession | None = None,
                      now: datetime | None = None) -> int:
    """End every open session of `user` but `keep`, without committing (the caller's unit of
    work commits it, e.g. with the disable or the password change). Returns how many."""
    now = now or utcnow()
    rows = db.session.scalars(select(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None))).all()
    ended = 0
    for row in rows:
        if keep is None or row.id != keep.id:
            _end(row, reason, now)
            ended += 1
    return ended


@dataclass(frozen=True)
class OwnSessions:
    """A user's open sessions, newest first, and which of them is the one asking."""

    rows: list[UserSession]
    current_id: int | None


def own_sessions(user: User, secret: str | None) -> OwnSessions:
    """The open, still usable sessions of `user`, for their sessions page."""
    now = utcnow()
    rows = db.session.scalars(select(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())).all()
    current = _row(secret)
    return OwnSessions([row for row in rows if session_state(row, now) == ACTIVE],
                       current.id if current is not None and current.user_id == user.id else None)


def sign_out_other(user: User, secret: str | None, session_id: int | None = None) -> int:
    """Sign out `user`'s other sessions from the one behind `secret`: one (`session_id`) or, by
    default, all of them (revoked); one commit. Returns how many were ended.

    Raises:
        NotFound: `session_id` is not an open session of this user (one answer for both).
        BadRequest: `session_id` is the asking session itself (that is what Sign out does).
    """
    current = _row(secret)
    if session_id is None:
        count = end_open_sessions(user, EndReason.REVOKED, keep=current)
        transaction.commit()
        return count
    row = db.session.get(UserSession, session_id) if 0 < session_id <= MAX_ID else None
    if row is None or row.user_id != user.id or row.ended_at is not None:
        raise NotFound(gettext("That session has already ended."))
    if current is not None and row.id == current.id:
        raise BadRequest(gettext("That is the session you are using; use Sign out to end it."))
    _end(row, EndReason.REVOKED, utcnow())
    transaction.commit()
    return 1


def list_sessions(user: User | None = None, include_ended: bool = False) -> list[UserSession]:
    """Sessions by id: the usable ones (every state with `include_ended`), of `user` or everyone's."""
    query = select(UserSession).order_by(UserSession.id)
    if user is not None:
        query = query.where(UserSession.user_id == user.id)
    if not include_ended:
        query = query.where(UserSession.ended_at.is_(None))
    rows = list(db.session.scalars(query))
    if include_ended:
        return rows
    now = utcnow()
    return [row for row in rows if session_state(row, now) == ACTIVE]


def session_state(row: UserSession, now: datetime | None = None) -> str:
    """The record's state: "active", or why it ended (an EndReason value) — also for one that
    lapsed but has not been asked for since, and so is not marked ended yet."""
    if row.ended_at is not None:
        return row.end_reason or EndReason.REVOKED.value
    reason = _lapsed(row, now or utcnow())
    return reason.value if reason is not None else ACTIVE


def _lapsed(row: UserSession, now: datetime) -> EndReason | None:
    user = row.user
    if not user.active:
        return EndReason.DISABLED
    if user.credentials_changed_at is not None and row.created_at < user.credentials_changed_at:
        # Signed in just before the change (the change ended every session it saw).
        return EndReason.PASSWORD_CHANGED
    if now - row.created_at > max_age():
        return EndReason.EXPIRED
    if now - row.last_seen_at > idle_timeout():
        return EndReason.IDLE
    return None


def _row(secret: str | None) -> UserSession | None:
    if not secret or not isinstance(secret, str) or len(secret) > 200:
        return None
    return db.session.scalar(select(UserSession).where(UserSession.key_hash == hash_secret(secret)))


def _end(row: UserSession, reason: EndReason, now: datetime) -> None:
    row.ended_at, row.end_reason = now, reason.value
    # Accounted for: a sign-out, or a session that timed out or was revoked (the door of the
    # session, since this may run inside another request or an administrator's command).
    audit.record(Action.SIGN_OUT if reason == EndReason.SIGNED_OUT else Action.SESSION_END,
                 Origin(Channel.WEB, row.ip), actor=row.user, session=row.id, reason=reason.value)


