"""gunicorn's logs never hold a bearer secret (auth_code, API tokens, passwords, cookies).

Unit tests of the pure masking functions and of MaskingLogger inside a real gunicorn Config;
then a live test: a real gunicorn started with `-c gunicorn.conf.py` (as `make run` does) on a
free loopback port, over this test's own database and storage, serves requests that hand out
and use every kind of secret; once it has stopped, its whole output is searched for them.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import runpy
import secrets
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from conftest import multipart, sample, stop_process_group
from gunicorn.config import Config
from live import GUNICORN, ROOT, free_port, http_request, wait_until_up

from app.access_log import (
    MASK,
    MaskingLogger,
    is_secret_header,
    is_secret_param,
    mask_atoms,
    mask_header,
    mask_query,
    mask_request_line,
    mask_text,
    mask_url,
)

CODE = "9f2b" * 16  # an auth_code's shape: 64 hex digits


# -- the pure functions ------------------------------------------------------------------------------

def test_the_request_line_keeps_the_path_and_time_but_not_the_auth_code():
    line = f"GET /files/view/abc123?auth_code={CODE}&time=1767225600 HTTP/1.1"
    assert mask_request_line(line) == "GET /files/view/abc123?auth_code=***&time=1767225600 HTTP/1.1"


def test_candids_signed_url_keeps_by_v_and_time():
    query = f"by=3&v=1&auth_code={CODE}&time=1767225600"
    assert mask_query(query) == "by=3&v=1&auth_code=***&time=1767225600"
    assert mask_request_line(f"PUT /images/v1/img-1/content?{query} HTTP/1.1") == \
        "PUT /images/v1/img-1/content?by=3&v=1&auth_code=***&time=1767225600 HTTP/1.1"


@pytest.mark.parametrize("query,expected", [
    # several parameters: only the secret ones lose their values, order and names stay
    (f"size=300x300&auth_code={CODE}&time=17&preview=2", "size=300x300&auth_code=***&time=17&preview=2"),
    ("token=t0k&access_token=a&api_key=k&apikey=k2&key=k3&signature=s&sig=s2&password=pw&page=2",
     "token=***&access_token=***&api_key=***&apikey=***&key=***&signature=***&sig=***&password=***&page=2"),
    # case variations
    ("AUTH_CODE=a&Auth_Code=b&Token=c&API_KEY=d&Password=e", "AUTH_CODE=***&Auth_Code=***&Token=***&API_KEY=***&Password=***"),
    # percent-encoded names (werkzeug decodes them: `auth%5Fcode` IS auth_code to the app), and `+`
    (f"auth%5Fcode={CODE}&time=1", "auth%5Fcode=***&time=1"),
    (f"auth%5fcode={CODE}&%61uth_code=x&auth%255Fcode=y", "auth%5fcode=***&%61uth_code=***&auth%255Fcode=***"),
    ("api-key=k&x-api-key=k2&+token=t", "api-key=***&x-api-key=***&+token=***"),
    # a percent-encoded value is masked whole, encoding and all
    ("password=correct%20horse%2Bbattery&user=a", "password=***&user=a"),
    # names that merely contain a secret word are secret; look-alikes are not
    ("refresh_token=r&client_secret=s&X-Amz-Signature=x&monkey=m&keys=k&sigma=1&by=3",
     "refresh_token=***&client_secret=***&X-Amz-Signature=***&monkey=m&keys=k&sigma=1&by=3"),
    # the same name twice, `;` as a separator, empty values and bare names
    ("auth_code=a&auth_code=b;token=c", "auth_code=***&auth_code=***;token=***"),
    ("auth_code=&time=1&token&flag", "auth_code=&time=1&token&flag"),
    # `=` itself percent-encoded
    (f"auth_code%3D{CODE}&time=1", "auth_code=***&time=1"),
    # a signed link inside another parameter (`next=`): its secret is masked, the rest kept
    (f"next=%2Ffiles%2Fview%2Fx%3Fauth_code%3D{CODE}%26time%3D17", "next=/files/view/x?auth_code=***%26time=17"),
    (f"next=%252Ffiles%252Fview%252Fx%253Fauth_code%253D{CODE}", "next=/files/view/x?auth_code=***"),
    (f"q=x%26token%3D{CODE}", "q=x%26token=***"),
    # nothing secret: untouched, byte for byte
    ("q=cookie+monster&page=2&next=%2Fdocuments", "q=cookie+monster&page=2&next=%2Fdocuments"),
    ("", ""),
])
def test_query_strings(query, expected):
    assert mask_query(query) == expected


@pytest.mark.parametrize("url,expected", [
    (f"http://files.clinic.example/files/view/x?auth_code={CODE}&time=1",
     "http://files.clinic.example/files/view/x?auth_code=***&time=1"),
    (f"/files/view/x?time=1#auth_code={CODE}", "/files/view/x?time=1#auth_code=***"),
    (f"/files/view/x#token={CODE}", "/files/view/x#token=***"),
    # the query percent-encoded into the path (a link pasted badly): still found
    (f"/files/view/x%3Fauth_code%3D{CODE}%26time%3D1", "/files/view/x%3Fauth_code%3D***%26time%3D1"),
    # PATH_INFO, decoded: `?` inside the path
    (f"/files/view/x?auth_code={CODE}", "/files/view/x?auth_code=***"),
    ("/patients/7/documents", "/patients/7/documents"),
])
def test_urls(url, expected):
    assert mask_url(url) == expected


def test_a_malformed_request_line_is_masked_as_text():
    assert mask_request_line(f"GET /x?auth_code={CODE} HTTP/1.1 junk") == "GET /x?auth_code=*** HTTP/1.1 junk"


@pytest.mark.parametrize("name", ["auth_code", "AUTH_CODE", "auth%5Fcode", "token", "Access_Token", "api_key",
                                  "APIKEY", "key", "signature", "SIG", "password", "x-api-key"])
def test_secret_params(name):
    assert is_secret_param(name)


@pytest.mark.parametrize("name", ["time", "by", "v", "size", "preview", "download", "page", "per_page",
                                  "target_id", "q", "next", "monkey", "keys", "sigma", ""])
def test_params_that_are_not_secret(name):
    assert not is_secret_param(name)


@pytest.mark.parametrize("name", ["Authorization", "authorization", "X-ApiToken", "x-apitoken", "X-API-Key",
                                  "Cookie", "COOKIE", "Set-Cookie", "Proxy-Authorization", "HTTP_AUTHORIZATION",
                                  "http_x_apitoken", "HTTP_X_API_KEY", "HTTP_COOKIE"])
def test_secret_headers_are_masked_whole(name):
    assert is_secret_header(name)
    assert mask_header(name, "Bearer 0123456789abcdef") == MASK
    assert mask_header(name, "-") == "-"  # gunicorn's "not sent" stays visible as such


def test_other_headers_keep_their_value_but_not_a_signed_link_in_it():
    assert not is_secret_header("User-Agent") and not is_secret_header("X-AccountCode")
    assert mask_header("User-Agent", "curl/8.5.0") == "curl/8.5.0"
    assert mask_header("Referer", f"https://h/files/view/x?auth_code={CODE}&time=1") == \
        "https://h/files/view/x?auth_code=***&time=1"
    assert mask_header("Link", f'<https://h/api_v3/files?page=2&token={CODE}>; rel="next"') == \
        '<https://h/api_v3/files?page=2&token=***>; rel="next"'


@pytest.mark.parametrize("message,expected", [
    (f"Invalid HTTP request line: 'GET /files/view/x?auth_code={CODE}\\x01 HTTP/1.1'",
     "Invalid HTTP request line: 'GET /files/view/x?auth_code=*** HTTP/1.1'"),
    (f"Error handling request GET /images/v1/i/content?by=3&auth_code={CODE}&time=1",
     "Error handling request GET /images/v1/i/content?by=3&auth_code=***&time=1"),
    ("Invalid HTTP Header: 'Authorization Bearer abc.def'", "Invalid HTTP Header: 'Authorization ***'"),
    ("Invalid HTTP Header: 'X-ApiToken: abc'", "Invalid HTTP Header: 'X-ApiToken: ***'"),
    ("Invalid HTTP Header: 'COOKIE'", "Invalid HTTP Header: 'COOKIE'"),
    ("Booting worker with pid: 12", "Booting worker with pid: 12"),
])
def test_free_text_messages(message, expected):
    assert mask_text(message) == expected


def test_every_atom_gunicorn_builds_is_masked():
    atoms = {
        "h": "127.0.0.1", "l": "-", "u": "0123456789abcdef", "t": "[01/Jan/2026:00:00:00 +0000]",
        "r": f"GET /files/view/x?auth_code={CODE}&time=1 HTTP/1.1", "s": "200", "m": "GET",
        "U": "/files/view/x", "q": f"auth_code={CODE}&time=1", "H": "HTTP/1.1", "b": "12", "B": 12,
        "f": f"http://h/files/view/x?auth_code={CODE}&time=1", "a": "curl/8.5.0", "T": 0, "D": 12, "M": 0,
        "L": "0.000012", "p": "<1>",
        "{authorization}i": "Bearer s3cr3t", "{x-apitoken}i": "s3cr3t", "{x-api-key}i": "s3cr3t", "{cookie}i": "session=s3cr3t",
        "{host}i": "h", "{set-cookie}o": "session=s3cr3t; HttpOnly", "{location}o": f"/files/view/x?auth_code={CODE}",
        "{content-type}o": "text/plain",
        "{raw_uri}e": f"/files/view/x?auth_code={CODE}&time=1", "{query_string}e": f"auth_code={CODE}&time=1",
        "{path_info}e": "/files/view/x", "{http_authorization}e": "Bearer s3cr3t", "{http_x_apitoken}e": "s3cr3t",
        "{http_cookie}e": "session=s3cr3t", "{wsgi.input}e": object(), "{server_port}e": "8000",
    }
    masked = mask_atoms(atoms)
    assert masked["r"] == "GET /files/view/x?auth_code=***&time=1 HTTP/1.1"
    assert masked["q"] == masked["{query_string}e"] == "auth_code=***&time=1"
    assert masked["f"] == "http://h/files/view/x?auth_code=***&time=1"
    assert masked["{raw_uri}e"] == "/files/view/x?auth_code=***&time=1"
    assert masked["{location}o"] == "/files/view/x?auth_code=***"
    assert masked["u"] == MASK  # a Basic-auth "user" Chartbox never uses: maybe a token sent by mistake
    for key in ("{authorization}i", "{x-apitoken}i", "{x-api-key}i", "{cookie}i", "{set-cookie}o",
                "{http_authorization}e", "{http_x_apitoken}e", "{http_cookie}e"):
        assert masked[key] == MASK, key
    for key in ("h", "l", "t", "s", "m", "U", "H", "b", "B", "a", "T", "D", "M", "L", "p", "{host}i",
                "{content-type}o", "{path_info}e", "{wsgi.input}e", "{server_port}e"):
        assert masked[key] is atoms[key] or masked[key] == atoms[key], key
    values = repr(list(masked.values()))
    assert CODE not in values and "s3cr3t" not in values
    assert mask_atoms({**atoms, "u": "-"})["u"] == "-"


@pytest.fixture
def gunicorn_logger(tmp_path):
    """MaskingLogger over a real gunicorn Config, both logs written to files."""
    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("access_log_format", '%(h)s %(u)s "%(r)s" %(s)s "%(f)s" q=%(q)s auth=%({authorization}i)s '
                                 'tok=%({x-apitoken}i)s TOK=%({X-ApiToken}i)s cookie=%({cookie}i)s raw=%({raw_uri}e)s '
                                 'ua="%(a)s" none=%({x-absent}i)s')
    logger = MaskingLogger(cfg)
    yield logger
    for log in (logger.error_log, logger.access_log):
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
        for filt in list(log.filters):
            log.removeFilter(filt)


def test_masking_logger_writes_no_secret(gunicorn_logger, tmp_path):
    logger = gunicorn_logger
    basic = base64.b64encode(b"tok-basic:").decode()
    req = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer tok-bearer"), ("X-APITOKEN", "tok-header"),
                                   ("COOKIE", "session=tok-cookie")])
    resp = SimpleNamespace(status="200 OK", headers=[("Content-Type", "text/plain")], sent=5)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/files/view/x?auth_code={CODE}&time=17",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/files/view/x", "QUERY_STRING": f"auth_code={CODE}&time=17",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": f"http://h/files/view/y?token={CODE}",
               "HTTP_AUTHORIZATION": f"Basic {basic}", "HTTP_USER_AGENT": 'say "hi"'}
    logger.access(resp, req, environ, timedelta(microseconds=1500))
    logger.warning("Invalid request from ip=127.0.0.1: Invalid HTTP request line: %r",
                   f"GET /files/view/x?auth_code={CODE}\x01 HTTP/1.1")
    try:
        raise RuntimeError(f"boom on /images/v1/i/content?auth_code={CODE}")
    except RuntimeError:
        logger.exception("Error handling request %s", f"/images/v1/i/content?by=3&auth_code={CODE}&time=1")
    before = logger.error_log.handlers + logger.access_log.handlers
    logger.setup(logger.cfg)  # a config reload: the filters are not added twice
    for handler in before:  # gunicorn drops the handlers it replaces without closing them
        handler.close()
    assert len(logger.error_log.filters) == 1 and len(logger.access_log.filters) == 1
    for handler in logger.error_log.handlers + logger.access_log.handlers:
        handler.flush()

    access = (tmp_path / "access.log").read_text()
    error = (tmp_path / "error.log").read_text()
    assert access == ('127.0.0.1 *** "GET /files/view/x?auth_code=***&time=17 HTTP/1.1" 200 '
                      '"http://h/files/view/y?token=***" q=auth_code=***&time=17 auth=*** tok=*** TOK=*** cookie=*** '
                      'raw=/files/view/x?auth_code=***&time=17 ua="say \\"hi\\"" none=-\n')
    assert "/files/view/x?auth_code=*** HTTP/1.1" in error
    assert "Error handling request /images/v1/i/content?by=3&auth_code=***&time=1" in error
    assert "RuntimeError: boom on /images/v1/i/content?auth_code=***" in error  # the traceback too
    for secret in (CODE, "tok-", basic):
        assert secret not in access + error, secret


def test_other_loggers_are_left_alone(gunicorn_logger, caplog):
    with caplog.at_level(logging.INFO, logger="elsewhere"):
        logging.getLogger("elsewhere").info("auth_code=%s", "visible")
    assert caplog.messages == ["auth_code=visible"]


# -- gunicorn.conf.py ---------------------------------------------------------------------------------

@pytest.mark.parametrize("env,bind,workers,threads", [
    ({}, ["127.0.0.1:8000"], 2, 128),
    ({"HOST": "0.0.0.0", "PORT": "9000", "WORKERS": "3", "THREADS": "16"}, ["0.0.0.0:9000"], 3, 16),
    ({"HOST": "::1", "PORT": "9001"}, ["[::1]:9001"], 2, 128),
    ({"HOST": "", "PORT": "", "WORKERS": "", "THREADS": ""}, ["127.0.0.1:8000"], 2, 128),
])
def test_gunicorn_conf(monkeypatch, env, bind, workers, threads):
    for name in ("HOST", "PORT", "WORKERS", "THREADS", "FORWARDED_ALLOW_IPS", "FLASK_TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = {k: v for k, v in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items() if not k.startswith("_")}
    cfg = Config()
    for name, value in settings.items():
        if name in cfg.settings:
            cfg.set(name, value)  # gunicorn's own validators
    assert cfg.bind == bind and cfg.workers == workers
    assert (cfg.worker_class_str, cfg.threads, cfg.timeout, cfg.graceful_timeout) == \
        ("app.serving.ThreadWorker", threads, 60, 30)
    from app.serving import ThreadWorker

    assert cfg.worker_class is ThreadWorker  # gunicorn can load it
    assert cfg.accesslog == "-" and cfg.logger_class is MaskingLogger
    assert cfg.forwarded_allow_ips == []  # no proxy trusted unless TRUSTED_PROXIES says one is in front


# -- a real gunicorn ---------------------------------------------------------------------------------

BUDGET = 20.0  # seconds for the live test
SEED = """\
import json, sys
from flask_migrate import upgrade
from app import create_app
from app.models import Role
from app.services import accounts

