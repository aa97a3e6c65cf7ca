"""What the HTTP benchmarks share: the servers they compare and the tools that load them.

- `LiveApp` (tests/live.py): Chartbox behind `gunicorn -c gunicorn.conf.py wsgi:app`, seeded;
  `upload()` posts a file through the VSee API and returns its row as JSON.
- `BareApp`: the reference Flask app (bench/bare_app.py: `send_file` at /file, a save-only
  /upload) behind the same gunicorn settings.
- `Nginx`: a throwaway nginx (its own prefix, config and temp folders in a temp folder)
  serving a folder, optionally with extra `location` blocks (a proxy to Chartbox).
- `wrk()`: runs `wrk --latency` and parses requests/s and the latency percentiles.
- `Table`: the Markdown table every script prints (reference, Chartbox, ratio, target, result).

Every figure is a ratio to a reference measured in the same run, reference and subject runs
alternating, medians taken (the machine is a shared, noisy 2-core VM: absolute times drift,
ratios hold). A script puts the repository, tests/ and bench/ on sys.path first:
`sys.path[:0] = [str(ROOT), str(ROOT / "tests")]` (bench/ is the script's own folder).
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from live import GUNICORN, ROOT, LiveApp, children, free_port, http_request, wait_until_up

NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
MIB = 1024 * 1024

__all__ = ["ROOT", "BareApp", "LiveApp", "Nginx", "Table", "children", "machine", "multipart", "wrk"]


# tests/conftest.py imports the app (and pytest): only when needed, so that a client process a
# script spawns starts quickly.

def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body (fields, then one `file` part) and its Content-Type."""
    from conftest import multipart as build

    return build(fields, filename, data)


def stop_process_group(process: subprocess.Popen) -> None:
    from conftest import stop_process_group as stop

    stop(process)


# -- servers ---------------------------------------------------------------------------------------

def _reader(log: Path) -> Callable[[], str]:
    """What wait_until_up shows when a server does not come up: its log file."""
    return lambda: log.read_text(errors="replace")


