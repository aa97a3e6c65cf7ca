"""Liveness and readiness probes for a load balancer or a process supervisor.

`/healthz`: the process answers, and nothing else is touched (no database, storage, session,
rate limit or audit), so a host whose database is down is not restarted for it.
`/readyz`: the database answers and the file store is reachable (app/services/readiness.py);
otherwise 503 with Retry-After and which part failed, so the balancer sends traffic elsewhere.

Neither sets a cookie or may be cached, and neither is rate-limited: a balancer probing every
second from one address must never be refused, which would take a healthy host out of rotation.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from app.services import readiness

bp = Blueprint("health", __name__)
#: Seconds a client told 503 by /readyz should wait; about a balancer's probe interval.
RETRY_AFTER = 5


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: 200 {"status": "ok"} while the process serves requests."""
    return _answer({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: 200 when the database and storage work, else 503 naming what failed."""
    state = readiness.check()
    parts = {"database": state.database, "storage": state.storage}
    body = {"status": "ready" if state.ready else "unavailable",
            **{name: "ok" if works else "unavailable" for name, works in parts.items()}}
    resp = _answer(body, 200 if state.ready else 503)
    if not state.ready:
        resp.headers["Retry-After"] = str(RETRY_AFTER)
    return resp


def _answer(body: dict, status: int) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def register_health(app: Flask) -> None:
    """Register the probes, outside CSRF and the rate limits."""
    from app.extensions import LIMITER_KEY, csrf

    app.register_blueprint(bp)
    csrf.exempt(bp)
    # A request filter, not limiter.exempt: it stops Flask-Limiter before it looks at anything,
    # where an exempt route still lets it probe a failed limits store (the database, by default).
    app.extensions[LIMITER_KEY].request_filter(lambda: request.blueprint == bp.name)
