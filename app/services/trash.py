"""The trash: which deleted files are still restorable, and a chart's list of them.

A soft-deleted file stays restorable for TRASH_RETENTION_DAYS unless its bytes were purged
(`flask files cleanup --older-than` purges later). Restoring one is files.restore.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.errors import NotFound
from app.extensions import db
from app.models import Action, StoredFile, User
from app.models.base import utcnow
from app.services import access


def _retention_cutoff() -> datetime:
    return utcnow() - timedelta(days=current_app.config["TRASH_RETENTION_DAYS"])


def in_trash(row: StoredFile) -> bool:
    """Deleted, not purged, and deleted within TRASH_RETENTION_DAYS: still restorable."""
    return row.deleted_at is not None and row.purged_at is None and row.deleted_at > _retention_cutoff()


def list_deleted(actor: User, patient: User) -> list[StoredFile]:
    """A chart's recently deleted files the actor may restore, most recently deleted first.

    A patient sees what they deleted themselves; staff everything deleted on the chart that
    their role may restore (with who deleted it and when: `deleted_by`, `deleted_at`). Only
    files within TRASH_RETENTION_DAYS and not purged. Raises NotFound for a chart out of reach.
    """
    if not access.in_scope(actor, patient.id, patient.account_id):
        raise NotFound("No such user.")
    query = select(StoredFile).where(
        StoredFile.account_id == patient.account_id, StoredFile.patient_id == patient.id,
        StoredFile.deleted_at.is_not(None), StoredFile.deleted_at > _retention_cutoff(),
        StoredFile.purged_at.is_(None),
    ).order_by(StoredFile.deleted_at.desc(), StoredFile.id.desc())
    # The page names who deleted each file and its visit: in this statement, not one per row.
    query = query.options(joinedload(StoredFile.deleted_by), joinedload(StoredFile.visit))
    if actor.is_patient:
        query = query.where(StoredFile.deleted_by_id == actor.id)
    return [row for row in db.session.scalars(query) if access.can(actor, row, Action.RESTORE)]
