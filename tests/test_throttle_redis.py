"""Sign-in throttling with the Redis counter that several workers and hosts share.

Skips (or fails with CHARTBOX_REQUIRE_SERVICES=1) without a Redis server. Every key is unique
to this run, and removed afterwards, so parallel runs never collide.
"""
from __future__ import annotations

import os
import time
import uuid

import pytest
from conftest import base_config, service_unavailable

from app import create_app
from app.errors import TooManyRequests
from app.services import throttle
from app.services.throttle import RedisCounter

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
def key(request, redis_url):
    """A throttle key unique to this run and test; its Redis entry is deleted afterwards."""
    name = throttle.login_key(f"user-{RUN}-{request.node.name}", "192.0.2.7")
    yield name
    RedisCounter(redis_url).reset(name)


@pytest.fixture
def config_overrides(redis_url) -> dict:
    return {"RATELIMIT_STORAGE_URL": redis_url, "LOGIN_ATTEMPTS": 3, "LOGIN_WINDOW": 60}


def test_app_uses_the_redis_counter(app):
    assert isinstance(app.extensions["chartbox_throttle"], RedisCounter)


def test_n_failures_then_too_many_requests(app, key):
    for _ in range(3):
        throttle.check(key)
        throttle.failed(key)
    with pytest.raises(TooManyRequests) as info:
        throttle.check(key)
    assert info.value.status == 429 and "Too many failed sign-in attempts" in info.value.message


def test_success_resets(app, key):
    for _ in range(3):
        throttle.failed(key)
    throttle.succeeded(key)
    throttle.check(key)
    assert app.extensions["chartbox_throttle"].count(key, 60) == 0


def test_keys_are_independent(app, key):
    for _ in range(3):
        throttle.failed(key)
    other = throttle.login_key(f"user-{RUN}-other", "192.0.2.7")
    try:
        throttle.check(other)
    finally:
        RedisCounter(URL).reset(other)


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 2, "LOGIN_WINDOW": 1}])
def test_window_expiry(app, key, config_overrides, redis_url):
    app.config["RATELIMIT_STORAGE_URL"] = redis_url
    app.extensions["chartbox_throttle"] = RedisCounter(redis_url)
    throttle.failed(key)
    throttle.failed(key)
    with pytest.raises(TooManyRequests):
        throttle.check(key)
    time.sleep(1.2)
    throttle.check(key)  # the old failures slid out of the window


def test_two_app_instances_share_the_counter(app, key, tmp_path, config_overrides):
    second = create_app({**base_config(tmp_path / "second"), **config_overrides},
                        instance_path=str(tmp_path / "second-instance"))
    throttle.failed(key)
    with second.app_context():
        throttle.failed(key)
    throttle.failed(key)
    with second.app_context(), pytest.raises(TooManyRequests):
        throttle.check(key)
    with second.app_context():
        throttle.succeeded(key)
    throttle.check(key)


def test_simultaneous_failures_all_count(app, key, monkeypatch):
    """Two workers failing in the same microsecond must not overwrite each other's hit."""
    counter = app.extensions["chartbox_throttle"]
    monkeypatch.setattr(time, "time", lambda: 1_900_000_000.0)
    for _ in range(3):
        counter.hit(key, 60)
    assert counter.count(key, 60) == 3


def test_entries_expire_in_redis(app, key, redis_url):
    import redis

    throttle.failed(key)
    ttl = redis.Redis.from_url(redis_url).ttl(f"chartbox:throttle:{key}")
    assert 0 < ttl <= 60
