"""Blobs as files under a root folder, written to a temp name, fsynced, then renamed.

The temp name is hidden (`.<random>.part` beside the final file), so a writer killed before
the rename leaves a partial file that `keys` never lists and `debris` does.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, BinaryIO

from app.storage.base import CHUNK, BlobInfo, BlobMissing, Debris, Storage, StorageError, check_key

_TMP_PREFIX, _TMP_SUFFIX = ".", ".part"


def _is_partial(name: str) -> bool:
    return name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)


class FilesystemStorage(Storage):
    name = "filesystem"

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage root {self.root}: {exc}") from exc

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def put(self, key: str, stream: IO[bytes]) -> int:
        path = self._path(key)
        folder = os.path.dirname(path)
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
            written = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            tmp = None
            _fsync_dir(folder)
            return written
        except OSError as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def put_file(self, key: str, path: str) -> int:
        """Move the file in: fsync its bytes, rename it over the key's path, fsync the folder.
        The rename is atomic, so a crash leaves the file either still at `path` (the caller's
        temp folder, swept) or whole at the key. Another filesystem (EXDEV) is copied instead."""
        final = self._path(key)
        folder = os.path.dirname(final)
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            os.replace(path, final)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return super().put_file(key, path)
            raise StorageError(f"cannot write {key}: {exc}") from exc
        _fsync_dir(folder)
        return size

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobMissing(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc

    def size(self, key: str) -> int:
        return self.stat(key).size

    def stat(self, key: str) -> BlobInfo:
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError as exc:
            raise BlobMissing(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot stat {key}: {exc}") from exc
        return BlobInfo(st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            rel = os.path.relpath(folder, self.root)
            for name in sorted(files):
                if _is_partial(name):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    yield key

    def entries(self, prefix: str = "") -> Iterator[tuple[str, BlobInfo]]:
        # Walk only the prefix's folder: sizing renditions/ never visits the originals.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self._path(folder) if folder else self.root
        for here, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                if _is_partial(name):
                    continue
                path = os.path.join(here, name)
                key = os.path.relpath(path, self.root).replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # deleted meanwhile
                    continue
                except OSError as exc:
                    raise StorageError(f"cannot stat {key}: {exc}") from exc
                yield key, BlobInfo(st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def debris(self) -> Iterator[Debris]:
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                if not _is_partial(name):
                    continue
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # its put finished (or failed) meanwhile
                    continue
                except OSError as exc:
                    raise StorageError(f"cannot stat {path}: {exc}") from exc
                rel = os.path.relpath(path, self.root).replace(os.sep, "/")
                yield Debris(rel, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), (rel,))

    def remove_debris(self, item: Debris) -> None:
        rel = item.handle[0] if item.handle else ""
        parts = rel.split("/")
        # Only ever a partial file inside the root, whatever the caller hands in.
        if not rel or not _is_partial(parts[-1]) or any(p in ("", ".", "..") for p in parts) or os.path.isabs(rel):
            raise StorageError(f"not a partial write of this store: {rel!r}")
        try:
            os.unlink(os.path.join(self.root, *parts))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot remove {rel}: {exc}") from exc

    def check(self) -> None:
        # access() answers for this process's user (and sees a read-only mount), without a write.
        if not os.path.isdir(self.root) or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"storage root {self.root} is not a writable folder")

    def clear(self) -> None:
        """Remove everything (tests only)."""
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
