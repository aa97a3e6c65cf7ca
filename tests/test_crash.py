"""A gunicorn worker killed (SIGKILL) mid-upload loses nothing, and its debris is found and removed.

A real gunicorn serves the app on a free loopback port (one gthread worker) over this test's
database and storage. Some uploads complete; then several large ones are sent slowly, and the
worker is killed while their bodies are still arriving (their temp spool files, written as the
bytes come in, are on disk). Afterwards: every row has its bytes and checksum (`files check
--deep`), `files check` lists the killed worker's debris, and `files cleanup --grace-hours 0`
removes it all. Bounded in time, loopback only; every process started is killed in a finally.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import multipart, sample, stop_process_group
from live import children, free_port
from sqlalchemy import select

from app.extensions import db
from app.models import StoredFile

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
BUDGET = 30.0  # seconds for the whole test
APP_MODULE = """\
import os

from app import create_app

app = create_app(instance_path=os.environ["CHARTBOX_INSTANCE"])
"""

pytestmark = pytest.mark.skipif(not GUNICORN.exists() or not Path("/proc").is_dir(),
                                reason="needs gunicorn in the venv and /proc")


def big_png() -> bytes:
    """A valid ~7 MB PNG (noise does not compress)."""
    from PIL import Image

    side = 1500
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def big_csv() -> bytes:
    return "".join(f"{i},{i * 31 % 997},reading\n" for i in range(400_000)).encode()



class Server:
    """gunicorn, one gthread worker, on 127.0.0.1:<port>."""

    def __init__(self, tmp_path: Path, instance: Path):
        self.port = free_port()
        self.log = tmp_path / "gunicorn.log"
        (tmp_path / "crashapp.py").write_text(APP_MODULE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
        env.update(CHARTBOX_INSTANCE=str(instance), PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
        with open(self.log, "wb") as log:
            self.master = subprocess.Popen(
                [str(GUNICORN), "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--worker-class", "gthread",
                 "--threads", "8", "--timeout", "30", "--graceful-timeout", "2", "--no-control-socket",
                 "--chdir", str(tmp_path), "crashapp:app"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def connection(self, timeout: float = 20) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def wait_ready(self, token: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self.master.poll() is None, self.logs()
            conn = self.connection(timeout=2)
            try:
                conn.request("GET", "/api_v3/files", headers={"X-ApiToken": token})
                if conn.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        pytest.fail("gunicorn did not start in time:\n" + self.logs())

    def workers(self) -> list[int]:
        return children(self.master.pid)

    def stop(self) -> None:
        """Everything this test started: the master's whole process group."""
        stop_process_group(self.master)


