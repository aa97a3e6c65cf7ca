"""Integrity (rows vs. blobs), debris clean-up and purging old deletions.

`check` compares every row with its blob: a row whose bytes are missing, or whose size or
sha256 differs, is a problem (something was lost). Apart from that it lists **debris**:
bytes that no committed row needs, of four kinds (DebrisKind):

- orphan blobs: storage keys no row points at;
- temp spool files: `<instance>/tmp/upload-*.tmp`, where `files.receive` spools each upload
  (this host's instance folder only; every host spools into its own);
- partial writes: what `Storage.debris` reports (a filesystem `.<name>.part` file, an S3
  incomplete multipart upload);
- stale renditions: `renditions/` keys of a file that is deleted, purged or unknown.

Debris is not a problem in itself, and a moment's debris is normal: an upload writes its
blob *before* its row commits, and while it runs it has a spool file and a partial write.
So `cleanup` only removes debris older than the grace period (ORPHAN_GRACE_HOURS, 24 h by
default), far longer than any upload takes: a blob whose row is about to commit is never
touched, whatever runs at the same time. `purge` removes the bytes of files deleted more
than TRASH_RETENTION_DAYS ago, leaving the row (with purged_at) for the audit trail.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Action, StoredFile
from app.models.base import utcnow
from app.services import audit, renditions, search_index, spool
from app.services.audit import Origin
from app.storage import BlobMissing, Debris, StorageError, get_storage

RENDITIONS = renditions.PREFIX
Progress = Callable[[Iterable], Iterator]


def _no_progress(items: Iterable) -> Iterator:
    yield from items


class DebrisKind(StrEnum):
    ORPHAN = "orphan blob"
    SPOOL = "temp spool file"
    PARTIAL = "partial write"
    RENDITION = "stale rendition"


@dataclass(frozen=True)
class DebrisItem:
    """One piece of debris: what it is, where, how big and when it was last written."""

    kind: DebrisKind
    ref: str  # storage key, spool file path, or the backend's name for a partial write
    size: int  # bytes
    modified: datetime  # timezone-aware UTC
    partial: Debris | None = field(default=None, repr=False, compare=False)

    def age(self, now: datetime) -> timedelta:
        return max(now - self.modified, timedelta(0))


def grace_hours(value: float | None = None) -> float:
    """The grace period in hours: `value`, or ORPHAN_GRACE_HOURS when None. Raises ValueError
    when negative."""
    hours = float(current_app.config["ORPHAN_GRACE_HOURS"] if value is None else value)
    if hours < 0:
        raise ValueError("the grace period must not be negative")
    return hours


def retention_days(value: int | None = None) -> int:
    """Days a deleted file stays restorable: `value`, or TRASH_RETENTION_DAYS when None.
    Raises ValueError when negative."""
    days = int(current_app.config["TRASH_RETENTION_DAYS"] if value is None else value)
    if days < 0:
        raise ValueError("the retention must not be negative")
    return days


def is_past_grace(item: DebrisItem, hours: float, now: datetime) -> bool:
    """Whether `cleanup` with this grace period removes the item (0 h: everything)."""
    return hours == 0 or item.age(now) >= timedelta(hours=hours)


@dataclass
class Report:
    """What `files check` found: problems (`ok` when none) and, apart, the debris."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    size_mismatch: list[str] = field(default_factory=list)
    checksum_mismatch: list[str] = field(default_factory=list)
    debris: list[DebrisItem] = field(default_factory=list)
    grace_hours: float = 0.0
    now: datetime = field(default_factory=utcnow)

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.size_mismatch) + len(self.checksum_mismatch)

    @property
    def ok(self) -> bool:
        """No row lacks its bytes or has different ones; debris does not count."""
        return self.problems == 0

    @property
    def removable(self) -> list[DebrisItem]:
        """The debris `cleanup` with the default grace period would remove now."""
        return [d for d in self.debris if is_past_grace(d, self.grace_hours, self.now)]


def _stored_rows() -> list[StoredFile]:
    """Rows whose bytes should exist (deleted but not yet purged ones too)."""
    return list(db.session.scalars(select(StoredFile).where(StoredFile.purged_at.is_(None)).order_by(StoredFile.id)))


def check(deep: bool = False, progress: Progress = _no_progress) -> Report:
    """Compare every row with its blob (size; sha256 too when `deep`) and list the debris.

    Args:
        deep: also re-hash every blob (reads every byte once).
        progress: wraps the iteration over rows (a progress bar).
    Returns a Report; `ok` is false when a row's bytes are missing or differ.
    Raises StorageError when the store cannot be read at all.
    """
    storage = get_storage()
    report = Report(grace_hours=grace_hours())
    for row in progress(_stored_rows()):
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
    report.debris = find_debris()
    report.now = utcnow()
    return report


