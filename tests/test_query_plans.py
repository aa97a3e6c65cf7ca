"""The list and search queries the app really runs use indexes, on PostgreSQL and on SQLite.

A migrated database (`flask db upgrade`) is filled with a real-sized load — 30 clinics (the one the
requests use has 1,500 patients), ~3,000 patients each with a token and a session, ~30,000 files,
~60,000 audit events, the vendors' side tables — and analysed, so each planner has its statistics
and a reason to prefer an index (no `enable_seqscan=off`). Then every listing
is made through its real door (the VSee API, the pages, Candid, tscharts, the CLI) while a
listener captures the statements, and each captured SELECT is explained with its own parameters:
`EXPLAIN (FORMAT JSON)` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite. The expected index must
appear, and the big tables (stored_files, audit_events) are never scanned whole.

PostgreSQL runs in both passes (a schema of its own; skips without a server, fails under
CHARTBOX_REQUIRE_SERVICES=1); SQLite in the default pass.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import db_switch
import pytest
import sqlalchemy as sa
from conftest import PageClient, base_config
from test_migrations import run_db_command

from app import create_app
from app.api.candid.models import CandidAttachment, CandidImage
from app.api.tscharts.models import ChartImage
from app.extensions import db
from app.models import Account, ApiToken, AuditChain, AuditEvent, FileText, Role, StoredFile, User, UserSession, Visit
from app.services import accounts

CLINICS, PATIENTS, PROVIDERS, FILES = 30, 50, 4, 10  # per clinic, per clinic, per patient
OWN_PATIENTS = 1500  # the requests' clinic is a big one: its directory pages must not read it whole
OWN_FILES = 200  # the chart the requests list (pages of 50)
PASSWORD = "correct horse battery"
BIG_TABLES = ("stored_files", "audit_events")
#: Never read whole by a listing. Not watched: accounts (a few rows), and users and visits when
#: only joined to a page of files (at 3,000 rows a hash join over them is the planner's fair
#: choice; their own lookups are in EXPECTED).
WATCHED = (*BIG_TABLES, "api_tokens", "user_sessions", "candid_images", "tscharts_images", "candid_attachments")
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "June", "Kofi", "Lea"]
LAST = ["Moreno", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Umar", "Vega"]
ENGINES = ["postgresql"] if db_switch.ON_POSTGRES else ["sqlite", "postgresql"]


@dataclass
class Loaded:
    """The filled app and the people and things the requests name."""

    app: Any
    engine: str
    provider_id: int
    patient_id: int
    visit_id: str
    file_id: str
    other_patient_ids: list[int] = field(default_factory=list)


def _bulk(model, rows: list[dict]) -> None:
    if rows:  # Core executemany: the ORM's bulk path costs twice as much here
        db.session.connection().execute(sa.insert(model.__table__), rows)


def fill(provider: User, patient: User) -> tuple[str, str]:
    """The load, inserted in bulk (Core INSERTs; the services would take minutes). The
    requests' own chart belongs to `patient`: OWN_FILES files over several visits."""
    rnd = random.Random(11)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    _bulk(Account, [{"code": f"bulk{c}", "name": f"Bulk Clinic {c}"} for c in range(CLINICS - 1)])
    clinic_ids = [provider.account_id, *db.session.scalars(
        sa.select(Account.id).where(Account.code.like("bulk%")).order_by(Account.id))]
    people = []
    for c, clinic_id in enumerate(clinic_ids):
        for n in range(OWN_PATIENTS if clinic_id == provider.account_id else PATIENTS):
            name = f"{FIRST[n % len(FIRST)]} {LAST[(n + c) % len(LAST)]}"
            people.append({"account_id": clinic_id, "role": Role.PATIENT.value, "username": f"bulk-p{c}-{n}",
                           "full_name": f"{name} {c}-{n}", "email": f"p{c}.{n}@example.org"})
        people += [{"account_id": clinic_id, "role": Role.PROVIDER.value, "username": f"bulk-dr{c}-{n}",
                    "full_name": f"Dr {LAST[n]} {c}", "email": None} for n in range(PROVIDERS)]
    _bulk(User, people)
    ids = list(db.session.scalars(sa.select(User.id).where(User.username.like("bulk-%"))))
    # Every person holds a token and a session: the lookups by hash meet tables of real size.
    _bulk(ApiToken, [{"user_id": uid, "name": "bulk", "token_hash": hashlib.sha256(f"t{uid}".encode()).hexdigest(),
                      "prefix": "bulk"} for uid in ids])
    _bulk(UserSession, [{"user_id": uid, "key_hash": hashlib.sha256(f"s{uid}".encode()).hexdigest()} for uid in ids])
    users = db.session.execute(sa.select(User.id, User.account_id, User.role).where(User.username.like("bulk-%"))).all()
    staff: dict[int, list[int]] = {}
    for uid, clinic_id, role in users:
        if role != Role.PATIENT.value:
            staff.setdefault(clinic_id, []).append(uid)
    staff[provider.account_id].append(provider.id)
    charts = [(uid, clinic_id, FILES) for uid, clinic_id, role in users if role == Role.PATIENT.value]
    charts.append((patient.id, patient.account_id, OWN_FILES))
    _bulk(Visit, [{"account_id": clinic_id, "patient_id": uid, "reason": "check-up",
                   "created_at": start + timedelta(days=v * 30)}
                  for uid, clinic_id, n in charts for v in range(max(1, n // 40))])
    visits: dict[int, list[int]] = {}
    for vid, uid in db.session.execute(sa.select(Visit.id, Visit.patient_id).order_by(Visit.id)):
        visits.setdefault(uid, []).append(vid)

    rows = []
    for uid, clinic_id, n in charts:
        for i in range(n):
            kind = i % 10
            category, target_type, target_id, visit_id = "user_document", "user", uid, None
            if kind in (3, 7):
                visit_id = visits[uid][i % len(visits[uid])]
                category, target_type, target_id = "intake_attachment", "visit", visit_id
            elif kind == 5:
                category = "user_consent"
            image = kind in (0, 4)
            creator = uid if i % 3 == 0 else rnd.choice(staff[clinic_id])
            moment = start + timedelta(minutes=rnd.randrange(0, 900 * 24 * 60))
            rows.append({
                "account_id": clinic_id, "name": f"file-{i}.{'png' if image else 'pdf'}", "ext": "png" if image else "pdf",
                "size": 1000 + i, "sha256": "0" * 64, "media_type": "image/png" if image else "application/pdf",
                "category": category, "target_type": target_type, "target_id": target_id, "patient_id": uid,
                "visit_id": visit_id, "creator_id": creator, "visible": category == "user_document" or i % 2 == 0,
                "created_at": moment, "modified_at": moment,
                "deleted_at": moment + timedelta(days=1) if i % 11 == 10 else None,
                "storage_backend": "filesystem", "storage_key": f"xx/{uid}-{i}",
            })
    _bulk(StoredFile, rows)
    stored = db.session.execute(sa.select(StoredFile.id, StoredFile.patient_id, StoredFile.account_id,
                                          StoredFile.creator_id, StoredFile.category, StoredFile.media_type,
                                          StoredFile.created_at).order_by(StoredFile.id)).all()
    events, attachments = [], []
    seq = db.session.scalar(sa.select(AuditChain.seq).where(AuditChain.id == 1)) or 0  # after the services' events
    for fid, uid, clinic_id, creator, category, _, moment in stored:
        for action, actor, later in (("upload", creator, 0), ("view", uid, 3)):
            seq += 1
            events.append({"seq": seq, "created_at": moment + timedelta(hours=later), "actor_id": actor,
                           "actor_role": "patient" if actor == uid else "provider", "account_id": clinic_id,
                           "patient_id": uid, "action": action, "outcome": "ok", "file_id": fid, "channel": "web",
                           "prev_hash": "0" * 64, "hash": "0" * 64})
        if category == "intake_attachment":
            attachments.append({"file_id": fid, "account_id": clinic_id, "attachment_type": "OTHER"})
    _bulk(AuditEvent, events)
    _bulk(CandidAttachment, attachments)
    # Every PDF has its text indexed (search); a rare word sits in some of the requests' chart.
    vocabulary = ["report", "blood", "pressure", "glucose", "referral", "letter", "summary", "clinic", "normal"]
    _bulk(FileText, [{"file_id": fid, "body": " ".join(rnd.choice(vocabulary) for _ in range(40))
                      + (" zymurgy" if uid == patient.id and fid % 5 == 0 else "")}
                     for fid, uid, _, _, _, media_type, _ in stored if media_type == "application/pdf"])
    db.session.execute(sa.update(AuditChain).where(AuditChain.id == 1).values(seq=seq, last_hash="0" * 64))
    _bulk(ChartImage, [{"file_id": fid, "image_type": ["Xray", "Headshot", "Audiogram"][fid % 3],
                        "clinic": fid % 7, "station": fid % 5}
                       for fid, _, _, _, _, media_type, _ in stored if media_type == "image/png"])
    _bulk(CandidImage, [{"account_id": clinic_id, "updating_user_id": uid, "file_name": "card.png",
                         "display_name": "Card", "file_type": "image/png", "status": "PENDING", "patient_id": uid,
                         "coverage_id": f"cov-{uid}", "coverage_side": "FRONT"}
                        for uid, clinic_id, _ in charts])
    db.session.commit()
    own = db.session.execute(sa.select(StoredFile.public_id, StoredFile.visit_id).where(
        StoredFile.patient_id == patient.id, StoredFile.deleted_at.is_(None),
        StoredFile.category == "intake_attachment").order_by(StoredFile.id).limit(1)).one()
    visit = db.session.get(Visit, own.visit_id)
    return visit.public_id, own.public_id


def analyse() -> None:
    """Fresh planner statistics, as autovacuum (PostgreSQL) or `ANALYZE` (SQLite) keeps them."""
    db.session.commit()
    with db.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()


@pytest.fixture(scope="module", params=ENGINES)
def loaded(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"plans-{request.param}")
    schema = None
    if request.param == "postgresql":
        schema = db_switch.create_schema("plans")
        database = db_switch.settings(schema)
    else:
        database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'plans.db'}"}
    app = create_app(base_config(root, database=database), instance_path=str(root / "instance"))
    try:
        with app.app_context():
            run_db_command(app, "upgrade")  # the migrated schema, not create_all
            clinic = accounts.create_account("plans", "Planning Clinic")
            provider = accounts.create_user(clinic, Role.PROVIDER, "dr.plan", "Dr Plan", "dr@example.org", PASSWORD)
            patient = accounts.create_user(clinic, Role.PATIENT, "pat.plan", "Pat Plan", "pat@example.org", PASSWORD)
            visit_id, file_id = fill(provider, patient)
            analyse()
            yield Loaded(app, request.param, provider.id, patient.id, visit_id, file_id)
            db.session.remove()
            db.engine.dispose()
    finally:
        if schema is not None:
            db_switch.drop_schema(schema)


# -- capturing and explaining ----------------------------------------------------------------------

@dataclass
class Scan:
    node: str  # "Index Scan", "Seq Scan", "SEARCH", "SCAN", …
    table: str | None
    index: str | None


def _index_tables() -> dict[str, str]:
    found = {}
    for table in db.metadata.tables.values():
        for index in table.indexes:
            found[str(index.name)] = table.name
        for constraint in table.constraints:
            if isinstance(constraint, (sa.PrimaryKeyConstraint, sa.UniqueConstraint)) and constraint.name:
                found[str(constraint.name)] = table.name
    found["ix_file_texts_search"] = "file_texts"  # the GIN index is the migration's, not a model's
    return found


def _pg_scans(node: dict, tables: dict[str, str], out: list[Scan]) -> None:
    index = node.get("Index Name")
    table = node.get("Relation Name") or (tables.get(index) if index else None)
    if "Scan" in node["Node Type"]:
        out.append(Scan(node["Node Type"], table, index))
    for child in node.get("Plans", []):
        _pg_scans(child, tables, out)


def _sqlite_scans(rows) -> list[Scan]:
    out = []
    for row in rows:
        words = row[-1].split()
        if words[:1] in (["SEARCH"], ["SCAN"]) and len(words) > 1:
            index = None
            if "INDEX" in words:
                index = words[words.index("INDEX") + 1]
            elif "PRIMARY" in words or "INTEGER" in words:
                index = "PRIMARY KEY"
            table = words[1]
            if "VIRTUAL" in words and index and ":M" in index:  # FTS5's plan for a MATCH constraint
                index = FTS5_MATCH
            if table not in db.metadata.tables:  # an alias of a joined load: users_1 is users
                table = re.sub(r"_\d+$", "", table)
            out.append(Scan(words[0], table, index))
    return out


@dataclass
class Explained:
    statement: str
    scans: list[Scan]
    plan: Any


def capture(request: Callable[[], Any]) -> tuple[Any, list[tuple[str, Any]]]:
    """Run `request`, returning its result and every SELECT the app ran meanwhile."""
    seen: list[tuple[str, Any]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and not executemany:
            seen.append((statement, parameters))

    db.session.remove()
    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        result = request()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)
        db.session.remove()
    return result, seen


def explain(engine: str, statements: list[tuple[str, Any]]) -> list[Explained]:
    tables = _index_tables()
    out = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            if engine == "postgresql":
                plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
                scans: list[Scan] = []
                _pg_scans(plan[0]["Plan"], tables, scans)
            else:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                scans = _sqlite_scans(plan)
            out.append(Explained(statement, scans, plan))
        conn.rollback()
    return out


INDEXED_PG = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


def check_plans(engine: str, explained: list[Explained], expected: dict[str, set[str]]) -> None:
    """Each expected table is read through one of its expected indexes in some statement, and no
    statement reads a big table (or an expected one) whole."""
    def describe() -> str:
        return "\n\n".join(f"{e.statement[:600]}\n  -> {[(s.node, s.table, s.index) for s in e.scans]}"
                           for e in explained)

    watched = set(WATCHED) | set(expected)
    for item in explained:
        for scan in item.scans:
            if scan.table not in watched:
                continue
            if engine == "postgresql":
                assert scan.node != "Seq Scan", f"Seq Scan on {scan.table}:\n{describe()}"
            elif scan.table in BIG_TABLES:  # keyed lookups only: not even a whole index in order
                assert scan.node == "SEARCH", f"SCAN of {scan.table}:\n{describe()}"
            else:
                assert scan.node == "SEARCH" or scan.index is not None, f"full SCAN of {scan.table}:\n{describe()}"
    for table, indexes in expected.items():
        used = {s.index for e in explained for s in e.scans if s.table == table and s.index
                and (engine != "postgresql" or s.node in INDEXED_PG)}
        assert used & indexes, f"{table}: expected one of {sorted(indexes)}, used {sorted(used)}:\n{describe()}"


def _through(loaded: Loaded, request: Callable[[], Any], expected: dict[str, set[str]]):
    result, statements = capture(request)
    assert statements, "no SELECT captured"
    check_plans(loaded.engine, explain(loaded.engine, statements), expected)
    return result


def _page_client(loaded: Loaded, user_id: int) -> PageClient:
    client = PageClient(loaded.app, loaded.app.response_class, use_cookies=True)
    return client.sign_in(db.session.get(User, user_id))


def _token(user_id: int) -> str:
    return accounts.create_token(db.session.get(User, user_id))[1]


# -- the requests ----------------------------------------------------------------------------------

def _scenarios(loaded: Loaded) -> dict[str, Callable[[], Any]]:
    """Each listing through its door, as a callable returning the response."""
    api = loaded.app.test_client()
    provider_token, patient_token = _token(loaded.provider_id), _token(loaded.patient_id)
    vsee = {"X-ApiToken": provider_token}
    provider_pages, patient_pages = _page_client(loaded, loaded.provider_id), _page_client(loaded, loaded.patient_id)
    p = loaded.patient_id
    runner = loaded.app.test_cli_runner()
    return {
        "vsee_list_provider": lambda: api.get(f"/api_v3/files?target_type=user&target_id={p}&page=2&per_page=50",
                                              headers=vsee),
        "vsee_list_patient": lambda: api.get(f"/api_v3/files?target_type=user&target_id={p}&page=1&per_page=50",
                                             headers={"X-ApiToken": patient_token}),
        "vsee_visit_list": lambda: api.get(f"/api_v3/files?target_type=visit&target_id={loaded.visit_id}",
                                           headers=vsee),
        "documents_page": lambda: patient_pages.get("/documents"),
        "documents_search": lambda: patient_pages.get("/documents?q=zymurgy"),
        "chart_documents_search": lambda: provider_pages.get(f"/patients/{p}?q=zymurgy&sort=name"),
        "vsee_search": lambda: api.get(f"/api_v3/files?target_type=user&target_id={p}&q=zymurgy", headers=vsee),
        "patient_visits_page": lambda: patient_pages.get("/documents/visits"),
        "chart_documents": lambda: provider_pages.get(f"/patients/{p}"),
        "chart_visits": lambda: provider_pages.get(f"/patients/{p}/visits"),
        "chart_consents": lambda: provider_pages.get(f"/patients/{p}/consents"),
        "chart_trash": lambda: provider_pages.get(f"/patients/{p}/trash"),
        "patients_directory": lambda: provider_pages.get("/patients"),
        "patients_search": lambda: provider_pages.get("/patients?q=Okafor"),
        "candid_images": lambda: api.get(f"/images/v1?patient_id={p}", headers={"Authorization": f"Bearer {provider_token}"}),
        "candid_attachments": lambda: api.get(f"/api/encounter-attachments/v1/{loaded.visit_id}",
                                              headers={"Authorization": f"Bearer {provider_token}"}),
        "tscharts_patient": lambda: api.get(f"/tscharts/v1/image/?patient={p}&type=Xray",
                                            headers={"Authorization": f"Token {provider_token}"}),
        "tscharts_clinic": lambda: api.get("/tscharts/v1/image/?clinic=3",
                                           headers={"Authorization": f"Token {provider_token}"}),
        "file_history": lambda: provider_pages.get(f"/documents/{loaded.file_id}/history"),
        "audit_export_patient": lambda: runner.invoke(args=["audit", "export", "--patient", str(p)]),
        "audit_export_since": lambda: runner.invoke(args=["audit", "export", "--patient", str(p), "--since", "2026-01-01"]),
    }


# A chart's listing: the live-chart index (0012, in its order) or the older target index.
TARGET = {"ix_stored_files_live_chart", "ix_stored_files_target_listing"}
PATIENT_KEYED = {"ix_stored_files_visible_listing", "ix_stored_files_patient_id"}
#: What each listing must read its big tables through (an index per table, one of the set).
EXPECTED: dict[str, dict[str, set[str]]] = {
    "vsee_list_provider": {"stored_files": TARGET},
    "vsee_list_patient": {"stored_files": TARGET | PATIENT_KEYED},
    "vsee_visit_list": {"stored_files": TARGET},
    "documents_page": {"stored_files": PATIENT_KEYED},
    # Search: the words through the GIN index (PostgreSQL) or the FTS5 table (SQLite, below).
    "documents_search": {"stored_files": PATIENT_KEYED | TARGET, "file_texts": {"ix_file_texts_search"}},
    "chart_documents_search": {"stored_files": TARGET, "file_texts": {"ix_file_texts_search"}},
    "vsee_search": {"stored_files": TARGET, "file_texts": {"ix_file_texts_search"}},
    "patient_visits_page": {"visits": {"ix_visits_patient_id"}, "stored_files": {"ix_stored_files_visit_id"}},
    "chart_documents": {"stored_files": TARGET},
    "chart_visits": {"visits": {"ix_visits_patient_id"}, "stored_files": {"ix_stored_files_visit_id"}},
    "chart_consents": {"stored_files": TARGET},
    "chart_trash": {"stored_files": PATIENT_KEYED},
    "patients_directory": {"users": {"ix_users_directory"}},
    "patients_search": {"users": {"ix_users_directory"}},
    "candid_images": {"candid_images": {"ix_candid_images_patient_id", "ix_candid_images_search"}},
    "candid_attachments": {"stored_files": TARGET},
    "tscharts_patient": {"stored_files": PATIENT_KEYED},
    "tscharts_clinic": {"tscharts_images": {"ix_tscharts_images_clinic"}},  # (SQLite: see below)
    "file_history": {"audit_events": {"ix_audit_events_file_history"}},
    "audit_export_patient": {"audit_events": {"ix_audit_events_patient_history"}},
    "audit_export_since": {"audit_events": {"ix_audit_events_patient_history"}},
}


FTS5_MATCH = "fts5 MATCH"  # what _sqlite_scans calls a MATCH through the FTS5 index


#: SQLite's planner, given the same statistics, starts the clinic-wide tscharts search from the
#: clinic's files (then each file's tags by primary key): also no full scan.
EXPECTED_SQLITE = {"tscharts_clinic": {"stored_files": {"ix_stored_files_account_id"},
                                       "tscharts_images": {"PRIMARY KEY", "ix_tscharts_images_clinic"}},
                   # FTS5 answers MATCH through its own index ("VIRTUAL TABLE INDEX <n>:M…").
                   **{name: {"stored_files": PATIENT_KEYED | TARGET, "file_texts_fts": {FTS5_MATCH}}
                      for name in ("documents_search", "chart_documents_search", "vsee_search")}}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_listings_use_their_indexes(loaded, scenario):
    request = _scenarios(loaded)[scenario]
    expected = EXPECTED_SQLITE.get(scenario, EXPECTED[scenario]) if loaded.engine == "sqlite" else EXPECTED[scenario]
    result = _through(loaded, request, expected)
    status = getattr(result, "status_code", None)
    assert status == 200 or getattr(result, "exit_code", None) == 0, (status, getattr(result, "output", ""))


def test_the_load_is_big_enough_to_matter(loaded):
    """Thousands of rows per big table, and the planner has counted them."""
    counts = {t: db.session.scalar(sa.select(sa.func.count()).select_from(sa.table(t)))
              for t in (*BIG_TABLES, "users", "api_tokens", "user_sessions")}
    assert counts["stored_files"] > 25_000 and counts["audit_events"] > 50_000 and counts["users"] > 3_000, counts
    assert counts["api_tokens"] > 3_000 and counts["user_sessions"] > 3_000, counts
    if loaded.engine == "postgresql":
        estimated = db.session.scalar(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'stored_files'::regclass"))
    else:
        estimated = int(db.session.scalar(sa.text(
            "SELECT stat FROM sqlite_stat1 WHERE tbl = 'stored_files' LIMIT 1")).split()[0])  # "rows per-index…"
    assert estimated > 25_000
