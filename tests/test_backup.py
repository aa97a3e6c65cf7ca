"""Backups end to end on real files and real databases: create -> verify -> restore into a fresh
instance, a backup taken while uploads go on, what verify catches, what create and restore
refuse, restoring into S3, and the same round trip on PostgreSQL.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import DATA, base_config, sample, service_unavailable
from sqlalchemy import select
from test_cli import fails, ok
from test_storage_contract import s3_bucket, s3_endpoint  # noqa: F401 - the moto fixtures, reused
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import Account, Category, Role, StoredFile
from app.models.base import utcnow
from app.services import accounts, backup, files, snapshots, viewing
from app.services.audit import Origin
from app.storage import get_storage

SAMPLES = ["letter.pdf", "photo.jpg", "notes.txt", "scan.png", "referral.docx", "vitals.csv"]
PG_URL = os.environ.get("CHARTBOX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: Tests of the SQLite snapshot (database.sqlite3, restored into a second instance's own file);
#: test_postgres_create_verify_restore below is the same round trip through pg_dump/pg_restore.
SQLITE_SNAPSHOT = pytest.mark.sqlite_only("the SQLite snapshot (database.sqlite3 and a second instance's own "
                                          "file); test_postgres_create_verify_restore covers PostgreSQL")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def instance(root: Path, **overrides) -> Iterator:
    """A second Chartbox instance with its own database and storage under `root`, in its app context."""
    app = create_app({**base_config(root), **overrides}, instance_path=str(root / "instance"))
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def invoke(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def rows() -> list[StoredFile]:
    return list(db.session.scalars(select(StoredFile).order_by(StoredFile.id)))


def assert_every_blob_intact() -> int:
    """Every non-purged row of the current instance has its bytes in storage, with its sha256."""
    storage, checked = get_storage(), 0
    for row in rows():
        if row.purged_at is None:
            with storage.open(row.storage_key) as fh:
                assert sha256(fh.read()) == row.sha256, row.name
            checked += 1
    return checked


def assert_files_check_clean(app) -> None:
    result = invoke(app, "files", "check", "--deep")
    assert result.exit_code == 0 and "OK" in result.output, result.output


def purge(row: StoredFile) -> None:
    """What `files cleanup` does to an old deletion: the bytes go, the row stays with purged_at."""
    get_storage().delete(row.storage_key)
    row.purged_at = utcnow()
    db.session.commit()


@pytest.fixture
def chart(app, make_user, make_token, make_file):
    """A clinic's real files: every sample, one in the trash, one purged, and a cached rendition."""
    provider, patient = make_user("provider", password=None), make_user("patient", password=None)
    live = [make_file(provider, name, patient=patient) for name in SAMPLES]
    trashed = make_file(provider, "insurance-front.jpg", patient=patient)
    files.delete(provider, Origin.cli(), trashed.public_id)
    purged = make_file(provider, "xray.png", patient=patient)
    files.delete(provider, Origin.cli(), purged.public_id)
    purge(purged)
    viewing.open_file(live[1], Origin.cli(), box=(64, 64)).stream.close()  # renditions/… now exists
    assert any(k.startswith("renditions/") for k in get_storage().keys())  # noqa: SIM118 - the contract
    return {"token": make_token(provider), "live": live, "trashed": trashed, "purged": purged}


@pytest.fixture
def made(app, chart, tmp_path) -> Path:
    """A finished backup of the `chart` instance."""
    folder = tmp_path / "backup"
    backup.create_backup(folder)
    return folder


# -- the round trip --------------------------------------------------------------------------------

