"""The real Alembic migrations: from empty to head, no drift from the models, and back to base.

Works with whatever chain of revisions exists (other issues add their own migrations).
The helpers here are reused by test_services_postgres.py.
"""
from __future__ import annotations

import logging.config
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app

from app import ROOT, create_app
from app.extensions import db


@contextmanager
def quiet_logging_config():
    """migrations/env.py calls logging.config.fileConfig, which would disable every logger the
    test session already has (caplog and friends); keep the session's logging as it is."""
    original = logging.config.fileConfig
    logging.config.fileConfig = lambda *args, **kwargs: None
    try:
        yield
    finally:
        logging.config.fileConfig = original


SEARCH_INDEX_NAMES = ("file_texts_fts", "ix_file_texts_search")  # as migrations/env.py


def run_db_command(app: Flask, *args: str) -> None:
    """`flask db <args>` through the CLI runner; fail the test with its output if it fails."""
    with quiet_logging_config():
        result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, f"flask db {' '.join(args)} failed:\n{result.output}\n{result.exception!r}"


def script_heads() -> set[str]:
    from alembic.config import Config

    config = Config(str(Path(ROOT, "migrations", "alembic.ini")))
    config.set_main_option("script_location", str(Path(ROOT, "migrations")))
    return set(ScriptDirectory.from_config(config).get_heads())


def current_revisions() -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def schema_diffs() -> list:
    """What `flask db migrate` would generate now: empty when the models match the database."""
    with db.engine.connect() as conn:
        # The search index's own tables and index are the database's, not models (migrations/env.py).
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": False,
            "include_name": lambda name, type_, parents: not (name or "").startswith(SEARCH_INDEX_NAMES)})
        return compare_metadata(context, db.metadata)


def table_names() -> set[str]:
    with db.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


@pytest.fixture
def empty_app(tmp_path, empty_database):
    """An app on an empty database (a new SQLite file, or with CHARTBOX_TEST_DATABASE=postgresql
    a new schema): no create_all, only the migrations build the schema."""
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "SERVER_NAME": "chartbox.test", **empty_database,
                      "STORAGE_ROOT": str(tmp_path / "files")}, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_one_linear_chain():
    assert len(script_heads()) == 1, f"several heads: {script_heads()}; merge them"


def test_upgrade_from_empty_reaches_head_without_drift(empty_app):
    assert table_names() == set()
    run_db_command(empty_app, "upgrade")
    assert current_revisions() == script_heads()
    assert set(db.metadata.tables) <= table_names()
    assert schema_diffs() == []


def test_flask_db_check_agrees(empty_app):
    run_db_command(empty_app, "upgrade")
    run_db_command(empty_app, "check")


def test_downgrade_to_base_and_up_again(empty_app):
    run_db_command(empty_app, "upgrade")
    run_db_command(empty_app, "downgrade", "base")
    assert table_names() <= {"alembic_version"}
    assert current_revisions() == set()
    run_db_command(empty_app, "upgrade")
    assert current_revisions() == script_heads() and schema_diffs() == []


def test_every_step_downgrades_and_upgrades(empty_app):
    """Walk the chain one revision at a time, down and up again."""
    run_db_command(empty_app, "upgrade")
    steps = 0
    while current_revisions():
        run_db_command(empty_app, "downgrade", "--", "-1")
        steps += 1
        assert steps < 100
    for _ in range(steps):
        run_db_command(empty_app, "upgrade", "+1")
    assert current_revisions() == script_heads() and schema_diffs() == []


def test_migrated_database_serves_the_app(empty_app, empty_database):
    """The schema the migrations build (not create_all) takes a real upload."""
    import io

    from conftest import sample

    from app.models import Category, Channel, Role
    from app.services import accounts, files
    from app.services.audit import Origin

    run_db_command(empty_app, "upgrade")
    clinic = accounts.create_account("mig", "Migrated Clinic")
    patient = accounts.create_user(clinic, Role.PATIENT, "pat", "Pat")
    row = files.upload(patient, Origin(Channel.CLI), io.BytesIO(sample("letter.pdf")), "letter.pdf",
                       Category.USER_DOCUMENT)
    assert row.id and row.page_count == 2
    assert current_app.config["SQLALCHEMY_DATABASE_URI"] == empty_database["SQLALCHEMY_DATABASE_URI"]