class BareApp:
    """bench/bare_app.py behind `gunicorn -c gunicorn.conf.py` (Chartbox's own settings).

    Args:
        tmp: a folder for the log and the saved uploads.
        file: what /file sends (send_file, conditional), as `media_type`.
        workers: gunicorn workers (WORKERS), as Chartbox's LiveApp.
    """

    def __init__(self, tmp: Path, file: Path | None = None, media_type: str = "application/octet-stream",
                 workers: int = 2, env: dict[str, str] | None = None):
        self.tmp = Path(tmp)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.uploads = self.tmp / "bare-uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.log_path = self.tmp / "bare-gunicorn.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("FLASK_", "GUNICORN_")) and k not in ("HOST", "PORT", "WORKERS", "THREADS")}
        self.env = {**base, **(env or {}), "BARE_FILE": str(file or ""), "BARE_MEDIA_TYPE": media_type,
                    "BARE_UPLOADS": str(self.uploads), "HOST": self.host, "PORT": str(self.port),
                    "WORKERS": str(workers)}
        self.master: subprocess.Popen | None = None

    def __enter__(self) -> BareApp:
        with open(self.log_path, "wb") as out:
            self.master = subprocess.Popen(
                [str(GUNICORN), "-c", "gunicorn.conf.py", "--no-control-socket", "bench.bare_app:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_up(self.master, self.port, "/", _reader(self.log_path))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.master is not None:
            stop_process_group(self.master)
        shutil.rmtree(self.uploads, ignore_errors=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def worker_pids(self) -> list[int]:
        assert self.master is not None
        return children(self.master.pid)


class Nginx:
    """A throwaway nginx on a free loopback port: `root` served at / (sendfile on, as a
    production static server), or `locations` (the server block's content) instead, with
    `http_extra` at the http level (an upstream, a zone).

    Everything it writes (pid, logs, temp folders) stays under `tmp`/nginx. Run as root, its
    workers stay root, so they can read the caller's private temp folders.
    """

    def __init__(self, tmp: Path, root: Path | None = None, locations: str = "", workers: int = 2,
                 http_extra: str = ""):
        self.prefix = Path(tmp) / "nginx"
        self.port = free_port()
        self.host = "127.0.0.1"
        if not locations:
            assert root is not None, "serve a folder or give locations"
            locations = f"location / {{ root {root}; }}"
        user = "user root root;" if os.geteuid() == 0 else ""
        temps = "\n".join(f"    {kind}_temp_path {self.prefix}/{kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.config = f"""\
{user}
daemon off;
worker_processes {workers};
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    types {{ application/pdf pdf; image/jpeg jpg; image/png png; }}
    default_type application/octet-stream;
{temps}
    {http_extra}
    server {{
        listen {self.host}:{self.port};
        {locations}
    }}
}}
"""
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.config)
        log = self.prefix / "stderr.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen([NGINX, "-p", str(self.prefix), "-c", str(conf)], stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_up(self.process, self.port, "/", _reader(log))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    @classmethod
    def in_front(cls, tmp: Path, live: LiveApp, workers: int = 2) -> Nginx:
        """nginx as deploy/ ships it in front of `live` (its http-level zone from
        deploy/nginx.conf, then `include deploy/nginx-chartbox.conf`), sending DOWNLOADS="x-accel"
        files from the live app's STORAGE_ROOT; as tests/test_nginx.py builds it."""
        zones = re.findall(r"^limit_conn_zone [^;]*;", (ROOT / "deploy" / "nginx.conf").read_text(), re.M)
        upstream = f"upstream chartbox {{ server {live.host}:{live.port}; keepalive 16; }}"
        server = (f"set $chartbox_storage_root {live.app_env['FLASK_STORAGE_ROOT']};\n"
                  f"        include {ROOT / 'deploy' / 'nginx-chartbox.conf'};")
        return cls(tmp, locations=server, workers=workers, http_extra="\n    ".join([*zones, upstream]))


# -- clients ---------------------------------------------------------------------------------------

def request(host: str, port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body) (tests/live.py's, without the headers)."""
    status, _, answer = http_request(host, port, method, path, body, headers, timeout)
    return status, answer


def fetch(url: str, timeout: float = 60.0) -> tuple[int, bytes]:
    """GET an http://host:port/… URL on a fresh connection: (status, body)."""
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return request(parts.hostname or "127.0.0.1", parts.port or 80, "GET", path, timeout=timeout)


def upload(live: LiveApp, data: bytes, name: str, token: str | None = None, timeout: float = 120.0) -> dict:
    """POST one file into the seeded patient's chart through the VSee API (the provider's token
    by default); the file's JSON (`data`). Raises RuntimeError on any status but 200."""
    body, ctype = multipart({"meta.target.id": str(live.seed.patient_id)}, name, data)
    status, _, answer = live.request("POST", "/api_v3/files", body,
                                     {"X-ApiToken": token or live.seed.provider_token, "Content-Type": ctype},
                                     timeout=timeout)
    if status != 200:
        raise RuntimeError(f"upload of {name} answered {status}: {answer[:300]!r}")
    return json.loads(answer)["data"]


def link_path(fullpath: str) -> str:
    """A signed link's path and query (the host in it is the app's public one)."""
    parts = urlsplit(fullpath)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# -- wrk -------------------------------------------------------------------------------------------

@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency: dict[int, float]  # percentile -> seconds (50, 75, 90, 99)
    errors: int  # socket errors and non-2xx/3xx answers
    output: str = field(repr=False, default="")


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def wrk(url: str, seconds: float, connections: int, threads: int = 2, timeout: float = 30.0,
        headers: dict[str, str] | None = None) -> WrkResult:
    """`wrk --latency` against `url`; raises RuntimeError when wrk fails or nothing completed."""
    args = [WRK, "--latency", "-t", str(min(threads, connections)), "-c", str(connections),
            "-d", f"{max(1, round(seconds))}s", "--timeout", f"{timeout:.0f}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + timeout + 30)
    out = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or out}")
    latency = {int(p): _seconds(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m)", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if total is None or rps is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}\n{done.stderr}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx[1]) if non2xx else 0
    return WrkResult(int(total[1]), _seconds(total[2], total[3]), float(rps[1]), latency, errors, out)


# -- statistics and the table ----------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def alternate(reference: Callable[[], Any], subject: Callable[[], Any], rounds: int) -> tuple[list, list]:
    """Call reference, then subject, `rounds` times over; both lists of results."""
    ref, sub = [], []
    for _ in range(rounds):
        ref.append(reference())
        sub.append(subject())
    return ref, sub


def rss(pid: int, field_name: str = "VmRSS") -> int:
    """A process's VmRSS (or VmHWM, its peak) in bytes; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux: `5` into clear_refs; needs the
    right to write it, which root and the process's owner have). Whether it worked."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Table:
    """The Markdown table a script prints: one row per measure."""

    HEADER = ("| measure | reference | Chartbox | ratio | target | result |\n"
              "|---|---:|---:|---:|---:|---|")

    def __init__(self) -> None:
        self.rows: list[str] = []

    def row(self, measure: str, reference: str, chartbox: str, ratio: float | None, target: str,
            passed: bool | str | None) -> None:
        """One row; `passed` None shows "—" (information only), a str shows as it is."""
        result = passed if isinstance(passed, str) else "—" if passed is None else "pass" if passed else "**FAIL**"
        shown = "—" if ratio is None or math.isnan(ratio) else f"{ratio:.2f}"
        self.rows.append(f"| {measure} | {reference} | {chartbox} | {shown} | {target} | {result} |")
        print(f"row: {self.rows[-1]}", file=sys.stderr, flush=True)

    def print(self, title: str = "") -> None:
        if title:
            print(title + "\n")
        print(self.HEADER)
        for line in self.rows:
            print(line)
        print(flush=True)


def machine(seconds: float | None = None) -> str:
    """One line naming the machine and the load it carried when the run ended."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    said = f", {seconds:g} s per measurement" if seconds else ""
    return (f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"load average (1, 5, 15 min) at the end: {load}{said}")
