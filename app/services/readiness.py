"""Readiness: whether this host can serve now — its database answers and its file store is
reachable (what a load balancer asks /readyz every few seconds).

Each check is one cheap call: `SELECT 1` on the app's own engine (so its pool, pre-ping and
connect arguments are what is tested) and the storage's `check()`. A failure is logged here
with its detail; the caller learns only which part failed, since the detail can name hosts,
paths or driver text that a probe has no business seeing. Nothing is written: no audit event,
no session, no counter.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.storage import StorageError, get_storage

#: Milliseconds PostgreSQL lets the readiness query run before it cancels it. Connecting is
#: bounded by the driver's own `connect_timeout` (SQLALCHEMY_ENGINE_OPTIONS connect_args) and
#: a busy pool by `pool_timeout`; SQLite's `SELECT 1` takes no lock, so it cannot wait.
STATEMENT_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Readiness:
    """What one readiness check found: True for each part that works."""

    database: bool
    storage: bool

    @property
    def ready(self) -> bool:
        return self.database and self.storage


def check() -> Readiness:
    """Ask the database and the file store, each once; never raises for an outage.

    Returns:
        Readiness with `database` False when the engine cannot connect or run `SELECT 1`
        (any SQLAlchemy error), and `storage` False when the backend's check raises
        StorageError. Both parts are always checked, so the answer names every failing one.
    """
    return Readiness(database=_database_answers(), storage=_storage_reachable())


def _database_answers() -> bool:
    try:
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # LOCAL: ends with this transaction, rolled back when the connection goes back.
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            conn.execute(text("SELECT 1")).scalar_one()
    except SQLAlchemyError as exc:
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        current_app.logger.warning("not ready: the database does not answer: %s: %s", type(exc).__name__, reason)
        return False
    return True


def _storage_reachable() -> bool:
    try:
        get_storage().check()
    except StorageError as exc:
        current_app.logger.warning("not ready: file storage is unreachable: %s", exc)
        return False
    return True
