"""Sign-in throttling: at most N failed attempts per key in a sliding window.

RATELIMIT_STORAGE_URL picks where failures are counted: `database://` (the default: the app's
own database, so every worker and host sharing it shares the count), `redis://…` (a Redis
shared by every worker), or `memory://` (this process only; each worker counts alone).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict, deque

from flask import Flask, current_app
from sqlalchemy import Table, delete, func, insert, select

from app.errors import TooManyRequests
from app.extensions import db
from app.models import LoginFailure

_FAILURES: Table = LoginFailure.__table__  # type: ignore[assignment]  # declared as a Table


class MemoryCounter:
    """Failures per key, kept in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def count(self, key: str, window: int) -> int:
        with self._lock:
            return len(self._prune(key, window))

    def hit(self, key: str, window: int) -> None:
        with self._lock:
            self._prune(key, window).append(time.monotonic())

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)

    def _prune(self, key: str, window: int) -> deque[float]:
        hits = self._hits[key]
        cutoff = time.monotonic() - window
        while hits and hits[0] <= cutoff:
            hits.popleft()
        return hits


class DatabaseCounter:
    """Failures per key as rows of login_failures, on their own connection and transaction
    (a sign-in attempt must count even when the request's own work is rolled back)."""

    def count(self, key: str, window: int) -> int:
        cutoff = time.time() - window
        with db.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(_FAILURES).where(
                _FAILURES.c.key == key, _FAILURES.c.at > cutoff)).scalar_one()

    def hit(self, key: str, window: int) -> None:
        now = time.time()
        with db.engine.begin() as conn:
            conn.execute(delete(_FAILURES).where(_FAILURES.c.at <= now - window))  # expired, any key
            conn.execute(insert(_FAILURES).values(key=key[:300], at=now))

    def reset(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(_FAILURES).where(_FAILURES.c.key == key))


class RedisCounter:
    """Failures per key in a Redis sorted set, shared by every worker."""

    def __init__(self, url: str):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def _key(self, key: str) -> str:
        return f"chartbox:throttle:{key}"

    def count(self, key: str, window: int) -> int:
        now = time.time()
        pipe = self._redis.pipeline()
        pipe.zremrangebyscore(self._key(key), 0, now - window)
        pipe.zcard(self._key(key))
        return int(pipe.execute()[1])

    def hit(self, key: str, window: int) -> None:
        now = time.time()
        pipe = self._redis.pipeline()
        # A random member: two workers failing in the same microsecond must both count.
        pipe.zadd(self._key(key), {f"{now:.6f}:{uuid.uuid4().hex}": now})
        pipe.expire(self._key(key), window)
        pipe.execute()

    def reset(self, key: str) -> None:
        self._redis.delete(self._key(key))


def init_throttle(app: Flask) -> None:
    url = app.config["RATELIMIT_STORAGE_URL"]
    counter: RedisCounter | MemoryCounter | DatabaseCounter
    if url.startswith(("redis://", "rediss://")):
        counter = RedisCounter(url)
    elif url.startswith("memory://"):
        counter = MemoryCounter()
    elif url.startswith("database://"):
        counter = DatabaseCounter()
    else:
        raise RuntimeError(f"RATELIMIT_STORAGE_URL must be database://, redis://… or memory://, not {url!r}.")
    app.extensions["chartbox_throttle"] = counter


def _counter():
    return current_app.extensions["chartbox_throttle"]


def _shared_store_errors() -> tuple[type[Exception], ...]:
    try:
        import redis
    except ImportError:
        return ()
    return (redis.RedisError,)


def login_key(username: str, ip: str | None) -> str:
    return f"login:{(username or '').lower()}:{ip or '-'}"


def check(key: str) -> None:
    """Raise TooManyRequests when `key` has used up its failed attempts.

    If the shared counter (Redis) is down, sign-in stays open (passwords are still checked)
    and the outage is logged: locking every clinician out would be the worse failure.
    """
    config = current_app.config
    try:
        count = _counter().count(key, config["LOGIN_WINDOW"])
    except _shared_store_errors() as exc:
        current_app.logger.error("sign-in throttle unavailable, not throttling: %s", exc)
        return
    if count >= config["LOGIN_ATTEMPTS"]:
        raise TooManyRequests("Too many failed sign-in attempts; wait a few minutes and try again.")


def failed(key: str) -> None:
    _record(lambda counter: counter.hit(key, current_app.config["LOGIN_WINDOW"]))


def succeeded(key: str) -> None:
    _record(lambda counter: counter.reset(key))


def _record(update) -> None:
    try:
        update(_counter())
    except _shared_store_errors() as exc:
        current_app.logger.error("sign-in throttle unavailable, attempt not recorded: %s", exc)
