"""The test suite's database engine: SQLite (default) or PostgreSQL (CHARTBOX_TEST_DATABASE=postgresql).

SQLite: every app gets a file in its test's tmp folder, as before. PostgreSQL
(CHARTBOX_TEST_POSTGRES_URL): one schema per pytest run (per xdist worker), built once with the
real migrations (`flask db upgrade`) and emptied after each test that used it; a fixture wider than
a test (a module's live server) gets a migrated schema of its own, so emptying never pulls its rows
away; tests that need an empty database (the migration tests) get a fresh schema. Every schema is
dropped when its user ends, and whatever is left when the session ends (Ctrl-C, a failure).
"""
from __future__ import annotations

import contextvars
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ENGINE = os.environ.get("CHARTBOX_TEST_DATABASE", "").strip().lower() or "sqlite"
ON_POSTGRES = ENGINE == "postgresql"
POSTGRES_URL = os.environ.get("CHARTBOX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

#: (scope, fixturedef, request) of the fixture being set up right now (conftest's pytest_fixture_setup
#: wrapper); None while a test runs.
FIXTURE_SETUP: contextvars.ContextVar[Any] = contextvars.ContextVar("fixture_setup", default=None)

_admin: sa.Engine | None = None
_unreachable: str | None = None
_live_schemas: set[str] = set()
_migrated: set[str] = set()  # schemas built by `flask db upgrade`
_session: dict[str, Any] | None = None  # the session schema's migration result
_session_used = False  # set when a config for the session schema was built since the last emptying
_empty_sql: dict[str, str] = {}
_seeds: dict[str, str] = {}  # per schema: INSERTs of the rows its migrations left
emptying_ms: list[float] = []  # how long each emptying took (the suite's per-test cost)


def check_choice() -> None:
    if ENGINE not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"CHARTBOX_TEST_DATABASE={ENGINE!r}: use sqlite (the default) or postgresql")


def admin_engine() -> sa.Engine:
    """An engine on the server (public schema) for schema DDL; skips/fails when unreachable."""
    global _admin, _unreachable
    from conftest import service_unavailable

    if _unreachable is None and _admin is None:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3}, pool_size=1, max_overflow=2)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure to connect means: no server here
            engine.dispose()
            _unreachable = f"{POSTGRES_URL}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        else:
            _admin = engine
    if _admin is None:
        service_unavailable("PostgreSQL", str(_unreachable))
    assert _admin is not None
    return _admin


def create_schema(kind: str = "run") -> str:
    """A new empty schema, registered for dropping; its name says whose run it is."""
    schema = f"chartbox_test_{WORKER}_{kind}_{uuid.uuid4().hex[:10]}"
    with admin_engine().begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    _live_schemas.add(schema)
    return schema


def drop_schema(schema: str) -> None:
    _live_schemas.discard(schema)
    _migrated.discard(schema)
    _empty_sql.pop(schema, None)
    _seeds.pop(schema, None)
    if _admin is None:
        return
    for attempt in range(3):
        try:
            with _admin.begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            return
        except sa.exc.OperationalError as exc:
            # autovacuum analysing one of the schema's tables can deadlock with the drop; the
            # server then cancels one of the two, sometimes the drop: run it again.
            if "deadlock detected" not in str(exc) or attempt == 2:
                raise
            time.sleep(0.5)


def drop_all_schemas() -> None:
    """Session end: drop every schema still alive, then close the admin engine."""
    global _admin, _session
    for schema in sorted(_live_schemas):
        drop_schema(schema)
    _session = None
    if _admin is not None:
        _admin.dispose()
        _admin = None


def engine_options(schema: str, **extra: Any) -> dict[str, Any]:
    """SQLALCHEMY_ENGINE_OPTIONS that put an app's connections into `schema`."""
    connect_args = {"connect_timeout": 10, "options": f"-csearch_path={schema}", **extra.pop("connect_args", {})}
    return {"pool_pre_ping": True, **extra, "connect_args": connect_args}


def settings(schema: str) -> dict[str, Any]:
    """The app settings for a PostgreSQL schema (merge over base_config)."""
    return {"SQLALCHEMY_DATABASE_URI": POSTGRES_URL, "SQLALCHEMY_ENGINE_OPTIONS": engine_options(schema)}


