"""Migration 0005 (vendor columns leave stored_files for tscharts_images and candid_attachments)
on real data: rows of every kind written at revision 0004 with plain SQL, carried up to head,
served by the app's models there, carried back down to 0004 unchanged, and up again.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_migrations import current_revisions, empty_app, quiet_logging_config, schema_diffs, script_heads  # noqa: F401

from app.extensions import db

pytestmark = pytest.mark.sqlite_only(
    "writes revision-0004 rows as SQLite holds them (integer booleans, text timestamps) and compares them "
    "back verbatim; tests/test_migrations.py runs every migration up and down on PostgreSQL")

ACCOUNT_ID, PATIENT_ID, PROVIDER_ID, VISIT_ID = 1, 10, 11, 20
BIG_CLINIC = 2**40

VENDOR_COLUMNS = ("image_type", "tscharts_clinic", "tscharts_station",
                  "attachment_type", "description", "charge_capture_external_id")

# Every column stored_files has at 0004 besides the vendor ones (revision 0001's, 0003 made
# patient_id and target_id nullable).
CORE_COLUMNS = ("id", "public_id", "account_id", "name", "ext", "size", "sha256", "media_type", "category",
                "target_type", "target_id", "patient_id", "visit_id", "creator_id", "shared", "version",
                "created_at", "modified_at", "deleted_at", "deleted_by_id", "purged_at", "storage_backend",
                "storage_key", "page_count", "width", "height")


def _file(file_id: int, name: str, ext: str, media_type: str, category: str, *, target_type: str = "user",
          target_id: int | None = PATIENT_ID, patient_id: int | None = PATIENT_ID, visit_id: int | None = None,
          creator_id: int = PROVIDER_ID, **extra) -> dict:
    """A stored_files row as revision 0004 holds it: every NOT NULL column filled, vendor columns NULL
    unless given."""
    row = {
        "id": file_id, "public_id": f"00000000-0000-4000-8000-{file_id:012d}", "account_id": ACCOUNT_ID,
        "name": name, "ext": ext, "size": 1000 + file_id, "sha256": f"{file_id:064x}", "media_type": media_type,
        "category": category, "target_type": target_type, "target_id": target_id, "patient_id": patient_id,
        "visit_id": visit_id, "creator_id": creator_id, "shared": 0, "version": 1,
        "created_at": f"2026-11-23 10:{file_id % 60:02d}:00.000000",
        "modified_at": f"2026-11-23 11:{file_id % 60:02d}:00.000000",
        "deleted_at": None, "deleted_by_id": None, "purged_at": None,
        "storage_backend": "fs", "storage_key": f"{ACCOUNT_ID}/{file_id}/blob", "page_count": None,
        "width": None, "height": None,
        **{column: None for column in VENDOR_COLUMNS},
    }
    unknown = set(extra) - set(row)
    assert not unknown, unknown
    return row | extra


PLAIN_DOC = 100
HEADSHOT = 101       # tscharts image, BIGINT clinic
XRAY = 102           # tscharts image, no station (and deleted, shared, so the nullable core columns vary)
ENCOUNTER_FULL = 103   # Candid encounter attachment: type and description
ENCOUNTER_TYPE = 104   # Candid encounter attachment: type only
CC_WAITING = 105       # Candid charge capture waiting for its visit
CC_ATTACHED = 106      # Candid charge capture already attached to the visit

FILES = [
    _file(PLAIN_DOC, "letter.pdf", "pdf", "application/pdf", "user_document", creator_id=PATIENT_ID,
          page_count=2),
    _file(HEADSHOT, "headshot-10.png", "png", "image/png", "user_document", width=64, height=48,
          image_type="Headshot", tscharts_clinic=BIG_CLINIC, tscharts_station=7),
    _file(XRAY, "xray-10.jpg", "jpg", "image/jpeg", "user_document", width=800, height=600, shared=1,
          version=3, deleted_at="2026-11-24 09:00:00.000000", deleted_by_id=PROVIDER_ID,
          image_type="Xray", tscharts_clinic=3, tscharts_station=None),
    _file(ENCOUNTER_FULL, "eob.pdf", "pdf", "application/pdf", "intake_attachment", target_type="visit",
          target_id=VISIT_ID, visit_id=VISIT_ID, page_count=1,
          attachment_type="DOCUMENTATION", description="Explanation of benefits, page 1 of 1"),
    _file(ENCOUNTER_TYPE, "other.pdf", "pdf", "application/pdf", "intake_attachment", target_type="visit",
          target_id=VISIT_ID, visit_id=VISIT_ID, page_count=1, attachment_type="OTHER"),
    _file(CC_WAITING, "consent.pdf", "pdf", "application/pdf", "intake_attachment", target_type="visit",
          target_id=None, patient_id=None, visit_id=None, page_count=1,
          attachment_type="CONSENT_FORM", charge_capture_external_id="ENC-WAITING-99"),
    _file(CC_ATTACHED, "referral.pdf", "pdf", "application/pdf", "intake_attachment", target_type="visit",
          target_id=VISIT_ID, visit_id=VISIT_ID, page_count=1,
          attachment_type="REFERRAL_FORM", charge_capture_external_id="ENC-42"),
]
FILES_BY_ID = {row["id"]: row for row in FILES}
# Every upload is audited, so a real database has audit_events rows pointing at stored_files.
AUDIT_BY_ID = {
    900 + n: {"id": 900 + n, "created_at": row["created_at"], "actor_id": row["creator_id"],
              "account_id": ACCOUNT_ID, "action": "upload", "file_id": row["id"], "channel": "cli",
              "ip": None, "user_agent": None, "detail": None}
    for n, row in enumerate(FILES)
}

EXPECTED_TSCHARTS = {
    HEADSHOT: {"file_id": HEADSHOT, "image_type": "Headshot", "clinic": BIG_CLINIC, "station": 7},
    XRAY: {"file_id": XRAY, "image_type": "Xray", "clinic": 3, "station": None},
}
EXPECTED_CANDID = {
    ENCOUNTER_FULL: {"file_id": ENCOUNTER_FULL, "account_id": ACCOUNT_ID, "attachment_type": "DOCUMENTATION",
                     "description": "Explanation of benefits, page 1 of 1", "charge_capture_external_id": None},
    ENCOUNTER_TYPE: {"file_id": ENCOUNTER_TYPE, "account_id": ACCOUNT_ID, "attachment_type": "OTHER",
                     "description": None, "charge_capture_external_id": None},
    CC_WAITING: {"file_id": CC_WAITING, "account_id": ACCOUNT_ID, "attachment_type": "CONSENT_FORM",
                 "description": None, "charge_capture_external_id": "ENC-WAITING-99"},
    CC_ATTACHED: {"file_id": CC_ATTACHED, "account_id": ACCOUNT_ID, "attachment_type": "REFERRAL_FORM",
                  "description": None, "charge_capture_external_id": "ENC-42"},
}


def _insert(conn, table: str, row: dict) -> None:
    columns = ", ".join(row)
    params = ", ".join(f":{column}" for column in row)
    conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({params})"), row)


def seed_people(conn) -> None:
    """An account, a patient and a provider, and a visit with an external id (same at 0004 and head)."""
    _insert(conn, "accounts", {"id": ACCOUNT_ID, "code": "mig5", "name": "Migration Clinic",
                               "created_at": "2026-11-20 08:00:00.000000"})
    for user_id, role, username in ((PATIENT_ID, "patient", "pat5"), (PROVIDER_ID, "provider", "doc5")):
        _insert(conn, "users", {"id": user_id, "account_id": ACCOUNT_ID, "role": role, "username": username,
                                "full_name": username.title(), "email": f"{username}@example.org",
                                "password_hash": None, "active": 1,
                                "created_at": "2026-11-20 08:30:00.000000"})
    _insert(conn, "visits", {"id": VISIT_ID, "public_id": "00000000-0000-4000-9000-000000000020",
                             "account_id": ACCOUNT_ID, "patient_id": PATIENT_ID, "external_id": "ENC-42",
                             "reason": "Follow-up", "created_at": "2026-11-21 09:00:00.000000"})


def rows(table: str) -> dict[int, dict]:
    """A table's rows by primary key (file_id for the side tables, else id), as plain SQL reads them."""
    key = "file_id" if table in ("tscharts_images", "candid_attachments") else "id"
    with db.engine.connect() as conn:
        return {r[key]: dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).mappings()}