app = create_app()
with app.app_context():
    upgrade()
    clinic = accounts.create_account("logclinic", "Log Clinic")
    provider = accounts.create_user(clinic, Role.PROVIDER, "dr.log", "Dr Log", "log@example.org", sys.stdin.read())
    patient = accounts.create_user(clinic, Role.PATIENT, "pat.log", "Pat Log")
    print(json.dumps({"token": accounts.create_token(provider, "log test")[1], "patient": patient.id}))
"""
# gunicorn's default format, plus every atom a secret could travel in.
FORMAT = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
          ' q=%(q)s U=%(U)s auth=%({authorization}i)s apitoken=%({x-apitoken}i)s cookie=%({cookie}i)s'
          ' referer=%({referer}i)s raw=%({raw_uri}e)s qs=%({query_string}e)s eauth=%({http_authorization}e)s'
          ' etoken=%({http_x_apitoken}e)s ecookie=%({http_cookie}e)s')



def target(url: str) -> str:
    """A signed URL's path and query, whatever host it names."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


class Server:
    """`gunicorn -c gunicorn.conf.py wsgi:app` from the repository, on 127.0.0.1:<port>."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.log = log
        env = {**env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        with open(log, "wb") as out:
            self.master = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "--no-control-socket", "--access-logformat", FORMAT,
                 "wsgi:app"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        status, _, answer = http_request("127.0.0.1", self.port, method, path, body, headers)
        return status, answer

    def raw(self, data: bytes) -> bytes:
        """Bytes sent as they are (a malformed request), and what came back."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    def wait_ready(self, deadline: float) -> None:
        try:
            wait_until_up(self.master, self.port, "/login", self.text, timeout=deadline - time.monotonic(),
                          status=200, name="gunicorn")
        except RuntimeError as exc:
            pytest.fail(str(exc))

    def wait_logged(self, words: list[str], deadline: float) -> None:
        """Until every word is in the log (a worker writes its access line after the response)."""
        while not all(word in self.text() for word in words) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Everything this test started: the master's whole process group."""
        stop_process_group(self.master)


