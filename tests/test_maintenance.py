"""Maintenance that cannot race uploads: debris is listed with size and age, and only removed
past the grace period (ORPHAN_GRACE_HOURS), so a blob whose row is about to commit is never touched."""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import base_config, multipart, sample
from sqlalchemy import select
from test_read_integrity import serving
from test_storage_contract import s3_bucket, s3_endpoint  # noqa: F401 - fixtures used below

from app import create_app
from app.extensions import db
from app.models import StoredFile
from app.models.base import utcnow
from app.services import files, integrity, spool, viewing
from app.services.audit import Origin
from app.services.integrity import DebrisKind
from app.storage import get_storage, new_key

HOURS = 3600


def backdate(path: Path, hours: float) -> None:
    when = time.time() - hours * HOURS
    os.utime(path, (when, when))


@pytest.fixture
def debris(app, make_user, make_file):
    """One of every kind of debris (all fresh), beside live files that must survive cleanup."""
    root, tmp = Path(app.config["STORAGE_ROOT"]), Path(spool.folder())
    patient = make_user("patient", password=None)
    live = make_file(patient, "photo.jpg")
    viewing.open_file(live, Origin.cli(), box=(40, 40)).stream.close()  # a live file's rendition: kept
    trashed = make_file(patient, "scan.png")
    viewing.open_file(trashed, Origin.cli(), box=(40, 40)).stream.close()
    files.delete(patient, Origin.cli(), trashed.public_id)  # in the trash: its blob is needed, its rendition not

    orphan = new_key()
    get_storage().put(orphan, io.BytesIO(b"o" * 100))
    unknown = f"renditions/ab/ab{uuid.uuid4().hex[2:8]}-0000-4000-8000-000000000000/10x10.png"
    get_storage().put(unknown, io.BytesIO(b"r" * 30))
    tmp.mkdir(parents=True, exist_ok=True)
    fd, spooled = tempfile.mkstemp(dir=tmp, prefix="upload-", suffix=".tmp")
    os.write(fd, b"s" * 200)
    os.close(fd)
    (root / "cd").mkdir(exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=root / "cd", prefix=".", suffix=".part")
    os.write(fd, b"p" * 300)
    os.close(fd)
    [trashed_rendition] = [k for k in get_storage().keys("renditions/") if trashed.public_id in k]
    [live_rendition] = [k for k in get_storage().keys("renditions/") if live.public_id in k]
    return {
        "live": live, "trashed": trashed, "live_rendition": root / live_rendition,
        "paths": {
            DebrisKind.ORPHAN: root / orphan, DebrisKind.SPOOL: Path(spooled), DebrisKind.PARTIAL: Path(partial),
            "unknown rendition": root / unknown, "trashed rendition": root / trashed_rendition,
        },
    }


def listed(items) -> dict[str, tuple[str, int]]:
    return {d.ref: (d.kind, d.size) for d in items}


def test_every_kind_of_debris_is_listed_with_its_size_and_age(app, runner, debris):
    paths = debris["paths"]
    found = listed(integrity.find_debris())
    assert found == {
        os.path.relpath(paths[DebrisKind.ORPHAN], app.config["STORAGE_ROOT"]): (DebrisKind.ORPHAN, 100),
        str(paths[DebrisKind.SPOOL]): (DebrisKind.SPOOL, 200),
        os.path.relpath(paths[DebrisKind.PARTIAL], app.config["STORAGE_ROOT"]): (DebrisKind.PARTIAL, 300),
        os.path.relpath(paths["unknown rendition"], app.config["STORAGE_ROOT"]): (DebrisKind.RENDITION, 30),
        os.path.relpath(paths["trashed rendition"], app.config["STORAGE_ROOT"]):
            (DebrisKind.RENDITION, paths["trashed rendition"].stat().st_size),
    }
    result = runner.invoke(args=["files", "check", "--deep"])
    assert result.exit_code == 0, result.output  # debris is not a failure
    out = result.output
    for kind, size in (("orphan blob", 100), ("temp spool file", 200), ("partial write", 300),
                       ("stale rendition", 30)):
        assert any(line.startswith(f"{kind}: ") and f"({size} bytes, 0 min old; younger than 24 h, kept)" in line
                   for line in out.splitlines()), out
    assert "Debris (not a failure): 5 item(s)" in out and "0 older than the 24 h grace period" in out
    assert "OK: 2 files checked deeply, no problems." in out


