"""Database snapshots: take, read, check and load one, for SQLite and PostgreSQL.

A snapshot is one file: SQLite's database copied with the online backup API (one read
snapshot, so the app keeps writing meanwhile), or PostgreSQL's pg_dump in its custom format (the
app's schema, or the whole database when that schema is public). Reading one gives back its
stored_files rows, row counts and migration revision without touching the live database;
checking one opens it (`PRAGMA integrity_check`, `pg_restore --list`); loading one replaces the
configured database with it. backup.py puts a snapshot and its blobs together into a backup.
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.errors import ChartboxError
from app.extensions import db
from app.services.integrity import RENDITIONS

SQLITE, POSTGRESQL = "sqlite", "postgresql"
DATABASE_FILES = {SQLITE: "database.sqlite3", POSTGRESQL: "database.pgdump"}
#: Tables whose rows make an instance "not empty" (restore refuses to overwrite them).
TABLES = ("accounts", "users", "stored_files")
#: How long a PostgreSQL restore waits for a lock (a still-running app) before it gives up.
PG_LOCK_TIMEOUT_MS = 60_000


class BackupError(ChartboxError):
    """A backup, check or restore that cannot go on; `problems` lists each reason found.

    Defined here, beside the snapshot code that raises it most, so that backup.py (which
    re-exports it) can import this module without a cycle."""

    status, code, default_message = 409, "backup_failed", "The backup operation failed."

    def __init__(self, message: str, problems: Iterable[str] = ()):
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class Row:
    """A stored_files row as the snapshot has it."""

    label: str
    key: str
    size: int
    sha256: str
    purged: bool


@dataclass
class Snapshot:
    """What `read_snapshot` finds in a snapshot: its stored_files rows, row counts, revision."""

    rows: list[Row]
    counts: dict[str, int]
    revision: str | None  # alembic_version, when the database was migrated

    def blob_keys(self) -> set[str]:
        return {r.key for r in self.rows if not r.purged and not r.key.startswith(RENDITIONS)}


def database_kind() -> str:
    """The configured database's kind (SQLITE or POSTGRESQL); BackupError for any other."""
    name = db.engine.dialect.name
    if name not in DATABASE_FILES:
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {name}.")
    return name


