"""Rate limits and the sign-in throttle counted in Redis (RATELIMIT_STORAGE_URI=redis://…),
shared by every worker and host: in-process apps, and two real gunicorn servers.

Skips (or fails with CHARTBOX_REQUIRE_SERVICES=1) without a Redis server. Every key carries a
prefix unique to this run (RATELIMIT_KEY_PREFIX) and is removed afterwards, so parallel runs
never collide.
"""
from __future__ import annotations

import json
import os
import uuid

import pytest
from conftest import base_config, service_unavailable
from limits.storage import RedisStorage
from live import PASSWORD, LiveApp

from app import create_app
from app.errors import TooManyRequests
from app.extensions import LIMITER_KEY, db
from app.ratelimits import STORE_KEY
from app.services import accounts
from app.services.audit import Origin

pytestmark = pytest.mark.redis

URL = os.environ.get("CHARTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN = uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def redis_url():
    import redis

    try:
        redis.Redis.from_url(URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_unavailable("Redis", f"{URL}: {exc}")
    return URL


@pytest.fixture
def prefix(request, redis_url):
    """A key prefix unique to this run and test; its keys are deleted afterwards."""
    import redis

    name = f"chartbox-test-{RUN}-{request.node.name}"[:80]
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"LIMITS:LIMITER/{name}/*"):
        client.delete(key)


@pytest.fixture
def config_overrides(redis_url, prefix) -> dict:
    return {"RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": prefix, "LOGIN_ATTEMPTS": 3,
            "LOGIN_WINDOW": 60}


def sign_in(username: str, password: str = "wrong password", ip: str = "192.0.2.7"):
    return accounts.sign_in(username, password, ip, Origin("web", ip))


def test_the_app_counts_in_redis(tmp_path, config_overrides):
    app = create_app({**base_config(tmp_path), **config_overrides, "RATELIMIT_ENABLED": True},
                     instance_path=str(tmp_path / "i"))
    assert isinstance(app.extensions[STORE_KEY], RedisStorage)
    assert isinstance(app.extensions[LIMITER_KEY].storage, RedisStorage)


def test_n_failures_then_429_and_a_success_resets(app, make_user):
    user = make_user()
    for _ in range(3):
        assert sign_in(user.username) is None
    with pytest.raises(TooManyRequests) as info:
        sign_in(user.username, PASSWORD)
    assert info.value.status == 429 and "Too many failed sign-in attempts" in info.value.message
    assert sign_in(user.username, PASSWORD, ip="192.0.2.8") is not None  # its own key; clears the per-user count


def test_two_app_instances_share_the_count(app, make_user, tmp_path, config_overrides):
    username = make_user().username  # read once: see test_throttle's two-workers test
    second = create_app({**base_config(tmp_path), **config_overrides}, instance_path=str(tmp_path / "second"))
    sign_in(username)
    with second.app_context():
        assert accounts.sign_in(username, "wrong", "192.0.2.7") is None  # no such user there: counted
        db.session.remove()
        db.engine.dispose()  # its connections closed now, not by the GC (psycopg warns then)
    sign_in(username)
    with pytest.raises(TooManyRequests):
        sign_in(username)


def test_entries_expire_in_redis(app, make_user, redis_url, prefix):
    import redis

    sign_in(make_user().username)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"LIMITS:LIMITER/{prefix}/login/*"))
    assert keys and all(0 < client.ttl(key) <= 60 for key in keys)


def test_two_gunicorn_servers_share_every_count(tmp_path, redis_url, prefix):
    """Two real servers, each with its own database and workers, one Redis: the per-address
    write limit and the sign-in throttle (the same seeded username) are counted once."""
    settings = {"RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": prefix,
                "RATELIMIT_ADDRESS_WRITE": "6 per minute", "LOGIN_ATTEMPTS": 100, "LOGIN_USERNAME_ATTEMPTS": 3}
    with LiveApp(tmp_path / "a", settings) as first, LiveApp(tmp_path / "b", settings) as second:
        def login(live, password="wrong password"):
            body = json.dumps({"username": live.seed.provider_username, "password": password}).encode()
            return live.request("POST", "/tscharts/v1/login/", body, {"Content-Type": "application/json"})[0]

        assert [login(first), login(second), login(first)] == [403, 403, 403]
        assert login(second, PASSWORD) == 429  # the username's 3 attempts were used on both servers
        # Writes from this address: 4 so far; 2 more on either server, then refused on both.
        allowed = [first.request("POST", "/logout")[0], second.request("POST", "/logout")[0]]
        assert 429 not in allowed
        refused = [first.request("POST", "/logout"), second.request("POST", "/logout")]
        assert [status for status, _, _ in refused] == [429, 429]
        assert all(1 <= int(headers["retry-after"]) <= 60 for _, headers, _ in refused)