def columns_of(table: str) -> dict[str, sa.types.TypeEngine]:
    with db.engine.connect() as conn:
        return {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(table)}


def tables() -> set[str]:
    with db.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def stored_file_indexes() -> dict[str, tuple]:
    with db.engine.connect() as conn:
        return {i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
                for i in sa.inspect(conn).get_indexes("stored_files")}


def run_db(app, *args: str):
    """`flask db <args>` through the CLI runner; the result, whatever it is."""
    with quiet_logging_config():
        return app.test_cli_runner().invoke(args=["db", *args])


def migrate(app, *args: str) -> None:
    result = run_db(app, *args)
    assert result.exit_code == 0, f"flask db {' '.join(args)} failed:\n{result.output}\n{result.exception}"


def core(row: dict) -> dict:
    return {column: row[column] for column in CORE_COLUMNS}


def test_0005_carries_every_vendor_value_up_and_back(empty_app):
    app = empty_app
    heads = script_heads()

    # --- revision 0004, rows of every kind, plain SQL -------------------------------------
    migrate(app, "upgrade", "0004")
    assert current_revisions() == {"0004"}
    indexes_at_0004 = stored_file_indexes()
    with db.engine.begin() as conn:
        seed_people(conn)
        for row in FILES:
            _insert(conn, "stored_files", row)
        for row in AUDIT_BY_ID.values():
            _insert(conn, "audit_events", row)
    assert rows("stored_files") == FILES_BY_ID  # what 0004 holds is exactly what was written

    # --- up to head -------------------------------------------------------------------------
    migrate(app, "upgrade", "0005")  # this migration; later ones change stored_files again
    assert current_revisions() == {"0005"}

    stored = rows("stored_files")
    assert set(stored) == set(FILES_BY_ID), "stored_files rows lost or added"
    for file_id, row in FILES_BY_ID.items():
        assert core(stored[file_id]) == core(row), f"stored_files {file_id} changed"
    assert rows("audit_events") == AUDIT_BY_ID

    tscharts_up = rows("tscharts_images")
    candid_up = rows("candid_attachments")
    assert tscharts_up == EXPECTED_TSCHARTS
    assert candid_up == EXPECTED_CANDID
    assert type(tscharts_up[HEADSHOT]["clinic"]) is int and tscharts_up[HEADSHOT]["clinic"] == 2**40
    assert PLAIN_DOC not in tscharts_up and PLAIN_DOC not in candid_up
    # The Candid side row's account is its file's.
    assert all(r["account_id"] == FILES_BY_ID[fid]["account_id"] for fid, r in candid_up.items())

    sf_columns = columns_of("stored_files")
    assert not set(VENDOR_COLUMNS) & set(sf_columns), "vendor columns still on stored_files"
    assert set(sf_columns) == set(CORE_COLUMNS)
    ts_columns = columns_of("tscharts_images")
    assert isinstance(ts_columns["clinic"], sa.BigInteger) and isinstance(ts_columns["station"], sa.BigInteger)
    assert not {"ix_stored_files_tscharts_patient", "ix_stored_files_tscharts_clinic",
                "ix_stored_files_tscharts_station", "ix_stored_files_charge_capture"} & set(stored_file_indexes())

    # --- back down to 0004 ----------------------------------------------------------------------
    migrate(app, "downgrade", "0004")
    assert current_revisions() == {"0004"}
    assert not {"tscharts_images", "candid_attachments"} & tables()
    down = rows("stored_files")
    assert set(down) == set(FILES_BY_ID)
    for file_id, row in FILES_BY_ID.items():
        assert down[file_id] == row, f"stored_files {file_id} differs from what was written at 0004"
    assert set(columns_of("stored_files")) == set(CORE_COLUMNS) | set(VENDOR_COLUMNS)
    assert rows("audit_events") == AUDIT_BY_ID
    assert stored_file_indexes() == indexes_at_0004

    # --- and up again: the same side rows --------------------------------------------------------
    migrate(app, "upgrade", "0005")
    assert rows("tscharts_images") == tscharts_up
    assert rows("candid_attachments") == candid_up
    assert {fid: core(r) for fid, r in rows("stored_files").items()} == {fid: core(r) for fid, r in FILES_BY_ID.items()}
    assert rows("audit_events") == AUDIT_BY_ID

    # --- on to head: no drift, and the app serves the carried rows -----------------------------
    migrate(app, "upgrade")
    assert current_revisions() == heads and schema_diffs() == []
    # --- the app at head serves the carried rows ------------------------------------------------
    from sqlalchemy import select

    from app.api.candid.models import CandidAttachment
    from app.api.tscharts.models import ChartImage
    from app.models import StoredFile

    try:
        headshot = db.session.get(ChartImage, HEADSHOT)
        assert (headshot.image_type, headshot.clinic, headshot.station) == ("Headshot", BIG_CLINIC, 7)
        assert headshot.file.public_id == FILES_BY_ID[HEADSHOT]["public_id"] and headshot.file.patient_id == PATIENT_ID
        xray = db.session.get(ChartImage, XRAY)
        assert (xray.image_type, xray.clinic, xray.station) == ("Xray", 3, None)
        assert xray.file.is_deleted and xray.file.deleted_by_id == PROVIDER_ID

        full = db.session.get(CandidAttachment, ENCOUNTER_FULL)
        assert (full.attachment_type, full.description) == ("DOCUMENTATION", "Explanation of benefits, page 1 of 1")
        assert full.file.visit_id == VISIT_ID and full.file.visit.external_id == "ENC-42"
        waiting = db.session.get(CandidAttachment, CC_WAITING)
        assert waiting.charge_capture_external_id == "ENC-WAITING-99" and waiting.file.is_held
        assert waiting.file.target_type == "visit" and waiting.file.target_id is None
        attached = db.session.get(CandidAttachment, CC_ATTACHED)
        assert attached.charge_capture_external_id == "ENC-42" and not attached.file.is_held
        assert attached.file.visit_id == VISIT_ID and attached.file.patient_id == PATIENT_ID

        # The charge-capture index's query: every file for an external id, waiting or attached.
        found = db.session.scalars(select(CandidAttachment.file_id).where(
            CandidAttachment.account_id == ACCOUNT_ID,
            CandidAttachment.charge_capture_external_id == "ENC-42")).all()
        assert found == [CC_ATTACHED]

        plain = db.session.get(StoredFile, PLAIN_DOC)
        assert plain.name == "letter.pdf" and plain.page_count == 2
        assert db.session.get(ChartImage, PLAIN_DOC) is None
        assert db.session.get(CandidAttachment, PLAIN_DOC) is None
        assert db.session.get(ChartImage, ENCOUNTER_FULL) is None
        assert db.session.get(CandidAttachment, HEADSHOT) is None
    finally:
        db.session.remove()  # release SQLite before the next migration



