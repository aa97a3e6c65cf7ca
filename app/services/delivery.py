"""How an original file's bytes leave Chartbox, chosen by DOWNLOADS (renditions always stream).

- "stream" (default): this process reads, checks and sends them (viewing.py).
- "x-accel" (filesystem storage behind nginx): the app does everything a streamed view does
  (the link's signature, the access rules, the audit row committed first) and then answers
  with `X-Accel-Redirect: <X_ACCEL_PREFIX><storage key>` and no body; nginx sends the file
  from STORAGE_ROOT (its `internal` location, deploy/nginx-chartbox.conf) and serves Range
  requests itself. Integrity, which streaming checks on the way out, is checked here first:
  - a file up to VERIFY_BEFORE_SEND_BYTES is read and hashed by this process exactly as when
    streaming, and this process sends the checked bytes itself (Range included), so the bytes
    checked are the bytes sent. Measured through nginx, handing it such a file after the hash
    was slower (a 200-byte PNG: 11-15 ms against 8 ms per request) or no faster (1 MiB: 15-16
    ms against 13-18 ms);
  - a larger one is opened, its size compared with the row's, and hashed whole against the
    row's sha256 *before* nginx is told to send it — unless this process hashed the same blob
    (same storage key, device, inode, size and mtime in nanoseconds, same expected sha256)
    within the last OFFLOAD_VERIFIED_FOR seconds (a bounded per-process cache). A mismatch
    answers DamagedFile (503, logged and audited) before any byte is sent: stricter than
    streaming, which can only cut a large transfer short, and Range requests are covered too.
  What x-accel does not check: damage that keeps the inode, size and mtime (a bit flipped on
  the medium, or a write that restores the mtime) within OFFLOAD_VERIFIED_FOR of a successful
  hash (set it to 0 to hash before every offload); and a blob replaced between the hash and
  nginx's open of the path (blobs are never rewritten in place: `put` writes a new file and
  renames it, which the next view sees as a new inode). nginx serves only paths under
  X_ACCEL_PREFIX, which the app builds from keys that pass base.check_key (no `..`, no `//`,
  no leading `/`), inside a location nginx marks `internal` (no client can ask for it).
- "presigned" (S3 storage): the app does the same checks and audit (the detail says
  {"delivered": "presigned"}), compares the object's size with the row's (one HEAD request:
  a missing object answers 404, a wrong size DamagedFile, as when streaming), then redirects
  the client (303) to a presigned GET valid for PRESIGNED_TTL seconds, with the name, type and
  Cache-Control the app would send. The trade: S3 sends the bytes, so this process never sees
  them and does not compare them with the row's sha256; S3's own checksums protect them at
  rest and in transit, but a wrong object of the right size (a bad restore, an overwrite by
  another writer) is served as the file. The hardening headers (nosniff, the sandboxing CSP)
  are not on S3's answer either; it comes from the bucket's own origin, which holds no
  Chartbox page or cookie.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO, NamedTuple, cast
from urllib.parse import quote, urlsplit

from flask import Flask, current_app
from werkzeug.utils import get_content_type

from app.models import StoredFile
from app.services.audit import Origin
from app.services.files import damaged, download_name
from app.storage import StorageError, get_storage
from app.storage.base import check_key

# What a downloaded file's response says to caches, wherever it is sent from.
CACHE_CONTROL = "private, no-store"
_VERIFIED_ENTRIES = 4096  # blobs remembered per process (about 0.5 MB)


class Delivery(StrEnum):
    STREAM = "stream"
    X_ACCEL = "x-accel"
    PRESIGNED = "presigned"


@dataclass(frozen=True)
class Offload:
    """Bytes another server sends: nginx (`target` is the X-Accel-Redirect URI) or S3 (`target`
    is the presigned URL)."""

    via: Delivery
    target: str


def content_disposition(name: str, attachment: bool) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name."""
    kind = "attachment" if attachment else "inline"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def offload_original(row: StoredFile, origin: Origin, attachment: bool = False) -> Offload | None:
    """Hand a live file's original bytes to nginx or S3 as DOWNLOADS says, after the checks that
    mode keeps (module docstring); None when this process sends them itself.

    Args:
        row: the file, already authorised for the caller.
        origin: the request's door and address, for the audit of a damaged blob.
        attachment: a download (Content-Disposition: attachment) rather than inline.
    Raises:
        BlobMissing: the blob is gone (the caller answers 404, as when streaming).
        DamagedFile: its size or sha256 does not match the row (logged and audited).
        StorageError: the storage failed (or could not sign a URL).
    """
    via = Delivery(current_app.config["DOWNLOADS"])
    if via is Delivery.X_ACCEL:
        if row.size <= current_app.config["VERIFY_BEFORE_SEND_BYTES"]:
            return None
        return Offload(via, _verified_accel_path(row, origin))
    if via is Delivery.PRESIGNED:
        return Offload(via, _presigned_url(row, origin, attachment))
    return None


