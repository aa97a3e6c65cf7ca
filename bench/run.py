"""Chartbox benchmarks: upload throughput, listing latency with many files, view and rendition.

Run with `make bench` (or `.venv/bin/python bench/run.py [--files N]`). Everything is real: a
SQLite database and a filesystem store in a temp folder, real PDF/JPEG bytes, requests through
Flask's test client (no network). Results print as a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Role  # noqa: E402
from app.services import accounts  # noqa: E402

DATA = ROOT / "tests" / "data"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def big_jpeg(megapixels: float) -> bytes:
    side = int((megapixels * 1_000_000) ** 0.5)
    # Noise over a gradient compresses like a real photo (a flat gradient would be tiny).
    gradient = Image.radial_gradient("L").resize((side, side))
    noise = Image.effect_noise((side, side), 40)
    im = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000, help="files in the big chart")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="chartbox-bench-")
    app = create_app({
        "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/bench.db",
        "STORAGE_ROOT": f"{tmp}/files", "SERVER_NAME": "bench.local",
    }, instance_path=f"{tmp}/instance")
    rows = []
    with app.app_context():
        db.create_all()
        clinic = accounts.create_account("bench", "Bench")
        provider = accounts.create_user(clinic, Role.PROVIDER, "prov", "Provider")
        patient = accounts.create_user(clinic, Role.PATIENT, "pat", "Patient")
        _, token = accounts.create_token(provider)
        patient_id = patient.id
    client = app.test_client()
    headers = {"X-ApiToken": token}
    pdf = (DATA / "letter.pdf").read_bytes()
    jpeg = big_jpeg(12)

    def upload(data: bytes, name: str):
        resp = client.post("/api_v3/files", headers=headers, data={
            "file": (io.BytesIO(data), name), "meta.target.id": str(patient_id)})
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
    view = photo["fullpath"].replace("http://bench.local", "")
    t = timed(lambda: client.get(view).get_data(), 20)
    rows.append(("view the 12 MP JPEG (stream from disk)", t))
    first = timed(lambda: client.get(view + "&size=320x240").get_data(), 1)
    rows.append(("first 320x240 rendition of the JPEG (decode + resize + cache)", first))
    t = timed(lambda: client.get(view + "&size=320x240").get_data(), 20)
    rows.append(("cached 320x240 rendition", t))

    print(f"Machine: {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; filling the chart took {fill:.1f} s "
          f"({args.files / fill:.0f} small uploads/s)\n")
    print("| operation | runs | median ms | p90 ms |")
    print("|---|---:|---:|---:|")
    for label, samples in rows:
        samples = sorted(samples)
        p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
        print(f"| {label} | {len(samples)} | {statistics.median(samples) * 1000:.1f} | {p90 * 1000:.1f} |")


if __name__ == "__main__":
    main()
