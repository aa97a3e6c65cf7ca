"""The production topology: two hosts (real gunicorn servers on two ports) sharing ONE
PostgreSQL schema, ONE S3 bucket (moto's real HTTP server) and ONE Redis, as behind a load
balancer. Whatever one host does, the other sees: files, signed links, rate limits, the
sign-in throttle and page sessions, a sign-out or revoke included. First each host is asked
directly on its own port; then both sit behind ONE nginx (tests/test_nginx.py's, with the
shipped deploy/nginx-chartbox.conf) whose upstream block balances them, and the same holds
for requests that only ever reach nginx. Then gunicorn.conf.py's production settings:
forwarded-header trust that follows TRUSTED_PROXIES, worker recycling, and a HUP reload that
refuses nothing.

Skips (or fails with CHARTBOX_REQUIRE_SERVICES=1) without PostgreSQL, Redis or moto, and the
nginx test without nginx. Each two-host test migrates its own schema and drops it after; Redis
keys carry a prefix unique to the test and are removed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import runpy
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlencode

import db_switch
import pytest
from conftest import multipart, sample, service_unavailable
from gunicorn.config import Config
from live import PASSWORD, ROOT, LiveApp
from test_nginx import CLIENT, Nginx, nginx_binary  # noqa: F401 - the fixture skips/fails without nginx
from test_storage_contract import s3_endpoint  # noqa: F401 - moto's real S3 server, shared
from test_throttle_redis import redis_url  # noqa: F401 - skips/fails without Redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BUDGET = 40.0  # seconds for each two-host test, the servers' start included (about 20 on a busy 2-CPU box)
PUBLIC = "http://files.multihost.test"  # the balancer's address: links carry it, whichever host minted them
READY = {"status": "ready", "database": "ok", "storage": "ok"}
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture(scope="module")
def moto(request) -> str:
    if importlib.util.find_spec("moto") is None:
        service_unavailable("moto (the S3 test server)", "not installed: pip install -e '.[test]'")
    return request.getfixturevalue("s3_endpoint")


@pytest.fixture
def shared(redis_url, moto):
    """The settings both hosts share: one schema (empty: host A's seeding migrates it), one
    bucket, one Redis prefix, one SECRET_KEY."""
    import boto3
    import redis

    schema = db_switch.create_schema("multihost")  # skips/fails without PostgreSQL
    bucket = f"chartbox-multihost-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    prefix = f"chartbox-multihost-{uuid.uuid4().hex[:12]}"
    settings = {
        "SECRET_KEY": secrets.token_hex(32),  # identical on every host: sessions, links, limit keys
        "PUBLIC_URL": PUBLIC,
        # As an operator sets them: FLASK_SQLALCHEMY_ENGINE_OPTIONS is JSON, read by from_prefixed_env.
        "SQLALCHEMY_DATABASE_URI": db_switch.POSTGRES_URL, "SQLALCHEMY_ENGINE_OPTIONS": db_switch.engine_options(schema),
        "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": moto, "S3_REGION": "us-east-1",
        "S3_PREFIX": "chartbox",
        "RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": prefix,  # the throttle counts there too
        "RATELIMIT_API_READ": "5 per minute", "LOGIN_ATTEMPTS": 3, "LOGIN_WINDOW": 60,
    }
    yield {"settings": settings, "s3": s3, "bucket": bucket}
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"LIMITS:LIMITER/{prefix}/*"):
            client.delete(key)
    finally:
        client.close()
        s3.close()
        db_switch.drop_schema(schema)  # the servers are stopped: nothing holds it


def blob_keys(shared: dict) -> set[str]:
    page = shared["s3"].list_objects_v2(Bucket=shared["bucket"], Prefix="chartbox/")
    return {item["Key"] for item in page.get("Contents", [])}


class Balanced:
    """Requests through nginx, each with a User-Agent of its own, which the host that served it
    writes in gunicorn's access log (the combined format): so every answer is known to come
    from one host or the other, and `served` lists which, in order."""

    def __init__(self, nginx: Nginx, hosts: tuple[LiveApp, LiveApp]):
        self.nginx, self.hosts = nginx, hosts
        self.served: list[LiveApp] = []

    @property
    def last(self) -> LiveApp:
        return self.served[-1]

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
        tag = f"multihost-{len(self.served)}-{uuid.uuid4().hex[:8]}"
        answer = self.nginx.request(method, path, body, {**(headers or {}), "User-Agent": tag}, timeout)
        self.served.append(self._served_by(f'"{tag}"'))
        return answer

    def _served_by(self, logged: str) -> LiveApp:
        deadline = time.monotonic() + 10  # a worker writes its access line just after the answer
        while True:
            found = [host for host in self.hosts if logged in host.log()]
            if found or time.monotonic() > deadline:
                assert len(found) == 1, f"{logged} logged by {[host.tmp.name for host in found]}"
                return found[0]
            time.sleep(0.02)


def upload_report(host, seed, data: bytes) -> dict:
    """Upload `data` as the patient's "report.pdf" through a host's (or the balancer's) VSee API."""
    body, ctype = multipart({"meta.category": "user_document", "meta.target.id": str(seed.patient_id)},
                            "report.pdf", data)
    status, _, made = api(host, "POST", "/api_v3/files", seed.provider_token, body, ctype)
    assert status == 200, made
    return made


def api(live: LiveApp | Balanced, method: str, path: str, token: str, body: bytes | None = None,
        content_type: str | None = None) -> tuple[int, dict, dict]:
    headers = {"X-ApiToken": token, **({"Content-Type": content_type} if content_type else {})}
    status, response_headers, raw = live.request(method, path, body, headers)
    return status, response_headers, json.loads(raw) if raw else {}


def local(link: str) -> str:
    """A signed link's path and query: what the balancer passes on to whichever host."""
    assert link.startswith(PUBLIC + "/"), link
    return link[len(PUBLIC):]


def page_form(live: LiveApp | Balanced) -> tuple[str, str]:
    """The sign-in form's CSRF token and the cookie it belongs to."""
    status, headers, body = live.request("GET", "/login")
    assert status == 200
    return _CSRF.search(body.decode())[1], headers["set-cookie"].split(";", 1)[0]


def page_login(live: LiveApp | Balanced, form: tuple[str, str], username: str, password: str):
    token, cookie = form
    body = urlencode({"csrf_token": token, "username": username, "password": password}).encode()
    return live.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                 "Cookie": cookie})


