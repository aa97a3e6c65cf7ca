"""Shared fixtures: a real app on SQLite in tmp_path (or on PostgreSQL with
CHARTBOX_TEST_DATABASE=postgresql, see tests/db_switch.py), real files on disk, factory callables."""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import db_switch
import pytest
from flask import g
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from app.models import Account, Category, Channel, Role, User, Visit
from app.services import accounts, files
from app.services.audit import Origin

DATA = Path(__file__).parent / "data"
REQUIRE_SERVICES = os.environ.get("CHARTBOX_REQUIRE_SERVICES") == "1"


def sample(name: str) -> bytes:
    """The bytes of a sample file in tests/data/ (see tests/data/README.md)."""
    return (DATA / name).read_bytes()


def service_unavailable(what: str, why: str):
    """Skip with the reason, unless CI made the real services mandatory."""
    message = f"{what} is not reachable ({why}); set CHARTBOX_REQUIRE_SERVICES=1 to make this fail"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def base_config(tmp_path: Path, database: dict | None = None) -> dict:
    """An app's test settings over `tmp_path`; the database is the suite's engine (a SQLite file
    in `tmp_path`, or the run's PostgreSQL schema) unless `database` names another."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        **(database or db_switch.database_for(tmp_path)),
        "STORAGE_ROOT": str(tmp_path / "files"),
        "SERVER_NAME": "chartbox.test",
        # Tests make many requests from one client; tests/test_ratelimits.py turns limits on.
        "RATELIMIT_ENABLED": False,
    }


# -- the database engine switch (tests/db_switch.py) ---------------------------------------------

def pytest_configure(config):
    db_switch.check_choice()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Tell base_config() which fixture scope asks, so a module's fixture gets its own schema."""
    token = db_switch.FIXTURE_SETUP.set((fixturedef.scope, fixturedef, request))
    try:
        return (yield)
    finally:
        db_switch.FIXTURE_SETUP.reset(token)


ABUSE = DATA.parent / "abuse"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if ABUSE in item.path.parents:  # they time an ordinary patient while attacking a server
            item.add_marker(pytest.mark.alone)
    if not db_switch.ON_POSTGRES:
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


def pytest_terminal_summary(terminalreporter):
    times = sorted(db_switch.emptying_ms)
    if times:
        terminalreporter.write_line(
            f"PostgreSQL test schema: emptied {len(times)} times, median "
            f"{times[len(times) // 2]:.1f} ms, p95 {times[int(len(times) * 0.95)]:.1f} ms, max {times[-1]:.1f} ms")


@pytest.fixture(scope="session", autouse=True)
def test_database(request, tmp_path_factory):
    """The run's database: on PostgreSQL one migrated schema, dropped at the end of the session
    (also after a failure or Ctrl-C: pytest tears session fixtures down then)."""
    request.addfinalizer(db_switch.drop_all_schemas)
    if db_switch.ON_POSTGRES:
        db_switch.session_schema(tmp_path_factory)
    return db_switch.ENGINE


@pytest.fixture(autouse=True)
def _empty_database_after_test(test_database):
    """PostgreSQL: empty the run's schema after each test that used it (SQLite: a new file each)."""
    yield
    db_switch.empty_session_schema_if_used()


@pytest.fixture(scope="session")
def pg_migrated(tmp_path_factory):
    """The run's migrated PostgreSQL schema (on either engine switch): schema, heads, current, diffs."""
    return db_switch.session_schema(tmp_path_factory)


@pytest.fixture(scope="session")
def pg_schema(pg_migrated) -> str:
    return pg_migrated["schema"]


def pg_config(tmp_path: Path, schema: str) -> dict:
    """base_config on a PostgreSQL schema; the run's schema is emptied after the test."""
    db_switch.use_session_schema(schema)
    return base_config(tmp_path, database=db_switch.settings(schema))


def empty_tables() -> None:
    """In an app's context: end its session and connections, and empty the run's schema now."""
    db.session.remove()
    db.engine.dispose()
    db_switch.empty_session_schema_if_used()


@pytest.fixture
def empty_database(tmp_path):
    """Settings for an empty database of this test's own: a new SQLite file, or a new PostgreSQL
    schema (dropped afterwards). For tests that build the schema themselves (migrations)."""
    if not db_switch.ON_POSTGRES:
        yield {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}"}
        return
    schema = db_switch.create_schema("empty")
    try:
        yield db_switch.settings(schema)
    finally:
        db_switch.drop_schema(schema)


@pytest.fixture
def config_overrides() -> dict:
    """Override in a test module to change the app's config."""
    return {}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file holding the models' schema, made once per run by create_all: each test's
    own file starts as a copy of it (a copy takes 1 ms, create_all about 30)."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    config = {**base_config(folder), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'template.db'}"}
    made = create_app(config, instance_path=str(folder / "instance"))
    with made.app_context():
        db.create_all()
        db.session.remove()
        db.engine.dispose()  # the last connection checkpoints the WAL into the file
    return folder / "template.db"


