"""Debian's nginx in front of a real gunicorn, configured with the shipped deploy/nginx-chartbox.conf
(tests/test_multihost.py puts the same `Nginx` in front of two hosts).

nginx runs as a non-daemon child on a free loopback port with every path under the test's
tmp folder; its server block is three lines around `include deploy/nginx-chartbox.conf`, and
its http-level lines (the connection zone, the log format) are read out of deploy/nginx.conf,
so the tested configuration is the shipped one (TLS and the log file aside, which
test_the_shipped_config_is_valid checks with `nginx -t`). Each mode of DOWNLOADS that suits
the filesystem (stream, x-accel) runs the same downloads; the app trusts one proxy
(TRUSTED_PROXIES=1), as in production.
"""
from __future__ import annotations

import getpass
import hashlib
import http.client
import json
import os
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import multipart, service_unavailable, stop_process_group
from live import ROOT, LiveApp, free_port, http_request, wait_until_up

NGINX = Path("/usr/sbin/nginx")
DEPLOY = ROOT / "deploy"
BIG_SIZE = 22 * 1024 * 1024
UPLOAD_MAX_BYTES = 25 * 1024 * 1024  # the app's default
CLIENT = "127.0.0.7"  # the address the test's requests come from (Linux routes 127/8 to loopback)


