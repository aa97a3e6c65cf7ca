"""What the rate limiter costs per request: the same requests with RATELIMIT_ENABLED off and on
(the database store, the default; memory://; Redis when CHARTBOX_TEST_REDIS_URL answers), in
one run, so the ratios compare like with like on any machine.

`rows(repeat)` returns (label, samples) rows for run.py's table; each "limits on" row carries
its median as a multiple of the same request with limits off. Also the cost of a refusal (a
429 answered before anything else runs). Alone: `.venv/bin/python bench/ratelimits.py`.
Everything is real: a SQLite database in a temp folder, Flask's test client (no network).
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from common import Bench, bench_app, print_header, print_row  # noqa: E402

GENEROUS = "1000000 per minute"
GROUPS = ("API_READ", "API_WRITE", "ADDRESS_READ", "ADDRESS_WRITE", "SESSION_READ", "SESSION_WRITE")


def _redis_url() -> str | None:
    url = os.environ.get("CHARTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 — no Redis: that row is left out
        return None
    return url


def _app(tmp: str, name: str, settings: dict) -> Bench:
    """A fresh app with every limit generous unless `settings` say otherwise."""
    return bench_app(tmp, name, **{"RATELIMIT_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
                                   **{f"RATELIMIT_{group}": GENEROUS for group in GROUPS}, **settings})


def _calls(tmp: str, name: str, settings: dict) -> dict[str, tuple[Callable[[], int], int]]:
    """The requests timed against one app: an API read, a page read and (limits on) a refusal."""
    bench = _app(tmp, name, settings)
    client = bench.app.test_client()
    headers = {"X-ApiToken": bench.patient_token}
    listing = f"/api_v3/files?target_id={bench.patient_id}"
    calls = {
        "API read (list a chart, VSee)": (lambda: client.get(listing, headers=headers).status_code, 200),
        "page read (the sign-in page)": (lambda: client.get("/login").status_code, 200),
    }
    if settings.get("RATELIMIT_ENABLED"):
        # Another app whose token may write once an hour, used up at once: every write a 429.
        spent = _app(tmp, name + "-spent", {**settings, "RATELIMIT_API_WRITE": "1 per hour"})
        refusing = spent.app.test_client()
        gone = {"path": f"/api_v3/files/{uuid.UUID(int=1)}", "headers": {"X-ApiToken": spent.patient_token}}
        refusing.delete(**gone)
        calls["a refused write (429 + Retry-After)"] = (lambda: refusing.delete(**gone).status_code, 429)
    return calls


def rows(repeat: int = 300) -> list[tuple[str, list[float]]]:
    """Every configuration's requests interleaved, round after round, so a busy machine slows
    them all alike and the ratios hold."""
    tmp = tempfile.mkdtemp(prefix="chartbox-bench-limits-")
    configs = {"limits off": {"RATELIMIT_ENABLED": False},
               "limits on, database://": {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "database://"},
               "limits on, memory://": {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"}}
    redis_url = _redis_url()
    if redis_url:
        configs["limits on, redis://"] = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": redis_url}
    calls = {config: _calls(tmp, f"c{n}", settings) for n, (config, settings) in enumerate(configs.items())}
    samples: dict[tuple[str, str], list[float]] = {}
    for round_ in range(repeat + 1):  # the first round warms up (connections, caches)
        for config, requests in calls.items():
            for kind, (call, expect) in requests.items():
                start = time.perf_counter()
                status = call()
                took = time.perf_counter() - start
                assert status == expect, (config, kind, status)
                if round_:
                    samples.setdefault((config, kind), []).append(took)
    out = []
    for (config, kind), taken in samples.items():
        base = samples.get(("limits off", kind))
        ratio = ""
        if base and config != "limits off":
            ratio = f" ({statistics.median(taken) / statistics.median(base):.2f}x off)"
        out.append((f"{kind}, {config}{ratio}", taken))
    return out


def main() -> None:
    print_header()
    for label, samples in rows():
        print_row(label, samples, digits=2)


if __name__ == "__main__":
    main()
