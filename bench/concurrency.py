"""Fifty clients at once, then slow downloaders: errors and latency on a 2-worker Chartbox.

Run: `.venv/bin/python bench/concurrency.py [--seconds S] [--quick]` (also in `make bench`).
Prints a Markdown table. Against one real gunicorn (tests/live.py's LiveApp: 2 workers x 128
threads, SQLite in WAL mode, files on disk, loopback):

1. The mix: 50 clients, each its own API token (all the clinic's provider) and its own loopback
   address, in 5 client processes of 10 threads (so the clients' own Python does not queue
   behind one GIL), each sending requests back to back on a kept-alive connection for S
   seconds: 20 % uploads into one patient's chart (a 1.5 KB letter PDF and a 42 KB photo in
   turn, so every upload runs its decoder child), 50 % lists (GET /api_v3/files, a page of 50
   of that chart) and 30 % downloads through signed links (a 125 KB photo and the letter).
   Target: zero errors (any answer but 200, a timeout or a dropped connection is one);
   p50/p95/p99 per kind are shown.
2. The probe alone: one client listing a page of 20 of the chart, one request at a time (50 ms
   apart), for S seconds: the reference.
3. The probe again while 20 slow downloaders each read a 22 MB PDF through its signed link at
   1 MB/s (reading 64 KB, then sleeping), starting over when done: its p95 must stay <= 100 ms.
4. For information: the mix again with the 20 slow downloaders added.

Rate limits stay on (database:// store) at ten times the defaults, which 50 clients sending
back to back would otherwise pass: RATELIMIT_API_READ "6000 per minute", RATELIMIT_API_WRITE
"600 per minute", RATELIMIT_ADDRESS_READ "30000 per minute", RATELIMIT_ADDRESS_WRITE
"6000 per minute" (each client has its own token and address, as 50 desks would).
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from http_common import LiveApp, Table, link_path, machine, median, multipart, percentile, upload  # noqa: E402

SETTINGS = {"RATELIMIT_API_READ": "6000 per minute", "RATELIMIT_API_WRITE": "600 per minute",
            "RATELIMIT_ADDRESS_READ": "30000 per minute", "RATELIMIT_ADDRESS_WRITE": "6000 per minute"}
CLIENTS, PROCESSES, SLOW = 50, 5, 20
WEIGHTS = {"upload": 0.2, "list": 0.5, "download": 0.3}
SLOW_RATE = 1024 * 1024  # bytes/s each slow downloader reads
TIMEOUT = 30.0

TOKENS = """\
import json, sys
from app import create_app
from app.extensions import db
from app.models import User
from app.services import accounts
app = create_app()
with app.app_context():
    provider = db.session.get(User, int(sys.argv[1]))
    print(json.dumps([accounts.create_token(provider, f"bench-{n}")[1] for n in range(int(sys.argv[2]))]))