def big_csv(size: int) -> bytes:
    """`size` bytes of plain CSV (a valid upload of any size), different on every line."""
    line = b"%09d,reading,%03d\n"
    rows = (line % (i, i * 7 % 1000) for i in range(size // 22 + 1))
    return b"".join(rows)[:size - 1] + b"\n"


def http_level_lines() -> str:
    """The http-context statements of deploy/nginx.conf the included file relies on."""
    text = (DEPLOY / "nginx.conf").read_text()
    found = re.findall(r"^(?:limit_conn_zone|log_format) [^;]*;", text, flags=re.MULTILINE)
    assert len(found) == 2, found
    return "\n".join(found)


def temp_paths(tmp: Path) -> str:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    return "\n".join(f"{name}_temp_path {tmp / part};" for name, part in (
        ("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"), ("uwsgi", "uwsgi"), ("scgi", "scgi")))


def main_context() -> str:
    # As root the workers would run as nobody, who cannot read the tmp folder: run as ourselves
    # (ignored, with a notice in the error log, when the master is not root).
    return f"user {getpass.getuser()};\nworker_processes 1;\nevents {{ worker_connections 512; }}\n"


def run_nginx_t(tmp: Path, conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(NGINX), "-t", "-q", "-p", str(tmp), "-c", str(conf),
                           "-g", f"pid {tmp / 'nginx-t.pid'}; error_log {tmp / 'nginx-t.log'};"],
                          capture_output=True, text=True, timeout=20)


class Nginx:
    """nginx in front of `upstream` (a port, or several: one upstream block that balances them,
    round robin, as tests/test_multihost.py runs two hosts), sending x-accel files from
    `storage_root`; a context manager."""

    def __init__(self, tmp: Path, upstream: int | Sequence[int], storage_root: Path):
        ports = [upstream] if isinstance(upstream, int) else list(upstream)
        assert ports, "nginx needs an upstream server"
        servers = "\n        ".join(f"server 127.0.0.1:{port};" for port in ports)
        self.tmp = tmp
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        tmp.mkdir(parents=True, exist_ok=True)
        self.conf = tmp / "nginx.conf"
        self.access_log = tmp / "access.log"
        self.error_log = tmp / "error.log"
        self.conf.write_text(f"""{main_context()}
http {{
    default_type application/octet-stream;
    {temp_paths(tmp)}
    {http_level_lines()}
    access_log {self.access_log} chartbox;
    upstream chartbox {{
        {servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        set $chartbox_storage_root {storage_root};
        include {DEPLOY / 'nginx-chartbox.conf'};
    }}
}}
""")

    def __enter__(self) -> Nginx:
        checked = run_nginx_t(self.tmp, self.conf)
        assert checked.returncode == 0, checked.stderr
        with open(self.tmp / "nginx.out", "wb") as out:
            self.process = subprocess.Popen(
                [str(NGINX), "-p", str(self.tmp), "-c", str(self.conf),
                 "-g", f"daemon off; pid {self.tmp / 'nginx.pid'}; error_log {self.error_log};"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_up(self.process, self.port, "/login", self.log, timeout=10, status=200, source=CLIENT,
                          name="nginx", interval=0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def log(self) -> str:
        return self.error_log.read_text(errors="replace")[-3000:] if self.error_log.exists() else ""

    def connection(self, timeout: float = 20.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(CLIENT, 0))

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
        """One request from CLIENT: (status, headers with lower-case names, body)."""
        return http_request("127.0.0.1", self.port, method, path, body, headers, timeout, CLIENT)


@pytest.fixture(scope="module")
def nginx_binary() -> Path:
    if not (NGINX.is_file() and os.access(NGINX, os.X_OK)):
        service_unavailable("nginx", f"{NGINX} is not installed (make nginx, or apt-get install nginx-light)")
    return NGINX


@pytest.fixture(scope="module", params=["stream", "x-accel"])
def front(request, nginx_binary, tmp_path_factory):
    """(nginx, live app, the 22 MB file's upload answer) for one DOWNLOADS mode."""
    tmp = tmp_path_factory.mktemp(f"nginx-{request.param}")
    settings = {"TRUSTED_PROXIES": 1, "DOWNLOADS": request.param, "RATELIMIT_ENABLED": False}
    with LiveApp(tmp / "app", settings=settings, workers=1) as live, \
            Nginx(tmp / "nginx", live.port, tmp / "app" / "files") as nginx:
        big = big_csv(BIG_SIZE)
        status, _, body = upload(nginx, live, "readings.csv", big)
        assert status == 200, body[:500]
        yield nginx, live, big, json.loads(body)["data"]


def upload(nginx: Nginx, live: LiveApp, name: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    body, ctype = multipart({"meta.target.id": str(live.seed.patient_id)}, name, data)
    return nginx.request("POST", "/api_v3/files", body=body, timeout=60,
                         headers={"X-ApiToken": live.seed.provider_token, "Content-Type": ctype})


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def audit_rows(live: LiveApp, action: str) -> list[tuple]:
    """(ip, detail) of the live app's audit events of `action`, oldest first."""
    rows = live.rows("SELECT ip, detail FROM audit_events WHERE action = :action ORDER BY id", action=action)
    # SQLite hands the JSON column back as text, PostgreSQL as an object.
    return [(ip, (json.loads(detail) if isinstance(detail, str) else detail) or {}) for ip, detail in rows]


def assert_hardened(headers: dict[str, str]) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "private, no-store"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert "x-accel-redirect" not in headers  # nginx never passes it on


# -- the shipped configuration ----------------------------------------------------------------

def test_the_shipped_config_is_valid(nginx_binary, tmp_path):
    """deploy/nginx.conf as shipped (TLS included), with only its paths pointed into tmp."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "files.clinic.example")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    shipped = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        "/etc/ssl/certs/files.clinic.example.pem": tmp_path / "cert.pem",
        "/etc/ssl/private/files.clinic.example.key": tmp_path / "key.pem",
        "/var/log/nginx/chartbox.access.log": tmp_path / "access.log",
        "/etc/nginx/chartbox/nginx-chartbox.conf": DEPLOY / "nginx-chartbox.conf",
        "/srv/chartbox/instance/files": tmp_path / "files",
    }
    for old, new in replacements.items():
        assert shipped.count(old) == 1, old
        shipped = shipped.replace(old, str(new))
    (tmp_path / "chartbox.conf").write_text(shipped)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"{main_context()}http {{\n{temp_paths(tmp_path)}\ninclude {tmp_path / 'chartbox.conf'};\n}}\n")
    checked = run_nginx_t(tmp_path, conf)
    assert checked.returncode == 0, checked.stderr + (tmp_path / "nginx-t.log").read_text(errors="replace")


# -- downloads --------------------------------------------------------------------------------

def test_small_and_large_downloads_through_nginx(front):
    """Both files arrive byte for byte with the file's own headers; in x-accel mode gunicorn
    itself sends no body for the large one (nginx sends it) and still sends the small one."""
    nginx, live, big, uploaded = front
    mode = live.app_env["FLASK_DOWNLOADS"]
    link = path_of(uploaded["fullpath"])

    status, headers, body = nginx.request("GET", link)
    assert status == 200 and len(body) == BIG_SIZE and body == big
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-length"] == str(BIG_SIZE)
    assert headers["etag"] == f'"{hashlib.sha256(big).hexdigest()}"'
    assert headers["content-disposition"] == "inline; filename=\"readings.csv\"; filename*=UTF-8''readings.csv"
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-security-policy"].endswith("; sandbox")
    assert_hardened(headers)

    direct = live.request("GET", link)  # what gunicorn answers nginx
    if mode == "x-accel":
        assert direct[0] == 200 and direct[2] == b""
        key = direct[1]["x-accel-redirect"].removeprefix("/_chartbox_blobs/")
        assert (live.tmp / "files" / key).read_bytes() == big
    else:
        assert direct[0] == 200 and len(direct[2]) == BIG_SIZE and "x-accel-redirect" not in direct[1]

    status, headers, body = nginx.request("GET", live.seed.small_view)
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n" and headers["content-type"] == "image/png"
    assert_hardened(headers)
    assert "x-accel-redirect" not in live.request("GET", live.seed.small_view)[1]  # small: sent checked


def test_range_and_conditional_requests_through_nginx(front):
    nginx, live, big, uploaded = front
    link = path_of(uploaded["fullpath"])
    etag = f'"{hashlib.sha256(big).hexdigest()}"'

    status, headers, body = nginx.request("GET", link, headers={"Range": "bytes=1000000-1999999"})
    assert status == 206 and body == big[1_000_000:2_000_000]
    assert headers["content-range"] == f"bytes 1000000-1999999/{BIG_SIZE}"
    assert_hardened(headers)
    status, _, body = nginx.request("GET", link, headers={"Range": "bytes=-10", "If-Range": etag})
    assert status == 206 and body == big[-10:]
    status, _, body = nginx.request("GET", link, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert status == 200 and len(body) == BIG_SIZE  # If-Range against the sha256 ETag
    status, headers, body = nginx.request("GET", link, headers={"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["etag"] == etag
    for value in (etag, '"stale"'):  # nginx would judge If-Match by its own validators: the app answers
        through = nginx.request("GET", link, headers={"If-Match": value})
        direct = live.request("GET", link, headers={"If-Match": value})
        assert (through[0], through[2]) == (direct[0], direct[2]) and "x-accel-redirect" not in direct[1]


def test_uploads_through_nginx_and_the_body_limits(front):
    """A VSee upload passes; a file just over UPLOAD_MAX_BYTES gets the app's 413 in VSee's
    shape; a body just over client_max_body_size gets nginx's 413 before it is sent."""
    nginx, live, _, _ = front
    status, _, body = upload(nginx, live, "notes.txt", b"Seen today; all well.\n")
    assert status == 200 and json.loads(body)["data"]["name"] == "notes.txt"

    status, _, body = upload(nginx, live, "huge.csv", big_csv(UPLOAD_MAX_BYTES + 1))
    assert status == 413 and json.loads(body)["code"] == 413

    conn = nginx.connection()
    try:
        conn.putrequest("POST", "/api_v3/files")
        conn.putheader("X-ApiToken", live.seed.provider_token)
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(35 * 1024 * 1024 + 1))
        conn.endheaders()  # no body: nginx judges Content-Length before reading any
        resp = conn.getresponse()
        assert resp.status == 413 and b"nginx" in resp.read()
    finally:
        conn.close()


def test_the_app_sees_the_client_address_nginx_forwards(front):
    """TRUSTED_PROXIES=1: the audit has the address nginx saw, not nginx's own nor a forged one."""
    nginx, live, _, uploaded = front
    status, _, _ = nginx.request("GET", path_of(uploaded["fullpath"]) + "&size=64x64",
                                 headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 200
    ip, detail = audit_rows(live, "view")[-1]
    assert ip == CLIENT and detail.get("size") is None  # a CSV ignores size=: the original
    assert audit_rows(live, "upload")[-1][0] == CLIENT  # the seed's are the CLI's, without one


def test_the_internal_location_is_not_reachable_from_outside(front):
    nginx, live, big, _ = front
    key = next(p for p in (live.tmp / "files").rglob("*") if p.is_file() and p.stat().st_size == BIG_SIZE)
    rel = key.relative_to(live.tmp / "files").as_posix()
    for path in (f"/_chartbox_blobs/{rel}", "/_chartbox_blobs/", "/_chartbox_blobs/../chartbox.db"):
        status, _, body = nginx.request("GET", path)
        assert status in (400, 404) and big[:100] not in body, path
    assert nginx.request("GET", f"/_chartbox_blobs/{rel}")[0] == 404