def signed_in(live: LiveApp | Balanced, username: str) -> str:
    status, headers, _ = page_login(live, page_form(live), username, PASSWORD)
    assert status == 303, status
    return headers["set-cookie"].split(";", 1)[0]


def documents(live: LiveApp | Balanced, cookie: str) -> tuple[int, dict, bytes]:
    return live.request("GET", "/documents", headers={"Cookie": cookie})


def assert_signed_out(live: LiveApp, cookie: str) -> None:
    status, headers, _ = documents(live, cookie)
    assert status in (302, 303) and "/login" in headers["location"], status


def test_two_hosts_share_one_database_bucket_and_redis(tmp_path, shared):
    started = time.monotonic()
    settings = shared["settings"]
    # One worker each: two processes on two ports are what is shared across (workers of one
    # host sharing counts is tests/abuse's), and four would double the start on a 2-CPU runner.
    with (LiveApp(tmp_path / "a", settings, workers=1) as a,
          LiveApp(tmp_path / "b", settings, workers=1, seed=a.seed) as b):
        seed = a.seed
        for live in (a, b):  # each host's readiness: PostgreSQL and the bucket answer
            assert json.loads(live.request("GET", "/readyz")[2]) == READY
        before = blob_keys(shared)

        # A file uploaded through A's VSee API …
        data = sample("letter.pdf")
        made = upload_report(a, seed, data)
        file_id = made["data"]["id"]
        assert len(blob_keys(shared) - before) == 1  # its bytes are in the shared bucket
        assert not (a.tmp / "files").exists() or not any(p.is_file() for p in (a.tmp / "files").rglob("*"))

        # … is listed by B, and the link A minted (in A's listing) opens on B, B's on A.
        listing = f"/api_v3/files?target_id={seed.patient_id}"
        status, _, on_b = api(b, "GET", listing, seed.provider_token)
        assert status == 200 and file_id in [f["id"] for f in on_b["data"]]
        status, _, on_a = api(a, "GET", listing, seed.provider_token)
        link_from_a = next(f["fullpath"] for f in on_a["data"] if f["id"] == file_id)
        link_from_b = next(f["fullpath"] for f in on_b["data"] if f["id"] == file_id)
        for host, link in ((b, link_from_a), (a, link_from_b)):
            status, headers, content = host.request("GET", local(link))
            assert status == 200 and content == data and headers["content-type"] == "application/pdf"

        # Renamed through B (A sees the new name), deleted through B (the links die on both).
        status, _, renamed = api(b, "POST", f"/api_v3/files/{file_id}", seed.provider_token,
                                 json.dumps({"name": "Renamed on B.pdf"}).encode(), "application/json")
        assert status == 200 and renamed["data"]["name"] == "Renamed on B.pdf"
        status, _, seen = api(a, "GET", f"/api_v3/files/{file_id}", seed.provider_token)
        assert status == 200 and seen["data"]["name"] == "Renamed on B.pdf"
        status, _, deleted = api(b, "DELETE", f"/api_v3/files/{file_id}", seed.provider_token)
        assert status == 200, deleted
        for host in (a, b):
            assert host.request("GET", local(link_from_a))[0] == 404

        # Rate limits count across both: RATELIMIT_API_READ is 5 per minute for the patient's token.
        own = f"/api_v3/files?target_id={seed.patient_id}"
        statuses = [api(host, "GET", own, seed.patient_token)[0] for host in (a, b, a, b, a)]
        assert statuses == [200] * 5
        status, headers, refused = api(b, "GET", own, seed.patient_token)
        assert status == 429 and refused["code"] == 429 and 1 <= int(headers["retry-after"]) <= 60
        assert api(a, "GET", own, seed.patient_token)[0] == 429

        # The sign-in throttle counts across both: 3 failures (2 on A, 1 on B), then even the
        # right password is refused on either host.
        form_a, form_b = page_form(a), page_form(b)
        failures = [page_login(a, form_a, seed.provider_username, "wrong password")[0] for _ in range(2)]
        failures.append(page_login(b, form_b, seed.provider_username, "wrong password")[0])
        assert failures == [401, 401, 401]
        assert page_login(b, form_b, seed.provider_username, PASSWORD)[0] == 429
        assert page_login(a, form_a, seed.provider_username, PASSWORD)[0] == 429

        # A page session opened on A works on B; signed out on A, it is dead on B.
        cookie = signed_in(a, seed.patient_username)
        status, _, page = documents(b, cookie)
        assert status == 200 and b"small.png" in page
        _, headers, page = documents(a, cookie)  # the page's CSRF token lives in the session …
        csrf, cookie = _CSRF.search(page.decode())[1], headers["set-cookie"].split(";", 1)[0]  # … now in its cookie
        status, _, _ = a.request("POST", "/logout", urlencode({"csrf_token": csrf}).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        assert status == 303
        assert_signed_out(b, cookie)

        # One opened on B, revoked by `chartbox sessions revoke` with A's configuration: dead on both.
        cookie = signed_in(b, seed.patient_username)
        assert documents(a, cookie)[0] == 200
        revoked = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "sessions", "revoke",
                                  "--user", seed.patient_username, "--all"], cwd=ROOT, env=a.app_env,
                                 capture_output=True, text=True, timeout=30)
        assert revoked.returncode == 0 and "1 session(s)" in revoked.stdout, revoked.stderr[-2000:]
        for host in (a, b):
            assert_signed_out(host, cookie)
    assert time.monotonic() - started < BUDGET


