"""Content digests beyond the row's sha256: filling in the SHA-1 of files stored before uploads
recorded it (FHIR's Attachment.hash names SHA-1).

New uploads get their sha1 as they are received (spool.py, beside the sha256). Older rows are
filled in here, from their blobs read through the storage, after the same bytes were checked
against the row's sha256: a damaged blob never gets a SHA-1 that would vouch for it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from app.extensions import db
from app.models import StoredFile
from app.services import transaction
from app.services.spool import digests_and_size
from app.storage import BlobMissing, get_storage

Progress = Callable[[Iterable], Iterator]


@dataclass
class Backfill:
    """What a backfill did: rows filled in, and rows left without a SHA-1 (by public id)."""

    filled: int = 0
    missing: list[str] = field(default_factory=list)  # no blob
    damaged: list[str] = field(default_factory=list)  # the blob's size or sha256 differs from its row


def backfill_sha1(batch: int = 200, progress: Progress | None = None) -> Backfill:
    """Compute and store the SHA-1 of every unpurged file without one; committed per `batch` rows.

    Safe to run again (it takes up where it stopped) and beside a running server (it only
    fills a NULL column). Returns a Backfill; a storage outage raises StorageError.
    """
    ids = list(db.session.scalars(select(StoredFile.id).where(StoredFile.sha1.is_(None),
                                                              StoredFile.purged_at.is_(None))
                                  .order_by(StoredFile.id)))
    result, storage = Backfill(), get_storage()
    for n, file_id in enumerate(progress(ids) if progress else ids, 1):
        row = db.session.get(StoredFile, file_id)
        if row is None or row.sha1 is not None:
            continue
        try:
            with storage.open(row.storage_key) as fh:
                sha256, sha1, size = digests_and_size(fh)
        except BlobMissing:
            result.missing.append(row.public_id)
            continue
        if (sha256, size) != (row.sha256, row.size):
            result.damaged.append(row.public_id)
            continue
        row.sha1 = sha1
        result.filled += 1
        if n % batch == 0:
            transaction.commit()
    transaction.commit()
    return result
