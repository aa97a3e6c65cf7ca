"""Nothing lost: with the storage, the temp folder or the database unwritable, every door that
takes an upload answers 503 with Retry-After in its own shape, never a 500, and leaves nothing
behind (no row, no blob, no temp file).

The tests run as root, where chmod binds nothing, so each fault is one that binds root too:
the storage root turned into a regular file, instance/tmp turned into a regular file, and the
same SQLite file opened read-only (`mode=ro`) by a second app, where reads work and writes
fail with "attempt to write a readonly database".
"""
from __future__ import annotations

import base64
import errno
import io
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import db_switch
import pytest
from conftest import PageClient, base_config, blobs, sample, service_unavailable
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from app import create_app
from app.errors import CannotReceive, DatabaseUnavailable, ServiceUnavailable, TooLarge, database_unavailable
from app.extensions import db
from app.models import Role, StoredFile
from app.services import accounts, spool

CANDID = "/api/encounter-attachments/v1"
FAULTS = ("storage", "tmp", "database")
MESSAGES = {
    "storage": ServiceUnavailable.default_message,
    "tmp": CannotReceive.default_message,
    "database": DatabaseUnavailable.default_message,
}


def buffered(client: FlaskClient) -> FlaskClient:
    """Read each response whole and close it (as conftest's `client` does)."""
    plain_open = client.open

    def buffered_open(*args, **kwargs):
        kwargs.setdefault("buffered", True)
        return plain_open(*args, **kwargs)

    client.open = buffered_open  # type: ignore[method-assign]
    return client


@dataclass
class World:
    """What the doors act on, made while everything still works."""

    provider_id: int
    patient_id: int
    visit_id: str  # public id (Candid's encounter id)
    token: str  # the provider's, used once already (no last_used_at write is due)
    image_url: str  # a Candid image's signed URL (PUT takes its bytes)
    tscharts_image_id: int
    document_id: str  # a document in the patient's chart
    page: PageClient  # the patient, signed in


@pytest.fixture
def world(app, client, make_user, make_token, make_visit, make_file, make_page_client) -> World:
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    visit = make_visit(patient, "CC-1")
    token = make_token(provider)
    accounts.resolve_token(token)  # stamps last_used_at, so a request with it only reads
    bearer = {"Authorization": f"Bearer {token}"}
    image = client.post("/images/v1", headers=bearer, json={
        "file_name": "card-front.jpg", "display_name": "Card", "file_type": "image/jpeg",
        "status": "PENDING", "patient": {"id": str(patient.id)}})
    assert image.status_code == 200, image.get_data(as_text=True)
    xray = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {token}"}, json={
        "type": "Xray", "patient": patient.id, "data": base64.b64encode(sample("xray.png")).decode()})
    assert xray.status_code == 200, xray.get_data(as_text=True)
    document = make_file(provider, "letter.pdf", patient=patient)
    return World(provider.id, patient.id, visit.public_id, token, image.get_json()["signed_url"],
                 xray.get_json()["id"], document.public_id, make_page_client(patient))


@dataclass
class Fault:
    name: str
    app: Flask  # the app that serves the requests (a read-only one for the database fault)
    client: FlaskClient
    page: PageClient  # the world's patient, signed in on that app

    @property
    def message(self) -> str:
        return MESSAGES[self.name]


@contextmanager
def unwritable_storage(app: Flask) -> Iterator[None]:
    """The storage root becomes a regular file: every put fails."""
    root = Path(app.config["STORAGE_ROOT"])
    shutil.rmtree(root)
    root.write_bytes(b"not a folder")
    try:
        yield
    finally:
        root.unlink()
        root.mkdir()


@contextmanager
def unwritable_tmp(app: Flask) -> Iterator[None]:
    """instance/tmp becomes a regular file: no upload can be spooled."""
    tmp = Path(app.instance_path) / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.write_bytes(b"not a folder")
    try:
        yield
    finally:
        tmp.unlink()


