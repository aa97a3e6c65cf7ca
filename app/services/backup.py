"""Backups: a consistent snapshot of the database plus every blob its rows reference, the check
of a backup, and its restore into the configured (empty) instance.

A backup folder holds::

    database.sqlite3   SQLite: a copy made with the online backup API, or
    database.pgdump    PostgreSQL: pg_dump's custom format (the app's schema, or the database)
    blobs/<key>        the bytes of every non-purged stored_files row of that snapshot
    manifest.json      written last: without it the folder is not (yet) a backup

The rows are read from the snapshot, never from the live database, so the two always agree;
blobs are immutable, so copying them after the snapshot is consistent with it. Renditions are a
cache and are left out. Everything is written under `.partial-*` first and moved into place at
the end, manifest last, so an interrupted backup is recognisably incomplete. Taking, reading,
checking and loading the database snapshot itself (SQLite, PostgreSQL) is snapshots.py's job.

None of this is audited: the audit trail has no action for backups (app.models.enums.Action),
and its events name a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from app.services.integrity import RENDITIONS
from app.services.snapshots import (  # BackupError is raised by both; backup.BackupError stays its name
    DATABASE_FILES,
    BackupError,
    Snapshot,
    check_snapshot,
    check_target,
    database_contents,
    database_kind,
    load_snapshot,
    read_snapshot,
    take_snapshot,
)
from app.storage import BlobMissing, StorageError, get_storage
from app.storage.base import CHUNK, check_key

FORMAT = "chartbox-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BLOBS = "blobs"
PARTIAL = ".partial-"

Progress = Callable[[Iterable], Iterator]


def _each(items: Iterable) -> Iterator:
    yield from items


@dataclass(frozen=True)
class BlobEntry:
    """One blob in a backup: its storage key, size in bytes and sha256 (hex)."""

    key: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """What manifest.json says about a backup.

    `database` holds kind (sqlite | postgresql), file, sha256 and size of the snapshot, and for
    PostgreSQL the schema the tables live in and the dump's scope (schema | database).
    `counts` holds accounts, users, stored_files (rows), purged (rows without bytes), blobs, bytes.
    """

    created_at: str
    chartbox_version: str
    database: dict[str, Any]
    blobs: list[BlobEntry]
    counts: dict[str, int]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """Read and check `folder`/manifest.json; raise BackupError when absent or malformed."""
        path = folder / MANIFEST
        if not path.is_file():
            raise BackupError(f"no {MANIFEST} in {folder}: not a backup, or an incomplete one")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT or not isinstance(raw.get("format_version"), int):
                raise ValueError("not a Chartbox backup manifest")
            if raw["format_version"] > FORMAT_VERSION:
                raise ValueError(f"format version {raw['format_version']} is newer than this Chartbox reads")
            database = raw["database"]
            if DATABASE_FILES.get(database.get("kind")) != database.get("file"):
                raise ValueError(f"unknown database {database.get('kind')!r} / {database.get('file')!r}")
            blobs = [BlobEntry(check_key(str(b["key"])), int(b["size"]), str(b["sha256"])) for b in raw["blobs"]]
            return cls(str(raw["created_at"]), str(raw["chartbox_version"]), database, blobs,
                       {k: int(v) for k, v in raw["counts"].items()}, raw["format"], raw["format_version"])
        except (ValueError, KeyError, TypeError, AttributeError, StorageError) as exc:
            raise BackupError(f"{MANIFEST} is not valid: {exc}") from None

    def write(self, folder: Path) -> None:
        """Write manifest.json into `folder`, durably."""
        fields = asdict(self)
        ordered = {"format": fields.pop("format"), "format_version": fields.pop("format_version"), **fields}
        _write_durably(folder / MANIFEST, json.dumps(ordered, indent=2).encode())


@dataclass
class Verification:
    """The result of `verify_backup`: `ok` when no problem was found."""

    manifest: Manifest | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems


@dataclass
class Restored:
    """What `restore_backup` put back; `foreign_blobs` were in storage already (--force)."""

    manifest: Manifest
    database_kind: str
    storage_backend: str
    foreign_blobs: int = 0


# -- the three operations --------------------------------------------------------------------------

def create_backup(folder: str | os.PathLike[str], progress: Progress = _each) -> Manifest:
    """Write a consistent backup of the configured instance into `folder` while it keeps serving.

    Args:
        folder: a new or empty folder (created with its parents when missing).
        progress: wraps the iteration over the blobs (a CLI progress bar).
    Returns:
        The manifest written.
    Raises:
        BackupError: `folder` is not empty or not a folder; pg_dump is missing or fails; a
            blob is missing or differs from its row's size or sha256 (all listed in
            `problems`). Nothing is left in `folder` then.
        StorageError: storage could not be read.
    """
    target = Path(folder)
    _require_empty(target)
    kind = database_kind()
    staging = target / f"{PARTIAL}{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        info = take_snapshot(kind, staging / DATABASE_FILES[kind])
        snapshot = read_snapshot(staging, info)
        blobs, problems = _copy_blobs(snapshot, staging / BLOBS, progress)
        if problems:
            raise BackupError(f"The backup failed: {len(problems)} blob(s) do not match their rows "
                              "(see `chartbox files check --deep`).", problems)
        info.update(_file_facts(staging / info["file"]), revision=snapshot.revision)
        counts = {**snapshot.counts, "purged": sum(r.purged for r in snapshot.rows), "blobs": len(blobs),
                  "bytes": sum(b.size for b in blobs)}
        manifest = Manifest(datetime.now(UTC).isoformat(timespec="seconds"), _version(), info, blobs, counts)
        manifest.write(staging)
        _publish(staging, target)
    except (OSError, sqlite3.Error) as exc:  # e.g. a full disk
        shutil.rmtree(staging, ignore_errors=True)
        raise BackupError(f"Cannot write the backup into {target}: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify_backup(folder: str | os.PathLike[str], progress: Progress = _each) -> Verification:
    """Check a backup without touching the instance.

    Checks that manifest.json is present and valid, that every listed blob is there with its
    size and sha256, that the database snapshot matches its checksum and opens (SQLite:
    `PRAGMA integrity_check`; PostgreSQL: `pg_restore --list`), and that its non-purged
    stored_files rows name exactly the listed blobs.
    Returns:
        A Verification; its `problems` say what is wrong, one line each.
    Raises:
        BackupError: `folder` is not a folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise BackupError(f"{root} is not a folder.")
    try:
        manifest = Manifest.load(root)
    except BackupError as exc:
        partial = sorted(p.name for p in root.glob(f"{PARTIAL}*"))
        tail = [f"{', '.join(partial)}: left by an interrupted backup"] if partial else []
        return Verification(None, [exc.message, *tail])
    problems: list[str] = []
    for entry in progress(manifest.blobs):
        problems += _check_blob(root, entry)
    listed = {b.key for b in manifest.blobs}
    on_disk = {p.relative_to(root / BLOBS).as_posix() for p in (root / BLOBS).rglob("*") if p.is_file()}
    problems += [f"unlisted file in {BLOBS}/: {key}" for key in sorted(on_disk - listed)]
    database_problems = _check_database(root, manifest.database)
    problems += database_problems
    if not database_problems:
        try:
            keys = read_snapshot(root, manifest.database).blob_keys()
        except BackupError as exc:
            return Verification(manifest, [*problems, exc.message])
        problems += [f"the database has a row for {key}, which the backup has no blob for"
                     for key in sorted(keys - listed)]
        problems += [f"blob {key} is listed, but no row of the database needs it" for key in sorted(listed - keys)]
    return Verification(manifest, problems)