@SQLITE_SNAPSHOT
def test_create_verify_restore_into_a_fresh_instance(app, runner, chart, tmp_path):
    folder = tmp_path / "backups" / "monday"  # parents are created
    out = ok(runner.invoke(args=["backup", "create", str(folder)]))
    assert out.startswith("OK: backup of the sqlite database in") and "2 user(s), 8 file row(s), 7 blob(s)" in out
    assert sorted(p.name for p in folder.iterdir()) == ["blobs", "database.sqlite3", "manifest.json"]

    manifest = json.loads((folder / "manifest.json").read_text())
    kept = {r.storage_key: r for r in rows() if r.purged_at is None}
    assert chart["purged"].storage_key not in kept and chart["trashed"].storage_key in kept
    assert sorted(b["key"] for b in manifest["blobs"]) == sorted(kept)  # no purged bytes, no renditions
    for blob in manifest["blobs"]:
        data = (folder / "blobs" / blob["key"]).read_bytes()
        assert (blob["size"], blob["sha256"]) == (len(data), sha256(data)) == (kept[blob["key"]].size,
                                                                               kept[blob["key"]].sha256)
    assert not (folder / "blobs" / "renditions").exists()
    assert manifest["format"] == "chartbox-backup" and manifest["format_version"] == 1
    assert manifest["chartbox_version"] == "0.1.0" and manifest["created_at"].endswith("+00:00")
    assert manifest["database"]["kind"] == "sqlite" and manifest["database"]["file"] == "database.sqlite3"
    assert manifest["counts"] == {"accounts": 1, "users": 2, "stored_files": 8, "purged": 1, "blobs": 7,
                                  "bytes": sum(r.size for r in kept.values())}

    out = ok(runner.invoke(args=["backup", "verify", str(folder)]))
    assert out.startswith(f"OK: {folder} (taken {manifest['created_at']}) is intact")

    with instance(tmp_path / "fresh") as fresh:  # no tables, no blobs: a new machine
        out = ok(invoke(fresh, "backup", "restore", str(folder)))
        assert out.startswith(f"Restored {folder}") and "sqlite database and filesystem storage" in out
        assert_files_check_clean(fresh)
        restored = {r.public_id: r for r in rows()}
        assert {(r.public_id, r.storage_key, r.sha256, r.deleted_at is None, r.purged_at is None)
                for r in restored.values()} == {
            (r.public_id, r.storage_key, r.sha256, r.deleted_at is None, r.purged_at is None) for r in chart["live"]
        } | {(chart["trashed"].public_id, chart["trashed"].storage_key, chart["trashed"].sha256, False, True),
             (chart["purged"].public_id, chart["purged"].storage_key, chart["purged"].sha256, False, False)}
        assert assert_every_blob_intact() == 7
        client = fresh.test_client()
        for original in chart["live"]:  # the restored token, signed links and bytes all work
            got = client.get(f"/api_v3/files/{original.public_id}", headers={"X-ApiToken": chart["token"]})
            assert got.status_code == 200, got.json
            view = client.get(got.json["data"]["fullpath"], buffered=True)
            assert view.status_code == 200 and sha256(view.data) == original.sha256 == sha256(sample(original.name))


@SQLITE_SNAPSHOT
def test_restore_into_a_migrated_empty_instance_and_onto_s3(made, chart, tmp_path, s3_endpoint, s3_bucket):
    s3 = {"STORAGE_BACKEND": "s3", "S3_BUCKET": s3_bucket, "S3_ENDPOINT_URL": s3_endpoint,
          "S3_REGION": "us-east-1", "S3_PREFIX": "restored"}
    with instance(tmp_path / "on-s3", **s3) as fresh:
        db.create_all()  # an instance that ran `flask db upgrade` but holds nothing yet
        out = ok(invoke(fresh, "backup", "restore", str(made)))
        assert "into the sqlite database and s3 storage" in out
        assert_files_check_clean(fresh)
        assert assert_every_blob_intact() == 7
        assert sorted(get_storage().keys()) == sorted(r.storage_key for r in rows() if r.purged_at is None)


def test_parse_copy_reads_the_text_format():
    script = ("SET x = 1;\nCOPY s.\"stored_files\" (id, name, purged_at) FROM stdin;\n"
              "1\ttab\\there\\nnew line \\\\ done\t\\N\n2\t\\x41\\101\t2026-01-01\n\\.\n"
              "COPY s.users (id) FROM stdin;\n\\.\n")
    assert snapshots.parse_copy(script) == {
        "stored_files": [{"id": "1", "name": "tab\there\nnew line \\ done", "purged_at": None},
                         {"id": "2", "name": "AA", "purged_at": "2026-01-01"}],
        "users": [],
    }


# -- a backup while the app keeps serving ----------------------------------------------------------

