"""Chartbox benchmarks: upload throughput, listing latency with many files, view and rendition.

Run with `make bench` (or `.venv/bin/python bench/run.py [--files N]`). Everything is real: a
SQLite database and a filesystem store in a temp folder, real PDF/JPEG bytes, requests through
Flask's test client (no network). Results print as a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from builders import noisy_photo  # noqa: E402
from common import DATA, bench_app, local_path, print_header, print_row, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000, help="files in the big chart")
    args = parser.parse_args()
    bench = bench_app(tempfile.mkdtemp(prefix="chartbox-bench-"),
                      RATELIMIT_ENABLED=False)  # one token uploads thousands of files here
    rows = []
    patient_id = bench.patient_id
    client = bench.app.test_client()
    headers = {"X-ApiToken": bench.provider_token}
    pdf = (DATA / "letter.pdf").read_bytes()
    side = int(12_000_000 ** 0.5)  # 12 MP
    jpeg = noisy_photo(side, side, quality=92)

    def upload(data: bytes, name: str):
        resp = bench.upload(client, data, name)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["data"]

    t = timed(lambda: upload(pdf, "letter.pdf"), 50)
    rows.append(("upload small PDF (1.5 KB, pypdf in a forked child)", t))
    t = timed(lambda: upload(jpeg, "photo.jpg"), 10)
    rows.append((f"upload 12 MP JPEG ({len(jpeg) / 1e6:.1f} MB, full decode + hash)", t))
    start = time.perf_counter()
    for i in range(args.files):
        upload(b"date,value\n2026-01-01,%d\n" % i, f"v{i}.csv")
    fill = time.perf_counter() - start
    url = f"/api_v3/files?target_id={patient_id}&per_page=100"
    t = timed(lambda: client.get(url, headers=headers), 30)
    rows.append((f"list first page of 100 in a chart of {args.files + 60} files", t))
    url_last = f"/api_v3/files?target_id={patient_id}&per_page=100&page={(args.files + 60) // 100}"
    t = timed(lambda: client.get(url_last, headers=headers), 30)
    rows.append(("list a late page (offset pagination)", t))
    photo = upload(jpeg, "photo.jpg")
    view = local_path(photo["fullpath"])
    t = timed(lambda: client.get(view).get_data(), 20)
    rows.append(("view the 12 MP JPEG (stream from disk)", t))
    first = timed(lambda: client.get(view + "&size=320x240").get_data(), 1)
    rows.append(("first 320x240 rendition of the JPEG (decode + resize + cache)", first))
    t = timed(lambda: client.get(view + "&size=320x240").get_data(), 20)
    rows.append(("cached 320x240 rendition", t))

    print(f"Machine: {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; filling the chart took {fill:.1f} s "
          f"({args.files / fill:.0f} small uploads/s)\n")
    print_header()
    for label, samples in rows:
        print_row(label, samples)


if __name__ == "__main__":
    main()
