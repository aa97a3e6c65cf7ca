"""Blobs as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, moto in tests).

`put` is atomic by S3's own semantics: an object becomes visible only when its upload
completes (single PUT or multipart complete), so readers never see a partial blob; a failed
multipart upload is aborted. A writer killed mid-upload leaves an incomplete multipart
upload (parts that cost storage but are no object); `debris` lists those and `remove_debris`
aborts them. `open` returns a seekable reader that fetches ranges on demand,
so Range responses and re-hashing never load a whole object into memory.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import IO, BinaryIO

from app.storage.base import CHUNK, BlobInfo, BlobMissing, Debris, Storage, StorageError, check_key

_PART = 8 * CHUNK  # multipart part size (S3 needs >= 5 MiB for all but the last part)
_READ_BUFFER = CHUNK
_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchObject"}


def _imports():
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:  # the [s3] extra is not installed
        raise StorageError("STORAGE_BACKEND=s3 needs boto3: pip install 'chartbox[s3]'") from exc
    return boto3, Config, BotoCoreError, ClientError


def _is_missing(exc: Exception) -> bool:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code")) in _MISSING_CODES


class S3Storage(Storage):
    name = "s3"

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, client=None, list_page_size: int = 1000):
        boto3, Config, BotoCoreError, ClientError = _imports()
        self._errors = (BotoCoreError, ClientError)
        self.bucket = bucket
        self.list_page_size = list_page_size
        self.prefix = (prefix or "").strip("/")
        if self.prefix:
            self.prefix += "/"
        try:  # s3v4: boto would presign some endpoints with SigV2, which AWS is retiring
            self.client = client or boto3.client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, signature_version="s3v4",
                              connect_timeout=5, read_timeout=60),
            )
        except self._errors as exc:
            raise StorageError(f"cannot configure the S3 client: {exc}") from exc

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, what: str, key: str, exc: Exception) -> StorageError:
        if _is_missing(exc):
            return BlobMissing(key)
        return StorageError(f"cannot {what} {key} in s3://{self.bucket}: {exc}")

    def put(self, key: str, stream: IO[bytes]) -> int:
        name = self._object(key)
        try:
            first = _read_full(stream, _PART)
            if len(first) < _PART:  # small: one PUT, atomic by itself
                self.client.put_object(Bucket=self.bucket, Key=name, Body=first)
                return len(first)
            return self._put_multipart(name, first, stream)
        except (*self._errors, OSError) as exc:  # OSError: the source stream failed
            raise self._fail("write", key, exc) from exc

    def _put_multipart(self, name: str, first: bytes, stream: IO[bytes]) -> int:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
        try:
            parts, written, chunk, number = [], 0, first, 1
            while chunk:
                done = self.client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                               PartNumber=number, Body=chunk)
                parts.append({"ETag": done["ETag"], "PartNumber": number})
                written += len(chunk)
                number += 1
                chunk = _read_full(stream, _PART)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts})
            return written
        except BaseException:
            # Nothing was made visible; drop the parts so they do not linger (and cost).
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            except self._errors:
                pass
            raise

    def open(self, key: str) -> BinaryIO:
        size = self.size(key)
        raw = _RangeReader(self, key, self._object(key), size)
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)

    def presigned_url(self, key: str, ttl: int, content_type: str | None = None,
                      content_disposition: str | None = None, cache_control: str | None = None) -> str:
        """A URL that GETs `key` without credentials for `ttl` seconds (DOWNLOADS="presigned").

        Signed here with the client's credentials (SigV4; no request is sent, so it says nothing
        about whether the object exists). S3 answers it with the given Content-Type,
        Content-Disposition and Cache-Control in place of the stored object's. Whoever holds the
        URL can fetch the object (Range included) until it expires; it only works for GET.
        Raises StorageError when it cannot be signed (no credentials).
        """
        params = {"Bucket": self.bucket, "Key": self._object(key)}
        for name, value in (("ResponseContentType", content_type), ("ResponseContentDisposition", content_disposition),
                            ("ResponseCacheControl", cache_control)):
            if value:
                params[name] = value
        try:
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(ttl))
        except self._errors as exc:
            raise StorageError(f"cannot sign a URL for {key} in s3://{self.bucket}: {exc}") from exc

    def size(self, key: str) -> int:
        return self.stat(key).size

    def stat(self, key: str) -> BlobInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except self._errors as exc:
            raise self._fail("stat", key, exc) from exc
        return BlobInfo(int(head["ContentLength"]), head["LastModified"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobMissing:
            return False
        return True

    def delete(self, key: str) -> None:
        try:  # S3 deletes of absent keys succeed, as the contract asks
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        except self._errors as exc:
            if not _is_missing(exc):
                raise self._fail("delete", key, exc) from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        for item in self._listing(prefix):
            yield item["Key"][len(self.prefix):]

    def entries(self, prefix: str = "") -> Iterator[tuple[str, BlobInfo]]:
        for item in self._listing(prefix):  # the listing carries size and time: no HEAD per key
            yield item["Key"][len(self.prefix):], BlobInfo(int(item["Size"]), item["LastModified"])

    def _listing(self, prefix: str) -> Iterator[dict]:
        token = None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self.prefix + prefix,
                      "MaxKeys": self.list_page_size}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self.client.list_objects_v2(**kwargs)
            except self._errors as exc:
                raise StorageError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: {exc}") from exc
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def debris(self) -> Iterator[Debris]:
        markers: dict[str, str] = {}
        while True:
            try:
                page = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix, **markers)
            except self._errors as exc:
                raise StorageError(
                    f"cannot list the multipart uploads of s3://{self.bucket}/{self.prefix}: {exc}") from exc
            for upload in page.get("Uploads", []):
                name, upload_id = upload["Key"], upload["UploadId"]
                size, last = self._parts(name, upload_id)
                if size is None:  # completed or aborted meanwhile
                    continue
                # The last part's time, like a file's mtime: an upload still sending parts is young.
                modified = max(upload["Initiated"], last) if last else upload["Initiated"]
                key = name[len(self.prefix):]
                yield Debris(f"{key} (multipart upload {upload_id})", size, modified, (name, upload_id))
            if not page.get("IsTruncated"):
                return
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    def _parts(self, name: str, upload_id: str) -> tuple[int | None, datetime | None]:
        """Bytes uploaded so far and the newest part's time (None, None: no such upload)."""
        size, last, marker = 0, None, 0
        while True:
            try:
                page = self.client.list_parts(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                              PartNumberMarker=marker)
            except self._errors as exc:
                if _error_code(exc) == "NoSuchUpload":
                    return None, None
                raise StorageError(f"cannot list the parts of {name} in s3://{self.bucket}: {exc}") from exc
            for part in page.get("Parts", []):
                size += int(part["Size"])
                last = part["LastModified"] if last is None else max(last, part["LastModified"])
            if not page.get("IsTruncated"):
                return size, last
            marker = int(page["NextPartNumberMarker"])

    def remove_debris(self, item: Debris) -> None:
        if len(item.handle) != 2 or not item.handle[0].startswith(self.prefix):
            raise StorageError(f"not a multipart upload of this store: {item.ref!r}")
        name, upload_id = item.handle
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except self._errors as exc:
            if _error_code(exc) != "NoSuchUpload":
                raise StorageError(f"cannot abort {item.ref} in s3://{self.bucket}: {exc}") from exc

    def check(self) -> None:
        # A one-key listing of our prefix: the endpoint, the credentials, the bucket and the
        # list permission `files check` needs, in one request (a bucket policy scoped to the
        # prefix allows it where HeadBucket may be refused).
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except self._errors as exc:
            raise StorageError(f"cannot reach s3://{self.bucket}/{self.prefix}: {exc}") from exc


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code"))


def _read_full(stream: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes; short only at the end of the stream."""
    parts, have = [], 0
    while have < size:
        chunk = stream.read(size - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


class _RangeReader(io.RawIOBase):
    """A seekable raw file over one object: each read is a ranged GET."""

    def __init__(self, storage: S3Storage, key: str, name: str, size: int):
        self._storage, self._key, self._name, self._size, self._pos = storage, key, name, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        end = self._pos + want - 1
        storage = self._storage
        try:
            body = storage.client.get_object(Bucket=storage.bucket, Key=self._name,
                                             Range=f"bytes={self._pos}-{end}")["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        except storage._errors as exc:
            raise storage._fail("read", self._key, exc) from exc
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n
