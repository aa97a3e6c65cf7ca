"""The storage contract every backend passes (tests/test_storage_contract.py)."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import IO, BinaryIO
from uuid import uuid4

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[0-9a-z][0-9a-z._/-]{0,199}$")


class StorageError(Exception):
    """Any failure of a storage backend (I/O, network, missing object)."""


class BlobMissing(StorageError):
    """The key names no stored object."""


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

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable, seekable binary file for `key`; raise BlobMissing when absent."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The stored size in bytes; raise BlobMissing when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether `key` holds an object."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key that starts with `prefix` (no temporary or partial objects)."""