def migrate(schema: str, tmp: Path) -> dict[str, Any]:
    """`flask db upgrade` (the real migrations) into `schema`; heads, current revisions and drift."""
    from conftest import base_config
    from test_migrations import current_revisions, quiet_logging_config, schema_diffs, script_heads

    from app import create_app
    from app.extensions import db

    app = create_app({**base_config(tmp, database=settings(schema))}, instance_path=str(tmp / "instance"))
    with app.app_context():
        with quiet_logging_config():
            result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, f"flask db upgrade failed:\n{result.output}\n{result.exception!r}"
        info = {"schema": schema, "heads": script_heads(), "current": current_revisions(), "diffs": schema_diffs()}
        _seeds[schema] = _seed_rows()
        db.session.remove()
        db.engine.dispose()
    return info


def _seed_rows() -> str:
    """INSERTs for the rows the migrations themselves leave (the audit chain's head row), so an
    emptied schema is as `flask db upgrade` left it, not emptier."""
    from app.extensions import db

    statements = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                values = sa.insert(table).values(**row).compile(db.engine, compile_kwargs={"literal_binds": True})
                statements.append(str(values))
    return ";\n".join(statements)


def session_schema(tmp_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run's migrated schema (created on first use): schema, heads, current, diffs."""
    global _session
    if _session is None:
        schema = create_schema("run")
        _session = migrate(schema, tmp_factory.mktemp("pg-migrate"))
        _migrated.add(schema)
    return _session


def migrated_schema(tmp: Path) -> str:
    """A schema of its own, migrated, for a fixture that outlives one test."""
    schema = create_schema("own")
    migrate(schema, tmp)
    _migrated.add(schema)
    return schema


def database_for(tmp_path: Path) -> dict[str, Any]:
    """The database settings base_config() gives an app whose folder is `tmp_path`."""
    global _session_used
    if not ON_POSTGRES:
        return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'chartbox.db'}"}
    scope = FIXTURE_SETUP.get()
    if scope is not None and scope[0] != "function":
        # A module's (class's, session's) fixture keeps its rows across that module's tests.
        fixturedef, request = scope[1], scope[2]
        schema = migrated_schema(request.getfixturevalue("tmp_path_factory").mktemp("pg-own"))
        fixturedef.addfinalizer(lambda: drop_schema(schema))
        return settings(schema)
    if _session is None:
        raise RuntimeError("the PostgreSQL session schema is not ready (conftest's test_database fixture)")
    _session_used = True
    return settings(_session["schema"])


def on_migrated_schema(config: dict[str, Any]) -> bool:
    """Whether an app with these settings runs on a schema the migrations built (so no
    create_all): the run's, or a module's own."""
    if not str(config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("postgresql"):
        return False
    options = str(config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("connect_args", {}).get("options", ""))
    return any(f"-csearch_path={schema}" in options.split() for schema in _migrated)


def use_session_schema(schema: str) -> None:
    """When `schema` is the run's: mark it as used, so it is emptied after this test."""
    global _session_used
    if _session is not None and schema == _session["schema"]:
        _session_used = True


def _emptying(schema: str) -> str:
    """One round trip that empties every table of `schema` and restarts its sequences.

    DELETE, not TRUNCATE: after a test the tables hold a handful of rows, and TRUNCATE of every
    table costs 30-200 ms here (a new file per table), DELETE 1-5 ms. Children before parents
    (the models' dependency order); alembic_version stays, and the migrations' own rows return.
    """
    if schema not in _empty_sql:
        from app.extensions import db

        with admin_engine().connect() as conn:
            present = set(sa.inspect(conn).get_table_names(schema=schema))
            sequences = conn.execute(sa.text(
                "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = :s"),
                {"s": schema}).scalars().all()
        ordered = [t.name for t in reversed(db.metadata.sorted_tables) if t.name in present]
        unknown = present - set(ordered) - {"alembic_version"}
        statements = ["SET LOCAL lock_timeout = '10s'"]
        statements += [f'DELETE FROM "{schema}"."{name}"' for name in [*sorted(unknown), *ordered]]
        statements += [f"SELECT setval('\"{schema}\".\"{seq}\"', 1, false)" for seq in sequences]
        statements += [f'SET LOCAL search_path TO "{schema}"', *filter(None, [_seeds.get(schema, "")])]
        _empty_sql[schema] = ";\n".join(statements)
    return _empty_sql[schema]


def empty_schema(schema: str) -> None:
    """Delete every row of `schema` (identities restarted), as a fresh database would be."""
    started = time.perf_counter()
    with admin_engine().connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:  # the DBAPI's own execute: several statements, one round trip
            cursor.execute(_emptying(schema))
        raw.commit()
    emptying_ms.append((time.perf_counter() - started) * 1000)


def empty_session_schema_if_used() -> None:
    global _session_used
    if _session_used and _session is not None:
        _session_used = False
        empty_schema(_session["schema"])
