"""The services on PostgreSQL: real migrations in a private schema, no drift, the VSee flow and
the access matrix's key cases. Skips (or fails with CHARTBOX_REQUIRE_SERVICES=1) without a server.
The schema is the run's (conftest.pg_migrated: with CHARTBOX_TEST_DATABASE=postgresql the same one
every test runs on).
"""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from conftest import (  # noqa: F401 - fixtures and helpers that test_ratelimits and test_quotas import from here
    empty_tables,
    pg_config,
    pg_migrated,
    pg_schema,
    sample,
)
from sqlalchemy import select
from test_access import (
    ACTORS,
    CATEGORIES,
    OUT_OF_SCOPE,
    check_delete,
    check_get,
    check_rename,
    expected,
    world,  # noqa: F401 - the access matrix's fixture, reused on PostgreSQL
)
from test_trash import people  # noqa: F401 - the trash tests' fixture, reused on PostgreSQL

from app import create_app
from app.extensions import db
from app.models import AuditEvent, StoredFile

pytestmark = pytest.mark.postgres

@pytest.fixture
def app(pg_migrated, tmp_path):
    """The shared fixtures (make_user, make_file, client …) now run on PostgreSQL; conftest empties
    the run's schema after the test."""
    app = create_app(pg_config(tmp_path, pg_migrated["schema"]), instance_path=str(tmp_path / "instance"))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_migrations_reach_head_without_drift(pg_migrated):
    assert pg_migrated["current"] == pg_migrated["heads"]
    assert pg_migrated["diffs"] == []


def test_tables_live_in_the_private_schema(app, pg_migrated):
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_schema()")).scalar() == pg_migrated["schema"]
        tables = set(sa.inspect(conn).get_table_names(schema=pg_migrated["schema"]))
    assert set(db.metadata.tables) <= tables


def test_vsee_upload_list_rename_delete(client, make_user, make_token, storage_root):
    provider, patient = make_user("provider", password=None), make_user("patient", password=None)
    headers = {"X-ApiToken": make_token(provider)}
    made = []
    for name in ("letter.pdf", "photo.jpg", "notes.txt"):
        resp = client.post("/api_v3/files", headers=headers, data={
            "file": (io.BytesIO(sample(name)), name), "meta.target.id": str(patient.id)})
        assert resp.status_code == 200, resp.json
        made.append(resp.json["data"])
    assert made[0]["created"] > 1_600_000_000  # timezone-aware timestamps round-trip

    listed = client.get(f"/api_v3/files?target_id={patient.id}&per_page=2", headers=headers)
    assert [f["id"] for f in listed.json["data"]] == [made[2]["id"], made[1]["id"]]
    assert listed.headers["X-Total-Count"] == "3" and 'rel="next"' in listed.headers["Link"]

    renamed = client.post(f"/api_v3/files/{made[0]['id']}", headers=headers, json={"name": "Brief \u00e4.pdf"})
    assert renamed.status_code == 200 and renamed.json["data"]["name"] == "Brief \u00e4.pdf"
    view = client.get(renamed.json["data"]["fullpath"])
    assert view.status_code == 200 and view.data == sample("letter.pdf")

    assert client.delete(f"/api_v3/files/{made[0]['id']}", headers=headers).json == {"data": True}
    assert client.get(f"/api_v3/files/{made[0]['id']}", headers=headers).status_code == 404
    remaining = client.get(f"/api_v3/files?target_id={patient.id}", headers=headers).json["data"]
    assert [f["id"] for f in remaining] == [made[2]["id"], made[1]["id"]]
    actions = [e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.file_id.is_not(None))
                                                    .order_by(AuditEvent.id)) if e.action != "list"]
    assert actions == ["upload", "upload", "upload", "rename", "view", "delete"]
    assert db.session.scalar(select(StoredFile).where(StoredFile.public_id == made[0]["id"])).deleted_at


@pytest.mark.parametrize("target", ["999999999999999999", "2147483648", "0", "abc", "\u00b2"])
def test_out_of_range_ids_are_4xx_not_500(client, make_user, make_token, target):
    """Integer columns are 32-bit on PostgreSQL; a huge id must not become a database error."""
    headers = {"X-ApiToken": make_token(make_user("provider", password=None))}
    resp = client.get(f"/api_v3/files?target_id={target}", headers=headers)
    assert resp.status_code in (400, 404) and resp.json["code"] == resp.status_code
    resp = client.get(f"/api_v3/files?target_type=visit&target_id={target}", headers=headers)
    assert resp.status_code in (400, 404)


def test_concurrent_avatar_uploads_keep_one(client, make_user, make_token):
    patient = make_user("patient", password=None)
    headers = {"X-ApiToken": make_token(patient)}
    for name in ("photo.jpg", "scan.png"):
        assert client.post("/api_v3/files", headers=headers, data={
            "file": (io.BytesIO(sample(name)), name), "meta.category": "user_avatar"}).status_code == 200
    live = client.get("/api_v3/files?category=user_avatar", headers=headers).json["data"]
    assert [f["name"] for f in live] == ["scan.png"]


KEY_CASES = [("patient", "user_document"), ("patient", "user_consent"), ("patient", "user_avatar"),
             ("provider", "intake_attachment"), ("provider", "user_avatar"), ("admin", "user_consent"),
             ("other_patient", "user_document"), ("other_clinic_admin", "intake_attachment")]
assert all(a in ACTORS and c in CATEGORIES for a, c in KEY_CASES)


@pytest.mark.parametrize("actor,category", KEY_CASES)
def test_access_matrix_key_cases(client, world, actor, category):
    check_get(client, world, actor, category)
    check_rename(client, world, actor, category)
    check_delete(client, world, actor, category)


@pytest.mark.parametrize("actor", ["patient", "provider", "other_clinic_provider"])
def test_list_scope(client, world, actor):
    resp = client.get(f"/api_v3/files?target_id={world.users['patient'].id}", headers=world.headers(actor))
    if actor in OUT_OF_SCOPE:
        assert resp.status_code == 404
    else:
        assert resp.status_code == 200 and len(resp.json["data"]) == 3
    assert expected("view", actor, "user_document") == (404 if actor in OUT_OF_SCOPE else 200)


def test_a_held_upload_racing_its_visit_still_joins_it(app, make_user):
    """Under READ COMMITTED too: the upload waits for the visit's lock, then sees the visit."""
    from test_api_candid_attachments import race_a_held_upload_against_its_visit

    race_a_held_upload_against_its_visit(app, make_user)


def test_concurrent_renames_count_every_change_on_postgres(app, people, make_file):
    from test_trash import concurrent_renames_count_every_change

    concurrent_renames_count_every_change(app, people, make_file)


def test_a_rename_racing_a_delete_never_wins_after_it_on_postgres(app, people, make_file):
    from test_trash import a_rename_racing_a_delete_never_wins_after_it

    a_rename_racing_a_delete_never_wins_after_it(app, people, make_file)
