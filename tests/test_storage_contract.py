"""One storage contract, run against every backend: the filesystem and S3 (moto's real HTTP server)."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import sample

from app.storage import BlobMissing, Debris, Storage, StorageError, new_key
from app.storage.filesystem import FilesystemStorage

BACKENDS = ["filesystem", "s3"]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on a free local port, speaking the real S3 HTTP protocol."""
    moto_server = pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as mp:
        # Fake credentials, so nothing on this machine can ever reach a real AWS account.
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(name, raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    import boto3

    name = f"chartbox-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def make_s3(endpoint: str, bucket: str, prefix: str = "blobs", **kwargs):
    from app.storage.s3 import S3Storage

    return S3Storage(bucket=bucket, prefix=prefix, endpoint_url=endpoint, region="us-east-1", **kwargs)


@pytest.fixture(params=BACKENDS)
def storage(request, tmp_path) -> Storage:
    if request.param == "filesystem":
        return FilesystemStorage(str(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_endpoint")
    return make_s3(endpoint, request.getfixturevalue("s3_bucket"))


class Exploding(io.RawIOBase):
    """A source stream that fails after `after` bytes (a client that hangs up mid-upload)."""

    def __init__(self, after: int, exc: Exception):
        self.left, self.exc = after, exc

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.left <= 0:
            raise self.exc
        n = min(len(buffer), self.left, 64 * 1024)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


# -- put / open / size / exists --------------------------------------------------------------

def test_put_then_read_back(storage):
    data = sample("letter.pdf")
    key = new_key()
    assert storage.put(key, io.BytesIO(data)) == len(data)
    assert storage.exists(key)
    assert storage.size(key) == len(data)
    with storage.open(key) as fh:
        assert fh.read() == data
    assert list(storage.keys()) == [key]


def test_put_file_stores_a_temp_file(storage, tmp_path):
    """The caller's temp file becomes the blob (moved where the store can, else copied); the
    caller removes what is left, if anything."""
    data = sample("letter.pdf")
    source = tmp_path / "upload-x.tmp"
    source.write_bytes(data)
    assert storage.put_file(new_key(), str(source)) == len(data)
    [key] = storage.keys()
    with storage.open(key) as fh:
        assert fh.read() == data
    assert list(storage.debris()) == []


def test_put_file_moves_on_the_same_filesystem_and_copies_across(tmp_path):
    root = tmp_path / "blobs"
    store = FilesystemStorage(str(root))
    beside = tmp_path / "upload-a.tmp"
    beside.write_bytes(b"moved, not copied")
    inode = beside.stat().st_ino
    store.put_file("ab/moved", str(beside))
    assert not beside.exists() and (root / "ab" / "moved").stat().st_ino == inode
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to cross")
    with tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="upload-", suffix=".tmp") as elsewhere:
        elsewhere.write(b"copied across filesystems")
        elsewhere.flush()
        assert store.put_file("ab/copied", elsewhere.name) == 25  # EXDEV: copied, the source stays
        assert (root / "ab" / "copied").read_bytes() == b"copied across filesystems"
    assert list(store.debris()) == []


def test_put_file_into_an_unwritable_store_is_a_storage_error(tmp_path):
    root = tmp_path / "blobs"
    store = FilesystemStorage(str(root))
    root.rmdir()
    root.write_text("not a folder")
    source = tmp_path / "upload-b.tmp"
    source.write_bytes(b"kept for the caller to remove")
    with pytest.raises(StorageError):
        store.put_file(new_key(), str(source))
    assert source.read_bytes() == b"kept for the caller to remove"


def test_put_empty_blob(storage):
    key = new_key()
    assert storage.put(key, io.BytesIO(b"")) == 0
    assert storage.size(key) == 0
    with storage.open(key) as fh:
        assert fh.read() == b""


def test_put_replaces_whole_object(storage):
    key = new_key()
    storage.put(key, io.BytesIO(b"a" * 1000))
    storage.put(key, io.BytesIO(b"short"))
    with storage.open(key) as fh:
        assert fh.read() == b"short"
    assert storage.size(key) == 5


def test_large_blob_streams_in_parts(storage):
    """Bigger than one S3 multipart part: the pieces come back in order, byte for byte."""
    size = 9 * 1024 * 1024 + 123
    data = (hashlib.sha256(b"seed").digest() * (size // 32 + 1))[:size]
    key = new_key()
    assert storage.put(key, io.BytesIO(data)) == size
    assert storage.size(key) == size
    digest = hashlib.sha256()
    with storage.open(key) as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("after", [10, 9 * 1024 * 1024], ids=["small", "after-first-part"])
def test_failed_put_leaves_nothing(storage, after):
    key = new_key()
    with pytest.raises(StorageError):
        storage.put(key, Exploding(after, OSError("client went away")))
    assert not storage.exists(key)
    assert list(storage.keys()) == []


def test_failed_put_keeps_previous_object(storage):
    key = new_key()
    storage.put(key, io.BytesIO(b"original"))
    with pytest.raises(StorageError):
        storage.put(key, Exploding(100, OSError("boom")))
    with storage.open(key) as fh:
        assert fh.read() == b"original"


def test_non_storage_errors_from_the_source_propagate_unchanged(storage):
    """A service's own error raised while reading (e.g. a size limit) is not disguised."""
    key = new_key()
    with pytest.raises(KeyboardInterrupt):
        storage.put(key, Exploding(10, KeyboardInterrupt()))
    assert not storage.exists(key)


def test_open_is_seekable_for_ranges(storage):
    data = bytes(range(256)) * 64  # 16 KiB of known bytes
    key = new_key()
    storage.put(key, io.BytesIO(data))
    with storage.open(key) as fh:
        assert fh.seekable() and fh.readable()
        fh.seek(1000)
        assert fh.tell() == 1000
        assert fh.read(10) == data[1000:1010]
        fh.seek(-16, os.SEEK_END)
        assert fh.read() == data[-16:]
        fh.seek(5)
        fh.seek(7, os.SEEK_CUR)
        assert fh.read(3) == data[12:15]
        fh.seek(len(data) + 10)
        assert fh.read(5) == b""
        fh.seek(0)
        assert fh.read() == data


def test_missing_key(storage):
    key = new_key()
    with pytest.raises(BlobMissing):
        storage.open(key)
    with pytest.raises(BlobMissing):
        storage.size(key)
    assert issubclass(BlobMissing, StorageError)
    assert not storage.exists(key)
    storage.delete(key)  # not an error


def test_delete(storage):
    key, other = new_key(), new_key()
    storage.put(key, io.BytesIO(b"one"))
    storage.put(other, io.BytesIO(b"two"))
    storage.delete(key)
    assert not storage.exists(key)
    assert storage.exists(other)
    assert list(storage.keys()) == [other]


def test_keys_by_prefix(storage):
    made = sorted(new_key() for _ in range(5))
    for key in made:
        storage.put(key, io.BytesIO(key.encode()))
    rendition = f"renditions/{made[0][:2]}/{uuid.uuid4()}/10x10.png"
    storage.put(rendition, io.BytesIO(b"png"))
    assert sorted(storage.keys()) == sorted([*made, rendition])
    assert list(storage.keys("renditions/")) == [rendition]
    assert sorted(storage.keys(made[1][:2] + "/")) == sorted(k for k in made if k[:2] == made[1][:2])
    assert list(storage.keys("zz-nothing/")) == []


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a//b", "UPPER/case", "", "a/../../b",
                                 "with space", "x" * 201, "\u00e9/x", ".hidden/x"])
def test_rejects_keys_that_could_escape(storage, key):
    with pytest.raises(StorageError):
        storage.put(key, io.BytesIO(b"x"))
    with pytest.raises(StorageError):
        storage.open(key)
    assert list(storage.keys()) == []


# -- stat, and the partial writes a crash leaves (debris) ---------------------------------------

def recent(when: datetime) -> bool:
    return when.tzinfo is not None and abs(datetime.now(UTC) - when) < timedelta(minutes=2)


def test_stat_gives_size_and_modified_time(storage):
    key = new_key()
    storage.put(key, io.BytesIO(b"x" * 1234))
    info = storage.stat(key)
    assert info.size == 1234 == storage.size(key)
    assert recent(info.modified)
    with pytest.raises(BlobMissing):
        storage.stat(new_key())


def test_entries_list_keys_with_size_and_time_in_one_pass(storage):
    """What sizing the rendition cache reads: every key under a prefix with its size and time,
    nothing outside the prefix, no partial write, and the same sizes stat gives."""
    owner = uuid.uuid4()
    mine = {f"renditions/{str(owner)[:2]}/{owner}/{side}x{side}.png": b"p" * side for side in (128, 320, 2048)}
    other = f"renditions/{str(owner)[:2]}/{uuid.uuid4()}/128x128.png"
    original = new_key()
    for key, data in [*mine.items(), (other, b"o" * 7), (original, b"x" * 99)]:
        storage.put(key, io.BytesIO(data))
    listed = dict(storage.entries(f"renditions/{str(owner)[:2]}/{owner}/"))
    assert {k: v.size for k, v in listed.items()} == {k: len(v) for k, v in mine.items()}
    assert all(recent(info.modified) and info == storage.stat(key) for key, info in listed.items())
    everything = dict(storage.entries("renditions/"))
    assert set(everything) == {*mine, other}
    assert set(dict(storage.entries())) == {*mine, other, original}
    assert list(storage.entries("zz-nothing/")) == []
    storage.delete(other)
    assert other not in dict(storage.entries("renditions/"))


def test_entries_skip_partial_writes(tmp_path):
    store = FilesystemStorage(str(tmp_path / "store"))
    store.put("renditions/ab/abc/128x128.png", io.BytesIO(b"png"))
    (tmp_path / "store" / "renditions" / "ab" / "abc" / ".xyz.part").write_bytes(b"half")
    assert [k for k, _ in store.entries("renditions/")] == ["renditions/ab/abc/128x128.png"]


@pytest.mark.parametrize("after", [10, 9 * 1024 * 1024], ids=["small", "after-first-part"])
def test_puts_leave_no_debris(storage, after):
    storage.put(new_key(), io.BytesIO(b"x" * after))
    with pytest.raises(StorageError):
        storage.put(new_key(), Exploding(after, OSError("client went away")))
    assert list(storage.debris()) == []


class Stalling(io.RawIOBase):
    """A source that gives `first` bytes, then stalls until released (a worker mid-upload)."""

    def __init__(self, first: int):
        self.left, self.stalled, self.release = first, threading.Event(), threading.Event()

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.left <= 0:
            self.stalled.set()
            assert self.release.wait(30), "never released"
            return 0
        n = min(len(buffer), self.left, 1024 * 1024)
        buffer[:n] = b"y" * n
        self.left -= n
        return n


def test_a_put_in_progress_is_debris_and_removing_it_fails_the_put(storage):
    """What `put` really leaves while it runs shows in `debris` (never in `keys`); removing it
    makes that put fail cleanly instead of completing a damaged blob."""
    key, source, outcome = new_key(), Stalling(9 * 1024 * 1024), {}

    def put():
        try:
            outcome["written"] = storage.put(key, source)
        except StorageError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=put)
    worker.start()
    try:
        assert source.stalled.wait(30)
        [item] = list(storage.debris())
        assert isinstance(item, Debris) and 0 < item.size <= 9 * 1024 * 1024
        assert recent(item.modified)
        assert list(storage.keys()) == [] and not storage.exists(key)
        storage.remove_debris(item)
        storage.remove_debris(item)  # already gone: not an error
        assert list(storage.debris()) == []
    finally:
        source.release.set()
        worker.join(30)
    assert "error" in outcome, outcome
    assert not storage.exists(key) and list(storage.keys()) == [] and list(storage.debris()) == []


def abandon_put(storage: Storage, key: str, data: bytes) -> None:
    """Leave what a writer killed mid-`put` leaves, the way each backend's put starts one."""
    if isinstance(storage, FilesystemStorage):
        folder = Path(storage.root) / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        fd, _ = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return
    name = storage.prefix + key
    upload = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=name)["UploadId"]
    storage.client.upload_part(Bucket=storage.bucket, Key=name, UploadId=upload, PartNumber=1, Body=data)