def restore_backup(folder: str | os.PathLike[str], force: bool = False, progress: Progress = _each) -> Restored:
    """Restore a backup into the configured database and storage.

    The backup is verified first. Blobs are put back through the storage backend (read back and
    re-hashed), then the database is replaced: SQLite through the backup API into the database
    file (the app's engine disposed first), PostgreSQL with pg_restore into the configured schema
    (a backup of another schema is restored and renamed to it). Stop the app while it runs.
    Args:
        folder: a backup written by `create_backup`.
        force: restore even when the instance holds accounts, users, files or blobs; its
            database is replaced and blobs not in the backup stay behind as orphans.
    Raises:
        BackupError: the backup does not verify; it is of another database kind; the instance
            is not empty (without `force`); pg_restore is missing or fails; a blob did not read
            back intact.
        StorageError: storage could not be written.
    """
    check = verify_backup(folder)
    if check.manifest is None or check.problems:
        raise BackupError("The backup does not verify; nothing was restored.", check.problems)
    manifest, root = check.manifest, Path(folder)
    kind = database_kind()
    if manifest.database["kind"] != kind:
        raise BackupError(f"This is a backup of a {manifest.database['kind']} database; the configured "
                          f"database is {kind}. Restore it into a {manifest.database['kind']} instance.")
    storage = get_storage()
    present = _contents(storage)
    if present and not force:
        raise BackupError("The configured instance is not empty; restore refuses to overwrite it "
                          "without --force.", present)
    check_target(manifest.database)
    listed = {b.key for b in manifest.blobs}
    foreign = sum(1 for key in storage.keys() if key not in listed) if present else 0  # noqa: SIM118 - the contract
    problems = []
    for entry in progress(manifest.blobs):
        try:
            with open(root / BLOBS / entry.key, "rb") as fh:
                storage.put(entry.key, fh)
        except OSError as exc:
            raise BackupError(f"Cannot read {entry.key} from the backup: {exc}") from None
        with storage.open(entry.key) as stored:
            size, digest = _copy(stored, None)
        if (size, digest) != (entry.size, entry.sha256):
            problems.append(f"{entry.key}: stored {size} bytes with sha256 {digest}, expected {entry.size} / "
                            f"{entry.sha256}")
    if problems:
        raise BackupError("Storage did not keep the restored blobs intact; the database was not restored.",
                          problems)
    try:
        load_snapshot(root, manifest.database)
    except (BackupError, OSError, sqlite3.Error) as exc:
        message = exc.message if isinstance(exc, BackupError) else f"The database could not be restored: {exc}."
        raise BackupError(f"{message} The blobs are back in storage already: once the cause is fixed, "
                          "run the restore again with --force.", getattr(exc, "problems", ())) from None
    return Restored(manifest, kind, storage.name, foreign)


