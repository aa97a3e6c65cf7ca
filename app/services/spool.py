"""Receive an upload stream into a private temp file, counting and hashing as it goes
(sha256, the row's integrity check and ETag; sha1, what FHIR's Attachment.hash names).

The bytes never sit whole in memory, the size limit holds whatever Content-Length claimed,
and the temp file is always removed (Spooled is a context manager). A multipart upload is
written once: werkzeug writes the part into this folder (Part), spool() takes it over where it
lies, and the filesystem storage renames it into place (Storage.put_file). A temp folder that cannot
be written (missing, full, not a folder) is an outage, not a bug: CannotReceive, a 503 with
Retry-After in every door's shape.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import IO

from flask import current_app
from flask_babel import gettext

from app.errors import CannotReceive, TooLarge

CHUNK = 1024 * 1024
#: Temp files are named upload-<random>.tmp (what a sweep of the temp folder looks for).
PREFIX, SUFFIX = "upload-", ".tmp"
log = logging.getLogger(__name__)


Digests = tuple[str, str]  # (sha256, sha1), hex


class Spooled:
    """A spooled upload: its temp file, size, sha256 and sha1 (for a taken-over Part, still
    being computed beside the validation, with the file's fsync: `sha256` waits for it)."""

    def __init__(self, path: str, size: int, digests: Digests | Future[Digests]):
        self.path, self.size = path, size
        self._digests = digests

    def _known(self) -> Digests:
        if isinstance(self._digests, Future):
            self._digests = self._digests.result()  # CannotReceive if the file could not be read
        return self._digests

    @property
    def sha256(self) -> str:
        return self._known()[0]

    @property
    def sha1(self) -> str:
        return self._known()[1]

    def open(self) -> IO[bytes]:
        try:
            return open(self.path, "rb")
        except OSError as exc:  # removed or unreadable under us: the temp folder failed
            raise _cannot_receive("reopen", self.path, exc) from exc

    def discard(self) -> None:
        if isinstance(self._digests, Future):
            wait([self._digests])  # never remove a file its hash is still reading
        _remove(self.path)

    def __enter__(self) -> Spooled:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def folder() -> str:
    """The app's upload temp folder, under instance/ (beside the storage root by default, so a
    spooled file moves into storage by rename: Storage.put_file)."""
    return os.path.join(current_app.instance_path, "tmp")


class Part(io.BufferedRandom):
    """A multipart file part written straight into the upload temp folder (app.http asks for
    one per part), named like every spool file, so spool() takes it over instead of copying
    it and a sweep finds a leftover. Removed on close unless spool() took it."""

    def __init__(self, tmp_dir: str):
        os.makedirs(tmp_dir, exist_ok=True)
        fd, self.path = tempfile.mkstemp(dir=tmp_dir, prefix=PREFIX, suffix=SUFFIX)
        super().__init__(io.FileIO(fd, "r+b"), buffer_size=CHUNK)
        self.taken = False

    def close(self) -> None:
        super().close()
        if not self.taken:
            _remove(self.path)


def spool(stream: IO[bytes], max_bytes: int, tmp_dir: str | None = None) -> Spooled:
    """Copy `stream` to a temp file in `tmp_dir` (created if missing), or take over a Part
    already there, unread, hashing it in place (one write of the bytes fewer).

    Raises:
        TooLarge: past `max_bytes`.
        CannotReceive: the temp file cannot be created or written.
    Errors reading `stream` itself (the client's side) pass through unchanged. Whatever is
    raised, nothing is left behind.
    """
    if isinstance(stream, Part) and tmp_dir and os.path.dirname(stream.path) == os.path.abspath(tmp_dir) \
            and not stream.closed and stream.tell() == 0:
        return _take(stream, max_bytes)
    try:
        if tmp_dir:
            os.makedirs(tmp_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=tmp_dir, prefix=PREFIX, suffix=SUFFIX)
    except OSError as exc:
        raise _cannot_receive("create a temp file in", tmp_dir or tempfile.gettempdir(), exc) from exc
    digest, sha1 = hashlib.sha256(), hashlib.sha1(usedforsecurity=False)
    size = 0
    try:
        try:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(gettext("The file is larger than the %(max)s-byte limit.", max=f"{max_bytes:,}"))
                digest.update(chunk)
                sha1.update(chunk)
                _write_all(fd, chunk, path)
        except BaseException:
            _close(fd, path, quiet=True)
            raise
        _close(fd, path)
    except BaseException:
        _remove(path)
        raise
    return Spooled(path=path, size=size, digests=(digest.hexdigest(), sha1.hexdigest()))


#: Hashes and fsyncs of taken-over parts, run while the upload is validated in its child
#: process (threads: hashlib and fsync release the GIL). Bounded; a busy pool only queues.
_BACKGROUND = ThreadPoolExecutor(max_workers=8, thread_name_prefix="spool")


def _take(part: Part, max_bytes: int) -> Spooled:
    """A Part where it lies: its size now, its digests (and the fsync that makes the bytes
    durable before storage renames them in) computed beside what the caller does next. The
    Spooled then owns the path (the Part no longer removes it)."""
    try:
        part.flush()
        size = os.fstat(part.fileno()).st_size
    except OSError as exc:
        raise _cannot_receive("write", part.path, exc) from exc
    if size > max_bytes:
        raise TooLarge(gettext("The file is larger than the %(max)s-byte limit.", max=f"{max_bytes:,}"))
    part.taken = True
    # The write-back starts now; Storage.put_file's own fsync then finds little or nothing left.
    _BACKGROUND.submit(_sync, part.path)
    return Spooled(path=part.path, size=size, digests=_BACKGROUND.submit(_hash, part.path))


def _hash(path: str) -> Digests:
    try:
        with open(path, "rb") as fh:  # its own descriptor: the request's part stays untouched
            sha256, sha1, _ = digests_and_size(fh)
    except OSError as exc:
        raise _cannot_receive("read", path, exc) from exc
    return sha256, sha1


def digests_and_size(fh: IO[bytes]) -> tuple[str, str, int]:
    """The hex sha256 and sha1 of a stream and its length, read to its end in chunks."""
    sha256, sha1, size = hashlib.sha256(), hashlib.sha1(usedforsecurity=False), 0
    while chunk := fh.read(CHUNK):
        sha256.update(chunk)
        sha1.update(chunk)
        size += len(chunk)
    return sha256.hexdigest(), sha1.hexdigest(), size


def _sync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # gone already (a refused upload): nothing to make durable
    try:
        os.fdatasync(fd)
    except OSError:
        pass  # put_file's own fsync reports a failing disk
    finally:
        os.close(fd)


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