"""


@dataclass
class Spec:
    """What one client process needs (pickled to it)."""

    host: str
    port: int
    patient_id: int
    tokens: list[str]
    sources: list[str]
    links: list[str]  # signed link paths to download
    uploads: list[tuple[bytes, str]]  # multipart bodies and their Content-Type, sent in turn
    until: float  # time.time() at which to stop (set when the clients start)
    seed: int


@dataclass
class Seen:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in WEIGHTS})
    errors: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in WEIGHTS})

    def add(self, other: Seen) -> None:
        for kind in WEIGHTS:
            self.latencies[kind] += other.latencies[kind]
            self.errors[kind] += other.errors[kind]


class Client:
    """One client: a kept-alive connection from its own address, with its own token."""

    def __init__(self, host: str, port: int, source: str, token: str):
        self.host, self.port, self.source, self.token = host, port, source, token
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT,
                                                       source_address=(self.source, 0))
            try:
                self.conn.request(method, path, body=body, headers={"X-ApiToken": self.token, **(headers or {})})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # the server closed a kept-alive connection between requests: once more, fresh
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_client(spec: Spec, n: int, seen: Seen, lock: threading.Lock) -> None:
    rng = random.Random(spec.seed * 1000 + n)
    client = Client(spec.host, spec.port, spec.sources[n], spec.tokens[n])
    listing = f"/api_v3/files?target_id={spec.patient_id}&per_page=50"
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    count = 0
    mine = Seen()
    try:
        while time.time() < spec.until:
            kind = rng.choices(kinds, weights)[0]
            count += 1
            started = time.perf_counter()
            try:
                if kind == "upload":
                    body, ctype = spec.uploads[count % len(spec.uploads)]
                    status, data = client.request("POST", "/api_v3/files", body, {"Content-Type": ctype})
                elif kind == "list":
                    status, data = client.request("GET", listing)
                else:
                    status, data = client.request("GET", spec.links[count % len(spec.links)])
            except OSError as exc:
                client.close()
                mine.errors[kind].append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            if status == 200:
                mine.latencies[kind].append(elapsed)
            else:
                mine.errors[kind].append(f"HTTP {status}: {data[:120]!r}")
    finally:
        client.close()
    with lock:
        seen.add(mine)


def client_process(spec: Spec, seconds: float, go: Any, results: Any) -> None:
    """One process's clients (threads): ready, wait for `go`, run for `seconds`, put what
    they saw on `results`."""
    results.put("ready")
    if not go.wait(120):
        return
    spec.until = time.time() + seconds
    seen, lock = Seen(), threading.Lock()
    threads = [threading.Thread(target=run_client, args=(spec, n, seen, lock)) for n in range(len(spec.tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + TIMEOUT + 30)
    results.put(seen)


def run_mix(live: LiveApp, tokens: list[str], links: list[str], uploads: list[tuple[str, bytes]],
            seconds: float) -> Seen:
    """The 50 clients for `seconds`, all starting together once every process is up."""
    per = CLIENTS // PROCESSES
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    bodies = [multipart({"meta.target.id": str(live.seed.patient_id)}, name, data) for name, data in uploads]
    specs = [Spec(live.host, live.port, live.seed.patient_id, tokens[p * per:(p + 1) * per],
                  [f"127.0.1.{p * per + n + 1}" for n in range(per)], links, bodies, 0.0, p)
             for p in range(PROCESSES)]
    processes = [context.Process(target=client_process, args=(spec, seconds, go, results)) for spec in specs]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            if results.get(timeout=120) != "ready":
                raise RuntimeError("a client process did not start")
        go.set()
        seen = Seen()
        for _ in processes:
            seen.add(results.get(timeout=seconds + TIMEOUT + 60))
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
    return seen


class SlowDownloaders:
    """`SLOW` threads each reading `path` at SLOW_RATE bytes/s from its socket, over and over."""

    def __init__(self, live: LiveApp, path: str, size: int):
        self.live, self.path, self.size = live, path, size
        self.stop = threading.Event()
        self.done = 0
        self.failures: list[str] = []
        self.received = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(SLOW)]

    def __enter__(self) -> SlowDownloaders:
        for thread in self.threads:
            thread.start()
        time.sleep(2)  # all of them under way, the buffers full
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def run(self, n: int) -> None:
        while not self.stop.is_set():
            try:
                got, whole = self.one(n)
            except OSError as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with self.lock:
                self.received += got
                if whole:
                    self.done += 1
                elif not self.stop.is_set():
                    self.failures.append(f"cut after {got} bytes")

    def one(self, n: int) -> tuple[int, bool]:
        """One download read at SLOW_RATE until the server ends it or we stop: (bytes read,
        whether the whole file came)."""
        with socket.create_connection((self.live.host, self.live.port), timeout=TIMEOUT,
                                      source_address=(f"127.0.2.{n + 1}", 0)) as sock:
            sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {self.live.host}\r\nConnection: close\r\n\r\n".encode())
            started, total, head = time.monotonic(), 0, b""
            while not self.stop.is_set():
                chunk = sock.recv(65536)
                if not chunk:
                    return total, total > self.size  # the headers come on top of the body
                total += len(chunk)
                if not head:
                    head = chunk[:12]
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise OSError(f"answered {head!r}")
                ahead = started + total / SLOW_RATE - time.monotonic()
                if ahead > 0:
                    self.stop.wait(ahead)
            return total, False


def probe(live: LiveApp, token: str, seconds: float) -> tuple[list[float], list[str]]:
    """One client listing a page of 20, one request at a time, 50 ms apart."""
    client = Client(live.host, live.port, "127.0.0.2", token)
    path = f"/api_v3/files?target_id={live.seed.patient_id}&per_page=20"
    latencies, errors = [], []
    until = time.monotonic() + seconds
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                status, _ = client.request("GET", path)
            except OSError as exc:
                client.close()
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(f"HTTP {status}")
            time.sleep(0.05)
    finally:
        client.close()
    return latencies, errors


_T0 = time.monotonic()


def note(what: str) -> None:
    print(f"[{time.monotonic() - _T0:5.1f} s] {what}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def mix_rows(table: Table, seen: Seen, seconds: float, label: str, judged: bool) -> None:
    for kind in WEIGHTS:
        lat, errs = seen.latencies[kind], seen.errors[kind]
        said = f"; first: {errs[0][:80]}" if errs else ""
        table.row(f"{label}: {kind}s — {len(lat) + len(errs)} in {seconds:g} s "
                  f"({(len(lat) + len(errs)) / seconds:.0f}/s), p50 / p95 / p99 ms",
                  "—", f"{ms(median(lat))} / {ms(percentile(lat, 0.95))} / {ms(percentile(lat, 0.99))}",
                  None, f"0 errors ({len(errs)}{said})", not errs if judged else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--quick", action="store_true", help="a run of under a minute (5 s phases)")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 5.0
    from builders import noisy_photo, scanned_pdf  # Pillow and pypdf: not in the client processes
    photo = noisy_photo(520, 390)  # about 125 KB
    letter = (ROOT / "tests" / "data" / "letter.pdf").read_bytes()
    card = (ROOT / "tests" / "data" / "insurance-front.jpg").read_bytes()
    big = scanned_pdf(27, 1240)  # about 22 MB
    table = Table()
    note("files built")
    with tempfile.TemporaryDirectory(prefix="chartbox-bench-conc-") as tmp, LiveApp(Path(tmp), SETTINGS) as live:
        made = subprocess.run([sys.executable, "-c", TOKENS, str(live.seed.provider_id), str(CLIENTS + 1)],
                              cwd=ROOT, env=live.app_env, capture_output=True, text=True, timeout=120)
        if made.returncode != 0:
            raise RuntimeError(made.stderr[-3000:])
        tokens = json.loads(made.stdout.strip().splitlines()[-1])
        note("tokens made")
        links = [link_path(upload(live, data, name)["fullpath"]) for name, data in (("photo.jpg", photo),
                                                                                    ("letter.pdf", letter))]
        big_link = link_path(upload(live, big, "scans.pdf")["fullpath"])
        for n in range(52):  # a chart with more than a page of files
            upload(live, letter if n % 2 else card, f"seed-{n}.pdf" if n % 2 else f"seed-{n}.jpg")
        uploads = [("letter.pdf", letter), ("card.jpg", card)]
        note("chart seeded")

        seen = run_mix(live, tokens[:CLIENTS], links, uploads, args.seconds)
        mix_rows(table, seen, args.seconds, f"{CLIENTS} clients", judged=True)
        note("mix done")

        alone, alone_errors = probe(live, tokens[CLIENTS], args.seconds)
        with SlowDownloaders(live, big_link, len(big)) as slow:
            slowed, slowed_errors = probe(live, tokens[CLIENTS], args.seconds)
        p95a, p95b = percentile(alone, 0.95), percentile(slowed, 0.95)
        table.row(f"simple list (page of 20), one at a time: p95 ms while {SLOW} downloaders read a "
                  f"{len(big) / 1e6:.0f} MB PDF at 1 MB/s each ({len(slowed)} requests, {len(slowed_errors)} errors; "
                  f"downloaders: {slow.received / 1e6:.0f} MB read, {slow.done} whole, {len(slow.failures)} failed)",
                  f"alone {ms(p95a)} ms ({len(alone)} requests, {len(alone_errors)} errors)", f"{ms(p95b)} ms",
                  p95b / p95a, "≤ 100 ms", p95b <= 0.1 and not slowed_errors and not slow.failures)
        note("probes done")

        with SlowDownloaders(live, big_link, len(big)) as slow:
            seen = run_mix(live, tokens[:CLIENTS], links, uploads, args.seconds)
        mix_rows(table, seen, args.seconds, f"for information: {CLIENTS} clients + {SLOW} slow downloaders",
                 judged=False)
        rss = max((live.rss(pid) for pid in live.worker_pids()), default=0)
    print(machine(args.seconds) + f"; largest worker RSS at the end {rss / 2**20:.0f} MiB\n")
    table.print()


if __name__ == "__main__":
    main()
