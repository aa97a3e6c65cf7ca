"""Integrity checks (rows vs. blobs) and clean-up (purging old deletions, orphan blobs)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import Action, StoredFile
from app.models.base import utcnow
from app.services import audit
from app.services.audit import Origin
from app.storage import BlobMissing, StorageError, get_storage

RENDITIONS = "renditions/"
Progress = Callable[[Iterable], Iterator]


def _no_progress(items: Iterable) -> Iterator:
    yield from items


@dataclass
class Report:
    """What `files check` found; `ok` when nothing is wrong."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    checksum_mismatch: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.size_mismatch or self.checksum_mismatch or self.orphans)


def _stored_rows() -> list[StoredFile]:
    """Rows whose bytes should exist (deleted but not yet purged ones too)."""
    return list(db.session.scalars(select(StoredFile).where(StoredFile.purged_at.is_(None)).order_by(StoredFile.id)))


def check(deep: bool = False, progress: Progress = _no_progress) -> Report:
    """Compare every row with its blob (size; sha256 too when `deep`) and find orphan blobs."""
    storage = get_storage()
    report = Report()
    rows = _stored_rows()
    for row in progress(rows):
        report.checked += 1
        label = f"{row.public_id} ({row.name})"
        try:
            size = storage.size(row.storage_key)
        except BlobMissing:
            report.missing.append(label)
            continue
        if size != row.size:
            report.size_mismatch.append(f"{label}: row says {row.size}, blob has {size}")
            continue
        if deep and _sha256(storage, row.storage_key) != row.sha256:
            report.checksum_mismatch.append(label)
    report.orphans = find_orphans()
    return report


def _sha256(storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open(key) as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def find_orphans() -> list[str]:
    """Blobs no live row points at: crash leftovers and renditions of purged files."""
    rows = {r.storage_key: r.public_id for r in _stored_rows()}
    public_ids = set(rows.values())
    orphans = []
    for key in get_storage().keys():  # noqa: SIM118 - Storage.keys() is the contract, not a dict
        if key.startswith(RENDITIONS):
            parts = key.split("/")
            if len(parts) < 4 or parts[2] not in public_ids:
                orphans.append(key)
        elif key not in rows:
            orphans.append(key)
    return orphans


@dataclass
class Cleanup:
    purged: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)


def cleanup(older_than_days: int, dry_run: bool = False, progress: Progress = _no_progress) -> Cleanup:
    """Purge the bytes of files deleted more than `older_than_days` ago, and orphan blobs.

    Purged rows stay (with purged_at) so the audit trail keeps pointing at something.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must not be negative")
    storage = get_storage()
    cutoff = utcnow() - timedelta(days=older_than_days)
    due = list(db.session.scalars(select(StoredFile).where(
        StoredFile.deleted_at.is_not(None), StoredFile.deleted_at <= cutoff, StoredFile.purged_at.is_(None),
    ).order_by(StoredFile.id)))
    result = Cleanup()
    for row in progress(due):
        result.purged.append(f"{row.public_id} ({row.name})")
        if dry_run:
            continue
        storage.delete(row.storage_key)
        for key in list(storage.keys(f"{RENDITIONS}{row.public_id[:2]}/{row.public_id}/")):
            storage.delete(key)
        row.purged_at = utcnow()
        audit.record(Action.PURGE, Origin.cli(), actor=None, file=row)
        db.session.commit()
    for key in find_orphans():
        # Re-check just before deleting: an upload may have committed its row meanwhile.
        if db.session.scalar(select(StoredFile.id).where(StoredFile.storage_key == key)):
            continue
        result.orphans_removed.append(key)
        if not dry_run:
            try:
                storage.delete(key)
            except StorageError:
                result.orphans_removed.pop()
    return result
