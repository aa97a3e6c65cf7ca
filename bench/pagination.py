"""A page of 50 of a 10,000-file chart in a 1,000,000-file PostgreSQL database, against a small one.

Run: `.venv/bin/python bench/pagination.py [--files N] [--rounds R] [--quick]` (also in
`make bench`). Needs the PostgreSQL server of the tests (CHARTBOX_TEST_POSTGRES_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/test). Prints a Markdown table.

Two fresh schemas, each migrated with the real migrations (`flask db upgrade`, as
tests/test_services_postgres.py's pg_migrated does), each with a clinic, a provider, a patient
and the provider's API token made through the services:

- big: the patient's chart holds 10,000 files, and 990,000 more belong to 9,900 other patients
  (100 each) of 99 other clinics: 1,000,000 files;
- small: the patient's chart holds 1,000 files, the database nothing else.

The rows are filled by `INSERT … SELECT generate_series(…)` and look like real ones: account,
patient, creator (the provider or the patient), category, media type, extension and size
matching the name, a sha256, a storage key in the backend's `<uuid[:2]>/<uuid>` shape, page
counts for PDFs and dimensions for images, creation times spread over three years, 1 % in the
trash. The blobs do not exist (a listing never opens one). Then ANALYZE (as autovacuum would).

The request is the VSee API's list (GET /api_v3/files?target_id=<patient>&page=P&per_page=50,
provider token) through Flask's test client in this process, so the figure is the app and the
database (authentication, the count, the page, 50 signed links, the audit event and its
commit), not HTTP. Rate limits are off (their cost is bench/ratelimits.py's). Requests
alternate between the two databases, medians taken: the first page, target <= 2x; a late
page of the same number (19, the small chart's last full one) and the big chart's last page
(198) for information. The schemas are dropped afterwards.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402
from http_common import Table, machine, median  # noqa: E402

URL = os.environ.get("CHARTBOX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHART, PER_PAGE = 10_000, 50

# One INSERT for a block of charts: :n0 .. :n1 numbers the files; each file's chart is
# patient_base + (n - n0) / per_patient (or the one patient when per_patient is the block size).
FILL = """
WITH k AS (SELECT CAST(:n0 AS bigint) AS n0, CAST(:n1 AS bigint) AS n1, CAST(:patient_base AS bigint) AS base,
                  CAST(:per_patient AS bigint) AS per, CAST(:creator AS integer) AS creator)
INSERT INTO stored_files (public_id, account_id, name, ext, size, sha256, media_type, category, target_type,
    target_id, patient_id, visit_id, creator_id, visible, version, created_at, modified_at, deleted_at,
    deleted_by_id, purged_at, storage_backend, storage_key, page_count, width, height)
SELECT f.uid, p.account_id,
    CASE f.kind WHEN 0 THEN 'Scan ' || f.n || '.pdf' WHEN 1 THEN 'Photo ' || f.n || '.jpg'
                WHEN 2 THEN 'X-ray ' || f.n || '.png' ELSE 'Notes ' || f.n || '.txt' END,
    (ARRAY['pdf', 'jpg', 'png', 'txt'])[f.kind + 1],
    CASE f.kind WHEN 0 THEN 40000 + f.n % 4000000 WHEN 1 THEN 150000 + f.n % 6000000
                WHEN 2 THEN 90000 + f.n % 2000000 ELSE 200 + f.n % 20000 END,
    encode(sha256(convert_to(f.uid, 'UTF8')), 'hex'),
    (ARRAY['application/pdf', 'image/jpeg', 'image/png', 'text/plain'])[f.kind + 1],
    CASE WHEN f.n % 10 = 9 THEN 'user_consent' ELSE 'user_document' END, 'user', p.id, p.id, NULL,
    CASE WHEN f.n % 3 = 0 THEN p.id ELSE k.creator END,
    TRUE, 1, f.at, f.at, CASE WHEN f.n % 100 = 50 THEN f.at + interval '1 day' END,
    CASE WHEN f.n % 100 = 50 THEN p.id END, NULL, 'filesystem', substr(f.uid, 1, 2) || '/' || f.uid,
    CASE f.kind WHEN 0 THEN 1 + f.n % 12 END,
    CASE f.kind WHEN 1 THEN 4032 WHEN 2 THEN 2048 END, CASE f.kind WHEN 1 THEN 3024 WHEN 2 THEN 2500 END
