"""`database://`: a storage of the limits library that keeps counters in the app's own database.

Flask-Limiter and the sign-in throttle count through the limits library; this storage makes
the app's database (SQLite or PostgreSQL) their default store, so every worker and every host
sharing the database shares each count, with nothing else to run. limits finds it by its
STORAGE_SCHEME (its registry is filled when this module is imported).

Each key is one row of rate_limits (count, and the unix time its window ends). An increment is
one atomic `INSERT … ON CONFLICT DO UPDATE … RETURNING` (SQLite 3.35+, PostgreSQL) in a short
transaction of its own on its own connection, never the request's session: a refused or
rolled-back request still counts. Concurrent increments of one process share that transaction
(group_commit.py): one commit for many requests, each still answered with its own count.
Expired rows are swept out now and then by whoever increments. Fixed windows and sliding-window
counters are supported; the moving window (one row per hit) is not — use redis:// or memory://
for it.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from math import floor
from typing import Any

from limits.errors import ConfigurationError
from limits.storage.base import SlidingWindowCounterSupport, Storage, TimestampedSlidingWindow
from sqlalchemy import (
    BindParameter,
    Connection,
    Engine,
    Executable,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from app.models.ratelimits import KEY_LENGTH, RateLimitCounter
from app.services.group_commit import GroupCommit

_COUNTERS: Table = RateLimitCounter.__table__  # type: ignore[assignment]  # declared as a Table


class DatabaseStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters as rows of rate_limits in the database behind `engine`.

    Args:
        uri: `database://` (nothing else in it: the app's own database is meant).
        engine: where to count: counting_engine(the app's engine), passed as a storage option.
        prune_every: seconds between sweeps of expired rows by this process.
    """

    STORAGE_SCHEME = ["database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 engine: Engine | None = None, prune_every: float = 30.0, **options: Any):
        if engine is None:
            raise ConfigurationError("database:// counts in the app's own database; the app passes its engine")
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"database:// needs SQLite or PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self.prune_every = float(prune_every)
        self._last_prune = 0.0
        self._statements = _statements(engine.dialect.name)
        self._adds: GroupCommit[tuple[str, int, int]] = GroupCommit(engine.begin, self._add_batch,
                                                                                 engine=engine)
        super().__init__(uri, wrap_exceptions=wrap_exceptions)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    # -- fixed windows ---------------------------------------------------------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to `key`'s count (a new window of `expiry` seconds if it had none), atomically."""
        return int(self._adds.run((_key(key), expiry, amount)))

    def _add_batch(self, conn: Connection, items: Sequence[tuple[str, int, int]]) -> list[int]:
        """The increments of concurrent requests, in one transaction (group_commit.py).

        One upsert per key adds the batch's total for it; each item's count is then what it
        would have been had the items been added one after another in this order (the
        requests of one client share one key, so a burst costs one statement).
        """
        now = time.time()
        totals: dict[tuple[str, int], int] = {}
        for key, expiry, amount in items:
            totals[key, expiry] = totals.get((key, expiry), 0) + amount
        after = {group: self._add(conn, group[0], group[1], total, now) for group, total in totals.items()}
        counts = []
        for key, expiry, amount in reversed(items):  # the last item of a key saw the final count
            counts.append(after[key, expiry])
            after[key, expiry] -= amount
        self._maybe_prune(conn, now)
        return counts[::-1]

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            return self._count(conn, _key(key), time.time())

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with self.engine.connect() as conn:
            expires = conn.execute(self._statements.expiry, {"b_key": _key(key), "b_now": now}).scalar()
        return float(expires) if expires is not None else now

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_COUNTERS).where(_COUNTERS.c.key == _key(key)))

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(_COUNTERS)).rowcount

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    # -- sliding-window counters -----------------------------------------------------------------

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Count `amount` in the current window unless the weighted count would pass `limit`.

        The increment comes first and takes the row's lock (SQLite: the write lock) until the
        transaction ends, so the check that follows cannot race another acquirer.
        """
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = (_key(k) for k in self.sliding_window_keys(key, expiry, now))
        with self.engine.begin() as conn:
            current = self._add(conn, current_key, 2 * expiry, amount, now)
            previous = self._count(conn, previous_key, now)
            if floor(previous * _previous_ttl(previous, expiry, now) / expiry + current) > limit:
                conn.execute(self._statements.take_back, {"b_key": current_key, "b_amount": amount})
                return False
            self._maybe_prune(conn, now)
        return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        previous_key, current_key = (_key(k) for k in self.sliding_window_keys(key, expiry, now))
        with self.engine.connect() as conn:
            previous, current = self._count(conn, previous_key, now), self._count(conn, current_key, now)
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, _previous_ttl(previous, expiry, now), current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        previous_key, current_key = (_key(k) for k in self.sliding_window_keys(key, expiry, time.time()))
        with self.engine.begin() as conn:
            conn.execute(delete(_COUNTERS).where(_COUNTERS.c.key.in_([previous_key, current_key])))

    # -- the SQL ----------------------------------------------------------------------------------

    def _add(self, conn: Connection, key: str, expiry: float, amount: int, now: float) -> int:
        """Upsert: a lapsed window starts again at `amount`, a live one adds `amount`."""
        params = {"b_key": key, "b_amount": amount, "b_expires": now + expiry, "b_now": now}
        return int(conn.execute(self._statements.add, params).scalar_one())

    def _count(self, conn: Connection, key: str, now: float) -> int:
        return int(conn.execute(self._statements.count, {"b_key": key, "b_now": now}).scalar() or 0)

    def _maybe_prune(self, conn: Connection, now: float) -> None:
        if now - self._last_prune >= self.prune_every:
            self._last_prune = now
            conn.execute(delete(_COUNTERS).where(_COUNTERS.c.expires_at <= now))


@dataclass(frozen=True)
class _Statements:
    """Built once (with bind parameters), so each request only binds and runs them."""

    add: Executable
    count: Executable
    expiry: Executable
    take_back: Executable


def _statements(dialect: str) -> _Statements:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    key: BindParameter[str] = bindparam("b_key")
    now: BindParameter[float] = bindparam("b_now")
    stmt = insert(_COUNTERS).values(key=key, count=bindparam("b_amount"), expires_at=bindparam("b_expires"))
    lapsed = _COUNTERS.c.expires_at <= now
    add = stmt.on_conflict_do_update(index_elements=[_COUNTERS.c.key], set_={
        "count": case((lapsed, stmt.excluded.count), else_=_COUNTERS.c.count + stmt.excluded.count),
        "expires_at": case((lapsed, stmt.excluded.expires_at), else_=_COUNTERS.c.expires_at),
    }).returning(_COUNTERS.c.count)
    live = (_COUNTERS.c.key == key) & (_COUNTERS.c.expires_at > now)
    return _Statements(
        add=add,
        count=select(_COUNTERS.c.count).where(live),
        expiry=select(_COUNTERS.c.expires_at).where(live),
        take_back=update(_COUNTERS).where(_COUNTERS.c.key == key).values(
            count=_COUNTERS.c.count - bindparam("b_amount")),
    )


def counting_engine(engine: Engine) -> Engine:
    """The engine to give DatabaseStorage for the app's `engine`.

    SQLite: an engine of its own on the same file whose connections commit without waiting
    for the disk (synchronous=NORMAL; in WAL mode a crash of the process loses nothing, a power
    cut at worst the last counts). Durable commits would make every request wait for two
    fsyncs and serialize floods on them; counters do not need them, files and audit events
    (the app's own connections, unchanged) do. PostgreSQL: the app's own pool.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return engine  # (an in-memory SQLite exists once, behind the app's own engine)
    counting = create_engine(engine.url)  # a local file: no connection goes stale

    @event.listens_for(counting, "connect")
    def _fast_commits(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        # Only in WAL (the app's mode, kept in the file): there NORMAL never corrupts the file.
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return counting


def _key(key: str) -> str:
    if len(key) <= KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _previous_ttl(previous: int, expiry: int, now: float) -> float:
    """How much of the previous window still weighs (limits' own formula)."""
    return 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