@contextmanager
def read_only_app(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """A second app on the same database, read-only: the SQLite file opened with `mode=ro`,
    or PostgreSQL sessions with default_transaction_read_only (a standby's answer)."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    config = {**base_config(tmp_path), "SQLALCHEMY_DATABASE_URI": uri}
    if uri.startswith("sqlite:///"):
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///file:{uri.removeprefix('sqlite:///')}?mode=ro&uri=true"
    else:
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        read_only = f"{options['connect_args']['options']} -cdefault_transaction_read_only=on"
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "connect_args": {"options": read_only}}
    db.session.remove()  # the writable app holds no transaction meanwhile
    ro = create_app(config, instance_path=app.instance_path)
    try:
        yield ro
    finally:
        with ro.app_context():
            db.engine.dispose()


def moved(page: PageClient, app: Flask) -> PageClient:
    """The same browser (its session cookie) talking to another app."""
    other = PageClient(app, app.response_class, use_cookies=True)
    cookie = page.get_cookie("session", domain="chartbox.test")
    assert cookie is not None
    other.set_cookie("session", cookie.value, domain="chartbox.test")
    return other


@pytest.fixture(params=FAULTS)
def fault(request, app, client, world, tmp_path) -> Iterator[Fault]:
    if request.param == "storage":
        with unwritable_storage(app):
            yield Fault("storage", app, client, world.page)
    elif request.param == "tmp":
        with unwritable_tmp(app):
            yield Fault("tmp", app, client, world.page)
    else:
        with read_only_app(app, tmp_path) as ro:
            yield Fault("database", ro, buffered(ro.test_client()), moved(world.page, ro))


@pytest.fixture
def read_only(app, world, tmp_path) -> Iterator[Fault]:
    with read_only_app(app, tmp_path) as ro:
        yield Fault("database", ro, buffered(ro.test_client()), moved(world.page, ro))


# --- what is left behind ------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, list]
    blobs: list[Path]
    temp_files: list[Path]


def snapshot(app: Flask) -> Snapshot:
    """Every row of every table, every blob (and partial) under the storage root, every upload
    temp file under the instance folder — read outside any session."""
    with db.engine.connect() as conn:
        rows = {table.name: sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
                for table in db.metadata.sorted_tables}
    root = Path(app.config["STORAGE_ROOT"])
    return Snapshot(rows, blobs(root) if root.is_dir() else [],
                    sorted(Path(app.instance_path).rglob(f"{spool.PREFIX}*{spool.SUFFIX}")))


def assert_503(resp, check_shape: Callable, message: str) -> None:
    assert resp.status_code == 503, resp.get_data(as_text=True)[:500]
    assert resp.headers["Retry-After"] == "30"
    check_shape(resp, message)


# --- the doors and their shapes -------------------------------------------------------------

def code_message(resp, message):  # VSee, and pages asked for JSON
    assert resp.get_json() == {"code": 503, "message": message}


def detail(resp, message):  # Claros, tscharts
    assert resp.get_json() == {"detail": message}


def candid(resp, message):
    assert resp.get_json() == {"errorName": "ServiceUnavailableError", "content": {"message": message}}


def page(resp, message):
    text = resp.get_data(as_text=True)
    assert resp.mimetype == "text/html"
    assert "Please try again shortly" in text and message in text  # the app's error page


def vsee_upload(f: Fault, w: World):
    return f.client.post("/api_v3/files", headers={"X-ApiToken": w.token}, data={
        "file": (io.BytesIO(sample("letter.pdf")), "letter.pdf"), "meta.target.id": str(w.patient_id)})


def claros_upload(f: Fault, w: World):
    return f.client.post(f"/patients/{w.patient_id}/pdf", headers={"X-API-Key": w.token}, data={
        "file": (io.BytesIO(sample("letter.pdf")), "upload.pdf"), "filename": "letter.pdf"})


def tscharts_create_image(f: Fault, w: World):
    return f.client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {w.token}"}, json={
        "type": "Xray", "patient": w.patient_id, "data": base64.b64encode(sample("xray.png")).decode()})


def candid_image_content(f: Fault, w: World):
    return f.client.put(w.image_url, data=sample("photo.jpg"), headers={"Content-Type": "image/jpeg"})


def candid_attachment_v2(f: Fault, w: World):
    return f.client.put(f"{CANDID}/{w.visit_id}/v2", headers={"Authorization": f"Bearer {w.token}"}, data={
        "attachment_file": (io.BytesIO(sample("scan.png")), "scan.png"), "attachment_type": "EOB"})


def candid_charge_capture(f: Fault, w: World):
    return f.client.post(f"{CANDID}/create-from-charge-capture-external-id",
                         headers={"Authorization": f"Bearer {w.token}"}, data={
                             "attachment_file": (io.BytesIO(sample("notes.txt")), "notes.txt"),
                             "attachment_type": "OTHER", "charge_capture_external_id": "CC-not-yet"})


def page_upload(f: Fault, w: World, **headers):
    return f.page.post("/documents/upload", headers=headers, data={
        "csrf_token": f.page.csrf("/profile"), "files": (io.BytesIO(sample("notes.txt")), "notes.txt")})  # a page that lists nothing (a listing is audited)


def page_upload_json(f: Fault, w: World):
    return page_upload(f, w, Accept="application/json")


UPLOADS = [
    pytest.param(vsee_upload, code_message, id="vsee"),
    pytest.param(claros_upload, detail, id="claros"),
    pytest.param(tscharts_create_image, detail, id="tscharts"),
    pytest.param(candid_image_content, candid, id="candid-image-content"),
    pytest.param(candid_attachment_v2, candid, id="candid-attachment-v2"),
    pytest.param(candid_charge_capture, candid, id="candid-charge-capture"),
    pytest.param(page_upload, page, id="page"),
    pytest.param(page_upload_json, code_message, id="page-json"),
]


@pytest.mark.parametrize("call, shape", UPLOADS)
def test_an_upload_during_an_outage_is_503_and_leaves_nothing_behind(app, world, fault, call, shape):
    before = snapshot(app)
    assert_503(call(fault, world), shape, fault.message)
    after = snapshot(app)
    assert after.temp_files == [] and after.blobs == before.blobs
    assert after.rows == before.rows  # no row added, none changed (the image keeps its version)


@pytest.mark.parametrize("call, shape", UPLOADS)
def test_the_same_uploads_work_once_the_fault_is_gone(app, world, call, shape):
    """The control: each call above is a good upload, so the 503s are the faults' doing."""
    before = snapshot(app)
    resp = call(Fault("none", app, buffered(app.test_client()), world.page), world)
    assert resp.status_code in (200, 201, 303), resp.get_data(as_text=True)[:500]
    after = snapshot(app)
    assert len(after.rows["stored_files"]) == len(before.rows["stored_files"]) + 1
    assert len(after.blobs) == len(before.blobs) + 1 and after.temp_files == []


# --- the read-only database -----------------------------------------------------------------

def test_on_a_read_only_database_only_unaudited_reads_work(world, read_only):
    """Every listing and view is written to the audit trail; while the database refuses writes
    they answer 503 (nothing is shown that is not accounted for). Pages that show no file work."""
    resp = read_only.client.get(f"/api_v3/files?target_type=user&target_id={world.patient_id}",
                                headers={"X-ApiToken": world.token})
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert world.document_id not in resp.get_data(as_text=True)
    assert read_only.page.get("/profile").status_code == 200


@pytest.mark.parametrize("call, shape", [
    pytest.param(lambda f, w: f.client.post(f"/api_v3/files/{w.document_id}", headers={"X-ApiToken": w.token},
                                            data={"name": "renamed.pdf"}), code_message, id="vsee-rename"),
    pytest.param(lambda f, w: f.client.delete(f"/api_v3/files/{w.document_id}", headers={"X-ApiToken": w.token}),
                 code_message, id="vsee-delete"),
    pytest.param(lambda f, w: f.client.delete(f"/tscharts/v1/image/{w.tscharts_image_id}/",
                                              headers={"Authorization": f"Token {w.token}"}),
                 detail, id="tscharts-delete"),
    pytest.param(lambda f, w: f.client.post("/images/v1", headers={"Authorization": f"Bearer {w.token}"}, json={
        "file_name": "b.jpg", "display_name": "B", "file_type": "image/jpeg", "status": "PENDING"}),
        candid, id="candid-create-image"),
])
def test_other_writes_on_a_read_only_database_are_503(app, world, read_only, call, shape):
    before = snapshot(app)
    assert_503(call(read_only, world), shape, read_only.message)
    assert snapshot(app) == before


def test_refusals_are_still_refusals_on_a_read_only_database(app, world, read_only):
    """A 503 is for the outage only: a request that fails before any write answers as always."""
    resp = read_only.client.post("/api_v3/files", headers={"X-ApiToken": world.token}, data={
        "file": (io.BytesIO(sample("macro.html")), "macro.html"), "meta.target.id": str(world.patient_id)})
    assert resp.status_code == 400
    resp = read_only.client.post("/api_v3/files", headers={"X-ApiToken": "not-a-token"}, data={})
    assert resp.status_code == 401


def test_a_token_due_for_its_last_used_stamp_is_still_503_not_401_or_500(app, world, read_only, make_user,
                                                                        make_token):
    """resolve_token writes last_used_at at most every 5 minutes; on a read-only database that
    write fails first. The answer is still the outage's, in the door's shape."""
    fresh = make_token(make_user(Role.PROVIDER))  # never used: its stamp is due
    before = snapshot(app)
    resp = read_only.client.post("/api_v3/files", headers={"X-ApiToken": fresh}, data={
        "file": (io.BytesIO(sample("letter.pdf")), "letter.pdf"), "meta.target.id": str(world.patient_id)})
    assert_503(resp, code_message, read_only.message)
    resp = read_only.client.get("/tscharts/v1/image/", headers={"Authorization": f"Token {make_token(make_user(Role.PROVIDER))}"})
    assert resp.status_code not in (401, 500)  # 503 while the stamp must be written (see README)
    if resp.status_code == 503:
        assert resp.headers["Retry-After"] == "30" and set(resp.get_json()) == {"detail"}
    assert snapshot(app).rows["stored_files"] == before.rows["stored_files"]


def test_the_outage_is_logged(world, read_only, caplog):
    vsee_upload(read_only, world)
    said = "InternalError: cannot execute" if db_switch.ON_POSTGRES else \
        "OperationalError: attempt to write a readonly database"
    assert f"database unavailable on POST /api_v3/files: {said}" in caplog.text


# --- a locked database, a lost connection ---------------------------------------------------

@pytest.fixture
def locked(app) -> Iterator[None]:
    """Another process holds SQLite's write lock; the app does not wait for it."""
    db.session.remove()

    def no_waiting(dbapi_connection, _record, _proxy):
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    event.listen(db.engine, "checkout", no_waiting)
    holder = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        event.remove(db.engine, "checkout", no_waiting)


@pytest.mark.sqlite_only("SQLite's write lock held by another connection (PostgreSQL locks rows, not the file)")
def test_a_locked_database_is_503_and_leaves_nothing_behind(app, client, world, locked, caplog):
    before = snapshot(app)
    f = Fault("database", app, client, world.page)
    assert_503(vsee_upload(f, world), code_message, DatabaseUnavailable.default_message)
    assert_503(candid_charge_capture(f, world), candid, DatabaseUnavailable.default_message)
    assert snapshot(app) == before
    assert "database is locked" in caplog.text


def test_a_connection_lost_during_commit_keeps_the_bytes(app, client, world, monkeypatch, caplog):
    """The database may have committed before the connection dropped: the blob stays (an
    orphan at worst, which `files check` reports), never a row whose bytes were removed."""
    dialect = db.engine.dialect
    real_commit = dialect.do_commit

    def commit_then_drop(dbapi_connection):
        real_commit(dbapi_connection)
        if db_switch.ON_POSTGRES:  # the server ends the session: the driver's next use finds it broken
            raw = dbapi_connection.driver_connection  # psycopg's own, under the pool's wrapper
            with db_switch.admin_engine().connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": raw.info.backend_pid})
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                raw.execute("SELECT 1")  # raises OperationalError once the session is gone
                time.sleep(0.01)
            raise AssertionError("the terminated session still answers")
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")  # SQLite's disconnect

    before = snapshot(app)
    monkeypatch.setattr(dialect, "do_commit", commit_then_drop)
    resp = vsee_upload(Fault("database", app, client, world.page), world)
    monkeypatch.undo()
    assert_503(resp, code_message, DatabaseUnavailable.default_message)
    after = snapshot(app)
    assert len(after.rows["stored_files"]) == len(before.rows["stored_files"]) + 1  # it did commit
    row = db.session.scalar(select(StoredFile).order_by(StoredFile.id.desc()).limit(1))
    assert Path(app.config["STORAGE_ROOT"], row.storage_key).read_bytes() == sample("letter.pdf")
    assert "commit outcome unknown" in caplog.text


@pytest.mark.sqlite_only("drops a table, which on PostgreSQL is the run's shared schema; "
                        "test_which_database_errors_are_outages covers PostgreSQL's undefined-table error")
def test_a_bug_in_the_database_layer_is_not_dressed_up_as_an_outage(app, client, world):
    """SQLite's generic error (a missing table) is a bug: it propagates (a 500 outside tests)."""
    db.session.execute(text("DROP TABLE candid_images"))
    db.session.commit()
    with pytest.raises(OperationalError, match="no such table"):
        client.get("/images/v1", headers={"Authorization": f"Bearer {world.token}"})


# --- which database errors mean "unavailable" -------------------------------------------------

def _sqlite_error(sql: str, setup: str = "") -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    try:
        if setup:
            conn.executescript(setup)
        conn.execute(sql)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"{sql} did not fail")


