"""Slow clients cannot hold the server: deadlines on how fast a request must arrive.

gunicorn's gthread worker gives each request a thread that reads the headers and the body
with blocking reads, so a client trickling them (slowloris) holds a thread for as long as it
likes. `ThreadWorker` (named in gunicorn.conf.py) wraps each connection's socket in a
`GuardedSocket` whose reads enforce:

- HEADER_TIMEOUT: the request line and headers must all arrive within this many seconds of
  the request's first byte being awaited; past it the client gets a 408 and is closed;
- BODY_IDLE_TIMEOUT: no gap between two pieces of a body longer than this;
- BODY_MIN_RATE after BODY_GRACE: a body must average at least this many bytes per second
  once it has been arriving for BODY_GRACE seconds (a 3G phone sends ~100 KB/s, the default
  asks for 2 KB/s), so a drip-fed upload is cut instead of holding a thread for hours.

A body that breaks a rule raises ClientTooSlow inside the app's read; `ClientBody` (WSGI
middleware) turns that into a 408 in the door's own error shape, and the worker closes
the connection instead of draining the rest. Settings come from the environment (as
gunicorn.conf.py documents); 0 turns a check off. Behind nginx (deploy/nginx.conf), which
buffers whole requests before passing them on, none of these clocks ever runs out.
"""
from __future__ import annotations

import math
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker
from werkzeug.exceptions import RequestTimeout


class ClientTooSlow(TimeoutError):
    """The request stopped arriving, or arrived too slowly to be a real client."""


@dataclass(frozen=True)
class ClientDeadlines:
    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    body_grace: float = 10.0
    body_min_rate: float = 2048.0

    @classmethod
    def from_env(cls, env: Any = os.environ) -> ClientDeadlines:
        def number(name: str, default: float) -> float:
            raw = env.get(name)
            return float(raw) if raw not in (None, "") else default

        return cls(number("HEADER_TIMEOUT", cls.header_timeout), number("BODY_IDLE_TIMEOUT", cls.body_idle_timeout),
                   number("BODY_GRACE", cls.body_grace), number("BODY_MIN_RATE", cls.body_min_rate))


_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 42\r\n\r\nThe request took too long to arrive: 408.\n")


class GuardedSocket:
    """A connection's socket whose recv() keeps the deadlines; everything else is the socket's."""

    def __init__(self, sock: Any, deadlines: ClientDeadlines):
        self._sock = sock
        self._deadlines = deadlines
        self._phase = "headers"
        self._deadline = 0.0
        self._body_started = 0.0
        self._body_bytes = 0
        self.too_slow = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def fileno(self) -> int:
        return self._sock.fileno()

    def expect_headers(self) -> None:
        self._phase = "headers"
        self._deadline = time.monotonic() + self._deadlines.header_timeout

    def expect_body(self) -> None:
        self._phase = "body"
        self._body_started = time.monotonic()
        self._body_bytes = 0

    def recv(self, size: int, *flags: int) -> bytes:
        if self._phase == "headers":
            return self._recv_headers(size, *flags)
        return self._recv_body(size, *flags)

    def _recv_headers(self, size: int, *flags: int) -> bytes:
        if self._deadlines.header_timeout > 0 and not self._wait(self._deadline - time.monotonic()):
            self.too_slow = True
            try:
                self._sock.sendall(_TIMEOUT_ANSWER)
            except OSError:
                pass
            raise NoMoreData()  # gunicorn then closes the connection quietly
        return self._sock.recv(size, *flags)

    def _recv_body(self, size: int, *flags: int) -> bytes:
        idle = self._deadlines.body_idle_timeout
        idle_until = time.monotonic() + idle if idle > 0 else math.inf
        while True:
            now = time.monotonic()
            self._check_rate(now)
            until = min(idle_until, self._rate_due())
            if until == math.inf or self._wait(max(until - now, 0.01)):
                break
            if time.monotonic() >= idle_until:
                self.too_slow = True
                raise ClientTooSlow(f"nothing arrived for {idle:.0f} s")
        data = self._sock.recv(size, *flags)
        self._body_bytes += len(data)
        return data

    def _check_rate(self, now: float) -> None:
        rate, elapsed = self._deadlines.body_min_rate, now - self._body_started
        if rate > 0 and elapsed > self._deadlines.body_grace and self._body_bytes < rate * elapsed:
            self.too_slow = True
            raise ClientTooSlow(f"{self._body_bytes} bytes in {elapsed:.0f} s")

    def _rate_due(self) -> float:
        """When the body's average rate would fall below the minimum if nothing more came."""
        rate = self._deadlines.body_min_rate
        if rate <= 0:
            return math.inf
        return self._body_started + max(self._deadlines.body_grace, (self._body_bytes + 1) / rate)

    def _wait(self, seconds: float) -> bool:
        """Whether the socket becomes readable within `seconds` (poll: any fd number)."""
        if seconds <= 0:
            return False
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(seconds * 1000))


class ClientBody:
    """WSGI middleware for reading a client's body: `before_first_read` runs once, just before
    the app first waits on the client (the app gives back its database connection there), and
    a read that ClientTooSlow interrupts becomes a 408 (RequestTimeout) raised inside the app,
    which answers it in the door's shape like any other error."""

    def __init__(self, wsgi_app: Any, before_first_read: Callable[[], None] | None = None):
        self.wsgi_app = wsgi_app
        self.before_first_read = before_first_read

    def __call__(self, environ: dict, start_response: Any) -> Any:
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = _Input(stream, self.before_first_read)
        return self.wsgi_app(environ, start_response)


class _Input:
    """wsgi.input with ClientBody's two duties (RequestTimeout is an HTTPException, so
    werkzeug's stream does not mistake it for a disconnect)."""

    def __init__(self, stream: Any, before_first_read: Callable[[], None] | None):
        self._stream = stream
        self._before_first_read = before_first_read

    def _guard(self, method: str, *args: Any) -> Any:
        if self._before_first_read is not None:
            hook, self._before_first_read = self._before_first_read, None
            hook()
        try:
            return getattr(self._stream, method)(*args)
        except ClientTooSlow:
            raise RequestTimeout() from None

    def read(self, *args: Any) -> bytes:
        return self._guard("read", *args)

    def readline(self, *args: Any) -> bytes:
        return self._guard("readline", *args)

    def readlines(self, *args: Any) -> list[bytes]:
        return self._guard("readlines", *args)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ThreadWorker(GThreadWorker):
    """gunicorn's gthread worker with ClientDeadlines on every plain-HTTP connection."""

    deadlines = ClientDeadlines.from_env()

    def handle(self, conn: Any) -> Any:
        if not self.cfg.is_ssl and not isinstance(conn.sock, GuardedSocket):
            conn.sock = GuardedSocket(conn.sock, self.deadlines)
        if isinstance(conn.sock, GuardedSocket):
            conn.sock.expect_headers()
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        sock = conn.sock
        if isinstance(sock, GuardedSocket):
            sock.expect_body()
        keep_alive = super().handle_request(req, conn)
        if isinstance(sock, GuardedSocket) and sock.too_slow:
            return False  # close: the rest of a too-slow body is not worth draining
        return keep_alive
