"""/healthz (the process answers, touching nothing) and /readyz (the database answers and the
file store is reachable, else 503 naming the part): for a load balancer probing every second.

Faults are ones that bind root too (the tests run as root, so chmod would not): a regular file
where the database's folder or the storage root should be, the storage root removed, a closed
port for PostgreSQL and for S3. Neither probe is ever rate-limited, sets a cookie, may be
cached or writes anything (no audit event, no limits counter, no session).
"""
from __future__ import annotations

import importlib.util
import shutil
import socket
import time

import pytest
from conftest import base_config, service_unavailable
from sqlalchemy import event, func, select
from sqlalchemy.pool import Pool
from test_storage_contract import s3_endpoint  # noqa: F401 - moto's real S3 server, shared

from app import create_app
from app.extensions import db
from app.models import AuditEvent, UserSession
from app.models.ratelimits import RateLimitCounter

PROBES = ("/healthz", "/readyz")
READY = {"status": "ready", "database": "ok", "storage": "ok"}


@pytest.fixture
def make_app(tmp_path):
    """Callable: an app on base_config plus overrides, its tables not created (a broken
    database stays broken); every engine it opened is closed afterwards."""
    made = []

    def make(**overrides):
        app = create_app({**base_config(tmp_path), **overrides}, instance_path=str(tmp_path / f"instance{len(made)}"))
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def moto(request) -> str:
    """moto's S3 server (fails under CHARTBOX_REQUIRE_SERVICES=1 when moto is missing)."""
    if importlib.util.find_spec("moto") is None:
        service_unavailable("moto (the S3 test server)", "not installed: pip install -e '.[test]'")
    return request.getfixturevalue("s3_endpoint")


def closed_port() -> int:
    with socket.socket() as sock:  # bound and closed again: nobody listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_probe(resp, status: int, body: dict) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json() == body
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in resp.headers
    if status == 503:
        assert resp.headers["Retry-After"] == "5"
    else:
        assert "Retry-After" not in resp.headers


def assert_unavailable(client, part: str, hidden: str, caplog) -> None:
    """/readyz is 503 naming `part` (the other is ok), without the detail; the log has it."""
    caplog.clear()
    resp = client.get("/readyz")
    other = {"database": "storage", "storage": "database"}[part]
    assert_probe(resp, 503, {"status": "unavailable", part: "unavailable", other: "ok"})
    assert hidden not in resp.get_data(as_text=True)
    assert any(r.levelname == "WARNING" and r.getMessage().startswith("not ready:") for r in caplog.records)
    assert_probe(client.get("/healthz"), 200, {"status": "ok"})  # alive all the same


# -- healthy ----------------------------------------------------------------------------------------

def test_both_probes_answer_200_in_json_uncached_without_cookies(client):
    assert_probe(client.get("/healthz"), 200, {"status": "ok"})
    assert_probe(client.get("/readyz"), 200, READY)
    for path in PROBES:
        head = client.head(path)
        assert head.status_code == 200 and head.data == b"" and head.headers["Cache-Control"] == "no-store"
        assert client.post(path).status_code == 405  # GET and HEAD only; no CSRF check stands in the way


def test_a_signed_in_browser_gets_no_cookie_from_a_probe(make_user, make_page_client):
    pages = make_page_client(make_user())
    for path in PROBES:
        resp = pages.get(path)
        assert resp.status_code == 200 and "Set-Cookie" not in resp.headers


def test_healthz_takes_no_database_connection_and_readyz_one(client):
    checkouts = []

    def counted(*_args):
        checkouts.append(1)

    event.listen(Pool, "checkout", counted)
    try:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        assert checkouts == []
        assert client.get("/readyz").status_code == 200
        assert len(checkouts) == 1  # SELECT 1 on the app's engine, nothing more
    finally:
        event.remove(Pool, "checkout", counted)


@pytest.mark.parametrize("config_overrides", [{
    "RATELIMIT_ENABLED": True, "RATELIMIT_ADDRESS_READ": "2 per minute", "RATELIMIT_SESSION_READ": "2 per minute",
    "RATELIMIT_APPLICATION": "2 per minute", "RATELIMIT_DEFAULT": "2 per minute",
}])
def test_probes_are_never_rate_limited_and_write_nothing(client, config_overrides):
    """A balancer probing from one address, far past every limit (counted in the database,
    the default store): always 200, and no counter, audit event or session is written."""
    def rows() -> tuple[int, int, int]:
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (RateLimitCounter, AuditEvent, UserSession))

    for _ in range(25):
        for path in PROBES:
            resp = client.get(path)
            assert resp.status_code == 200, (path, resp.get_data(as_text=True))
            assert "Retry-After" not in resp.headers
    assert rows() == (0, 0, 0)
    statuses = [client.get("/login").status_code for _ in range(3)]  # the limits are on
    assert statuses[-1] == 429 and rows()[0] > 0


# -- the database ---------------------------------------------------------------------------------

def test_readyz_503_when_the_sqlite_database_cannot_be_opened(make_app, tmp_path, caplog):
    folder = tmp_path / "database-folder"
    folder.write_text("a regular file where the database's folder should be")
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'chartbox.db'}",
                   SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True}, RATELIMIT_ENABLED=True)
    client = app.test_client()
    assert_unavailable(client, "database", str(folder), caplog)
    # healthz did not even try the limits store (the same broken database): nothing fell back.
    assert not any("falling back" in r.getMessage() for r in caplog.records)


def test_readyz_503_when_postgresql_refuses_the_connection(make_app, caplog):
    port = closed_port()
    app = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{port}/chartbox",
                   SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "connect_args": {"connect_timeout": 2}})
    started = time.monotonic()
    assert_unavailable(app.test_client(), "database", str(port), caplog)
    assert time.monotonic() - started < 10
    assert "OperationalError" in caplog.text  # the detail is logged, not answered


# -- storage --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["removed", "a regular file"])
def test_readyz_503_when_the_storage_root_is_unusable(client, storage_root, fault, caplog):
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(storage_root)
    if fault == "a regular file":
        storage_root.write_text("not a folder")
    assert_unavailable(client, "storage", str(storage_root), caplog)
    if fault == "removed":
        storage_root.mkdir()  # back: ready again, nothing cached
        assert_probe(client.get("/readyz"), 200, READY)


def test_readyz_on_s3_and_a_missing_bucket(make_app, moto, caplog):
    import boto3

    bucket = f"chartbox-ready-{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=moto, region_name="us-east-1").create_bucket(Bucket=bucket)
    settings = {"STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": moto, "S3_REGION": "us-east-1", "S3_PREFIX": "chartbox"}
    app = make_app(**settings, S3_BUCKET=bucket)
    with app.app_context():
        db.create_all()
    assert_probe(app.test_client().get("/readyz"), 200, READY)
    absent = make_app(**settings, S3_BUCKET=f"{bucket}-absent")
    with absent.app_context():
        db.create_all()
    assert_unavailable(absent.test_client(), "storage", bucket, caplog)


def test_readyz_503_when_the_s3_endpoint_is_down(make_app, monkeypatch, caplog):
    # Fake credentials: nothing here may reach a real AWS account (or wait for an instance role).
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    port = closed_port()
    app = make_app(STORAGE_BACKEND="s3", S3_BUCKET="chartbox-down", S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                   S3_REGION="us-east-1")
    with app.app_context():
        db.create_all()
    started = time.monotonic()
    assert_unavailable(app.test_client(), "storage", str(port), caplog)
    assert time.monotonic() - started < 15  # the client's retries, bounded