class _PgError(Exception):
    """Stands in for a PostgreSQL driver's exception: it carries the SQLSTATE."""

    def __init__(self, sqlstate: str):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize("exc, unavailable", [
    pytest.param(OperationalError("INSERT", {}, _sqlite_error("SELECT * FROM nowhere")), False, id="sqlite-no-table"),
    pytest.param(OperationalError("SELEC", {}, _sqlite_error("SELEC 1")), False, id="sqlite-syntax"),
    pytest.param(IntegrityError("INSERT", {}, _sqlite_error(
        "INSERT INTO t VALUES (1)", "CREATE TABLE t (x UNIQUE); INSERT INTO t VALUES (1);")), False,
        id="sqlite-unique"),
    pytest.param(OperationalError("INSERT", {}, _PgError("08006")), True, id="pg-connection-failure"),
    pytest.param(OperationalError("INSERT", {}, _PgError("57P01")), True, id="pg-admin-shutdown"),
    pytest.param(OperationalError("INSERT", {}, _PgError("40P01")), True, id="pg-deadlock"),
    pytest.param(OperationalError("INSERT", {}, _PgError("53100")), True, id="pg-disk-full"),
    pytest.param(InternalError("INSERT", {}, _PgError("25006")), True, id="pg-read-only-transaction"),
    pytest.param(ProgrammingError("INSERT", {}, _PgError("42P01")), False, id="pg-undefined-table"),
    pytest.param(IntegrityError("INSERT", {}, _PgError("23505")), False, id="pg-unique"),
    pytest.param(ProgrammingError("SELECT", {}, Exception("closed"), connection_invalidated=True), True,
                 id="disconnect"),
    pytest.param(PoolTimeout("QueuePool limit reached"), True, id="pool-exhausted"),
    pytest.param(ValueError("not a database error"), False, id="other"),
])
def test_which_database_errors_are_outages(exc, unavailable):
    assert database_unavailable(exc) is unavailable


