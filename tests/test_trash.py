"""Nothing lost: clinical records a patient cannot erase, a trash with undo, restore through the
API, and changes of one file that serialize (real threads against a live server)."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import timedelta

import pytest
from conftest import sample
from sqlalchemy import select
from werkzeug.serving import make_server

from app.extensions import db
from app.models import AuditEvent, Category, Role, StoredFile
from app.models.base import utcnow
from app.services import files
from app.services.audit import Origin


@pytest.fixture
def people(make_user, make_token):
    patient, provider = make_user(Role.PATIENT), make_user(Role.PROVIDER)
    return {"patient": patient, "provider": provider,
            "patient_api": {"X-ApiToken": make_token(patient)}, "provider_api": {"X-ApiToken": make_token(provider)}}


def events(row: StoredFile, action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.file_id == row.id, AuditEvent.action == action)
                                   .order_by(AuditEvent.id)))


# -- record ownership ------------------------------------------------------------------------------

def test_a_patient_cannot_rename_or_delete_a_clinical_record(client, people, make_file):
    letter = make_file(people["provider"], "letter.pdf", patient=people["patient"])
    headers = people["patient_api"]
    got = client.get(f"/api_v3/files/{letter.public_id}", headers=headers)
    assert got.status_code == 200 and got.json["data"]["is_deletable"] is False
    assert client.get(got.json["data"]["fullpath"]).data == sample("letter.pdf")  # they may read it
    for resp in (client.post(f"/api_v3/files/{letter.public_id}", headers=headers, data={"name": "mine.pdf"}),
                 client.delete(f"/api_v3/files/{letter.public_id}", headers=headers)):
        assert resp.status_code == 403 and resp.json["code"] == 403 and "care team" in resp.json["message"]
    db.session.refresh(letter)
    assert (letter.name, letter.deleted_at, letter.version) == ("letter.pdf", None, 1)


def test_a_patient_still_renames_and_deletes_their_own_uploads(client, people, make_file):
    own = make_file(people["patient"], "notes.txt")
    headers = people["patient_api"]
    assert client.get(f"/api_v3/files/{own.public_id}", headers=headers).json["data"]["is_deletable"] is True
    assert client.post(f"/api_v3/files/{own.public_id}", headers=headers, data={"name": "n.txt"}).status_code == 200
    assert client.delete(f"/api_v3/files/{own.public_id}", headers=headers).json == {"data": True}


def test_clinical_records_are_protected_in_other_dialects_too(client, people, make_token):
    import base64
    token = make_token(people["patient"])
    created = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {make_token(people['provider'])}"},
                          json={"type": "Xray", "patient": people["patient"].id,
                                "data": base64.b64encode(sample("xray.png")).decode()})
    image_id = created.get_json()["id"]
    resp = client.delete(f"/tscharts/v1/image/{image_id}/", headers={"Authorization": f"Token {token}"})
    assert resp.status_code == 403 and set(resp.get_json()) == {"detail"}
    assert db.session.get(StoredFile, image_id).deleted_at is None


def test_staff_delete_a_clinical_record_with_an_audited_reason(client, people, make_file):
    letter = make_file(people["provider"], "letter.pdf", patient=people["patient"])
    resp = client.delete(f"/api_v3/files/{letter.public_id}?reason=Filed+in+the+wrong+chart",
                         headers=people["provider_api"])
    assert resp.status_code == 200
    assert [e.detail for e in events(letter, "delete")] == [{"reason": "Filed in the wrong chart"}]


def test_the_pages_offer_no_delete_for_a_clinical_record(make_page_client, people, make_file):
    make_file(people["provider"], "letter.pdf", patient=people["patient"])
    own = make_file(people["patient"], "notes.txt")
    page = make_page_client(people["patient"]).get("/documents").get_data(as_text=True)
    assert page.count("data-confirm-delete") == 1 and f"/documents/{own.public_id}/delete" in page
    assert "Rename letter.pdf" not in page and "Rename notes.txt" in page


def test_staff_must_say_why_on_the_page(make_page_client, people, make_file):
    letter = make_file(people["provider"], "letter.pdf", patient=people["patient"])
    client = make_page_client(people["provider"])
    chart = f"/patients/{people['patient'].id}"
    assert "data-needs-reason" in client.get(chart).get_data(as_text=True)
    token = client.csrf(chart)
    refused = client.post(f"/documents/{letter.public_id}/delete", data={"csrf_token": token, "next": chart})
    assert refused.status_code == 303
    assert db.session.get(StoredFile, letter.id).deleted_at is None
    assert "Say why" in client.get(chart).get_data(as_text=True)
    done = client.post(f"/documents/{letter.public_id}/delete",
                       data={"csrf_token": token, "next": chart, "reason": "Duplicate of the March letter"})
    assert done.status_code == 303 and db.session.get(StoredFile, letter.id).deleted_at is not None
    assert events(letter, "delete")[0].detail == {"reason": "Duplicate of the March letter"}


# -- the trash: undo, recently deleted, restore ---------------------------------------------------------

def test_undo_right_after_a_delete(make_page_client, people, make_file):
    own = make_file(people["patient"], "notes.txt")
    client = make_page_client(people["patient"])
    token = client.csrf("/documents")
    client.post(f"/documents/{own.public_id}/delete", data={"csrf_token": token, "next": "/documents"})
    page = client.get("/documents").get_data(as_text=True)
    assert "Deleted “notes.txt”." in page and f"/documents/{own.public_id}/restore" in page and ">Undo<" in page
    resp = client.post(f"/documents/{own.public_id}/restore", data={"csrf_token": token, "next": "/documents"})
    assert resp.status_code == 303
    db.session.refresh(own)
    assert own.deleted_at is None and own.deleted_by_id is None
    assert "Restored “notes.txt”." in client.get("/documents").get_data(as_text=True)
    assert [e.actor_id for e in events(own, "restore")] == [people["patient"].id]


def test_recently_deleted_shows_patients_their_own_and_staff_everything(make_page_client, people, make_file):
    mine = make_file(people["patient"], "notes.txt")
    theirs = make_file(people["provider"], "letter.pdf", patient=people["patient"])
    files.delete(people["patient"], Origin.cli(), mine.public_id)
    files.delete(people["provider"], Origin.cli(), theirs.public_id, reason="wrong chart")
    patient_page = make_page_client(people["patient"]).get("/documents/trash").get_data(as_text=True)
    assert "notes.txt" in patient_page and "letter.pdf" not in patient_page and "by you" in patient_page
    staff_page = make_page_client(people["provider"]).get(f"/patients/{people['patient'].id}/trash").get_data(
        as_text=True)
    assert "notes.txt" in staff_page and "letter.pdf" in staff_page
    assert people["patient"].full_name in staff_page and "deleted" in staff_page


def test_the_trash_keeps_files_for_the_retention_period_only(client, app, people, make_file):
    old, recent = make_file(people["patient"], "notes.txt"), make_file(people["patient"], "vitals.csv")
    for row in (old, recent):
        files.delete(people["patient"], Origin.cli(), row.public_id)
    old.deleted_at = utcnow() - timedelta(days=app.config["TRASH_RETENTION_DAYS"], minutes=1)
    db.session.commit()
    assert [r.id for r in files.list_deleted(people["patient"], people["patient"])] == [recent.id]
    headers = people["patient_api"]
    assert client.post(f"/api_v3/files/{old.public_id}/restore", headers=headers).status_code == 404
    assert client.post(f"/api_v3/files/{recent.public_id}/restore", headers=headers).status_code == 200


def test_restore_through_the_api_follows_the_delete_rules(client, people, make_file, make_user, make_token):
    own = make_file(people["patient"], "notes.txt")
    letter = make_file(people["provider"], "letter.pdf", patient=people["patient"])
    files.delete(people["patient"], Origin.cli(), own.public_id)
    files.delete(people["provider"], Origin.cli(), letter.public_id)
    stranger = {"X-ApiToken": make_token(make_user(Role.PATIENT))}
    for headers, row in ((stranger, own), (people["patient_api"], letter)):  # not theirs to see
        resp = client.post(f"/api_v3/files/{row.public_id}/restore", headers=headers)
        assert resp.status_code == 404 and resp.json == {"code": 404, "message": "No such file."}
    resp = client.post(f"/api_v3/files/{own.public_id}/restore", headers=people["patient_api"])
    assert resp.status_code == 200 and resp.json["data"]["id"] == own.public_id
    assert client.post(f"/api_v3/files/{letter.public_id}/restore", headers=people["provider_api"]).status_code == 200
    assert client.post(f"/api_v3/files/{letter.public_id}/restore", headers=people["provider_api"]).status_code == 404
    listed = client.get(f"/api_v3/files?target_id={people['patient'].id}", headers=people["provider_api"]).json
    assert {f["id"] for f in listed["data"]} == {own.public_id, letter.public_id}


def test_a_purged_file_cannot_be_restored(client, people, make_file):
    own = make_file(people["patient"], "notes.txt")
    files.delete(people["patient"], Origin.cli(), own.public_id)
    own.purged_at = utcnow()
    db.session.commit()
    assert client.post(f"/api_v3/files/{own.public_id}/restore", headers=people["patient_api"]).status_code == 404
    assert files.list_deleted(people["patient"], people["patient"]) == []


# -- If-Match ------------------------------------------------------------------------------------------

def test_rename_with_a_stale_version_is_a_conflict(client, people, make_file):
    own = make_file(people["patient"], "notes.txt")
    headers = people["patient_api"]
    got = client.get(f"/api_v3/files/{own.public_id}", headers=headers)
    etag = got.headers["ETag"]
    assert etag == '"1"'
    first = client.post(f"/api_v3/files/{own.public_id}", headers={**headers, "If-Match": etag}, data={"name": "a.txt"})
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    stale = client.post(f"/api_v3/files/{own.public_id}", headers={**headers, "If-Match": etag}, data={"name": "b.txt"})
    assert stale.status_code == 409 and stale.json["code"] == 409
    assert client.post(f"/api_v3/files/{own.public_id}", headers=headers, json={"name": "c.txt", "version": 2}
                       ).status_code == 200
    bad = client.post(f"/api_v3/files/{own.public_id}", headers={**headers, "If-Match": "*x"}, data={"name": "d.txt"})
    assert bad.status_code == 400
    db.session.refresh(own)
    assert (own.name, own.version) == ("c.txt", 3)


# -- concurrency: real threads against a live server ------------------------------------------------------

@contextmanager
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def call(method: str, url: str, headers: dict, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**headers, **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def run_together(jobs) -> list:
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i, job):
        start.wait(timeout=10)
        results[i] = job()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def concurrent_renames_count_every_change(app, people, make_file) -> None:
    own = make_file(people["patient"], "notes.txt")
    app.config["SERVER_NAME"] = None
    with live_server(app) as base:
        url = f"{base}/api_v3/files/{own.public_id}"
        statuses = run_together([lambda i=i: call("POST", url, people["patient_api"], {"name": f"n{i}.txt"})
                                 for i in range(20)])
    assert statuses == [200] * 20
    db.session.expire_all()
    row = db.session.get(StoredFile, own.id)
    assert row.version == 21 and len(events(row, "rename")) == 20


def a_rename_racing_a_delete_never_wins_after_it(app, people, make_file) -> None:
    app.config["SERVER_NAME"] = None
    for attempt in range(3):
        own = make_file(people["patient"], "notes.txt", name=f"race{attempt}.txt")
        with live_server(app) as base:
            url = f"{base}/api_v3/files/{own.public_id}"
            jobs = [lambda url=url: call("DELETE", url, people["patient_api"])]
            jobs += [lambda i=i, url=url: call("POST", url, people["patient_api"], {"name": f"r{i}.txt"})
                     for i in range(8)]
            statuses = run_together(jobs)
        assert statuses[0] == 200 and set(statuses[1:]) <= {200, 404}
        db.session.expire_all()
        row = db.session.get(StoredFile, own.id)
        deleted = events(row, "delete")[0]
        renames = events(row, "rename")
        assert len(renames) == statuses[1:].count(200)
        assert all(e.id < deleted.id for e in renames)  # every rename that succeeded came first
        assert row.version == 1 + len(renames) + 1


def test_concurrent_renames_count_every_change(app, people, make_file):
    concurrent_renames_count_every_change(app, people, make_file)


def test_a_rename_racing_a_delete_never_wins_after_it(app, people, make_file):
    a_rename_racing_a_delete_never_wins_after_it(app, people, make_file)


def test_deleting_a_deleted_file_is_404_not_a_second_delete(client, people, make_file):
    own = make_file(people["patient"], "notes.txt")
    assert client.delete(f"/api_v3/files/{own.public_id}", headers=people["patient_api"]).status_code == 200
    assert client.delete(f"/api_v3/files/{own.public_id}", headers=people["patient_api"]).status_code == 404
    assert len(events(own, "delete")) == 1


@pytest.mark.parametrize("category", [Category.INTAKE_ATTACHMENT])
def test_shares_count_too(client, people, make_file, make_visit, category):
    visit = make_visit(people["patient"])
    row = make_file(people["provider"], "notes.txt", category=category, visit=visit)
    files.set_visible(people["provider"], Origin.cli(), row.public_id, True)
    files.set_visible(people["provider"], Origin.cli(), row.public_id, True)  # no change, no new version
    db.session.refresh(row)
    assert row.version == 2 and row.visible is True


def test_a_rename_is_answered_200_even_when_a_delete_commits_right_after_it(client, people, make_file, monkeypatch):
    """The answer describes the renamed row; a delete committed between the rename's commit and
    the answer (another request) must not turn a rename that happened into a 404."""
    own = make_file(people["patient"], "notes.txt")
    real_rename = files.rename

    def rename_then_another_request_deletes(*args, **kwargs):
        row = real_rename(*args, **kwargs)
        files.delete(people["patient"], Origin.cli(), own.public_id)
        return row

    monkeypatch.setattr(files, "rename", rename_then_another_request_deletes)
    resp = client.post(f"/api_v3/files/{own.public_id}", headers=people["patient_api"], data={"name": "after.txt"})
    assert resp.status_code == 200 and resp.json["data"]["name"] == "after.txt"
    assert len(events(own, "rename")) == 1 and len(events(own, "delete")) == 1