FROM k, (SELECT n, gen_random_uuid()::text AS uid, n % 4 AS kind,
                now() - interval '3 years' + (n - k.n0) * (interval '3 years' / (k.n1 - k.n0 + 1)) AS at,
                k.base + (n - k.n0) / k.per AS pid
         FROM k, generate_series(k.n0, k.n1) AS n) AS f
JOIN users AS p ON p.id = f.pid
"""

FILL_CLINICS = """
INSERT INTO accounts (code, name, created_at)
SELECT 'clinic-' || n, 'Clinic ' || n, now() - interval '4 years'
FROM generate_series(1, CAST(:clinics AS integer)) AS n
"""

# Patients of the other clinics, :per_clinic each, numbered after every existing user.
FILL_PATIENTS = """
INSERT INTO users (account_id, role, username, full_name, email, password_hash, active, created_at)
SELECT a.id, 'patient', 'patient-' || a.id || '-' || k, 'Patient ' || a.id || '-' || k,
       'patient-' || a.id || '-' || k || '@example.org', NULL, TRUE, now() - interval '4 years'
FROM accounts AS a CROSS JOIN generate_series(1, CAST(:per_clinic AS integer)) AS k
WHERE a.code LIKE 'clinic-%'
ORDER BY a.id, k
"""


def make_schema(engine: sa.Engine) -> str:
    schema = f"chartbox_bench_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return schema


def migrated_app(tmp: Path, schema: str) -> tuple[Flask, int, str]:
    """A Chartbox app on `schema`, migrated and seeded: (app, the patient's id, the provider's token)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.models import Role
    from app.services import accounts

    app = create_app({
        "SECRET_KEY": "bench", "SERVER_NAME": "bench.local", "SQLALCHEMY_DATABASE_URI": URL,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "connect_args": {"options": f"-csearch_path={schema}"}},
        "STORAGE_ROOT": str(tmp / "files"), "RATELIMIT_ENABLED": False,
    }, instance_path=str(tmp / "instance"))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        clinic = accounts.create_account("bench", "Bench Clinic")
        provider = accounts.create_user(clinic, Role.PROVIDER, "dr.bench", "Dr Bench")
        patient = accounts.create_user(clinic, Role.PATIENT, "pat.bench", "Pat Bench")
        return app, patient.id, accounts.create_token(provider)[1]


def fill(app: Flask, patient_id: int, chart: int, others: int) -> float:
    """`chart` files for the patient, `others` for patients of other clinics; seconds taken."""
    from app.extensions import db
    from app.models import User

    started = time.monotonic()
    with app.app_context():
        provider = db.session.scalar(sa.select(User.id).where(User.username == "dr.bench"))
        with db.engine.begin() as conn:
            conn.execute(sa.text(FILL), {"n0": 1, "n1": chart, "patient_base": patient_id, "per_patient": chart,
                                         "creator": provider})
            if others:
                per_patient, per_clinic = 100, 100
                clinics = max(1, others // (per_patient * per_clinic))
                conn.execute(sa.text(FILL_CLINICS), {"clinics": clinics})
                conn.execute(sa.text(FILL_PATIENTS), {"per_clinic": per_clinic})
                first = conn.execute(sa.text("SELECT min(id) FROM users WHERE username LIKE 'patient-%'")).scalar()
                block = 100_000  # files per statement, so the server's memory stays small
                for n0 in range(chart + 1, chart + others + 1, block):
                    n1 = min(n0 + block - 1, chart + others)
                    # the first patient of this block: one chart of per_patient files each
                    base = first + (n0 - chart - 1) // per_patient
                    conn.execute(sa.text(FILL), {"n0": n0, "n1": n1, "patient_base": base,
                                                 "per_patient": per_patient, "creator": provider})
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        db.engine.dispose()
    return time.monotonic() - started


#: --candidate-index: an index the listing's ORDER BY … LIMIT can walk (live files only, every
#: predicate of the query in it, then the page order), added to both schemas after the fill, to
#: show what it would change. Not a migration. (Without account_id in it the planner, which
#: takes account_id and target_id for independent, expects ~100 rows and keeps sorting all.)
CANDIDATE_INDEX = ("CREATE INDEX ix_bench_candidate_chart_pages ON stored_files "
                   "(account_id, target_type, target_id, created_at, id) WHERE deleted_at IS NULL")


def add_candidate_index(app: Flask) -> None:
    from app.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text(CANDIDATE_INDEX))
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE stored_files"))
        db.engine.dispose()


