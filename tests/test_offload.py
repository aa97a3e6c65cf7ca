"""Bytes that leave without passing through Python: DOWNLOADS="x-accel" and "presigned".

x-accel (filesystem): the link does every check and writes its audit row, then answers
`X-Accel-Redirect` with no body for a large original (nginx sends it; tests/test_nginx.py runs
the real nginx); small files, renditions and If-Match requests are still sent by the app. A
large blob is hashed before it is handed over, unless this process hashed that very blob
(inode, size, mtime) within OFFLOAD_VERIFIED_FOR. presigned (S3, moto's real HTTP server):
the link answers 303 to a short-lived presigned GET that a plain HTTP client follows.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import base_config, sample
from sqlalchemy import select
from test_storage_contract import make_s3, s3_bucket, s3_endpoint  # noqa: F401 (fixtures)

from app import create_app
from app.extensions import db
from app.models import AuditEvent, Channel, StoredFile
from app.services import delivery, files
from app.services.audit import Origin
from app.services.delivery import VerifiedBlobs
from app.urls import view_url

LIMIT = 20_000  # VERIFY_BEFORE_SEND_BYTES here: the samples are below it, BIG far above
BIG = ("".join(f"{i:08d},reading,{i * 7 % 1000:03d}\n" for i in range(40_000))).encode()  # 840 KB of text
DAMAGED = {"code": 503, "message": "The stored copy of this file is damaged; an administrator has been told."}


@pytest.fixture
def config_overrides() -> dict:
    return {"DOWNLOADS": "x-accel", "VERIFY_BEFORE_SEND_BYTES": LIMIT}


@pytest.fixture
def patient(make_user):
    return make_user("patient")


@pytest.fixture
def large(patient) -> StoredFile:
    return files.upload(patient, Origin(Channel.CLI), io.BytesIO(BIG), "readings.csv")


@pytest.fixture
def small(patient, make_file) -> StoredFile:
    row = make_file(patient, "photo.jpg")
    assert row.size <= LIMIT
    return row


def path_of(row: StoredFile, **extra) -> str:
    url = urlsplit(view_url(row, **extra))
    return f"{url.path}?{url.query}"


def blob(app, row: StoredFile) -> Path:
    return Path(app.config["STORAGE_ROOT"]) / row.storage_key


def flip_a_byte(path: Path, at: int, keep_mtime: bool = False) -> None:
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    if keep_mtime:  # damage that leaves size, inode and mtime as they were (bit rot)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000))  # a write, even within a tick


def views(row: StoredFile) -> list[dict]:
    db.session.expire_all()
    return [e.detail or {} for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.file_id == row.id, AuditEvent.action == "view").order_by(AuditEvent.id))]


@pytest.fixture
def hashes(monkeypatch) -> list[int]:
    """Counts the whole-blob hashes made before an offload."""
    made: list[int] = []
    real = delivery.hashlib.file_digest

    def counting(fileobj, digest):
        made.append(1)
        return real(fileobj, digest)

    monkeypatch.setattr(delivery.hashlib, "file_digest", counting)
    return made


# -- x-accel: what the app answers nginx -------------------------------------------------------

def test_a_large_original_is_handed_to_nginx_with_its_headers(client, large):
    resp = client.get(path_of(large))
    assert resp.status_code == 200 and resp.data == b"" and resp.content_length == 0
    assert resp.headers["X-Accel-Redirect"] == f"/_chartbox_blobs/{large.storage_key}"
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == "inline; filename=\"readings.csv\"; filename*=UTF-8''readings.csv"
    assert resp.headers["ETag"] == f'"{hashlib.sha256(BIG).hexdigest()}"'
    assert resp.headers["Last-Modified"]
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Content-Security-Policy"].endswith("; sandbox")
    assert "Accept-Ranges" not in resp.headers  # nginx says it, for the file it sends
    assert views(large) == [{"size": None, "delivered": "x-accel"}]  # committed before the answer


def test_nginx_answers_ranges_and_the_app_answers_304(client, large):
    ranged = client.get(path_of(large), headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 200 and ranged.data == b"" and "Content-Range" not in ranged.headers
    assert ranged.headers["X-Accel-Redirect"].endswith(large.storage_key)
    head = client.head(path_of(large))
    assert head.status_code == 200 and head.headers["X-Accel-Redirect"].endswith(large.storage_key)
    attached = client.get(path_of(large) + "&download=1")
    assert attached.headers["Content-Disposition"].startswith("attachment; ")
    for conditional in ({"If-None-Match": f'"{large.sha256}"'},
                        {"If-Modified-Since": attached.headers["Last-Modified"]}):
        resp = client.get(path_of(large), headers=conditional)
        assert resp.status_code == 304 and "X-Accel-Redirect" not in resp.headers, conditional
        assert resp.headers["ETag"] == f'"{large.sha256}"'
    assert len(views(large)) == 5  # every use audited, the 304s too (as when streaming)


def test_small_files_renditions_and_if_match_are_sent_by_the_app(client, small, large):
    data = sample("photo.jpg")
    whole = client.get(path_of(small))
    assert whole.status_code == 200 and whole.data == data and "X-Accel-Redirect" not in whole.headers
    ranged = client.get(path_of(small), headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.data == data[10:20]
    thumb = client.get(path_of(small, size="32x32"))
    assert thumb.status_code == 200 and thumb.mimetype == "image/png" and "X-Accel-Redirect" not in thumb.headers
    # nginx would judge If-Match by its own validators, not the sha256: the app streams.
    matched = client.get(path_of(large), headers={"If-Match": '"something else"'})
    assert "X-Accel-Redirect" not in matched.headers and matched.data in (BIG, b"")
    assert [d.get("delivered") for d in views(small)] == [None, None, None]
    assert views(large)[-1].get("delivered") is None


# -- x-accel: integrity ------------------------------------------------------------------------

def test_a_damaged_small_file_is_refused_before_anything(app, client, small):
    flip_a_byte(blob(app, small), 5)
    resp = client.get(path_of(small))
    assert resp.status_code == 503 and resp.json == DAMAGED and "X-Accel-Redirect" not in resp.headers
    assert [d["integrity"] for d in views(small)] == ["mismatch"]


@pytest.mark.parametrize("damage", ["flipped", "truncated", "grown"])
def test_a_damaged_large_blob_is_never_handed_to_nginx(app, client, large, hashes, damage):
    path = blob(app, large)
    if damage == "flipped":
        flip_a_byte(path, len(BIG) - 1)
    else:
        path.write_bytes(BIG[:-1] if damage == "truncated" else BIG + b"x")
    resp = client.get(path_of(large), headers={"Range": "bytes=0-99"})  # a part is checked whole too
    assert resp.status_code == 503 and resp.json == DAMAGED and "X-Accel-Redirect" not in resp.headers
    [event] = views(large)
    assert event["integrity"] == "mismatch"
    assert len(hashes) == (1 if damage == "flipped" else 0)  # a wrong size needs no hash


def test_a_blob_hashed_lately_is_not_hashed_again_until_it_changes(app, client, large, hashes):
    for _ in range(3):
        assert client.get(path_of(large)).headers["X-Accel-Redirect"]
    assert len(hashes) == 1
    flip_a_byte(blob(app, large), 1000)  # an ordinary write: the mtime moves
    assert client.get(path_of(large)).status_code == 503
    assert len(hashes) == 2


def test_the_verified_interval_and_what_it_does_not_see(app, client, large, hashes):
    """Damage that keeps inode, size and mtime goes unseen within OFFLOAD_VERIFIED_FOR (the
    documented limit); past the interval, or with 0, the blob is hashed again and refused."""
    assert client.get(path_of(large)).headers["X-Accel-Redirect"]
    flip_a_byte(blob(app, large), 1000, keep_mtime=True)
    assert client.get(path_of(large)).headers["X-Accel-Redirect"]  # trusted: hashed a moment ago
    assert len(hashes) == 1
    app.config["OFFLOAD_VERIFIED_FOR"] = 0
    resp = client.get(path_of(large))
    assert resp.status_code == 503 and resp.json == DAMAGED and len(hashes) == 2


def test_a_replaced_blob_is_a_new_identity(app, client, large, hashes):
    assert client.get(path_of(large)).headers["X-Accel-Redirect"]
    path = blob(app, large)
    before = path.stat()
    replacement = path.with_name(".replacement.part")
    replacement.write_bytes(BIG[:-1] + b"?")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)  # same size and mtime, another inode
    assert client.get(path_of(large)).status_code == 503 and len(hashes) == 2


def test_the_verified_cache_is_bounded_and_expires(monkeypatch):
    cache = VerifiedBlobs(entries=2)
    now = [1000.0]
    monkeypatch.setattr(delivery.time, "monotonic", lambda: now[0])
    for n in range(3):
        cache.remember(("key", n))
    assert len(cache) == 2 and not cache.fresh(("key", 0), 60)  # the oldest went first
    assert cache.fresh(("key", 1), 60) and cache.fresh(("key", 2), 60)
    now[0] += 60
    assert not cache.fresh(("key", 2), 60) and len(cache) == 1


def test_a_missing_blob_is_404_and_a_key_outside_the_root_is_never_offloaded(app, client, large):
    blob(app, large).unlink()
    resp = client.get(path_of(large))
    assert resp.status_code == 404 and "X-Accel-Redirect" not in resp.headers
    large.storage_key = "../../etc/passwd"
    db.session.commit()
    resp = client.get(path_of(large))
    assert resp.status_code == 503 and "X-Accel-Redirect" not in resp.headers and b"root:" not in resp.data


@pytest.mark.parametrize(("settings", "message"), [
    ({"DOWNLOADS": "nginx"}, "DOWNLOADS must be"),
    ({"DOWNLOADS": "x-accel", "STORAGE_BACKEND": "s3", "S3_BUCKET": "b"}, "needs STORAGE_BACKEND='filesystem'"),
    ({"DOWNLOADS": "presigned"}, "needs STORAGE_BACKEND='s3'"),
    ({"DOWNLOADS": "x-accel", "X_ACCEL_PREFIX": "/blobs"}, "X_ACCEL_PREFIX must"),
    ({"X_ACCEL_PREFIX": "/a b/"}, "X_ACCEL_PREFIX must"),
    ({"PRESIGNED_TTL": 0}, "PRESIGNED_TTL must"),
    ({"PRESIGNED_TTL": 8 * 24 * 3600}, "PRESIGNED_TTL must"),
    ({"OFFLOAD_VERIFIED_FOR": -1}, "OFFLOAD_VERIFIED_FOR must"),
])
def test_startup_refuses_a_delivery_the_storage_cannot_do(tmp_path, settings, message):
    with pytest.raises(RuntimeError, match=re.escape(message)):
        create_app({**base_config(tmp_path), **settings}, instance_path=str(tmp_path / "instance"))


# -- presigned: S3 sends the bytes ---------------------------------------------------------------

@pytest.fixture
def on_s3(s3_endpoint, s3_bucket, tmp_path):
    """An app on moto's S3 with DOWNLOADS="presigned" (its own app: the module's is x-accel)."""
    app = create_app({**base_config(tmp_path), "DOWNLOADS": "presigned", "STORAGE_BACKEND": "s3",
                      "S3_BUCKET": s3_bucket, "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": "us-east-1",
                      "S3_PREFIX": "chartbox"}, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def s3_client(on_s3):
    client = on_s3.test_client()
    return client


@pytest.fixture
def s3_patient(on_s3):
    from app.models import Role
    from app.services import accounts

    clinic = accounts.create_account("clinic-s3", "Clinic S3")
    return accounts.create_user(clinic, Role.PATIENT, "pat.s3", "Pat S3", "pat@example.org", "correct horse battery")


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP client, as a browser follows the redirect (no credentials of its own)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_a_presigned_redirect_gets_the_exact_bytes_with_the_files_headers(on_s3, s3_client, s3_patient):
    row = files.upload(s3_patient, Origin(Channel.CLI), io.BytesIO(BIG), "Résultats.csv")
    before = int(time.time())
    resp = s3_client.get(path_of(row) + "&download=1")
    assert resp.status_code == 303 and resp.data == b""
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Referrer-Policy"] == "no-referrer"
    location = resp.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    # moto does not enforce the expiry (a stale URL still works there): the URL must say it.
    assert query["X-Amz-Expires"] == ["60"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    assert before - 5 <= signed_at <= time.time() + 5

    status, headers, body = fetch(location)
    assert status == 200 and body == BIG
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"] == (
        "attachment; filename=\"R_sultats.csv\"; filename*=UTF-8''R%C3%A9sultats.csv")
    assert headers["cache-control"] == "private, no-store"
    status, headers, body = fetch(location, {"Range": "bytes=1000-1999"})
    assert status == 206 and body == BIG[1000:2000] and headers["content-range"] == f"bytes 1000-1999/{len(BIG)}"
    assert views(row) == [{"size": None, "delivered": "presigned"}]


def test_presigned_head_304_and_renditions_are_answered_by_the_app(on_s3, s3_client, s3_patient):
    photo = sample("photo.jpg")
    row = files.upload(s3_patient, Origin(Channel.CLI), io.BytesIO(photo), "photo.jpg")
    head = s3_client.head(path_of(row))
    assert head.status_code == 200 and "Location" not in head.headers
    assert head.content_length == len(photo) and head.headers["X-Content-Type-Options"] == "nosniff"
    not_modified = s3_client.get(path_of(row), headers={"If-None-Match": f'"{row.sha256}"'})
    assert not_modified.status_code == 304 and "Location" not in not_modified.headers
    thumb = s3_client.get(path_of(row, size="32x32"))
    assert thumb.status_code == 200 and thumb.mimetype == "image/png" and thumb.data[:4] == b"\x89PNG"
    assert [d.get("delivered") for d in views(row)] == ["presigned", "presigned", None]


def test_presigned_checks_what_it_can_and_trades_the_rest(on_s3, s3_client, s3_patient, s3_endpoint, s3_bucket):
    """A missing object is 404 and one of the wrong size DamagedFile, before any URL is made.
    The same size with other bytes is the trade: S3 sends them, unchecked by the app."""
    store = make_s3(s3_endpoint, s3_bucket, prefix="chartbox")
    row = files.upload(s3_patient, Origin(Channel.CLI), io.BytesIO(BIG), "readings.csv")
    store.put(row.storage_key, io.BytesIO(BIG + b"x"))
    resp = s3_client.get(path_of(row))
    assert resp.status_code == 503 and resp.json == DAMAGED and "Location" not in resp.headers
    assert views(row)[-1]["integrity"] == "mismatch"

    store.put(row.storage_key, io.BytesIO(b"?" + BIG[1:]))
    resp = s3_client.get(path_of(row))
    assert resp.status_code == 303 and fetch(resp.headers["Location"])[2] == b"?" + BIG[1:]

    store.delete(row.storage_key)
    resp = s3_client.get(path_of(row))
    assert resp.status_code == 404 and "Location" not in resp.headers


def test_pages_let_the_viewer_load_originals_from_the_bucket_in_presigned_mode(on_s3, s3_patient, s3_endpoint):
    from conftest import PageClient

    page = PageClient(on_s3, on_s3.response_class, use_cookies=True).sign_in(s3_patient)
    csp = page.get("/documents").headers["Content-Security-Policy"]
    origin = s3_endpoint.rstrip("/")
    assert f"img-src 'self' data: {origin}" in csp and f"frame-src 'self' {origin}" in csp
    assert "script-src 'self';" in csp  # only where the bytes come from widens, never scripts


def test_pages_keep_their_own_origin_only_when_the_app_sends_the_bytes(client, make_page_client, make_user):
    csp = make_page_client(make_user()).get("/documents").headers["Content-Security-Policy"]
    assert "img-src 'self' data:;" in csp and "frame-src 'self';" in csp