def test_two_hosts_behind_one_nginx(tmp_path, shared, nginx_binary):
    """Production's front: ONE nginx whose upstream block holds both hosts, the shipped
    deploy/nginx-chartbox.conf included, and the app trusting that one proxy (TRUSTED_PROXIES=1).
    nginx's round robin alternates the two request by request, so each step below lands on the
    host the step it depends on did not: a file uploaded through nginx is listed, viewed,
    renamed and deleted through nginx by the other host, the signed link one host minted opens
    on the other, a page session opened on one is used on the other, and one rate limit counts
    across both. Which host served a request is read from the hosts' own access logs."""
    started = time.monotonic()
    settings = {**shared["settings"], "TRUSTED_PROXIES": 1}  # one trusted hop: nginx (deploy/nginx.conf)
    with (LiveApp(tmp_path / "a", settings, workers=1) as a,
          LiveApp(tmp_path / "b", settings, workers=1, seed=a.seed) as b,
          Nginx(tmp_path / "nginx", [a.port, b.port], tmp_path / "no-files") as nginx):  # S3: no x-accel root
        seed, front = a.seed, Balanced(nginx, (a, b))

        # Both hosts answer behind nginx, in turn.
        for _ in range(4):
            assert json.loads(front.request("GET", "/readyz")[2]) == READY
        first, second = front.served[:2]
        assert first is not second and front.served == [first, second, first, second]

        # A file uploaded through nginx (its bytes in the shared bucket, none on either host) …
        before = blob_keys(shared)
        data = sample("letter.pdf")
        made = upload_report(front, seed, data)
        uploader, file_id = front.last, made["data"]["id"]
        assert len(blob_keys(shared) - before) == 1
        for host in (a, b):
            assert not any(p.is_file() for p in (host.tmp / "files").rglob("*"))

        # … is listed by the other host; the link it minted there opens on the uploader's.
        status, _, listed = api(front, "GET", f"/api_v3/files?target_id={seed.patient_id}", seed.provider_token)
        minter = front.last
        assert status == 200 and minter is not uploader
        link = next(f["fullpath"] for f in listed["data"] if f["id"] == file_id)
        status, headers, content = front.request("GET", local(link))
        assert front.last is not minter
        assert status == 200 and content == data and headers["content-type"] == "application/pdf"

        # Renamed by the other host (the next one sees the new name), deleted by the other host
        # (the link dies on both).
        status, _, renamed = api(front, "POST", f"/api_v3/files/{file_id}", seed.provider_token,
                                 json.dumps({"name": "Renamed behind nginx.pdf"}).encode(), "application/json")
        renamer = front.last
        assert status == 200 and renamed["data"]["name"] == "Renamed behind nginx.pdf" and renamer is not uploader
        status, _, seen = api(front, "GET", f"/api_v3/files/{file_id}", seed.provider_token)
        assert status == 200 and seen["data"]["name"] == "Renamed behind nginx.pdf" and front.last is not renamer
        status, _, deleted = api(front, "DELETE", f"/api_v3/files/{file_id}", seed.provider_token)
        assert status == 200 and front.last is not uploader, deleted
        assert [front.request("GET", local(link))[0] for _ in range(2)] == [404, 404]
        assert set(front.served[-2:]) == {a, b}

        # A page session: the form from one host, signed in on the other, its pages on both.
        cookie = signed_in(front, seed.patient_username)
        assert set(front.served[-2:]) == {a, b}
        for _ in range(2):
            status, _, page = documents(front, cookie)
            assert status == 200 and b"small.png" in page
        assert set(front.served[-2:]) == {a, b}

        # Rate limits count across both: RATELIMIT_API_READ is 5 per minute for the patient's token.
        own = f"/api_v3/files?target_id={seed.patient_id}"
        assert [api(front, "GET", own, seed.patient_token)[0] for _ in range(5)] == [200] * 5
        assert set(front.served[-5:]) == {a, b}
        for _ in range(2):  # then both hosts refuse it
            status, headers, refused = api(front, "GET", own, seed.patient_token)
            assert status == 429 and refused["code"] == 429 and 1 <= int(headers["retry-after"]) <= 60
        assert set(front.served[-2:]) == {a, b}

        # Both hosts believed nginx about the client's address, and nothing else.
        assert {ip for (ip,) in a.rows("SELECT DISTINCT ip FROM audit_events WHERE ip IS NOT NULL")} == {CLIENT}
    assert time.monotonic() - started < BUDGET


