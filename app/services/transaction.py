"""The unit of work: one commit per request, and no bytes left behind by one that fails.

A service that writes a blob for a row not yet committed calls `track_blob`; if the
transaction then ends without a commit (an error, a rollback, a crash of the request), the
blob is removed again, so storage never holds bytes that no committed row points at — and a
vendor service can compose `files.store` with its own rows and commit once.

A commit (or a flush before it) that the database refuses — read-only, locked, gone — rolls
back the same way; the app-level handler (app/errors.py) then answers 503 with Retry-After
and calls `abandon` again, which is harmless after a rollback and also covers the failures
raised outside `commit` (a flush, a query, a lock).
"""
from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from app.errors import Conflict
from app.extensions import db

_BLOBS = "chartbox_uncommitted_blobs"
WROTE = "chartbox_wrote"  # set once the current transaction has flushed a change
log = logging.getLogger(__name__)


def track_blob(key: str) -> None:
    """Remove the blob at `key` unless the current transaction commits."""
    db.session.info.setdefault(_BLOBS, []).append(key)


def commit(conflict: str | None = None) -> None:
    """Commit the request's changes; on failure roll back (dropping tracked blobs) and re-raise.

    One failure keeps the blobs: the connection lost during the COMMIT itself, when the
    database may have committed after all — an orphan blob (`chartbox files check` finds it,
    `files cleanup` purges it) is better than a committed row whose bytes were removed.
    Args:
        conflict: when given, a unique-constraint failure becomes Conflict(conflict).
    """
    session = db.session()
    committing = False
    try:
        session.flush()  # a refusal here certainly committed nothing
        committing = True
        session.commit()
    except BaseException as exc:
        if committing and _outcome_unknown(exc):
            _keep_blobs(session)
        abandon()
        if conflict is not None and isinstance(exc, IntegrityError):
            raise Conflict(conflict) from None
        raise


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed COMMIT may have committed: the connection went away (or the worker
    was interrupted) before the database's answer came back."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    return not isinstance(exc, Exception)


def _keep_blobs(session: Session) -> None:
    for key in session.info.pop(_BLOBS, None) or ():
        log.warning("commit outcome unknown; kept the blob %s (`files check` tells if it is an orphan)", key)


def abandon() -> None:
    """End the current transaction without committing, whatever state it is in.

    Rolls back (removing the blobs tracked for it). A rollback that fails as well — the
    connection is gone — is logged, not raised, so the caller's own error is the one that is
    answered; the tracked blobs are removed even then.
    """
    session = db.session()
    try:
        session.rollback()
    except SQLAlchemyError as exc:
        log.error("rollback failed: %s", exc)
    _drop_blobs(session)


def release_idle_connection() -> None:
    """Give the request's pooled connection back while it waits on something slow (a client
    sending its upload), if its transaction has only read.

    A connection held for the minutes a phone takes to upload is one the other requests
    cannot have (and, on SQLite, an open read that blocks checkpoints). The loaded objects
    (the signed-in user, …) stay attached with what they hold; the next query simply starts
    a new transaction. A transaction that has written anything (a row, or a blob it would drop
    on rollback) is left alone: its writes end with the request's own commit or rollback.
    """
    session = db.session()
    if not session.in_transaction() or session.info.get(WROTE) or session.info.get(_BLOBS) \
            or session.new or session.dirty or session.deleted:
        return
    # A commit of what only read, keeping the objects as they are: cheaper than closing the
    # session and adding them all back (a twentieth of a small download, BENCHMARKS.md).
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def mark_written() -> None:
    """Note that the current transaction wrote (Core statements do not flush), so
    release_idle_connection leaves it open."""
    db.session.info[WROTE] = True


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: object) -> None:
    session.info[WROTE] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_BLOBS, None)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # after_commit has already run for a committed transaction; what is left never committed.
    if transaction.parent is None:
        session.info.pop(WROTE, None)
        _drop_blobs(session)


def _drop_blobs(session: Session) -> None:
    """Remove the blobs tracked in `session` (they will never have a committed row)."""
    keys = session.info.pop(_BLOBS, None)
    if not keys:
        return
    from app.storage import StorageError, get_storage

    for key in keys:
        try:
            get_storage().delete(key)
        except (StorageError, RuntimeError) as exc:  # RuntimeError: no app context any more
            # An orphan at worst; `chartbox files check` finds it.
            log.error("could not remove the uncommitted blob %s: %s", key, exc)


def commit_bookkeeping(what: str) -> bool:
    """Commit a stamp the request does not depend on (a token's or a session's last use).

    Returns False (logged) while the database is unavailable, so a read-only database still
    serves; any other database error is raised.
    """
    from app.errors import database_unavailable

    try:
        commit()
    except SQLAlchemyError as exc:
        if not database_unavailable(exc):
            raise
        abandon()
        log.warning("could not record %s: %s", what, exc)
        return False
    return True