def test_debris_younger_than_the_grace_period_is_kept(app, runner, debris):
    result = integrity.cleanup()
    assert result.removed == [] and len(result.kept) == 5 and result.grace_hours == 24
    out = runner.invoke(args=["files", "cleanup", "--yes"]).output
    assert "0 debris item(s) removed (0 bytes), 5 kept (younger than 24 h)." in out
    assert all(p.exists() for p in debris["paths"].values())


def test_debris_past_the_grace_period_is_removed_and_the_rest_kept(app, runner, debris):
    paths = debris["paths"]
    for name in (DebrisKind.ORPHAN, DebrisKind.SPOOL, DebrisKind.PARTIAL, "trashed rendition"):
        backdate(paths[name], 25)
    dry = runner.invoke(args=["files", "cleanup", "--dry-run"])
    assert dry.exit_code == 0 and "4 debris item(s) would be removed" in dry.output
    assert all(p.exists() for p in paths.values())
    result = runner.invoke(args=["files", "cleanup", "--yes"])
    assert result.exit_code == 0, result.output
    assert "4 debris item(s) removed (" in result.output and "1 kept (younger than 24 h)." in result.output
    for kind, size in (("orphan blob", 100), ("temp spool file", 200), ("partial write", 300)):
        assert any(line.startswith(f"removed {kind}: ") and f"({size} bytes, 25.0 h old)" in line
                   for line in result.output.splitlines()), result.output
    assert [n for n, p in paths.items() if p.exists()] == ["unknown rendition"]
    # What rows need is untouched: the live file, its rendition, and the trashed file's bytes.
    root = Path(app.config["STORAGE_ROOT"])
    assert (root / debris["live"].storage_key).exists() and debris["live_rendition"].exists()
    assert (root / debris["trashed"].storage_key).exists()
    assert runner.invoke(args=["files", "check", "--deep"]).exit_code == 0
    out = runner.invoke(args=["files", "cleanup", "--grace-hours", "0", "--yes"]).output
    assert "1 debris item(s) removed (30 bytes), 0 kept" in out
    assert "Debris: none." in runner.invoke(args=["files", "check"]).output


def test_the_grace_period_comes_from_the_config(app, debris):
    app.config["ORPHAN_GRACE_HOURS"] = 2
    backdate(debris["paths"][DebrisKind.ORPHAN], 3)
    assert [d.kind for d in integrity.cleanup().removed] == [DebrisKind.ORPHAN]
    later = utcnow() + timedelta(hours=2, minutes=1)  # everything else ages past 2 h
    assert len(integrity.cleanup(now=later).removed) == 4


def test_a_real_spool_file_is_recognised(app):
    """The names spool.spool gives its temp files are the ones the sweep looks for."""
    received = spool.spool(io.BytesIO(b"x" * 1234), 10_000, spool.folder())
    with received:
        [item] = integrity.find_debris()
        assert (item.kind, item.ref, item.size) == (DebrisKind.SPOOL, received.path, 1234)
    assert integrity.find_debris() == []


def test_an_orphan_that_gained_its_row_is_not_removed(app, make_user, make_file, monkeypatch):
    """Re-checked just before removal: listed as an orphan, but a row points at it by now."""
    row = make_file(make_user("patient", password=None), "notes.txt")
    stale = integrity.DebrisItem(DebrisKind.ORPHAN, row.storage_key, row.size, utcnow() - timedelta(days=9))
    monkeypatch.setattr(integrity, "find_debris", lambda: [stale])
    assert integrity.cleanup().removed == []
    assert get_storage().exists(row.storage_key)


# -- S3: the same debris, with incomplete multipart uploads as partial writes --------------------

def test_s3_debris_is_listed_and_removed_past_the_grace_period(tmp_path, s3_endpoint, s3_bucket):
    config = {**base_config(tmp_path), "STORAGE_BACKEND": "s3", "S3_BUCKET": s3_bucket,
              "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": "us-east-1", "S3_PREFIX": "chartbox"}
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        db.create_all()
        storage = get_storage()
        orphan = new_key()
        storage.put(orphan, io.BytesIO(b"o" * 100))
        rendition = f"renditions/ab/ab{uuid.uuid4().hex[2:8]}-0000-4000-8000-000000000000/10x10.png"
        storage.put(rendition, io.BytesIO(b"r" * 30))
        name = storage.prefix + new_key()  # a multipart upload whose writer died
        upload = storage.client.create_multipart_upload(Bucket=s3_bucket, Key=name)["UploadId"]
        storage.client.upload_part(Bucket=s3_bucket, Key=name, UploadId=upload, PartNumber=1, Body=b"p" * 300)

        found = {(d.kind, d.size) for d in integrity.find_debris()}
        assert found == {(DebrisKind.ORPHAN, 100), (DebrisKind.RENDITION, 30), (DebrisKind.PARTIAL, 300)}
        assert integrity.check().ok
        assert integrity.cleanup().removed == []  # all fresh
        later = utcnow() + timedelta(hours=25)
        removed = integrity.cleanup(now=later)
        assert {(d.kind, d.size) for d in removed.removed} == found and removed.failed == []
        assert integrity.find_debris() == []
        assert storage.client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
        db.session.remove()
        db.engine.dispose()


