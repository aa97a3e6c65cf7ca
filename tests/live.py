"""A real Chartbox behind gunicorn, as `make run` serves it, for tests that attack a live server.

`LiveApp` starts `gunicorn -c gunicorn.conf.py wsgi:app` from the repository on a free loopback
port, over a fresh database and storage in the test's tmp folder, seeded with a clinic, a
provider, a patient, their API tokens and two small files. `Probe` plays the ordinary patient
while an attack runs: it keeps opening the sign-in page and downloading a small file, and
records how long each took and whether it failed.

Clients pick their source address on 127.0.0.0/8 (Linux routes all of it to loopback), so a
probe and an attacker are different clients to per-address limits, as on a real network.

`http_request` (one request on a fresh connection) and `wait_until_up` (poll a server just
started until it answers) are what every live server here shares: tests/test_nginx.py's nginx,
tests/test_access_log.py's gunicorn and bench/http_common.py's servers use them too.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
PASSWORD = "correct horse battery"
PROBE_ADDRESS = "127.0.0.2"  # the ordinary patient; attackers use 127.0.0.1 or others

SEED = """\
import io, json, sys
from flask_migrate import upgrade
from PIL import Image
from app import create_app
from app.models import Category, Channel, Role
from app.services import accounts, files
from app.services.audit import Origin
from app.urls import view_url

