"""Receive an upload stream into a private temp file, counting and hashing as it goes.

The bytes never sit whole in memory, the size limit holds whatever Content-Length claimed,
and the temp file is always removed (Spooled is a context manager).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import IO

from app.errors import TooLarge

CHUNK = 1024 * 1024


@dataclass
class Spooled:
    path: str
    size: int
    sha256: str

    def open(self) -> IO[bytes]:
        return open(self.path, "rb")

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Spooled:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def spool(stream: IO[bytes], max_bytes: int, tmp_dir: str | None = None) -> Spooled:
    """Copy `stream` to a temp file. Raises TooLarge past `max_bytes` (nothing is left behind)."""
    if tmp_dir:
        os.makedirs(tmp_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"The file is larger than the {max_bytes:,}-byte limit.")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return Spooled(path=path, size=size, sha256=digest.hexdigest())