def count_files(app: Flask) -> int:
    from app.extensions import db

    with app.app_context():
        return db.session.scalar(sa.text("SELECT count(*) FROM stored_files"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000, help="files in the big database")
    parser.add_argument("--rounds", type=int, default=100, help="alternating requests per database and page")
    parser.add_argument("--quick", action="store_true", help="a run of under a minute (100,000 files, 30 rounds)")
    parser.add_argument("--candidate-index", action="store_true",
                        help="an experiment: add CANDIDATE_INDEX to both schemas before measuring")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds = 100_000, 30
    engine = sa.create_engine(URL, connect_args={"connect_timeout": 5})
    schemas: list[str] = []
    table = Table()
    try:
        with tempfile.TemporaryDirectory(prefix="chartbox-bench-pages-") as name:
            tmp = Path(name)
            schemas.append(make_schema(engine))
            big, big_patient, big_token = migrated_app(tmp / "big", schemas[-1])
            schemas.append(make_schema(engine))
            small, small_patient, small_token = migrated_app(tmp / "small", schemas[-1])
            took = fill(big, big_patient, CHART, args.files - CHART)
            fill(small, small_patient, 1_000, 0)
            if args.candidate_index:
                add_candidate_index(big)
                add_candidate_index(small)
            sizes = count_files(big), count_files(small)
            print(f"filled {sizes[0]:,} files in {took:.0f} s; small: {sizes[1]:,}", file=sys.stderr)

            clients = {"big": (big.test_client(), big_patient, big_token),
                       "small": (small.test_client(), small_patient, small_token)}

            def get(which: str, page: int) -> float:
                client, patient, token = clients[which]
                started = time.perf_counter()
                resp = client.get(f"/api_v3/files?target_id={patient}&page={page}&per_page={PER_PAGE}",
                                  headers={"X-ApiToken": token})
                elapsed = time.perf_counter() - started
                assert resp.status_code == 200 and len(resp.get_json()["data"]) == PER_PAGE, resp.status_code
                return elapsed

            # 1 % of each chart is in the trash: the small chart's last full page is 19, the big one's 198
            pages = {"first": (1, 1), "late": (19, 19), "last": (CHART * 99 // 100 // PER_PAGE, 19)}
            runs: dict[tuple[str, str], list[float]] = {}
            for which in clients:  # warm: connections, compiled queries
                get(which, 1)
            for _ in range(args.rounds):
                for label, (big_page, small_page) in pages.items():
                    runs.setdefault((label, "big"), []).append(get("big", big_page))
                    runs.setdefault((label, "small"), []).append(get("small", small_page))
            indexed = " (experiment: with CANDIDATE_INDEX)" if args.candidate_index else ""
            for label, (big_page, small_page) in pages.items():
                ref, sub = median(runs[(label, "small")]), median(runs[(label, "big")])
                judged = label == "first"
                table.row(f"page {big_page} of 50 of a {CHART:,}-file chart in {sizes[0]:,} files{indexed} "
                          f"(reference: page {small_page} of a 1,000-file chart, the whole database; "
                          f"median of {args.rounds} alternating)",
                          f"{ref * 1000:.1f} ms", f"{sub * 1000:.1f} ms", sub / ref, "≤ 2" if judged else "—",
                          sub / ref <= 2 if judged else None)
            for app in (big, small):
                with app.app_context():
                    from app.extensions import db

                    db.engine.dispose()
    finally:
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    print(machine() + f"; PostgreSQL at {URL.split('@')[-1]}\n")
    table.print()


if __name__ == "__main__":
    main()