def test_an_abandoned_put_is_debris_until_removed(storage):
    key, other = new_key(), new_key()
    storage.put(other, io.BytesIO(b"kept"))
    abandon_put(storage, key, b"z" * 4321)
    [item] = list(storage.debris())
    assert item.size == 4321 and recent(item.modified)
    assert key[:2] in item.ref
    assert list(storage.keys()) == [other] and not storage.exists(key)
    storage.remove_debris(item)
    assert list(storage.debris()) == []
    assert list(storage.keys()) == [other]  # only the debris went


def test_remove_debris_refuses_what_it_did_not_list(storage):
    for handle in [("../../etc/passwd",), ("ab/real-blob",), (), ("elsewhere/x", "upload-id")]:
        with pytest.raises(StorageError):
            storage.remove_debris(Debris("forged", 0, datetime.now(UTC), handle))


# -- backend specifics ---------------------------------------------------------------------------

def test_filesystem_hides_partial_files(tmp_path):
    store = FilesystemStorage(str(tmp_path / "store"))
    key = new_key()
    folder = tmp_path / "store" / key[:2]
    folder.mkdir(parents=True)
    (folder / ".abc.part").write_bytes(b"partial")
    assert list(store.keys()) == []
    assert not store.exists(key)
    assert [(d.ref, d.size) for d in store.debris()] == [(f"{key[:2]}/.abc.part", 7)]


