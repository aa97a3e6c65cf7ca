"""Explicit visibility: every file is visible to its patient or not; patients never see, list,
count or open a hidden file through any door; staff switch it (pages and VSee's `visible`)."""
from __future__ import annotations

import base64

import pytest
from conftest import sample

from app.extensions import db
from app.models import Category, Role, StoredFile
from app.services import files
from app.services.audit import Origin


@pytest.fixture
def chart(make_user, make_token, make_visit, make_file):
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    visit = make_visit(patient)
    made = {
        "own_photo": make_file(patient, "photo.jpg", visit=visit, category=Category.INTAKE_ATTACHMENT),
        "staff_document": make_file(provider, "letter.pdf", patient=patient),
        "staff_attachment": make_file(provider, "scan.png", visit=visit, category=Category.INTAKE_ATTACHMENT),
        "staff_consent": make_file(provider, "notes.txt", patient=patient, category=Category.USER_CONSENT),
    }
    return {"patient": patient, "provider": provider, "visit": visit, "files": made,
            "patient_api": {"X-ApiToken": make_token(patient)}, "provider_api": {"X-ApiToken": make_token(provider)},
            "patient_token": make_token(patient)}


def test_defaults_per_category(chart):
    got = {name: row.visible for name, row in chart["files"].items()}
    assert got == {"own_photo": True, "staff_document": True, "staff_attachment": False, "staff_consent": False}


def test_a_hidden_file_does_not_exist_for_the_patient_through_any_door(client, chart):
    hidden = chart["files"]["staff_attachment"]
    visit = chart["visit"]
    api = chart["patient_api"]
    assert client.get(f"/api_v3/files/{hidden.public_id}", headers=api).json == {"code": 404, "message": "No such file."}
    listing = client.get(f"/api_v3/files?target_type=visit&target_id={visit.public_id}", headers=api)
    assert [f["id"] for f in listing.json["data"]] == [chart["files"]["own_photo"].public_id]
    assert listing.headers["X-Total-Count"] == "1"  # not even counted
    everything = client.get("/api_v3/files?include_shared=true", headers=api).json["data"]
    assert hidden.public_id not in [f["id"] for f in everything]
    bearer = {"Authorization": f"Bearer {chart['patient_token']}"}
    candid = client.get(f"/api/encounter-attachments/v1/{visit.public_id}", headers=bearer).get_json()
    assert [a["attachment_id"] for a in candid] == [chart["files"]["own_photo"].public_id]
    tscharts = client.get(f"/tscharts/v1/image/{hidden.id}/", headers={"Authorization": f"Token {chart['patient_token']}"})
    assert tscharts.status_code == 404


def test_staff_release_and_hide_through_vsee(client, chart):
    hidden = chart["files"]["staff_attachment"]
    api, staff = chart["patient_api"], chart["provider_api"]
    shown = client.post(f"/api_v3/files/{hidden.public_id}", headers=staff, data={"visible": "true"})
    assert shown.status_code == 200 and shown.json["data"]["meta"]["visible"] is True
    assert client.get(f"/api_v3/files/{hidden.public_id}", headers=api).status_code == 200
    again = client.post(f"/api_v3/files/{hidden.public_id}", headers=staff, json={"visible": False, "name": "s.png"})
    assert again.status_code == 200 and again.json["data"]["meta"]["visible"] is False
    assert again.json["data"]["name"] == "s.png"
    assert client.get(f"/api_v3/files/{hidden.public_id}", headers=api).status_code == 404
    # Patients cannot switch visibility; a patient's own upload cannot be hidden.
    own = chart["files"]["own_photo"]
    assert client.post(f"/api_v3/files/{own.public_id}", headers=api, data={"visible": "false"}).status_code == 403
    assert client.post(f"/api_v3/files/{own.public_id}", headers=staff, data={"visible": "false"}).status_code == 409
    assert client.post(f"/api_v3/files/{own.public_id}", headers=staff, data={"visible": "maybe"}).status_code == 400


def test_visibility_changes_are_audited(chart):
    from sqlalchemy import select

    from app.models import AuditEvent

    row = chart["files"]["staff_consent"]
    files.set_visible(chart["provider"], Origin.cli(), row.public_id, True)
    files.set_visible(chart["provider"], Origin.cli(), row.public_id, False)
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.file_id == row.id)
                                      .order_by(AuditEvent.id)))
    assert actions == ["upload", "share", "unshare"]


def test_a_tscharts_image_by_staff_is_visible_as_a_document(client, chart, make_token):
    data = base64.b64encode(sample("xray.png")).decode()
    created = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {make_token(chart['provider'])}"},
                          json={"type": "Xray", "patient": chart["patient"].id, "data": data}).get_json()
    assert db.session.get(StoredFile, created["id"]).visible is True


@pytest.mark.sqlite_only("writes revision-0006 rows as SQLite holds them (see test_migration_0005)")
def test_migration_0007_carries_shared_over_to_visible(tmp_path):
    """`shared` becomes `visible`: a patient's own uploads, documents and pictures are visible;
    staff visit attachments and consents only if they were shared. And back again."""
    import sqlalchemy as sa
    from test_migration_0005 import PATIENT_ID, VENDOR_COLUMNS, _file, _insert, migrate, seed_people

    from app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'v.db'}",
                      "STORAGE_ROOT": str(tmp_path / "files")}, instance_path=str(tmp_path / "instance"))
    cases = {  # id: (category, creator is the patient, shared) -> visible
        1: ("user_document", False, False, True), 2: ("intake_attachment", True, False, True),
        3: ("intake_attachment", False, False, False), 4: ("intake_attachment", False, True, True),
        5: ("user_consent", False, False, False), 6: ("user_consent", False, True, True),
        7: ("user_avatar", True, False, True),
    }
    with app.app_context():
        migrate(app, "upgrade", "0006")
        with db.engine.begin() as conn:
            seed_people(conn)
            for file_id, (category, own, shared, _) in cases.items():
                row = _file(file_id, f"f{file_id}.txt", "txt", "text/plain", category, shared=int(shared),
                            **({"creator_id": PATIENT_ID} if own else {}))
                for column in VENDOR_COLUMNS:
                    del row[column]
                _insert(conn, "stored_files", row)
        migrate(app, "upgrade", "0007")
        with db.engine.connect() as conn:
            visible = dict(conn.execute(sa.text("SELECT id, visible FROM stored_files")).all())
        assert {k: bool(v) for k, v in visible.items()} == {k: c[3] for k, c in cases.items()}
        migrate(app, "downgrade", "0006")
        with db.engine.connect() as conn:
            shared = dict(conn.execute(sa.text("SELECT id, shared FROM stored_files")).all())
        assert {k for k, v in shared.items() if v} == {4, 6}
        db.engine.dispose()
