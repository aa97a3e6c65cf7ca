"""Abuse benchmarks: how an ordinary patient's requests fare while an attack runs.

Run with `make bench` (or `.venv/bin/python bench/abuse.py [--seconds S]`). Each attack runs
against a real `make run`-style gunicorn (tests/live.py's LiveApp: 2 workers, SQLite, files on
disk, loopback) while the probe (tests/live.py's Probe: the sign-in page and a small download,
back to back, from its own address) measures latency. Before each attack the same probe runs
alone on the same server for the same time: the figure to read is the ratio of the two in the
same run, since the machine is shared and noisy. Results print as a Markdown table.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "abuse")]

from live import LiveApp, Probe  # noqa: E402

#: attack(live, seconds): runs for about `seconds`, returns what it saw
Attack = Callable[[LiveApp, float], object]


def slow_clients(live: LiveApp, seconds: float) -> object:
    from test_slow_clients import run_attack

    return run_attack(live, seconds)


def rendition_flood(live: LiveApp, seconds: float) -> object:
    from test_rendition_flood import run_attack

    return run_attack(live, seconds)


def parser_flood(live: LiveApp, seconds: float) -> object:
    """8 threads uploading a 100,000-page PDF and a 60-megapixel PNG, over and over."""
    from builders import blank_pages_pdf, flat_png
    from test_parser_flood import Attacker

    files = {"pages.pdf": blank_pages_pdf(100_000), "pixels.png": flat_png(10_000, 6_001, "L")}
    until = time.monotonic() + seconds
    attackers = [Attacker(live, files, until, n) for n in range(8)]
    for attacker in attackers:
        attacker.start()
    for attacker in attackers:
        attacker.join(seconds + 60)
    return attackers


def upload_flood(live: LiveApp, seconds: float) -> object:
    """8 threads uploading a small PNG with one patient token as fast as answers come."""
    import threading

    from builders import small_png
    from conftest import multipart

    body, ctype = multipart({"meta.category": "user_document"}, "flood.png", small_png())
    headers = {"X-ApiToken": live.seed.patient_token, "Content-Type": ctype}
    until = time.monotonic() + seconds
    statuses: list[int] = []

    def flood() -> None:
        while time.monotonic() < until:
            statuses.append(live.request("POST", "/api_v3/files", body, headers, timeout=30)[0])

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return statuses


# name -> (server environment, app settings, attack). Parser and slow-client floods run with
# the request rate limits off, as their tests do: they show what the other bounds hold alone.
ATTACKS: dict[str, tuple[dict[str, str], dict, Attack]] = {
    "100 slow clients (headers and bodies trickled), rate limits off": (
        {}, {"RATELIMIT_ENABLED": False}, slow_clients),
    "rendition and preview flood (8 threads)": ({}, {}, rendition_flood),
    "parser flood: 100,000-page PDFs and 60 MP PNGs (8 threads), rate limits off": (
        {}, {"RATELIMIT_ENABLED": False}, parser_flood),
    "upload flood, one patient token (8 threads)": ({}, {}, upload_flood),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def probe_for(live: LiveApp, seconds: float, attack: Attack | None = None) -> Probe:
    with Probe(live) as probe:
        if attack is None:
            time.sleep(seconds)
        else:
            attack(live, seconds)
    return probe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each attack and of its reference")
    parser.add_argument("--only", help="run only attacks whose name contains this")
    args = parser.parse_args()
    rows = []
    for name, (env, settings, attack) in ATTACKS.items():
        if args.only and args.only not in name:
            continue
        with tempfile.TemporaryDirectory() as tmp, LiveApp(Path(tmp), settings, env=env) as live:
            alone = probe_for(live, args.seconds)
            attacked = probe_for(live, args.seconds, attack)
            rss = max((live.rss(pid) for pid in live.worker_pids()), default=0)
        rows.append((name, alone, attacked, rss))
        print(f"done: {name}", file=sys.stderr)

    print(f"Machine: {platform.platform()}, Python {platform.python_version()}, {args.seconds:.0f} s per run\n")
    print("| attack | probe requests alone / attacked | failed | p50 ms alone → attacked | p95 ms alone → attacked "
          "| p95 ratio | largest worker RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, alone, attacked, rss in rows:
        p95a, p95b = percentile(alone.latencies, 0.95), percentile(attacked.latencies, 0.95)
        print(f"| {name} | {alone.count} / {attacked.count} | {len(attacked.failures)} "
              f"| {statistics.median(alone.latencies) * 1000:.0f} → {statistics.median(attacked.latencies) * 1000:.0f} "
              f"| {p95a * 1000:.0f} → {p95b * 1000:.0f} | {p95b / p95a:.1f} | {rss / 2**20:.0f} |")


if __name__ == "__main__":
    main()