def test_real_sqlite_outages_are_outages(tmp_path):
    path = tmp_path / "x.db"
    sqlite3.connect(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as readonly:
            reader.execute("CREATE TABLE t (x)")
    finally:
        for conn in (holder, other, reader):
            conn.close()
    assert "locked" in str(locked.value) and "readonly" in str(readonly.value)
    assert database_unavailable(OperationalError("BEGIN", {}, locked.value))
    assert database_unavailable(OperationalError("CREATE", {}, readonly.value))


# --- the temp folder, unit by unit ------------------------------------------------------------

def test_spool_turns_temp_folder_failures_into_cannot_receive(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.write_bytes(b"a file, not a folder")
    with pytest.raises(CannotReceive):
        spool.spool(io.BytesIO(b"data"), 100, str(folder))

    folder.unlink()

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.os, "write", disk_full)
    with pytest.raises(CannotReceive):
        spool.spool(io.BytesIO(b"data"), 100, str(folder))
    assert list(folder.iterdir()) == []


def test_spool_keeps_too_large_and_client_errors_as_they_are(tmp_path):
    folder = tmp_path / "tmp"
    with pytest.raises(TooLarge):
        spool.spool(io.BytesIO(b"x" * 101), 100, str(folder))

    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def read(self, size=-1):
            raise OSError(errno.ECONNRESET, "Connection reset by peer")

    with pytest.raises(OSError) as raised:
        spool.spool(Broken(), 100, str(folder))
    assert not isinstance(raised.value, ServiceUnavailable) and raised.value.errno == errno.ECONNRESET
    assert list(folder.iterdir()) == []


def test_spool_still_spools(tmp_path):
    data = b"y" * (spool.CHUNK + 17)
    with spool.spool(io.BytesIO(data), len(data), str(tmp_path)) as spooled:
        with spooled.open() as fh:
            assert fh.read() == data
        assert spooled.size == len(data)
    assert list(tmp_path.iterdir()) == []


# --- PostgreSQL: a standby's read-only answer, a connection dropped mid-request ---------------

PG_URL = os.environ.get("CHARTBOX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.mark.postgres
class TestOnPostgres:
    """The same doors on PostgreSQL (the shared fixtures run on it; skips without a server)."""

    @pytest.fixture
    def pg(self):
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure to connect means: no server here
            engine.dispose()
            service_unavailable("PostgreSQL", f"{PG_URL}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        schema = f"chartbox_faults_{uuid.uuid4().hex[:12]}"
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield engine, schema
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()

    @pytest.fixture
    def config_overrides(self, pg):
        return {"SQLALCHEMY_DATABASE_URI": PG_URL,
                "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True,
                                              "connect_args": {"options": f"-csearch_path={pg[1]}"}}}

    @pytest.mark.parametrize("call, shape", UPLOADS)
    def test_an_upload_to_a_read_only_server_is_503(self, app, world, read_only, call, shape):
        before = snapshot(app)
        assert_503(call(read_only, world), shape, DatabaseUnavailable.default_message)
        assert snapshot(app) == before

    @pytest.mark.parametrize("call, shape", UPLOADS)
    def test_a_connection_dropped_mid_upload_is_503(self, app, client, world, pg, call, shape, caplog):
        dropped = []

        def drop(session, _flush_context, _instances):
            if dropped:
                return
            pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with pg[0].connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            dropped.append(pid)

        before = snapshot(app)
        event.listen(Session, "before_flush", drop)
        try:
            resp = call(Fault("database", app, client, world.page), world)
        finally:
            event.remove(Session, "before_flush", drop)
        assert dropped, "the upload never flushed"
        assert_503(resp, shape, DatabaseUnavailable.default_message)
        assert snapshot(app) == before
        assert "database unavailable on" in caplog.text