def _sha256(storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open(key) as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def find_debris() -> list[DebrisItem]:
    """Every piece of debris, whatever its age: orphan blobs, stale renditions, partial
    writes and this host's temp spool files (see the module docstring)."""
    storage = get_storage()
    # Keys first, rows second: a blob whose row commits in between is then not listed at all.
    keys = list(storage.keys())
    rows = db.session.execute(select(StoredFile.storage_key, StoredFile.public_id,
                                     StoredFile.deleted_at, StoredFile.purged_at)).all()
    needed = {key for key, _, _, purged in rows if purged is None}
    live = {public_id for _, public_id, deleted, _ in rows if deleted is None}
    found: list[DebrisItem] = []
    for key in keys:
        if key.startswith(RENDITIONS):
            if _rendition_owner(key) in live:
                continue
            kind = DebrisKind.RENDITION
        elif key in needed:
            continue
        else:
            kind = DebrisKind.ORPHAN
        try:
            info = storage.stat(key)
        except BlobMissing:  # removed meanwhile
            continue
        found.append(DebrisItem(kind, key, info.size, info.modified))
    found += [DebrisItem(DebrisKind.PARTIAL, d.ref, d.size, d.modified, d) for d in storage.debris()]
    found += _spool_files()
    return found


def _rendition_owner(key: str) -> str | None:
    """The public id in `renditions/<xx>/<public id>/<name>`, None for any other shape."""
    parts = key.split("/")
    return parts[2] if len(parts) >= 4 and parts[1] == parts[2][:2] else None


def _spool_files() -> list[DebrisItem]:
    folder = spool.folder()
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(f"cannot list {folder}: {exc}") from exc
    found = []
    for entry in entries:
        if not (entry.name.startswith(spool.PREFIX) and entry.name.endswith(spool.SUFFIX)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # its upload finished meanwhile
            continue
        if entry.is_file(follow_symlinks=False):
            found.append(DebrisItem(DebrisKind.SPOOL, entry.path, st.st_size,
                                    datetime.fromtimestamp(st.st_mtime, UTC)))
    return found


@dataclass
class Cleanup:
    """What `cleanup` removed (or would, on a dry run), kept, and could not remove."""

    grace_hours: float
    now: datetime  # ages are measured from here
    removed: list[DebrisItem] = field(default_factory=list)
    kept: list[DebrisItem] = field(default_factory=list)
    failed: list[tuple[DebrisItem, str]] = field(default_factory=list)

    @property
    def removed_bytes(self) -> int:
        return sum(d.size for d in self.removed)


def cleanup(grace: float | None = None, dry_run: bool = False, progress: Progress = _no_progress,
            now: datetime | None = None) -> Cleanup:
    """Remove the debris older than the grace period; younger debris is kept (listed in `kept`).

    Safe while uploads run: an upload's blob, spool file and partial write are seconds old,
    and each orphan is re-checked against the rows just before it goes.
    Args:
        grace: hours; ORPHAN_GRACE_HOURS when None; 0 removes all debris, whatever its age.
        dry_run: only say what would be removed.
        now: the time ages are measured from (tests); the current time when None.
    Returns a Cleanup. Raises ValueError (negative grace) or StorageError (cannot list).
    """
    hours = grace_hours(grace)
    now = now or utcnow()
    storage = get_storage()
    result = Cleanup(hours, now)
    for item in progress(find_debris()):
        if not is_past_grace(item, hours, now):
            result.kept.append(item)
            continue
        if not _still_debris(item):
            continue
        if dry_run:
            result.removed.append(item)
            continue
        try:
            if item.kind == DebrisKind.PARTIAL:
                assert item.partial is not None
                storage.remove_debris(item.partial)
            elif item.kind == DebrisKind.SPOOL:
                _unlink(item.ref)
            else:
                storage.delete(item.ref)
        except (StorageError, OSError) as exc:
            result.failed.append((item, str(exc)))
            continue
        result.removed.append(item)
    return result


def _still_debris(item: DebrisItem) -> bool:
    """Re-check just before removing: a row may point at the key by now (an orphan), or the
    file may have been restored (a rendition)."""
    if item.kind == DebrisKind.ORPHAN:
        return db.session.scalar(select(StoredFile.id).where(
            StoredFile.storage_key == item.ref, StoredFile.purged_at.is_(None)).limit(1)) is None
    if item.kind == DebrisKind.RENDITION:
        owner = _rendition_owner(item.ref)
        return owner is None or db.session.scalar(select(StoredFile.id).where(
            StoredFile.public_id == owner, StoredFile.deleted_at.is_(None)).limit(1)) is None
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass
class Purge:
    days: int
    purged: list[str] = field(default_factory=list)


def purge(older_than_days: int | None = None, dry_run: bool = False, progress: Progress = _no_progress) -> Purge:
    """Purge the bytes (and renditions) of files deleted more than `older_than_days` ago.

    Each row stays, with purged_at and a PURGE audit event, committed *before* its bytes go:
    a purge cut short leaves at worst an orphan blob (removed by `cleanup`), never a
    restorable row without bytes.
    Args:
        older_than_days: TRASH_RETENTION_DAYS when None; 0 purges every deleted file.
        dry_run: only say what would be purged.
    Raises ValueError (negative days). A blob that cannot be removed stays as an orphan.
    """
    days = retention_days(older_than_days)
    storage = get_storage()
    cutoff = utcnow() - timedelta(days=days)
    due = list(db.session.scalars(select(StoredFile).where(
        StoredFile.deleted_at.is_not(None), StoredFile.deleted_at <= cutoff, StoredFile.purged_at.is_(None),
    ).order_by(StoredFile.id)))
    result = Purge(days)
    for row in progress(due):
        result.purged.append(f"{row.public_id} ({row.name})")
        if dry_run:
            continue
        row.purged_at = utcnow()
        search_index.remove_texts([row.id])  # its words go with its bytes
        audit.record(Action.PURGE, Origin.cli(), actor=None, file=row)
        db.session.commit()
        try:
            storage.delete(row.storage_key)
            renditions.remove_all(storage, row.public_id)
        except StorageError as exc:
            current_app.logger.error("purged %s but could not remove its bytes (left as debris): %s",
                                     row.public_id, exc)
    return result