@pytest.mark.skipif(not GUNICORN.exists(), reason="needs gunicorn in the venv")
def test_a_real_gunicorn_logs_the_requests_but_none_of_their_secrets(tmp_path):
    password = "pw-" + secrets.token_hex(12)
    cookie = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLASK_", "GUNICORN_")) and k not in ("HOST", "PORT", "WORKERS", "THREADS", "FORWARDED_ALLOW_IPS")}
    env.update(FLASK_SECRET_KEY=secrets.token_hex(32),
               FLASK_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'chartbox.db'}",
               FLASK_STORAGE_ROOT=str(tmp_path / "files"), FLASK_TRUSTED_PROXIES="0")
    # Migrating a new database takes its own time on a loaded machine: the budget starts after.
    seeded = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, input=password, capture_output=True,
                            text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr[-4000:]
    started = time.monotonic()
    deadline = started + BUDGET
    seed = json.loads(seeded.stdout.strip().splitlines()[-1])
    token, patient_id = seed["token"], str(seed["patient"])

    server = Server(env, tmp_path / "gunicorn.log")
    found: dict[str, str] = {"API token": token, "password": password, "cookie": cookie}
    try:
        server.wait_ready(deadline)

        # VSee: upload, get (a signed fullpath), view through the link (also with its name encoded).
        body, ctype = multipart({"meta.target.id": patient_id}, "notes.txt", sample("notes.txt"))
        status, payload = server.request("POST", "/api_v3/files", body, {"X-ApiToken": token, "Content-Type": ctype})
        assert status == 200, payload
        file_id = json.loads(payload)["data"]["id"]
        status, payload = server.request("GET", f"/api_v3/files/{file_id}", headers={"X-ApiToken": token})
        assert status == 200, payload
        link = target(json.loads(payload)["data"]["fullpath"])
        code, stamp = (parse_qs(urlsplit(link).query)[k][0] for k in ("auth_code", "time"))
        found["view auth_code"] = code
        assert server.request("GET", link) == (200, sample("notes.txt"))
        encoded = link.replace("auth_code=", "auth%5Fcode=")
        assert server.request("GET", encoded) == (200, sample("notes.txt"))  # the app decodes the name
        server.request("GET", link.replace("auth_code=", "AUTH_CODE="))
        # A signed link as a page's `next`, and as the Referer; a session cookie.
        server.request("GET", "/login?next=" + quote(link, safe=""),
                       headers={"Referer": f"http://127.0.0.1:{server.port}{link}", "Cookie": f"session={cookie}"})

        # tscharts: sign in with a password for a token, then use it (and misuse it as Basic auth).
        status, payload = server.request("POST", "/tscharts/v1/login/",
                                         json.dumps({"username": "dr.log", "password": password}).encode(),
                                         {"Content-Type": "application/json"})
        assert status == 200, payload
        found["tscharts token"] = json.loads(payload)["token"]
        status, _ = server.request("GET", f"/tscharts/v1/image/?patient={patient_id}",
                                   headers={"Authorization": f"Token {found['tscharts token']}"})
        assert status in (200, 404)
        basic = base64.b64encode(f"{token}:".encode()).decode()
        found["Basic credentials"] = basic
        server.request("GET", "/tscharts/v1/image/", headers={"Authorization": f"Basic {basic}"})

        # Candid: create an image (a signed URL that accepts a PUT), PUT its bytes there.
        status, payload = server.request("POST", "/images/v1", json.dumps({
            "file_name": "card.png", "display_name": "Insurance card", "file_type": "image/png",
            "status": "PENDING", "patient": {"id": patient_id}}).encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert status == 200, payload
        image = json.loads(payload)
        signed = target(image["signed_url"])
        found["Candid auth_code"] = parse_qs(urlsplit(signed).query)["auth_code"][0]
        status, payload = server.request("PUT", signed, sample("scan.png"), {"Content-Type": "image/png"})
        assert status == 200, payload

        # Requests gunicorn refuses before the app sees them: it logs them as errors.
        answer = server.raw(f"GET {link}\x01 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        answer = server.raw(f"GET /x HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {token}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        server.wait_logged(['"PUT /images/v1/', "Invalid HTTP Header"], deadline - 5)
    finally:
        server.stop()

    log = server.text()
    for what, secret in found.items():
        assert secret and secret.lower() not in log.lower(), f"the {what} is in gunicorn's log:\n{log[-4000:]}"
    # The log was written, and says what an admin needs: which file, which link time, which image.
    masked_link = link.replace(code, MASK)
    assert masked_link.startswith(f"/files/view/{file_id}?") and f"auth_code=***&time={stamp}" in masked_link
    assert f'"GET {masked_link} HTTP/1.1" 200' in log, log[-4000:]
    assert f'"GET {encoded.replace(code, MASK)} HTTP/1.1" 200' in log
    assert f"qs={urlsplit(masked_link).query} " in log and f"referer=http://127.0.0.1:{server.port}{masked_link} " in log
    assert f'"PUT {signed.replace(found["Candid auth_code"], MASK)} HTTP/1.1" 200' in log
    assert f'"PUT /images/v1/{image["id"]}/content?' in log and "&auth_code=***&time=" in log
    assert f"apitoken={MASK}" in log and f"auth={MASK}" in log and f"cookie={MASK}" in log
    assert "auth=- " in log and "cookie=- " in log  # headers not sent stay "-"
    assert '"POST /tscharts/v1/login/ HTTP/1.1" 200' in log and '"POST /api_v3/files HTTP/1.1" 200' in log
    assert "Invalid HTTP request line" in log and "Invalid HTTP Header: 'Authorization ***'" in log
    assert time.monotonic() - started < BUDGET