def _verified_accel_path(row: StoredFile, origin: Origin) -> str:
    """X-Accel-Redirect's URI for a blob whose bytes match the row (hashed now, or lately)."""
    key = check_key(row.storage_key)
    with get_storage().open(key) as blob:  # the filesystem's own file: fstat names what was hashed
        identity = blob_identity(row, blob)
        assert identity is not None  # config.py allows x-accel with the filesystem only
        if identity.size != row.size:
            raise damaged(row, origin, f"the blob has {identity.size} bytes, the row says {row.size}")
        if not recently_verified(current_app, identity):
            if hashlib.file_digest(cast(io.BufferedReader, blob), "sha256").hexdigest() != row.sha256:
                raise damaged(row, origin, "sha256 mismatch (checked before x-accel)")
            remember_verified(current_app, identity)
    return current_app.config["X_ACCEL_PREFIX"] + key


class BlobIdentity(NamedTuple):
    """What names an open blob's exact bytes for VerifiedBlobs."""

    key: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    sha256: str  # the row's, that the bytes were hashed against


def blob_identity(row: StoredFile, blob: BinaryIO) -> BlobIdentity | None:
    """The open blob's identity; None for a storage whose blobs are no local file (S3)."""
    try:
        st = os.fstat(blob.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (io.UnsupportedOperation is both)
        return None
    return BlobIdentity(row.storage_key, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, row.sha256)


def recently_verified(app: Flask, identity: BlobIdentity) -> bool:
    """Whether this process hashed that very blob and found it intact within OFFLOAD_VERIFIED_FOR."""
    return _cache(app).fresh(identity, app.config["OFFLOAD_VERIFIED_FOR"])


def remember_verified(app: Flask, identity: BlobIdentity) -> None:
    _cache(app).remember(identity)


def _presigned_url(row: StoredFile, origin: Origin, attachment: bool) -> str:
    from app.storage.s3 import S3Storage  # config.py allows presigned with s3 only

    storage = get_storage()
    if not isinstance(storage, S3Storage):
        raise RuntimeError("DOWNLOADS='presigned' needs the s3 storage backend")
    stored = storage.size(row.storage_key)  # one HEAD: a missing object is BlobMissing
    if stored != row.size:
        raise damaged(row, origin, f"the object has {stored} bytes, the row says {row.size}")
    # The Content-Type Flask would send (text types with their charset).
    media_type = get_content_type(row.media_type, "utf-8")
    return storage.presigned_url(row.storage_key, current_app.config["PRESIGNED_TTL"], media_type,
                                 content_disposition(download_name(row), attachment), CACHE_CONTROL)


class VerifiedBlobs:
    """Blobs this process hashed and found intact lately, least recently used dropped first.

    An entry is the whole BlobIdentity (key, device, inode, size, mtime_ns, expected sha256), so a
    replaced or rewritten blob (a new inode, size or mtime) is never taken for the one hashed.
    """

    def __init__(self, entries: int = _VERIFIED_ENTRIES):
        self._entries = entries
        self._seen: OrderedDict[tuple, float] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, identity: tuple, within: float) -> bool:
        """Whether `identity` was remembered less than `within` seconds ago."""
        with self._lock:
            when = self._seen.get(identity)
            if when is None:
                return False
            if time.monotonic() - when >= within:
                del self._seen[identity]
                return False
            self._seen.move_to_end(identity)
            return True

    def remember(self, identity: tuple) -> None:
        with self._lock:
            self._seen[identity] = time.monotonic()
            self._seen.move_to_end(identity)
            while len(self._seen) > self._entries:
                self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


_CACHE_LOCK = threading.Lock()


def _cache(app: Flask) -> VerifiedBlobs:
    """This app's cache (one per process and app: tests build many apps in one process)."""
    cache = app.extensions.get("chartbox_verified_blobs")
    if cache is None:
        with _CACHE_LOCK:
            cache = app.extensions.setdefault("chartbox_verified_blobs", VerifiedBlobs())
    return cache


def presigned_origin() -> str | None:
    """Where presigned URLs point (scheme://host), for the pages' CSP: their viewer loads
    originals through signed links, which then redirect there. None unless DOWNLOADS is
    "presigned" (or when no URL can be signed: the pages then simply show no original)."""
    app = current_app
    if app.config["DOWNLOADS"] != "presigned":
        return None
    if "chartbox_presigned_origin" not in app.extensions:
        from app.storage.s3 import S3Storage  # config.py allows presigned with s3 only

        try:
            url = cast(S3Storage, get_storage()).presigned_url(check_key("00/csp-probe"), 60)
        except StorageError as exc:
            app.logger.error("cannot sign S3 URLs, the pages will not show originals: %s", exc)
            url = ""
        parts = urlsplit(url)
        app.extensions["chartbox_presigned_origin"] = f"{parts.scheme}://{parts.netloc}" if url else None
    return app.extensions["chartbox_presigned_origin"]