# -- gunicorn.conf.py -------------------------------------------------------------------------------

def gunicorn_config(monkeypatch, env: dict[str, str]) -> Config:
    """gunicorn.conf.py read under `env`, through gunicorn's own validators."""
    for name in ("FORWARDED_ALLOW_IPS", "FLASK_TRUSTED_PROXIES", "MAX_REQUESTS", "MAX_REQUESTS_JITTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = Config()
    for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items():
        if not name.startswith("_") and name in cfg.settings:
            cfg.set(name, value)
    return cfg


@pytest.mark.parametrize("env,trusted", [
    ({}, []),  # the app believes no proxy, so neither does gunicorn
    ({"FLASK_TRUSTED_PROXIES": "0"}, []),
    ({"FLASK_TRUSTED_PROXIES": "1"}, ["127.0.0.1", "::1"]),  # nginx on this host
    ({"FLASK_TRUSTED_PROXIES": "2", "FORWARDED_ALLOW_IPS": "10.0.0.0/24,10.0.1.7"}, ["10.0.0.0/24", "10.0.1.7"]),
    ({"FORWARDED_ALLOW_IPS": "*"}, ["*"]),
])
def test_gunicorn_trusts_forwarded_headers_as_the_app_does(monkeypatch, env, trusted):
    cfg = gunicorn_config(monkeypatch, env)
    assert cfg.forwarded_allow_ips == trusted
    assert cfg.logger_class.__name__ == "MaskingLogger" and cfg.graceful_timeout == 30


@pytest.mark.parametrize("env,recycle", [
    ({}, (0, 0)),  # off: nothing grows with use
    ({"MAX_REQUESTS": "20000"}, (20000, 2000)),  # a tenth of jitter, so workers restart apart
    ({"MAX_REQUESTS": "1000", "MAX_REQUESTS_JITTER": "50"}, (1000, 50)),
])
def test_gunicorn_recycles_workers_only_when_asked(monkeypatch, env, recycle):
    cfg = gunicorn_config(monkeypatch, env)
    assert (cfg.max_requests, cfg.max_requests_jitter) == recycle


def test_forged_forwarded_proto_is_ignored_and_a_hup_reload_refuses_nothing(tmp_path):
    """A live `make run`: a local client's X-Forwarded-Proto does not turn links into https
    (gunicorn's own default would have believed 127.0.0.1); then `kill -HUP` replaces every
    worker while a client keeps asking, and every answer is a 200: none refused or dropped.
    (One asked while no new worker has imported the app yet waits for it: the old ones are
    told to stop as soon as the new ones are forked, so the timeout is generous.)"""
    with LiveApp(tmp_path, workers=2) as live:
        status, _, raw = live.request("GET", f"/api_v3/files/{live.seed.small_file_id}",
                                      headers={"X-ApiToken": live.seed.provider_token, "X-Forwarded-Proto": "https"})
        assert status == 200
        assert json.loads(raw)["data"]["fullpath"].startswith(f"http://127.0.0.1:{live.port}/files/view/")

        old = set(live.worker_pids())
        answers: list[str] = []
        slowest = [0.0]
        stop = threading.Event()

        def ask() -> None:
            while not stop.is_set():
                asked = time.monotonic()
                try:
                    answers.append(str(live.request("GET", "/healthz", timeout=20)[0]))
                except OSError as exc:
                    answers.append(f"{type(exc).__name__}: {exc}")
                slowest[0] = max(slowest[0], time.monotonic() - asked)
                time.sleep(0.02)

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        try:
            time.sleep(0.3)
            assert live.master is not None
            os.kill(live.master.pid, signal.SIGHUP)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                current = set(live.worker_pids())
                if len(current) == 2 and not current & old:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"workers not replaced after HUP: {old} -> {live.worker_pids()}\n{live.log()[-2000:]}")
            time.sleep(0.5)  # and the new workers answer
        finally:
            stop.set()
            asker.join(25)
        assert answers and set(answers) == {"200"}, ([a for a in answers if a != "200"][:5], slowest)
        assert "Handling signal: hup" in live.log()