def take_snapshot(kind: str, dest: Path) -> dict[str, Any]:
    """Write a consistent snapshot of the live database to `dest`; return what the manifest
    says of it (kind, file; for PostgreSQL also schema and scope). BackupError when it cannot."""
    if kind == SQLITE:
        with db.engine.connect() as conn, closing(sqlite3.connect(dest)) as target:
            source = conn.connection.driver_connection
            if not isinstance(source, sqlite3.Connection):
                raise BackupError(f"The SQLite driver {type(source).__name__} has no online backup API.")
            # One step (pages=-1) copies a single read snapshot; in WAL mode writers go on meanwhile.
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        return {"kind": SQLITE, "file": dest.name}
    schema = _pg_schema()
    scope = "database" if schema == "public" else "schema"
    args = [_pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={dest}"]
    if scope == "schema":
        args.append('--schema="{}"'.format(schema.replace('"', '""')))  # a pattern: quoted, it is literal
    _run([*args, _pg_dsn()])
    return {"kind": POSTGRESQL, "file": dest.name, "schema": schema, "scope": scope}


def read_snapshot(root: Path, info: dict[str, Any]) -> Snapshot:
    """The stored_files rows, counts and migration revision of the snapshot in `root`."""
    path = root / info["file"]
    if info["kind"] == SQLITE:
        tables = _sqlite_tables(path)
    else:
        wanted = (*TABLES, "alembic_version")
        out = _run([_pg_tool("pg_restore"), "--data-only", f"--schema={info['schema']}",
                    *[f"--table={t}" for t in wanted], "--file=-", str(path)])
        tables = parse_copy(out)
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise BackupError(f"The database snapshot has no {', '.join(missing)} table(s).")
    rows = [Row(f"{r['public_id']} ({r['name']})", str(r["storage_key"]), int(r["size"]), str(r["sha256"]),
                r["purged_at"] is not None) for r in tables["stored_files"]]
    revisions = [r["version_num"] for r in tables.get("alembic_version", [])]
    return Snapshot(rows, {t: len(tables[t]) for t in TABLES}, ",".join(map(str, revisions)) or None)


def _sqlite_tables(path: Path) -> dict[str, list[dict[str, Any]]]:
    columns = {"stored_files": "public_id, name, storage_key, size, sha256, purged_at",
               "accounts": "id", "users": "id", "alembic_version": "version_num"}
    try:
        with closing(_sqlite_readonly(path)) as con:
            con.row_factory = sqlite3.Row
            present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return {t: [dict(r) for r in con.execute(f"SELECT {c} FROM {t}")]
                    for t, c in columns.items() if t in present}
    except sqlite3.Error as exc:
        raise BackupError(f"The database snapshot cannot be read: {exc}") from None


def _sqlite_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def check_snapshot(path: Path, kind: str) -> list[str]:
    """Whether the snapshot at `path` opens: one line per problem found; empty when it does."""
    if kind == POSTGRESQL:
        try:
            _run([_pg_tool("pg_restore"), "--list", str(path)])
        except BackupError as exc:
            return [f"the database dump does not open: {exc.message}"]
        return []
    try:
        with closing(_sqlite_readonly(path)) as con:
            result = [r[0] for r in con.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return [f"the database snapshot does not open: {exc}"]
    return [] if result == ["ok"] else [f"the database snapshot is damaged: {'; '.join(result[:5])}"]


def database_contents() -> list[str]:
    """The TABLES of the configured database that hold rows: one line each; empty when none."""
    found = []
    inspector = sa.inspect(db.engine)
    with db.engine.connect() as conn:
        for table in TABLES:
            if inspector.has_table(table):
                count = conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()
                if count:
                    found.append(f"the database has {count} {table} row(s)")
    return found


def check_target(info: dict[str, Any]) -> None:
    """Refuse, before anything is written, a configured database the snapshot cannot go into."""
    if info["kind"] == SQLITE:
        target = db.engine.url.database
        if not target or target == ":memory:" or target.startswith("file:"):
            raise BackupError("Restore needs a file-based SQLite database (SQLALCHEMY_DATABASE_URI).")
        return
    _pg_tool("pg_restore")
    source_schema, target_schema = info["schema"], _pg_schema()
    if info["scope"] == "database" and target_schema != "public":
        raise BackupError(f"This backup holds a whole database (schema public); the configured schema is "
                          f"{target_schema!r}. Restore it into an instance whose search_path is public.")
    if source_schema != target_schema and _pg_schema_exists(source_schema):
        raise BackupError(f"The backup is of schema {source_schema!r}, which this database also has; restore "
                          f"into a database without it (the configured schema is {target_schema!r}).")


def load_snapshot(root: Path, info: dict[str, Any]) -> None:
    """Replace the configured database with the snapshot (`check_target` has accepted it)."""
    path = root / info["file"]
    if info["kind"] == SQLITE:
        target = str(db.engine.url.database)
        db.session.remove()
        db.engine.dispose()
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with closing(_sqlite_readonly(path)) as source, closing(sqlite3.connect(target)) as dest:
            source.backup(dest)
        return
    source_schema, target_schema = info["schema"], _pg_schema()
    renamed = source_schema != target_schema
    db.session.remove()
    db.engine.dispose()  # our own idle connections must not hold the locks pg_restore needs
    args = [_pg_tool("pg_restore"), "--no-password", "--no-owner", "--no-privileges", "--single-transaction",
            "--exit-on-error", f"--dbname={_pg_dsn()}"]
    _run([*args, *([] if renamed else ["--clean", "--if-exists"]), str(path)],
         options=f"-c lock_timeout={PG_LOCK_TIMEOUT_MS}")
    if renamed:
        with db.engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote_identifier
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quote(target_schema)} CASCADE"))
            conn.execute(sa.text(f"ALTER SCHEMA {quote(source_schema)} RENAME TO {quote(target_schema)}"))
    db.engine.dispose()  # pooled connections may have cached the tables that were replaced


def _pg_schema() -> str:
    """The schema the app's tables live in: current_schema(), else the first one search_path names."""
    with db.engine.connect() as conn:
        current = conn.execute(sa.text("SELECT current_schema()")).scalar()
        search_path = str(conn.execute(sa.text("SHOW search_path")).scalar())
    if current:
        return str(current)
    for part in search_path.split(","):
        name = part.strip()
        if len(name) > 1 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('""', '"')
        if name and name != "$user":
            return name
    return "public"


def _pg_schema_exists(schema: str) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :n"), {"n": schema}).scalar())


def _pg_dsn() -> str:
    """A libpq URI for the app's database, without its password (that goes in PGPASSWORD)."""
    return db.engine.url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (or not on PATH); install the PostgreSQL client tools of "
                          "the server's major version (Debian: apt-get install postgresql-client).")
    return path


def _run(args: list[str], options: str | None = None) -> str:
    """Run a PostgreSQL client tool; return its stdout. Raises BackupError when it fails."""
    env = dict(os.environ)
    if db.engine.url.password:
        env["PGPASSWORD"] = str(db.engine.url.password)
    connect_args = current_app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("connect_args", {})
    env_options = " ".join(o for o in (connect_args.get("options"), options) if o)
    if env_options:
        env["PGOPTIONS"] = env_options
    tool = os.path.basename(args[0])
    try:
        done = subprocess.run(args, env=env, capture_output=True, encoding="utf-8", errors="replace", check=False)
    except OSError as exc:
        raise BackupError(f"{tool} could not run: {exc}") from None
    if done.returncode != 0:
        reason = " ".join(done.stderr.strip().splitlines()[-3:]) or f"exit status {done.returncode}"
        raise BackupError(f"{tool} failed: {reason}")
    return done.stdout


_COPY = re.compile(r"^COPY (?P<table>\S+) \((?P<columns>[^)]*)\) FROM stdin;$")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def parse_copy(script: str) -> dict[str, list[dict[str, str | None]]]:
    """The rows of every `COPY … FROM stdin` block of a SQL script (pg_restore --data-only --file=-).

    Returns {table name (unqualified): [{column: text value, or None for NULL}]}.
    """
    tables: dict[str, list[dict[str, str | None]]] = {}
    lines = iter(script.split("\n"))
    for line in lines:
        match = _COPY.match(line)
        if not match:
            continue
        columns = [c.strip().strip('"') for c in match["columns"].split(",")]
        rows = tables.setdefault(match["table"].rsplit(".", 1)[-1].strip('"'), [])
        for data in lines:
            if data == "\\.":
                break
            rows.append(dict(zip(columns, map(_unescape, data.split("\t")), strict=True)))
    return tables


def _unescape(value: str) -> str | None:
    if value == "\\N":
        return None

    def one(match: re.Match[str]) -> str:
        code = match[1]
        if code[0] == "x" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code[0] in "01234567":
            return chr(int(code, 8))
        return _ESCAPES.get(code, code)

    return _ESCAPE.sub(one, value)
