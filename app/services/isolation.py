"""Run an untrusted-input parser in a forked child with a time and memory budget.

A hostile PDF can make a parser loop or allocate without end; in a child process the worker
survives: the child is killed at the deadline and its address space is capped. A gate bounds
how many children one worker process runs at once, so a flood of uploads or renditions costs
bounded CPU and memory: a caller waits briefly for a slot, then gets ServerBusy (503).
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.errors import ServerBusy

try:
    import resource
except ImportError:  # not POSIX: run in-process, unbounded
    resource = None  # type: ignore[assignment]


class IsolationError(Exception):
    """The child ran out of time or memory, or died."""


class ChildTimeout(IsolationError):
    """The child was killed at its deadline."""


class ChildOutOfMemory(IsolationError):
    """The child ran out of its memory budget."""


class ChildFailed(IsolationError):
    """The child died, or its answer could not be sent back."""


_gates: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


@contextmanager
def gate(name: str, slots: int, wait: float) -> Iterator[None]:
    """Hold one of this process's `slots` slots named `name` for the block.

    Waits up to `wait` seconds for a free slot, then raises ServerBusy. A process has one
    gate per name and size (one app per process in production; tests run several configs).
    """
    with _gates_lock:
        semaphore = _gates.setdefault((name, slots), threading.BoundedSemaphore(max(1, slots)))
    if not semaphore.acquire(timeout=max(0.0, wait)):
        raise ServerBusy()
    try:
        yield
    finally:
        semaphore.release()


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float, memory: int) -> Any:
    """Call fn(*args) in a forked child; return its result or re-raise its exception.

    Args:
        fn: a module-level function whose result and exceptions pickle.
        timeout: seconds before the child is killed.
        memory: bytes of address space the child may add to what it inherits.
    Raises:
        IsolationError: on timeout (ChildTimeout), memory exhaustion (ChildOutOfMemory) or a
            crash of the child (ChildFailed); the messages are plain and name no library.
        Exception: whatever fn raised, re-raised in the parent.
    """
    if resource is None or not hasattr(os, "fork") or not os.path.exists("/proc/self/statm"):
        return fn(*args)
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that fork() in a threaded process (gunicorn gthread, a test's live
        # server) may deadlock. The child only parses one file and _exit()s; it takes no lock
        # another thread might hold (logging resets its locks at fork).
        warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            limit = _vm_bytes() + memory
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                payload = (True, fn(*args))
            except MemoryError:
                payload = (False, ChildOutOfMemory("the file needs too much memory to check"))
            except BaseException as exc:  # noqa: BLE001 - sent to the parent, which re-raises
                payload = (False, exc)
            try:
                data = pickle.dumps(payload)
            except Exception:  # noqa: BLE001 - an unpicklable exception still means failure
                failed = ChildFailed("the file could not be checked")
                failed.detail = repr(payload[1])[:200]  # type: ignore[attr-defined] # for the log
                data = pickle.dumps((False, failed))
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChildTimeout("the file took too long to check")
                ready, _, _ = select.select([pipe], [], [], remaining)
                if not ready:
                    continue
                chunk = pipe.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # a timeout, or this thread interrupted: never left running
        raise
    finally:
        _, status = os.waitpid(pid, 0)
    if not chunks or os.waitstatus_to_exitcode(status) != 0:
        raise ChildFailed("the file could not be checked")
    try:
        ok, value = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - e.g. an exception type that cannot be rebuilt here
        raise ChildFailed("the file could not be checked") from None
    if ok:
        return value
    raise value