# -- folders, blobs, checksums ---------------------------------------------------------------------

def _require_empty(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} exists and is not a folder.")
    if target.is_dir() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty; a backup goes into a new or empty folder.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"Cannot create {target}: {exc.strerror}") from None


def _publish(staging: Path, target: Path) -> None:
    """Move the finished backup out of `.partial-*` into place: the manifest last."""
    for child in sorted(staging.iterdir()):
        if child.name != MANIFEST:
            os.replace(child, target / child.name)
    _fsync_dir(target)
    os.replace(staging / MANIFEST, target / MANIFEST)
    staging.rmdir()
    _fsync_dir(target)


def _copy_blobs(snapshot: Snapshot, dest: Path, progress: Progress) -> tuple[list[BlobEntry], list[str]]:
    storage = get_storage()
    blobs: list[BlobEntry] = []
    problems: list[str] = []
    seen: set[str] = set()
    for row in progress(snapshot.rows):
        if row.purged or row.key.startswith(RENDITIONS) or row.key in seen:
            continue
        seen.add(row.key)
        path = dest / check_key(row.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with storage.open(row.key) as source, open(path, "wb") as out:
                size, digest = _copy(source, out)
                os.fsync(out.fileno())
        except BlobMissing:
            problems.append(f"missing blob: {row.label} at {row.key}")
            continue
        if size != row.size:
            problems.append(f"size mismatch: {row.label}: row says {row.size}, blob has {size}")
        elif digest != row.sha256:
            problems.append(f"checksum mismatch: {row.label}")
        else:
            blobs.append(BlobEntry(row.key, size, digest))
    return blobs, problems


def _check_blob(root: Path, entry: BlobEntry) -> list[str]:
    path = root / BLOBS / entry.key
    if not path.is_file():
        return [f"missing blob: {entry.key}"]
    try:
        with open(path, "rb") as fh:
            size, digest = _copy(fh, None)
    except OSError as exc:
        return [f"unreadable blob: {entry.key}: {exc.strerror or exc}"]
    if size != entry.size:
        return [f"size mismatch: {entry.key}: manifest says {entry.size}, file has {size}"]
    if digest != entry.sha256:
        return [f"checksum mismatch: {entry.key}"]
    return []


def _copy(source: IO[bytes], out: IO[bytes] | None) -> tuple[int, str]:
    """Read `source` to the end (writing it to `out` when given); return its size and sha256."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return size, digest.hexdigest()


def _file_facts(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        size, digest = _copy(fh, None)
    return {"size": size, "sha256": digest}


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version() -> str:
    try:
        return metadata.version("chartbox")
    except metadata.PackageNotFoundError:
        return "unknown"


def _contents(storage) -> list[str]:
    """What the configured instance already holds: one line per kind of thing; empty when nothing."""
    found = database_contents()
    first = next(iter(storage.keys()), None)
    if first is not None:
        found.append(f"storage already holds blobs (e.g. {first})")
    return found


def _check_database(root: Path, info: dict[str, Any]) -> list[str]:
    """The snapshot is there, matches its size and sha256 in the manifest, and opens."""
    path = root / info["file"]
    if not path.is_file():
        return [f"the database snapshot {info['file']} is missing"]
    if _file_facts(path) != {"size": info.get("size"), "sha256": info.get("sha256")}:
        return [f"the database snapshot {info['file']} differs from its size and sha256 in the manifest"]
    return check_snapshot(path, info["kind"])
