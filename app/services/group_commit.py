"""Group commit: small writes from concurrent threads of one process, committed together.

Each thread hands its item over and waits. Whoever takes the writer's lock first writes
everything pending — its own item and those that arrived while the previous batch was
committing — in one transaction; the others find theirs written when they get the lock. So
one commit (on SQLite in WAL, one fsync of the log) serves many requests, and a process's
writers stop queuing on the database's lock one at a time: the audit events of reads and the
rate limiter's counts each go through one (BENCHMARKS.md, "Small downloads").

Durability is unchanged: a caller returns only after the transaction holding its item has
committed, and raises what that commit raised (so does every other caller in the batch:
nobody answers as if their item were written).
"""
from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

Item = TypeVar("Item")


@dataclass
class _Waiting(Generic[Item]):
    item: Item
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit(Generic[Item]):
    """Batches items into transactions.

    Args:
        begin: opens a transaction (`engine.begin`), committed when the block ends.
        write: writes a batch in that transaction; returns one result per item, in order.
    """

    def __init__(self, begin: Callable[[], AbstractContextManager[Connection]],
                 write: Callable[[Connection, Sequence[Item]], Sequence[Any]], *, engine: Engine | None = None):
        self._begin, self._write = begin, write
        self._queue = WriterQueue.beside(engine) if engine is not None else None
        self.writing = threading.Lock()  # held while a batch is being written
        self._guard = threading.Lock()  # guards `pending`
        self.pending: list[_Waiting[Item]] = []

    def run(self, item: Item) -> Any:
        """Write `item` (with whatever else is pending) and return its result once committed."""
        waiting = _Waiting(item)
        with self._guard:
            self.pending.append(waiting)
        with self.writing:
            if not waiting.done:
                with self._guard:
                    batch, self.pending = self.pending, []
                self._commit(batch)
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    def _commit(self, batch: list[_Waiting[Item]]) -> None:
        try:
            with self._queue or nullcontext(), self._begin() as conn:
                results = self._write(conn, [w.item for w in batch])
        except BaseException as exc:  # noqa: BLE001 - each waiter re-raises it as its own
            for w in batch:
                w.error, w.done = exc, True
            return
        for w, result in zip(batch, results, strict=True):
            w.result, w.done = result, True


class WriterQueue:
    """The batch writers of every process on this host, in line for one SQLite database file.

    SQLite lets one writer in at a time; the others poll through its busy handler, which sleeps
    1, 2, 5, 10… ms between tries, so two workers' group commits kept each other waiting whole
    milliseconds for a lock held a fraction of one. Here a writer first takes an exclusive
    flock() on a file beside the database: the kernel wakes the next one the moment it is
    free. Each GroupCommit holds its own open file (flock excludes between open files, also in
    one process), reopened after a fork. Writers outside the group commits (a request's own
    session) still meet SQLite's own lock as before; nothing relies on this for correctness.
    """

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    @classmethod
    def beside(cls, engine: Engine) -> WriterQueue | None:
        """One for a SQLite file's engine; None for PostgreSQL or an in-memory SQLite."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
            return None
        return cls(os.path.abspath(database) + "-writers.lock")

    def __enter__(self) -> WriterQueue:
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            except OSError:  # an unwritable folder: SQLite's own locking still holds
                return self
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