def test_0005_downgrade_refuses_a_type_0004_cannot_store(empty_app, caplog):
    app = empty_app
    heads = script_heads()
    migrate(app, "upgrade", "0005")  # the stored_files shape this migration leaves
    row = _file(ENCOUNTER_FULL, "admission.pdf", "pdf", "application/pdf", "intake_attachment",
                target_type="visit", target_id=VISIT_ID, visit_id=VISIT_ID, page_count=1)
    for column in VENDOR_COLUMNS:
        del row[column]
    side = {"file_id": ENCOUNTER_FULL, "account_id": ACCOUNT_ID, "attachment_type": "JUSTIFICATION_OF_ADMISSION",
            "description": "Too long for revision 0004", "charge_capture_external_id": None}
    with db.engine.begin() as conn:
        seed_people(conn)
        _insert(conn, "stored_files", row)
        _insert(conn, "candid_attachments", side)

    result = run_db(app, "downgrade", "0004")
    # Flask-Migrate turns the migration's RuntimeError into a logged error and exit code 1.
    assert result.exit_code != 0, f"downgrade went through:\n{result.output}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "1 Candid attachment(s) use a type longer than revision 0004 can store" in caplog.text

    # The steps above 0005 went down; 0005 itself refused and left everything as it was.
    assert current_revisions() == {"0005"}
    assert {"tscharts_images", "candid_attachments"} <= tables()
    assert not set(VENDOR_COLUMNS) & set(columns_of("stored_files"))
    assert rows("candid_attachments") == {ENCOUNTER_FULL: side}
    assert rows("stored_files") == {ENCOUNTER_FULL: row}
    run_db(app, "upgrade")
    assert current_revisions() == heads and schema_diffs() == []