def test_s3_debris_keeps_prefixes_apart(s3_endpoint, s3_bucket):
    store = make_s3(s3_endpoint, s3_bucket, prefix="one")
    neighbour = make_s3(s3_endpoint, s3_bucket, prefix="two")
    abandon_put(neighbour, new_key(), b"theirs")
    assert list(store.debris()) == []
    [theirs] = list(neighbour.debris())
    with pytest.raises(StorageError):
        store.remove_debris(theirs)  # not under this store's prefix
    assert len(list(neighbour.debris())) == 1


def test_filesystem_unusable_root_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError):
        FilesystemStorage(str(blocker / "store"))


def test_s3_lists_past_one_page_and_keeps_prefixes_apart(s3_endpoint, s3_bucket):
    store = make_s3(s3_endpoint, s3_bucket, prefix="one", list_page_size=2)
    neighbour = make_s3(s3_endpoint, s3_bucket, prefix="two")
    made = sorted(new_key() for _ in range(5))
    for key in made:
        store.put(key, io.BytesIO(b"x"))
    neighbour.put(new_key(), io.BytesIO(b"y"))
    assert sorted(store.keys()) == made
    assert len(list(neighbour.keys())) == 1


def test_s3_missing_bucket_is_a_storage_error(s3_endpoint):
    store = make_s3(s3_endpoint, f"absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageError):
        store.put(new_key(), io.BytesIO(b"x"))
    with pytest.raises(StorageError):
        list(store.keys())


def test_s3_unreachable_endpoint_is_a_storage_error(s3_endpoint):
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = boto3.client("s3", endpoint_url=dead, region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    store = make_s3(dead, "bucket", client=client)
    for call in (lambda: store.put(new_key(), io.BytesIO(b"x")), lambda: store.size(new_key()),
                 lambda: store.exists(new_key()), lambda: list(store.keys()),
                 lambda: store.delete(new_key())):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, BlobMissing)


def test_s3_read_of_vanished_object_is_blob_missing(s3_endpoint, s3_bucket):
    store = make_s3(s3_endpoint, s3_bucket)
    key = new_key()
    store.put(key, io.BytesIO(b"x" * 5000))
    fh = store.open(key)
    store.delete(key)
    with pytest.raises(BlobMissing):
        fh.read()
    fh.close()


# -- the app on S3 ------------------------------------------------------------------------------

@pytest.fixture
def config_overrides(s3_endpoint, s3_bucket) -> dict:
    """Only the app test below uses `app`: it runs on S3."""
    return {"STORAGE_BACKEND": "s3", "S3_BUCKET": s3_bucket, "S3_ENDPOINT_URL": s3_endpoint,
            "S3_REGION": "us-east-1", "S3_PREFIX": "chartbox"}


def test_vsee_upload_and_view_on_s3(app, client, s3_endpoint, s3_bucket, make_user, make_token):
    """STORAGE_BACKEND=s3 end to end: the upload lands in the bucket; the view link streams it."""
    from app.extensions import db
    from app.models import StoredFile

    provider, patient = make_user("provider"), make_user("patient")
    token = make_token(provider)
    data = sample("photo.jpg")
    resp = client.post("/api_v3/files", headers={"X-ApiToken": token},
                       data={"file": (io.BytesIO(data), "photo.jpg"), "meta.target.id": str(patient.id)})
    assert resp.status_code == 200, resp.json
    row = db.session.query(StoredFile).one()
    assert row.storage_backend == "s3"
    store = make_s3(s3_endpoint, s3_bucket, prefix="chartbox")
    assert list(store.keys()) == [row.storage_key]
    local = Path(app.config["STORAGE_ROOT"])
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

    link = resp.json["data"]["fullpath"]
    view = client.get(link)
    assert view.status_code == 200 and view.data == data
    ranged = client.get(link, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.data == data[100:200]
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    small = client.get(link + "&size=64x64")
    assert small.status_code == 200 and small.mimetype == "image/png"
    assert len(list(store.keys("renditions/"))) == 1

    assert client.delete(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": token}).status_code == 200
    assert client.get(link).status_code == 404