def multipart(fields: dict[str, str], name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload_until(stop: threading.Event, port: int, token: str, patient_id: int, first: int,
                 done: list[tuple[float, int, str]], errors: list[BaseException]) -> None:
    """POST samples through the VSee API until `stop`; record (finished at, status, body)."""
    try:
        n = first
        while not stop.is_set():
            name = SAMPLES[n % len(SAMPLES)]
            n += 1
            body, content_type = multipart({"meta.target.id": str(patient_id)}, name, sample(name))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                conn.request("POST", "/api_v3/files", body, {"X-ApiToken": token, "Content-Type": content_type})
                resp = conn.getresponse()
                done.append((time.monotonic(), resp.status, resp.read().decode()))
            finally:
                conn.close()
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which fails the test
        errors.append(exc)


@SQLITE_SNAPSHOT
def test_a_backup_taken_while_uploads_go_on(tmp_path):
    root = tmp_path / "live"
    live = create_app({**base_config(root), "SERVER_NAME": None}, instance_path=str(root / "instance"))
    with live.app_context():
        db.create_all()
        clinic = accounts.create_account("sunrise", "Sunrise Family Clinic")
        provider = accounts.create_user(clinic, Role.PROVIDER, "dr.rivera", "Dr. Ana Rivera", None, None)
        patient = accounts.create_user(clinic, Role.PATIENT, "alice", "Alice Moreno", None, None)
        token, patient_id = accounts.create_token(provider)[1], patient.id
        for name in SAMPLES:
            with open(DATA / name, "rb") as fh:
                files.upload(provider, Origin.cli(), fh, name, Category.USER_DOCUMENT, files.Target.chart(patient))
        db.session.remove()
    server = make_server("127.0.0.1", 0, live, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    stop, done, errors = threading.Event(), [], []
    uploaders = [threading.Thread(target=upload_until, args=(stop, server.server_port, token, patient_id, i,
                                                             done, errors)) for i in range(3)]
    started = time.monotonic()
    try:
        for t in uploaders:
            t.start()
        while len(done) < 3 and time.monotonic() - started < 10:
            time.sleep(0.05)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        with live.app_context():
            before = time.monotonic()
            manifest = backup.create_backup(tmp_path / "backup")
            after = time.monotonic()
            db.session.remove()
        time.sleep(max(0.5, 3.0 - (time.monotonic() - started)))
    finally:
        stop.set()
        for t in uploaders:
            t.join(timeout=30)
        server.shutdown()
        serving.join(timeout=5)
    assert errors == [] and not any(t.is_alive() for t in uploaders)
    assert [status for _, status, _ in done] == [200] * len(done), [body for _, s, body in done if s != 200][:3]
    committed_before = sum(1 for at, _, _ in done if at < before)
    assert committed_before >= 3 and any(at > after for at, _, _ in done)  # uploads on both sides of it
    in_snapshot = manifest.counts["stored_files"]
    assert len(SAMPLES) + committed_before <= in_snapshot < len(SAMPLES) + len(done)
    assert manifest.counts["blobs"] == in_snapshot

    with live.app_context():
        assert len(rows()) == len(SAMPLES) + len(done)  # the live instance kept every upload
        db.session.remove()
        db.engine.dispose()
    with instance(tmp_path / "fresh") as fresh:
        ok(invoke(fresh, "backup", "verify", str(tmp_path / "backup")))
        ok(invoke(fresh, "backup", "restore", str(tmp_path / "backup")))
        assert_files_check_clean(fresh)
        assert len(rows()) == in_snapshot
        assert assert_every_blob_intact() == in_snapshot


# -- what verify catches ---------------------------------------------------------------------------

def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def first_blob(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["blobs"][0]["key"]


def test_verify_catches_a_flipped_byte_in_a_blob(runner, made):
    key = first_blob(made)
    flip_a_byte(made / "blobs" / key)
    result = runner.invoke(args=["backup", "verify", str(made)])
    assert f"problem: checksum mismatch: {key}\n" in result.output
    fails(result, "1 problem(s) found in")


def test_verify_catches_a_missing_blob(runner, made):
    key = first_blob(made)
    (made / "blobs" / key).unlink()
    result = runner.invoke(args=["backup", "verify", str(made)])
    assert f"problem: missing blob: {key}\n" in result.output
    fails(result, "1 problem(s) found in")


def test_verify_catches_a_missing_manifest(runner, made):
    (made / "manifest.json").unlink()
    result = runner.invoke(args=["backup", "verify", str(made)])
    assert "problem: no manifest.json in" in result.output and "incomplete" in result.output
    fails(result, "1 problem(s) found in")


@SQLITE_SNAPSHOT
def test_verify_catches_a_damaged_database_and_stray_or_unneeded_blobs(runner, made):
    flip_a_byte(made / "database.sqlite3")
    (made / "blobs" / "zz").mkdir()
    (made / "blobs" / "zz" / "stray").write_bytes(b"not ours")
    result = runner.invoke(args=["backup", "verify", str(made)])
    assert "differs from its size and sha256 in the manifest" in result.output
    assert "problem: unlisted file in blobs/: zz/stray" in result.output
    fails(result, "2 problem(s) found in")


@SQLITE_SNAPSHOT
def test_verify_says_an_interrupted_backup_is_incomplete(runner, made, tmp_path):
    """What a killed `backup create` leaves: its .partial-* folder and no manifest."""
    folder = tmp_path / "interrupted"
    (folder / ".partial-1234abcd" / "blobs").mkdir(parents=True)
    shutil.copy(made / "database.sqlite3", folder / ".partial-1234abcd" / "database.sqlite3")
    result = runner.invoke(args=["backup", "verify", str(folder)])
    assert "problem: .partial-1234abcd: left by an interrupted backup" in result.output
    fails(result, "2 problem(s) found in")


def test_verify_refuses_a_tampered_manifest(runner, made):
    manifest = json.loads((made / "manifest.json").read_text())
    manifest["blobs"][0]["key"] = "../../etc/passwd"
    (made / "manifest.json").write_text(json.dumps(manifest))
    fails(runner.invoke(args=["backup", "verify", str(made)]), "1 problem(s) found in")
    assert "manifest.json is not valid: invalid storage key" in runner.invoke(args=["backup", "verify",
                                                                                   str(made)]).output


# -- what create and restore refuse ----------------------------------------------------------------

def test_create_refuses_a_non_empty_folder_or_a_file(runner, chart, tmp_path):
    folder = tmp_path / "used"
    folder.mkdir()
    (folder / "notes").write_text("keep me")
    fails(runner.invoke(args=["backup", "create", str(folder)]), "is not empty")
    assert [p.name for p in folder.iterdir()] == ["notes"]
    assert "is a file" in runner.invoke(args=["backup", "create", str(folder / "notes")]).output  # click says it
    with pytest.raises(backup.BackupError, match="exists and is not a folder"):
        backup.create_backup(folder / "notes")
    assert (folder / "notes").read_text() == "keep me"


def test_create_fails_on_a_damaged_blob_and_leaves_nothing(runner, app, chart, tmp_path):
    damaged, gone = chart["live"][0], chart["live"][2]
    flip_a_byte(Path(app.config["STORAGE_ROOT"]) / damaged.storage_key)
    (Path(app.config["STORAGE_ROOT"]) / gone.storage_key).unlink()
    folder = tmp_path / "backup"
    result = runner.invoke(args=["backup", "create", str(folder)])
    assert f"problem: checksum mismatch: {damaged.public_id} (letter.pdf)" in result.output
    assert f"problem: missing blob: {gone.public_id} (notes.txt) at {gone.storage_key}" in result.output
    fails(result, "The backup failed: 2 blob(s) do not match their rows")
    assert folder.is_dir() and list(folder.iterdir()) == []  # no manifest, no .partial-* left


@SQLITE_SNAPSHOT
def test_restore_refuses_a_non_empty_instance_unless_forced(runner, made, chart, tmp_path):
    result = runner.invoke(args=["backup", "restore", str(made)])  # into the instance it came from
    assert "problem: the database has 1 accounts row(s)" in result.output
    assert "problem: storage already holds blobs" in result.output
    fails(result, "not empty; restore refuses to overwrite it without --force")

    with instance(tmp_path / "stray-blob") as fresh:
        with open(DATA / "notes.txt", "rb") as fh:
            get_storage().put("ab/stray", fh)
        fails(invoke(fresh, "backup", "restore", str(made)), "without --force")
        db.create_all()
        accounts.create_account("other", "Another Clinic")
        fails(invoke(fresh, "backup", "restore", str(made)), "without --force")
        out = ok(invoke(fresh, "backup", "restore", "--force", str(made)))
        assert "1 blob(s) already in storage are not part of the backup" in out
        db.session.remove()
        assert [a.code for a in db.session.scalars(select(Account))] == ["clinic-a"]  # replaced, not merged
        assert assert_every_blob_intact() == 7
        assert get_storage().exists("ab/stray")  # left alone: debris for `files cleanup`


@SQLITE_SNAPSHOT
def test_restore_refuses_a_backup_that_does_not_verify(made, tmp_path):
    flip_a_byte(made / "blobs" / first_blob(made))
    with instance(tmp_path / "fresh") as fresh:
        result = invoke(fresh, "backup", "restore", str(made))
        assert "problem: checksum mismatch" in result.output
        fails(result, "The backup does not verify; nothing was restored.")
        assert list(get_storage().keys()) == [] and not sa.inspect(db.engine).has_table("stored_files")


# -- PostgreSQL ------------------------------------------------------------------------------------

def pg_config(root: Path, schema: str) -> dict:
    return {"SQLALCHEMY_DATABASE_URI": PG_URL,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True,
                                          "connect_args": {"options": f"-csearch_path={schema}"}}}


class Schemas:
    """Private schemas on the test server; every one made is dropped afterwards."""

    def __init__(self, engine: sa.Engine):
        self.engine, self.made = engine, []

    def new(self) -> str:
        name = f"chartbox_test_{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        self.execute(f'CREATE SCHEMA "{name}"')
        return name

    def execute(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql))


@pytest.fixture
def pg_schemas():
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        service_unavailable("pg_dump/pg_restore", "the PostgreSQL client tools are not installed")
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: no server here
        service_unavailable("PostgreSQL", f"{PG_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    schemas = Schemas(engine)
    try:
        yield schemas
    finally:
        for name in schemas.made:
            schemas.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        engine.dispose()


@pytest.mark.postgres
def test_postgres_create_verify_restore(pg_schemas, tmp_path, monkeypatch):
    source = pg_schemas.new()
    folder = tmp_path / "backup"
    with instance(tmp_path / "source", **pg_config(tmp_path, source)) as app:
        from test_migrations import run_db_command

        run_db_command(app, "upgrade")  # the real schema, alembic_version included
        clinic = accounts.create_account("north", "North Clinic")
        provider = accounts.create_user(clinic, Role.PROVIDER, "dr.lee", "Dr. Kim Lee", None, None)
        patient = accounts.create_user(clinic, Role.PATIENT, "pat", "Pat One", None, None)
        uploaded = {}
        for name in SAMPLES[:4]:
            with open(DATA / name, "rb") as fh:
                row = files.upload(provider, Origin.cli(), fh, name, Category.USER_DOCUMENT, files.Target.chart(patient))
                uploaded[row.public_id] = row.sha256
        files.delete(provider, Origin.cli(), next(iter(uploaded)))
        with monkeypatch.context() as mp:
            mp.setenv("PATH", "")
            fails(invoke(app, "backup", "create", str(folder)), "pg_dump is not installed (or not on PATH)")
        out = ok(invoke(app, "backup", "create", str(folder)))
        assert out.startswith("OK: backup of the postgresql database") and "4 blob(s)" in out
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["database"] | {"size": 0, "sha256": ""} == {
            "kind": "postgresql", "file": "database.pgdump", "schema": source, "scope": "schema",
            "revision": manifest["database"]["revision"], "size": 0, "sha256": ""}
        assert manifest["database"]["revision"]
        ok(invoke(app, "backup", "verify", str(folder)))

    # Into a fresh schema of the same database: refused while the backup's own schema is there.
    target = pg_schemas.new()
    with instance(tmp_path / "target", **pg_config(tmp_path, target)) as fresh:
        fails(invoke(fresh, "backup", "restore", str(folder)), f"The backup is of schema '{source}'")
        assert list(get_storage().keys()) == []  # refused before anything was put
    pg_schemas.execute(f'DROP SCHEMA "{source}" CASCADE')  # the old instance is lost

    with instance(tmp_path / "target", **pg_config(tmp_path, target)) as fresh:
        out = ok(invoke(fresh, "backup", "restore", str(folder)))
        assert "into the postgresql database and filesystem storage" in out
        assert_files_check_clean(fresh)
        assert {r.public_id: r.sha256 for r in rows()} == uploaded
        assert assert_every_blob_intact() == 4
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_schema()")).scalar() == target
        fails(invoke(fresh, "backup", "restore", str(folder)), "not empty")

    # Into the backup's own schema name, migrated but empty: restored in place (pg_restore --clean).
    pg_schemas.execute(f'CREATE SCHEMA "{source}"')
    with instance(tmp_path / "again", **pg_config(tmp_path, source)) as again:
        db.create_all()
        ok(invoke(again, "backup", "restore", str(folder)))
        assert_files_check_clean(again)
        assert {r.public_id: r.sha256 for r in rows()} == uploaded
        assert len(db.session.scalars(select(Account)).all()) == 1
