"""Receive an upload stream into a private temp file, counting and hashing as it goes.

The bytes never sit whole in memory, the size limit holds whatever Content-Length claimed,
and the temp file is always removed (Spooled is a context manager). A temp folder that cannot
be written (missing, full, not a folder) is an outage, not a bug: CannotReceive, a 503 with
Retry-After in every door's shape.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import IO

from app.errors import CannotReceive, TooLarge

CHUNK = 1024 * 1024
#: Temp files are named upload-<random>.tmp (what a sweep of the temp folder looks for).
PREFIX, SUFFIX = "upload-", ".tmp"
log = logging.getLogger(__name__)


@dataclass
class Spooled:
    path: str
    size: int
    sha256: str

    def open(self) -> IO[bytes]:
        try:
            return open(self.path, "rb")
        except OSError as exc:  # removed or unreadable under us: the temp folder failed
            raise _cannot_receive("reopen", self.path, exc) from exc

    def discard(self) -> None:
        _remove(self.path)

    def __enter__(self) -> Spooled:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def spool(stream: IO[bytes], max_bytes: int, tmp_dir: str | None = None) -> Spooled:
    """Copy `stream` to a temp file in `tmp_dir` (created if missing).

    Raises:
        TooLarge: past `max_bytes`.
        CannotReceive: the temp file cannot be created or written.
    Errors reading `stream` itself (the client's side) pass through unchanged. Whatever is
    raised, nothing is left behind.
    """
    try:
        if tmp_dir:
            os.makedirs(tmp_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=tmp_dir, prefix=PREFIX, suffix=SUFFIX)
    except OSError as exc:
        raise _cannot_receive("create a temp file in", tmp_dir or tempfile.gettempdir(), exc) from exc
    digest = hashlib.sha256()
    size = 0
    try:
        try:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"The file is larger than the {max_bytes:,}-byte limit.")
                digest.update(chunk)
                _write_all(fd, chunk, path)
        except BaseException:
            _close(fd, path, quiet=True)
            raise
        _close(fd, path)
    except BaseException:
        _remove(path)
        raise
    return Spooled(path=path, size=size, sha256=digest.hexdigest())


def _write_all(fd: int, data: bytes, path: str) -> None:
    # Unbuffered, so a full disk shows here (and never again, hidden, in a close).
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise _cannot_receive("write", path, exc) from exc


def _close(fd: int, path: str, quiet: bool = False) -> None:
    try:
        os.close(fd)
    except OSError as exc:
        if not quiet:
            raise _cannot_receive("close", path, exc) from exc


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # never hides the error being answered; a sweep finds the file
        log.error("could not remove the temp file %s: %s", path, exc)


def _cannot_receive(what: str, where: str, exc: OSError) -> CannotReceive:
    log.error("cannot %s %s: %s", what, where, exc)
    return CannotReceive()