password = sys.argv[1]
app = create_app()
with app.app_context():
    upgrade()
    clinic = accounts.create_account("liveclinic", "Live Clinic")
    provider = accounts.create_user(clinic, Role.PROVIDER, "dr.live", "Dr Live", "dr@example.org", password)
    patient = accounts.create_user(clinic, Role.PATIENT, "pat.live", "Pat Live", "pat@example.org", password)
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(png, "PNG")
    small = files.upload(patient, Origin(Channel.CLI), io.BytesIO(png.getvalue()), "small.png",
                         Category.USER_DOCUMENT, files.Target.chart(patient))
    with open(sys.argv[2], "rb") as fh:
        pdf = files.upload(provider, Origin(Channel.CLI), io.BytesIO(fh.read()), "letter.pdf",
                           Category.USER_DOCUMENT, files.Target.chart(patient))
    with app.test_request_context():
        link = view_url(small, patient)
    path = link.split("://", 1)[1].split("/", 1)[1]
    print(json.dumps({
        "clinic": clinic.code, "provider_id": provider.id, "provider_username": provider.username,
        "patient_id": patient.id, "patient_username": patient.username, "password": password,
        "provider_token": accounts.create_token(provider, "live")[1],
        "patient_token": accounts.create_token(patient, "live")[1],
        "small_file_id": small.public_id, "small_view": "/" + path, "pdf_file_id": pdf.public_id,
    }))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_request(host: str, port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0,
                 source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection, from the address `source` when given: (status,
    headers with lower-case names, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_until_up(process: subprocess.Popen, port: int, path: str, log: Callable[[], str], *,
                  timeout: float = 30.0, status: int | None = None, source: str | None = None,
                  name: str = "server", interval: float = 0.1, host: str = "127.0.0.1") -> None:
    """Poll GET http://`host`:`port``path` until the server just started as `process` answers
    (with `status` when given, any status otherwise). A refused connection or a garbled answer
    means "not yet". Raises RuntimeError, with the tail of `log()`, when the process exits
    first or `timeout` seconds pass; stopping the process is the caller's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log()[-3000:]}")
        try:
            answered = http_request(host, port, "GET", path, timeout=2, source=source)[0]
        except (OSError, http.client.HTTPException):
            pass
        else:
            if status is None or answered == status:
                return
        time.sleep(interval)
    raise RuntimeError(f"{name} did not answer within {timeout} s:\n{log()[-3000:]}")


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (gunicorn's workers), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class LiveApp:
    """`gunicorn -c gunicorn.conf.py wsgi:app` over `tmp_path`; a context manager.

    Args:
        settings: app settings, passed as FLASK_<NAME> (JSON-encoded unless a str), as an
            operator would set them.
        workers: gunicorn workers (the WORKERS variable `make run` passes).
        env: further environment for gunicorn (e.g. THREADS).
        seed: another LiveApp's `seed`, for a second host on the same database and storage
            (settings SQLALCHEMY_DATABASE_URI, STORAGE_BACKEND … and SECRET_KEY override the
            tmp folder's SQLite, files and random secret): nothing is migrated or seeded, and
            `self.seed` is that one.
    """

    def __init__(self, tmp_path: Path, settings: dict[str, Any] | None = None, workers: int = 2,
                 env: dict[str, str] | None = None, start_timeout: float = 30.0,
                 seed: SimpleNamespace | None = None):
        self.tmp = Path(tmp_path)
        self.tmp.mkdir(parents=True, exist_ok=True)  # its log lives here, whatever the storage
        self.port = free_port()
        self.host = "127.0.0.1"
        self.start_timeout = start_timeout
        self.log_path = self.tmp / "gunicorn.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("FLASK_", "GUNICORN_")) and k not in ("HOST", "PORT", "WORKERS", "THREADS")}
        base.update(FLASK_SECRET_KEY=secrets.token_hex(32),
                    FLASK_SQLALCHEMY_DATABASE_URI=f"sqlite:///{self.tmp / 'chartbox.db'}",
                    FLASK_STORAGE_ROOT=str(self.tmp / "files"))
        for name, value in (settings or {}).items():
            base[f"FLASK_{name}"] = _env_value(value)
        self.app_env = base
        self.env = {**base, **(env or {}), "HOST": self.host, "PORT": str(self.port), "WORKERS": str(workers)}
        self.master: subprocess.Popen | None = None
        self.reused_seed = seed
        self.seed = seed or SimpleNamespace()
        #: CHARTBOX_TEST_DATABASE=postgresql: this server's own schema (the seed step migrates it;
        #: stop() drops it), unless the settings name a database or a seed is reused.
        self.schema: str | None = None
        if seed is None and "SQLALCHEMY_DATABASE_URI" not in (settings or {}):
            self._on_test_database((settings or {}).get("SQLALCHEMY_ENGINE_OPTIONS"))

    def _on_test_database(self, engine_options: dict | None) -> None:
        import db_switch

        if not db_switch.ON_POSTGRES:
            return
        self.schema = db_switch.create_schema("live")
        database = {"FLASK_SQLALCHEMY_DATABASE_URI": db_switch.POSTGRES_URL,
                    "FLASK_SQLALCHEMY_ENGINE_OPTIONS": json.dumps(db_switch.engine_options(
                        self.schema, **dict(engine_options or {})))}
        self.app_env.update(database)
        self.env.update(database)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LiveApp:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LiveApp:
        if self.reused_seed is None:  # a second host reuses the first one's database and seed
            seeded = subprocess.run([sys.executable, "-c", SEED, PASSWORD, str(ROOT / "tests" / "data" / "letter.pdf")],
                                    cwd=ROOT, env=self.app_env, capture_output=True, text=True, timeout=120)
            if seeded.returncode != 0:
                raise RuntimeError(f"seeding failed:\n{seeded.stderr[-3000:]}")
            self.seed = SimpleNamespace(**json.loads(seeded.stdout.strip().splitlines()[-1]))
        with open(self.log_path, "wb") as out:
            self.master = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "--no-control-socket", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_up(self.master, self.port, "/login", self.log, timeout=self.start_timeout, status=200,
                      name="gunicorn", host=self.host)
        return self

    def stop(self) -> None:
        from conftest import stop_process_group

        if self.master is not None:
            stop_process_group(self.master)
        if self.schema is not None:
            import db_switch

            db_switch.drop_schema(self.schema)
            self.schema = None

    # -- use ---------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def connection(self, timeout: float = 10.0, source: str | None = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          source_address=(source, 0) if source else None)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 10.0, source: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: (status, headers with lower-case names, body)."""
        return http_request(self.host, self.port, method, path, body, headers, timeout, source)

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value from the server's database (its SQLite file or PostgreSQL schema), e.g. a count."""
        rows = self.rows(sql, **params)
        return rows[0][0] if rows else None

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        """The rows of a query (`:name` parameters) on the server's database, whichever engine."""
        import sqlalchemy as sa

        options = json.loads(self.app_env.get("FLASK_SQLALCHEMY_ENGINE_OPTIONS", "{}"))
        engine = sa.create_engine(self.app_env["FLASK_SQLALCHEMY_DATABASE_URI"],
                                  connect_args=options.get("connect_args", {}))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the master's children."""
        assert self.master is not None
        return children(self.master.pid)

    @staticmethod
    def rss(pid: int) -> int:
        """A process's resident memory in bytes (0 once it is gone)."""
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


class Probe(threading.Thread):
    """The ordinary patient: GET /login and a small download, over and over, timed.

    Use as a context manager around an attack; then read p95(), failures and count. A
    request counts as failed on any status but 200, or when it takes longer than `timeout`.
    """

    def __init__(self, live: LiveApp, interval: float = 0.1, timeout: float = 15.0, source: str = PROBE_ADDRESS):
        super().__init__(daemon=True)
        self.live, self.interval, self.timeout, self.source = live, interval, timeout, source
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop_event = threading.Event()

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(self.timeout + 5)

    @property
    def count(self) -> int:
        return len(self.latencies) + len(self.failures)

    def run(self) -> None:
        paths = ["/login", self.live.seed.small_view]
        n = 0
        while not self._stop_event.is_set():
            path = paths[n % len(paths)]
            n += 1
            started = time.monotonic()
            try:
                status, _, _ = self.live.request("GET", path, timeout=self.timeout, source=self.source)
            except OSError as exc:
                self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
            else:
                if status == 200:
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.failures.append(f"{path}: HTTP {status}")
            self._stop_event.wait(self.interval)

    def p95(self) -> float:
        """The 95th-percentile latency in seconds (inf when nothing succeeded)."""
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]

    def summary(self) -> str:
        return (f"{self.count} probe requests, {len(self.failures)} failed, p95 {self.p95() * 1000:.0f} ms, "
                f"max {max(self.latencies, default=0) * 1000:.0f} ms; failures: {self.failures[:5]}")
