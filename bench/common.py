"""What the benchmarks share: a fresh app in a temp folder with a seeded clinic, the timing
helper and the Markdown table they print.

A bench script puts the repository and tests/ on sys.path before importing this (for `app`,
and for tests/builders.py's file builders): `sys.path[:0] = [str(ROOT), str(ROOT / "tests")]`.
"""
from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

SERVER_NAME = "bench.local"


@dataclass
class Bench:
    """An app on SQLite and a filesystem store, with one clinic, a provider and a patient."""

    app: Flask
    storage_root: Path
    clinic_id: int
    provider_id: int
    patient_id: int
    provider_token: str
    patient_token: str

    def upload(self, client, data: bytes, name: str, token: str | None = None):
        """POST one file to the patient's chart through the VSee API (the provider's token by
        default); the test client's response."""
        return client.post("/api_v3/files", headers={"X-ApiToken": token or self.provider_token}, data={
            "file": (io.BytesIO(data), name), "meta.target.id": str(self.patient_id)})


def local_path(url: str) -> str:
    """A URL the app built (http://bench.local/...) as a path for the test client."""
    return url.replace(f"http://{SERVER_NAME}", "")


def bench_app(tmp: str | Path, name: str = "bench", **settings) -> Bench:
    """A fresh app in `tmp` (database `<name>.db`, files in `<name>-files`, instance folder
    `<name>-instance`, so several apps can share one folder), `settings` over the defaults,
    its tables created and a clinic seeded."""
    from app import create_app
    from app.extensions import db
    from app.models import Role
    from app.services import accounts

    storage_root = Path(tmp) / f"{name}-files"
    app = create_app({
        "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/{name}.db",
        "STORAGE_ROOT": str(storage_root), "SERVER_NAME": SERVER_NAME, **settings,
    }, instance_path=f"{tmp}/{name}-instance")
    with app.app_context():
        db.create_all()
        clinic = accounts.create_account("bench", "Bench")
        provider = accounts.create_user(clinic, Role.PROVIDER, "prov", "Provider")
        patient = accounts.create_user(clinic, Role.PATIENT, "pat", "Patient")
        provider_token = accounts.create_token(provider)[1]
        patient_token = accounts.create_token(patient)[1]
        return Bench(app, storage_root, clinic.id, provider.id, patient.id, provider_token, patient_token)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds each of `repeat` calls of `fn` took."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def print_header() -> None:
    print("| operation | runs | median ms | p90 ms |")
    print("|---|---:|---:|---:|")


def print_row(label: str, samples: list[float], digits: int = 1) -> None:
    """One table row: the runs, their median and 90th percentile in milliseconds."""
    ordered = sorted(samples)
    median, p90 = statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(f"| {label} | {len(ordered)} | {median * 1000:.{digits}f} | {p90 * 1000:.{digits}f} |", flush=True)
