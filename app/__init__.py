"""Chartbox: a clinic's patient-document service."""
from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: dict | None = None, instance_path: str | None = None) -> Flask:
    """Build the app: config -> extensions -> storage -> blueprints -> errors -> CLI.

    `instance_path` moves the instance folder (tests give each app its own tmp_path).
    """
    app = Flask(
        __name__,
        instance_path=instance_path,
        instance_relative_config=True,
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    from app.config import load_config
    from app.http import ChartboxRequest

    app.request_class = ChartboxRequest
    os.makedirs(app.instance_path, exist_ok=True)
    load_config(app, test_config)
    from app.services.transaction import release_idle_connection
    from app.serving import ClientBody

    # No database connection is held while a client's body trickles in; too slow gets a 408.
    app.wsgi_app = ClientBody(app.wsgi_app, release_idle_connection)  # type: ignore[method-assign]
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from app.extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    from app.i18n import init_i18n

    init_i18n(app)  # first of the before-request hooks: every answer, a 429 too, is in its language
    from app.ratelimits import init_ratelimits

    # Before CSRF, whose check parses the form: a refused request costs no body parsing.
    init_ratelimits(app)
    csrf.init_app(app)
    _enable_sqlite_wal()

    from app.storage import init_storage

    init_storage(app)

    from app.api import register_api
    from app.web import register_web

    register_api(app)
    register_web(app)
    from app.web.health import register_health

    register_health(app)  # /healthz, /readyz: outside CSRF and the rate limits

    from app.errors import register_error_handlers

    register_error_handlers(app)

    from app.cli import register_cli

    register_cli(app)
    return app


_wal_listening = False


def _enable_sqlite_wal() -> None:
    """SQLite: WAL (readers never block the writer), foreign keys on, a busy timeout."""
    global _wal_listening
    if _wal_listening:
        return
    _wal_listening = True

    @event.listens_for(Engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        import sqlite3

        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()
