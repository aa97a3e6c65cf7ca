"""A small download through a signed view link against bare Flask `send_file` of the same file.

    .venv/bin/python bench/downloads.py [--seconds 8] [--rounds 3] [--connections 16]

Chartbox runs as `make run` serves it (gunicorn -c gunicorn.conf.py, 2 workers, SQLite in WAL,
files on disk, request rate limits on and counting in the database — only the per-address read
limit raised so that one load generator is not refused); the reference is bench/bare_app.py
(`send_file` of the same bytes, nothing else) under the same gunicorn settings. wrk loads each
for `--seconds`, reference and Chartbox alternating `--rounds` times; the figure is the median
of the per-round ratios of requests per second (target ≥ 0.5). Every Chartbox request checks the
link's signature, reads the file's row and the viewer's, applies the access rules, counts in the
rate limiter, hashes the bytes against the row's sha256 and commits an audit event before it
answers.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

from http_common import BareApp, LiveApp, Table, link_path, machine, median, upload, wrk  # noqa: E402


def worker_cpu(pids: list[int]) -> float:
    """Seconds of CPU (user + system) the processes have used, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def loaded(url: str, pids: list[int], seconds: float, connections: int):
    """wrk against `url`, and the servers' worker CPU per request it served (ms)."""
    before = worker_cpu(pids)
    result = wrk(url, seconds, connections)
    return result, (worker_cpu(pids) - before) * 1000 / max(result.requests, 1)


def small_jpeg() -> bytes:
    """A ~125 KB photo-like JPEG (noise compresses poorly, as a photo's detail does)."""
    from PIL import Image

    out = io.BytesIO()
    Image.effect_noise((420, 320), 64).convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    data = small_jpeg()
    table = Table()
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"RATELIMIT_ADDRESS_READ": "100000000 per minute"}
        with LiveApp(Path(tmp) / "chartbox", settings=settings) as live:
            row = upload(live, data, "photo.jpg")
            link = live.url(link_path(row["fullpath"]))
            blob = next(p for p in (Path(tmp) / "chartbox" / "files").rglob("*") if p.is_file()
                        and p.stat().st_size == len(data))
            with BareApp(Path(tmp) / "bare", blob, "image/jpeg") as bare:
                for url in (bare.url("/file"), link):  # warm both (imports, caches, pools)
                    wrk(url, 2, args.connections)
                ratios, refs, subs, ref_cpu, sub_cpu = [], [], [], [], []
                for _ in range(args.rounds):
                    ref, cpu = loaded(bare.url("/file"), bare.worker_pids(), args.seconds, args.connections)
                    ref_cpu.append(cpu)
                    sub, cpu = loaded(link, live.worker_pids(), args.seconds, args.connections)
                    sub_cpu.append(cpu)
                    if sub.errors or ref.errors:
                        raise SystemExit(f"errors: reference {ref.errors}, Chartbox {sub.errors}\n{sub.output}")
                    refs.append(ref)
                    subs.append(sub)
                    ratios.append(sub.rps / ref.rps)
    ref_rps, sub_rps = median([r.rps for r in refs]), median([s.rps for s in subs])
    ratio = median(ratios)
    table.row(f"{len(data) // 1024} KB JPEG via signed link, req/s (wrk, {args.connections} conns)",
              f"bare Flask send_file {ref_rps:,.0f}", f"{sub_rps:,.0f}", ratio, "≥ 0.5", ratio >= 0.5)
    p99 = median([s.latency.get(99, float("nan")) for s in subs]) * 1000
    table.row("the same, Chartbox p50 / p99 ms", f"{median([r.latency.get(50, 0) for r in refs]) * 1000:.1f} / "
              f"{median([r.latency.get(99, 0) for r in refs]) * 1000:.1f}",
              f"{median([s.latency.get(50, 0) for s in subs]) * 1000:.1f} / {p99:.1f}", None, "—", None)
    table.row("the same, worker CPU per request (ms, user + system from /proc)",
              f"{median(ref_cpu):.2f}", f"{median(sub_cpu):.2f}", median(ref_cpu) / median(sub_cpu), "—", None)
    table.print("### A small download (`bench/downloads.py`)")
    print(f"Per-round ratios: {', '.join(f'{r:.2f}' for r in ratios)}. {machine(args.seconds)}")


if __name__ == "__main__":
    main()
