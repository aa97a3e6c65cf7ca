"""The unit of work: one commit per request, and no bytes left behind by one that fails.

A service that writes a blob for a row not yet committed calls `track_blob`; if the
transaction then ends without a commit (an error, a rollback, a crash of the request), the
blob is removed again, so storage never holds bytes that no committed row points at — and a
vendor service can compose `files.store` with its own rows and commit once.
"""
from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from app.errors import Conflict
from app.extensions import db

_BLOBS = "chartbox_uncommitted_blobs"
log = logging.getLogger(__name__)


def track_blob(key: str) -> None:
    """Remove the blob at `key` unless the current transaction commits."""
    db.session.info.setdefault(_BLOBS, []).append(key)


def commit(conflict: str | None = None) -> None:
    """Commit the request's changes; on failure roll back (dropping tracked blobs) and re-raise.

    Args:
        conflict: when given, a unique-constraint failure becomes Conflict(conflict).
    """
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if conflict is None:
            raise
        raise Conflict(conflict) from None
    except BaseException:
        db.session.rollback()
        raise


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_BLOBS, None)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # after_commit has already run for a committed transaction; what is left never committed.
    if transaction.parent is not None or not session.info.get(_BLOBS):
        return
    from app.storage import StorageError, get_storage

    keys = session.info.pop(_BLOBS)
    for key in keys:
        try:
            get_storage().delete(key)
        except (StorageError, RuntimeError) as exc:  # RuntimeError: no app context any more
            # An orphan at worst; `chartbox files check` finds it.
            log.error("could not remove the uncommitted blob %s: %s", key, exc)