def test_a_killed_worker_loses_nothing_and_leaves_only_debris(app, runner, client, tmp_path, make_user, make_token):
    started = time.monotonic()
    deadline = started + BUDGET
    provider, patient = make_user("provider", password=None), make_user("patient", password=None)
    token, patient_id = make_token(provider), str(patient.id)
    bearer = {"Authorization": f"Bearer {token}"}
    images = []
    for n in range(3):  # Candid images whose bytes are PUT, streamed, to their signed URLs
        resp = client.post("/images/v1", headers=bearer, json={
            "file_name": f"scan-{n}.png", "display_name": f"Scan {n}", "file_type": "image/png",
            "status": "PENDING", "patient": {"id": patient_id}})
        assert resp.status_code == 200, resp.get_json()
        url = urlsplit(resp.get_json()["signed_url"])
        images.append(f"{url.path}?{url.query}")
    instance, root = Path(app.instance_path), Path(app.config["STORAGE_ROOT"])
    spool_dir = instance / "tmp"
    (instance / "config.py").write_text(
        f"SECRET_KEY = {app.config['SECRET_KEY']!r}\n"
        f"SQLALCHEMY_DATABASE_URI = {app.config['SQLALCHEMY_DATABASE_URI']!r}\n"
        f"SQLALCHEMY_ENGINE_OPTIONS = {app.config['SQLALCHEMY_ENGINE_OPTIONS']!r}\n"  # PostgreSQL: its schema
        f"STORAGE_ROOT = {str(root)!r}\n")
    db.session.remove()
    png, csv = big_png(), big_csv()
    assert 5_000_000 < len(png) < 15_000_000 and 5_000_000 < len(csv) < 15_000_000

    server = Server(tmp_path, instance)
    answered: dict[str, bytes] = {}  # file id -> the bytes of every upload answered 200
    outcomes: list[str] = []
    killed = threading.Event()
    try:
        server.wait_ready(token, deadline)

        def upload(name: str, data: bytes, pause: float = 0.0) -> None:
            """VSee multipart upload; with `pause`, the body goes out slowly in chunks."""
            body, ctype = multipart({"meta.target.id": patient_id}, name, data)
            conn = server.connection()
            try:
                conn.putrequest("POST", "/api_v3/files")
                for header, value in {"X-ApiToken": token, "Content-Type": ctype,
                                      "Content-Length": str(len(body))}.items():
                    conn.putheader(header, value)
                conn.endheaders()
                for at in range(0, len(body), 256 * 1024):
                    conn.send(body[at:at + 256 * 1024])
                    if pause and not killed.is_set():
                        time.sleep(pause)
                resp = conn.getresponse()
                payload = resp.read()
                if resp.status == 200:
                    answered[json.loads(payload)["data"]["id"]] = data
                outcomes.append(f"{name}: {resp.status}")
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append(f"{name}: {type(exc).__name__}")
            finally:
                conn.close()

        def put_image(path: str, data: bytes) -> None:
            """A PUT of an image's bytes, streamed slowly (the app spools them as they come)."""
            conn = server.connection()
            try:
                conn.putrequest("PUT", path)
                conn.putheader("Content-Type", "image/png")
                conn.putheader("Content-Length", str(len(data)))
                conn.endheaders()
                for at in range(0, len(data), 64 * 1024):
                    if killed.is_set():
                        break
                    conn.send(data[at:at + 64 * 1024])
                    time.sleep(0.02)
                resp = conn.getresponse()
                resp.read()
                outcomes.append(f"PUT: {resp.status}")
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append(f"PUT: {type(exc).__name__}")
            finally:
                conn.close()

        # Uploads that complete before the crash: they must come through it intact.
        for name in ("letter.pdf", "photo.jpg", "vitals.csv"):
            upload(name, sample(name))
        upload("big-before.csv", csv)
        assert len(answered) == 4, (outcomes, server.logs())

        # Large uploads in flight, bodies still arriving; kill the worker in the middle of them.
        threads = [threading.Thread(target=put_image, args=(path, png)) for path in images]
        threads += [threading.Thread(target=upload, args=(f"big-{n}.csv", csv, 0.05)) for n in range(2)]
        for thread in threads:
            thread.start()
        while not any(p.stat().st_size > 256 * 1024 for p in spool_dir.glob("upload-*.tmp")):
            assert time.monotonic() < deadline - 15, ("no upload in flight", outcomes, server.logs())
            time.sleep(0.01)
        [worker] = server.workers()
        os.kill(worker, signal.SIGKILL)
        killed.set()
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic() - 10))
        assert not any(t.is_alive() for t in threads), outcomes

        # gunicorn starts a new worker; the server works on, and what was answered is served whole.
        server.wait_ready(token, deadline - 5)
        assert server.workers() != [worker]
        upload("after.txt", sample("notes.txt"))
        assert "after.txt: 200" in outcomes, (outcomes, server.logs())
    finally:
        server.stop()

    assert any(o.startswith("PUT: ") and not o.endswith(" 200") for o in outcomes), outcomes  # cut off
    db.session.remove()
    rows = {r.public_id: r for r in db.session.scalars(select(StoredFile))}
    assert set(answered) <= set(rows)
    for file_id, data in answered.items():
        assert rows[file_id].sha256 == hashlib.sha256(data).hexdigest()
    check = runner.invoke(args=["files", "check", "--deep"])
    assert check.exit_code == 0, check.output  # no row without its bytes, every checksum matches
    assert f"OK: {len(rows)} files checked deeply, no problems." in check.output
    debris_lines = [line for line in check.output.splitlines()
                    if line.startswith(("temp spool file: ", "partial write: ", "orphan blob: "))]
    assert any(line.startswith("temp spool file: ") for line in debris_lines), check.output
    assert all("younger than 24 h, kept" in line for line in debris_lines), check.output
    leftovers = list(spool_dir.glob("upload-*.tmp")) + list(root.rglob(".*.part"))
    assert leftovers and len(leftovers) <= len(debris_lines)

    kept = runner.invoke(args=["files", "cleanup", "--yes"])  # the default grace period: all of it is fresh
    assert kept.exit_code == 0 and "0 debris item(s) removed" in kept.output, kept.output
    cleaned = runner.invoke(args=["files", "cleanup", "--grace-hours", "0", "--yes"])
    assert cleaned.exit_code == 0, cleaned.output
    assert f"{len(debris_lines)} debris item(s) removed" in cleaned.output, cleaned.output
    again = runner.invoke(args=["files", "check", "--deep"])
    assert again.exit_code == 0 and "Debris: none." in again.output, again.output
    assert f"OK: {len(rows)} files checked deeply" in again.output
    assert list(spool_dir.glob("upload-*.tmp")) == [] and list(root.rglob(".*.part")) == []
    assert time.monotonic() - started < BUDGET
