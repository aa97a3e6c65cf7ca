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

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

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
                 write: Callable[[Connection, Sequence[Item]], Sequence[Any]]):
        self._begin, self._write = begin, write
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
            with self._begin() as conn:
                results = self._write(conn, [w.item for w in batch])
        except BaseException as exc:  # noqa: BLE001 - each waiter re-raises it as its own
            for w in batch:
                w.error, w.done = exc, True
            return
        for w, result in zip(batch, results, strict=True):
            w.result, w.done = result, True