# -- cleanup looping while uploads are in flight ---------------------------------------------------

SAMPLES = ["letter.pdf", "photo.jpg", "scan.png", "notes.txt", "vitals.csv", "referral.docx", "claims.xlsx",
           "xray.png"]
UPLOADERS = 6
SECONDS = 5.0



def test_cleanup_looping_during_uploads_loses_nothing(app, runner, make_user, make_token):
    """≥6 threads upload real files through the API to a live server for ~5 s while
    `files cleanup --yes` loops; every upload answered 200 keeps its row, bytes and checksum."""
    provider, patient = make_user("provider", password=None), make_user("patient", password=None)
    token, target = make_token(provider), str(patient.id)
    root, tmp = Path(app.config["STORAGE_ROOT"]), Path(spool.folder())
    # Old debris planted first: proof that the loop does remove what it should, meanwhile.
    planted_key = new_key()
    get_storage().put(planted_key, io.BytesIO(b"old orphan"))
    tmp.mkdir(parents=True, exist_ok=True)
    planted_spool = tmp / "upload-planted.tmp"
    planted_spool.write_bytes(b"old spool")
    for path in (root / planted_key, planted_spool):
        backdate(path, 48)
    planted = {planted_key, str(planted_spool)}
    db.session.remove()

    answered: list[tuple[str, str, str]] = []  # (file id, sample, fullpath) of every 200
    failures: list[str] = []
    deadline = time.monotonic() + SECONDS

    def upload(host: str, port: int, worker: int) -> None:
        n = worker
        while time.monotonic() < deadline:
            name = SAMPLES[n % len(SAMPLES)]
            n += 1
            body, ctype = multipart({"meta.target.id": target, "meta.category": "user_document"}, name, sample(name))
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                conn.request("POST", "/api_v3/files", body=body,
                             headers={"X-ApiToken": token, "Content-Type": ctype})
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{name}: {exc!r}")
                continue
            finally:
                conn.close()
            if resp.status != 200:
                failures.append(f"{name}: {resp.status} {payload[:200]!r}")
                continue
            data = json.loads(payload)["data"]
            answered.append((data["id"], name, data["fullpath"]))

    removed: list[str] = []
    runs = 0
    with serving(app) as (host, port):
        threads = [threading.Thread(target=upload, args=(host, port, i), name=f"uploader-{i}") for i in range(UPLOADERS)]
        for thread in threads:
            thread.start()
        try:
            while time.monotonic() < deadline:
                result = runner.invoke(args=["files", "cleanup", "--yes"])
                assert result.exit_code == 0, result.output
                removed += [line for line in result.output.splitlines() if line.startswith("removed ")]
                runs += 1
                db.session.remove()  # each run sees the database as a fresh `chartbox` process would
        finally:
            for thread in threads:
                thread.join(60)
        assert not any(t.is_alive() for t in threads)

        assert failures == []
        assert len(answered) >= 30 and runs >= 5, (len(answered), runs)
        # Only the planted debris went; nothing of an upload in flight.
        assert len(removed) == 2 and all(any(ref in line for ref in planted) for line in removed), removed
        # Every upload answered 200 is downloadable, byte for byte, through its fullpath.
        for file_id, name, fullpath in answered:
            url = urlsplit(fullpath)
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                conn.request("GET", f"{url.path}?{url.query}")
                resp = conn.getresponse()
                assert resp.status == 200, (file_id, name)
                assert resp.read() == sample(name), (file_id, name)
                assert resp.headers["ETag"] == f'"{hashlib.sha256(sample(name)).hexdigest()}"'
            finally:
                conn.close()

    rows = {r.public_id: r for r in db.session.scalars(select(StoredFile))}
    assert len(rows) == len(answered)
    for file_id, name, _ in answered:
        row = rows[file_id]
        assert row.sha256 == hashlib.sha256(sample(name)).hexdigest() and (root / row.storage_key).exists()
    check = runner.invoke(args=["files", "check", "--deep"])
    assert check.exit_code == 0, check.output
    assert f"OK: {len(answered)} files checked deeply, no problems." in check.output
