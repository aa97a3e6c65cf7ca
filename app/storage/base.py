"""The storage contract every backend passes (tests/test_storage_contract.py)."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, BinaryIO
from uuid import uuid4

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[0-9a-z][0-9a-z._/-]{0,199}$")


class StorageError(Exception):
    """Any failure of a storage backend (I/O, network, missing object)."""


class BlobMissing(StorageError):
    """The key names no stored object."""


@dataclass(frozen=True)
class BlobInfo:
    """What `Storage.stat` knows about a stored object."""

    size: int  # bytes
    modified: datetime  # when it was written (timezone-aware, UTC)


@dataclass(frozen=True)
class Debris:
    """A partial write a backend left behind: bytes of a `put` that never completed.

    A `put` in progress shows here too (its `modified` keeps moving while it writes); one
    whose writer died (a killed worker) stays here until `remove_debris`. Never a readable
    blob: `keys`, `exists` and `open` do not see it.
    """

    ref: str  # how to show it: the partial file's path, or the object key and upload id
    size: int  # bytes written so far
    modified: datetime  # the last write (timezone-aware, UTC)
    handle: tuple[str, ...] = ()  # what the backend's remove_debris needs


def new_key() -> str:
    """A fresh storage key, `<uuid[:2]>/<uuid>`; never derived from a user's file name."""
    u = uuid4().hex
    return f"{u[:2]}/{u}"


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (the keys are ours, so this is a guard)."""
    if not _KEY.match(key) or ".." in key or "//" in key:
        raise StorageError(f"invalid storage key {key!r}")
    return key


class Storage(ABC):
    """A flat store of immutable blobs addressed by key."""

    name: str

    @abstractmethod
    def put(self, key: str, stream: IO[bytes]) -> int:
        """Copy the stream to `key` atomically (all or nothing); return the bytes written."""

    def put_file(self, key: str, path: str) -> int:
        """Store the file at `path`, a private temp file the caller owns, as `key` (all or
        nothing, as put); return its size. A store that can moves the file instead of copying
        it, so `path` may be gone afterwards: the caller removes it only if it is still there."""
        with open(path, "rb") as fh:
            return self.put(key, fh)

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable, seekable binary file for `key`; raise BlobMissing when absent."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The stored size in bytes; raise BlobMissing when absent."""

    @abstractmethod
    def stat(self, key: str) -> BlobInfo:
        """Size and modification time of `key`; raise BlobMissing when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether `key` holds an object."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key that starts with `prefix` (no temporary or partial objects)."""

    @abstractmethod
    def entries(self, prefix: str = "") -> Iterator[tuple[str, BlobInfo]]:
        """Every stored key that starts with `prefix` with its size and modification time, in
        one listing (no stat per key: sizing a cache of many small objects stays cheap)."""

    @abstractmethod
    def debris(self) -> Iterator[Debris]:
        """Every partial write under this store (including ones still in progress)."""

    @abstractmethod
    def remove_debris(self, item: Debris) -> None:
        """Remove a partial write listed by `debris`; one already gone is not an error.

        Removing the partial write of a `put` still in progress makes that put fail with
        StorageError; it never completes a damaged blob.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise StorageError unless the store can be used now, in one cheap call (readiness
        probes run it every few seconds, so it reads no blob and writes nothing)."""