@pytest.fixture
def app(tmp_path, config_overrides, request):
    config = {**base_config(tmp_path), **config_overrides}
    own_file = tmp_path / "chartbox.db"
    if config.get("SQLALCHEMY_DATABASE_URI") == f"sqlite:///{own_file}" and not own_file.exists():
        shutil.copyfile(request.getfixturevalue("sqlite_template"), own_file)
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        if not db_switch.on_migrated_schema(config):
            db.create_all()  # a no-op on the template's copy; else a new file, or a module's schema
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client that reads each response whole and closes it (as a WSGI server would),
    so streamed files are closed; a leak outside the response still warns."""
    client = app.test_client()
    plain_open = client.open

    def buffered_open(*args, **kwargs):
        kwargs.setdefault("buffered", True)
        return plain_open(*args, **kwargs)

    client.open = buffered_open
    return client


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_account(app):
    counter = iter(range(1, 10_000))

    def make(code: str | None = None, name: str = "Test Clinic") -> Account:
        return accounts.create_account(code or f"clinic{next(counter)}", name)

    return make


@pytest.fixture
def clinic(make_account) -> Account:
    return make_account("clinic-a", "Clinic A")


@pytest.fixture
def make_user(app, clinic):
    counter = iter(range(1, 10_000))

    def make(role: Role | str = Role.PATIENT, account: Account | None = None, username: str | None = None,
             password: str | None = "correct horse battery", full_name: str | None = None) -> User:
        role = Role(role)
        username = username or f"{role.value}{next(counter)}"
        return accounts.create_user(account or clinic, role, username, full_name or username.title(),
                                    f"{username}@example.org", password)

    return make


@pytest.fixture
def make_token(app):
    def make(user: User, **kwargs) -> str:
        return accounts.create_token(user, **kwargs)[1]

    return make


@pytest.fixture
def make_visit(app):
    def make(patient: User, external_id: str | None = None) -> Visit:
        return accounts.create_visit(patient, external_id)

    return make


@pytest.fixture
def make_file(app):
    """Upload a real sample through the file service, as `actor` into `patient`'s chart."""

    def make(actor: User, sample_name: str = "letter.pdf", patient: User | None = None,
             category: Category = Category.USER_DOCUMENT, visit: Visit | None = None,
             name: str | None = None):
        target = files.Target.chart(visit.patient, visit) if visit else files.Target.chart(patient or actor)
        return files.upload(actor, Origin(Channel.CLI), io.BytesIO(sample(sample_name)),
                            name or sample_name, category, target)

    return make


@pytest.fixture
def storage_root(app) -> Path:
    return Path(app.config["STORAGE_ROOT"])


def blobs(root: Path) -> list[Path]:
    """Every stored blob (no renditions) under a filesystem storage root."""
    return sorted(p for p in root.rglob("*") if p.is_file() and "renditions" not in p.parts)


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


class PageClient(FlaskClient):
    """A test client that behaves like one browser: the signed-in user comes from its own cookie.

    flask-login caches the user and flask-wtf the CSRF token on `g`, and the `app` fixture keeps
    one app context (so one `g`) open across requests; without the reset a second client would
    inherit the first one's user and token.
    """

    _PER_REQUEST = ("_login_user", "csrf_token")

    def open(self, *args, **kwargs):
        for name in self._PER_REQUEST:
            g.pop(name, None)
        try:
            return super().open(*args, **kwargs)
        finally:
            for name in self._PER_REQUEST:
                g.pop(name, None)

    def csrf(self, path: str = "/login") -> str:
        """A CSRF token for this client's session, read from a page's form."""
        match = _CSRF.search(self.get(path).get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match[1] or match[2]

    def sign_in(self, user: User, password: str = "correct horse battery") -> PageClient:
        resp = self.post("/login", data={"csrf_token": self.csrf(), "username": user.username,
                                         "password": password})
        assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
        return self


@pytest.fixture
def make_page_client(app):
    """Callable: a fresh browser-like client, signed in as `user` when one is given."""

    def make(user: User | None = None, password: str = "correct horse battery") -> PageClient:
        client = PageClient(app, app.response_class, use_cookies=True)
        return client.sign_in(user, password) if user is not None else client

    return make


def count_files() -> int:
    """How many StoredFile rows exist (deleted ones too)."""
    from sqlalchemy import func, select

    from app.models import StoredFile

    return db.session.scalar(select(func.count()).select_from(StoredFile))


def assert_detail(resp, status: int) -> None:
    """A `{"detail": "…"}` error (Claros, tscharts) with this status."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body (fields, then one `file` part) and its Content-Type, for
    tests that speak raw HTTP to a live server."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ) + (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
         "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def stop_process_group(process) -> None:
    """Stop a server started with start_new_session=True: its whole process group, TERM then KILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(5)
