"""Candid encounter attachments: `/api/encounter-attachments/v1`, encounters are visits."""
from __future__ import annotations

import io
import re
import uuid

import pytest
from conftest import blobs, count_files, sample
from sqlalchemy import select

from app.api.candid.models import CandidAttachment
from app.api.candid.shapes import USER_NAMESPACE
from app.errors import Conflict
from app.extensions import db
from app.models import AuditEvent, Category, Role, StoredFile
from app.services import accounts, files
from app.services.audit import Origin

BASE = "/api/encounter-attachments/v1"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BASE_KEYS = {"attachment_id", "file_name", "description", "content_type", "authed_url"}


@pytest.fixture
def provider(make_user):
    return make_user(Role.PROVIDER, full_name="Ana Maria Rivera")


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT)


@pytest.fixture
def visit(make_visit, patient):
    return make_visit(patient)


@pytest.fixture
def auth(make_token, provider):
    return {"Authorization": f"Bearer {make_token(provider)}"}


def form(name="letter.pdf", attachment_type="DOCUMENTATION", **extra) -> dict:
    data = {"attachment_file": (io.BytesIO(sample(name)), name)}
    if attachment_type is not None:
        data["attachment_type"] = attachment_type
    return data | extra


def put(client, auth, visit, suffix="", **kwargs):
    return client.put(f"{BASE}/{visit.public_id}{suffix}", data=form(**kwargs), headers=auth)


def assert_error(resp, status: int, name: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    payload = resp.get_json()
    assert set(payload) == {"errorName", "content"} and payload["errorName"] == name
    assert isinstance(payload["content"]["message"], str)
    return payload["content"]


# --- auth -------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Token x"}])
def test_every_endpoint_needs_a_bearer_token(client, visit, headers):
    calls = [
        client.get(f"{BASE}/{visit.public_id}", headers=headers),
        client.put(f"{BASE}/{visit.public_id}", data=form(), headers=headers),
        client.put(f"{BASE}/{visit.public_id}/v2", data=form(), headers=headers),
        client.delete(f"{BASE}/{visit.public_id}", json={"attachment_id": "x"}, headers=headers),
        client.post(f"{BASE}/create-from-charge-capture-external-id", data=form(), headers=headers),
        client.get(f"{BASE}/by-charge-capture-external-id/x", headers=headers),
        client.delete(f"{BASE}/by-charge-capture-external-id/x", headers=headers),
    ]
    for resp in calls:
        assert_error(resp, 401, "UnauthorizedError")
    assert count_files() == 0


# --- upload -----------------------------------------------------------------------------------

def details(row) -> tuple:
    """(attachment_type, description, charge_capture_external_id) from Candid's own table."""
    detail = db.session.get(CandidAttachment, row.id)
    return (detail.attachment_type, detail.description, detail.charge_capture_external_id)


def test_upload_answers_the_attachment_id_as_a_bare_string(client, auth, visit, provider, storage_root):
    resp = put(client, auth, visit)
    assert resp.status_code == 200 and resp.is_json
    attachment_id = resp.get_json()
    assert isinstance(attachment_id, str) and UUID.match(attachment_id)
    row = files.find_file(attachment_id)
    assert (row.category, row.visit_id, row.patient_id, *details(row)[:2]) == \
        (Category.INTAKE_ATTACHMENT, visit.id, visit.patient_id, "DOCUMENTATION", None)
    assert [p.read_bytes() for p in blobs(storage_root)] == [sample("letter.pdf")]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.file_id == row.id))
    assert (event.action, event.channel, event.actor_id) == ("upload", "candid", provider.id)


@pytest.mark.parametrize("value, stored", [("EOB", "EOB"), ('"EOB"', "EOB"), (' "OTHER" ', "OTHER")])
def test_v2_takes_a_description_and_json_quoted_types(client, auth, visit, value, stored):
    resp = put(client, auth, visit, "/v2", name="scan.png", attachment_type=value, description="Remit, page 1")
    row = files.find_file(resp.get_json())
    assert (*details(row)[:2], row.media_type) == (stored, "Remit, page 1", "image/png")


@pytest.mark.parametrize("name", ["letter.pdf", "scan.png", "photo.jpg", "notes.txt", "vitals.csv",
                                  "referral.docx", "claims.xlsx"])
def test_the_seven_documented_types_are_accepted(client, auth, visit, name):
    assert put(client, auth, visit, "/v2", name=name).status_code == 200


@pytest.mark.parametrize("kwargs", [
    {"attachment_type": None}, {"attachment_type": "eob"}, {"attachment_type": "INVOICE"},
    {"attachment_type": '"EOB'}, {"name": "gif.gif"}, {"name": "macro.html"}, {"name": "not-really.pdf"},
    {"name": "encrypted.pdf"}, {"name": "empty.bin"}, {"description": "x" * 1001},
])
def test_rejected_uploads_are_400_and_store_nothing(client, auth, visit, storage_root, kwargs):
    assert_error(put(client, auth, visit, "/v2", **kwargs), 400, "BadRequestError")
    assert count_files() == 0 and blobs(storage_root) == []


def test_upload_without_the_file_part_is_400(client, auth, visit):
    resp = client.put(f"{BASE}/{visit.public_id}", data={"attachment_type": "EOB"}, headers=auth)
    assert_error(resp, 400, "BadRequestError")


def test_upload_over_the_limit_is_413(client, auth, visit, app, storage_root):
    app.config["UPLOAD_MAX_BYTES"] = 10_000
    assert_error(put(client, auth, visit, name="photo.jpg"), 413, "PayloadTooLargeError")  # 15,940 bytes
    app.config["MAX_CONTENT_LENGTH"] = 5_000  # refused by the body limit, before the form is read
    assert_error(put(client, auth, visit, name="photo.jpg"), 413, "PayloadTooLargeError")
    assert count_files() == 0 and blobs(storage_root) == []


def test_unknown_or_foreign_encounters_are_404(client, auth, make_account, make_user, make_visit, make_token,
                                               patient):
    foreign = make_visit(make_user(Role.PATIENT, account=make_account("clinic-b")))
    others = make_visit(make_user(Role.PATIENT))
    patient_auth = {"Authorization": f"Bearer {make_token(patient)}"}
    for headers, encounter_id in [(auth, "00000000-0000-0000-0000-000000000000"), (auth, foreign.public_id),
                                  (auth, "1"), (auth, "not-a-uuid"), (patient_auth, others.public_id)]:
        content = assert_error(client.put(f"{BASE}/{encounter_id}", data=form(), headers=headers),
                               404, "EntityNotFoundError")
        assert content["id"] == encounter_id
        assert_error(client.get(f"{BASE}/{encounter_id}", headers=headers), 404, "EntityNotFoundError")
    assert count_files() == 0


def test_patients_attach_files_to_their_own_visits(client, make_token, patient, visit):
    own = {"Authorization": f"Bearer {make_token(patient)}"}
    assert put(client, own, visit).status_code == 200


# --- list / cross-dialect ------------------------------------------------------------------------

def test_list_answers_encounter_attachments_in_candids_shape(client, auth, visit, provider, make_file):
    attachment_id = put(client, auth, visit, "/v2", attachment_type="EOB", description="Remit").get_json()
    plain_id = put(client, auth, visit, name="notes.txt").get_json()
    via_vsee = make_file(provider, "scan.png", visit=visit, category=Category.INTAKE_ATTACHMENT)
    resp = client.get(f"{BASE}/{visit.public_id}", headers=auth)
    assert resp.status_code == 200
    items = resp.get_json()
    assert isinstance(items, list)
    assert {i["attachment_id"] for i in items} == {attachment_id, plain_id, via_vsee.public_id}
    first = next(i for i in items if i["attachment_id"] == attachment_id)
    assert set(first) == BASE_KEYS | {"encounter_id", "attachment_type", "created_at", "created_by"}
    assert first["encounter_id"] == visit.public_id and first["attachment_type"] == "EOB"
    assert first["description"] == "Remit" and first["file_name"] == "letter.pdf"
    assert first["content_type"] == "application/pdf" and ISO_Z.match(first["created_at"])
    assert first["created_by"] == {
        "user_id": str(uuid.uuid5(USER_NAMESPACE, f"chartbox-user:{provider.id}")),
        "user_metadata": {"type": "human_user_metadata", "first_name": "Ana Maria",
                          "last_name": "Rivera", "email": provider.email},
        "idp_metadata": [],
    }
    plain = next(i for i in items if i["attachment_id"] == plain_id)
    assert plain["description"] == "" and plain["content_type"] == "text/plain"
    assert next(i for i in items if i["attachment_id"] == via_vsee.public_id)["attachment_type"] == "OTHER"
    fetched = client.get(first["authed_url"])  # the signed link needs no token
    assert fetched.status_code == 200 and fetched.data == sample("letter.pdf")


def test_candid_uploads_appear_in_the_vsee_list_for_the_visit(client, auth, visit, make_token, provider):
    attachment_id = put(client, auth, visit).get_json()
    resp = client.get(f"/api_v3/files?target_type=visit&target_id={visit.public_id}",
                      headers={"X-ApiToken": make_token(provider)})
    data = resp.get_json()["data"]
    assert [f["id"] for f in data] == [attachment_id]
    assert data[0]["meta"]["category"] == "intake_attachment"
    assert data[0]["meta"]["target"] == {"id": visit.public_id, "type": "visit"}


# --- delete -----------------------------------------------------------------------------------

def test_delete_takes_a_json_body_or_a_query_parameter(client, auth, visit):
    first, second = put(client, auth, visit).get_json(), put(client, auth, visit).get_json()
    resp = client.delete(f"{BASE}/{visit.public_id}", json={"attachment_id": first}, headers=auth)
    assert resp.status_code == 204 and resp.data == b""
    assert files.find_file(first).deleted_at is not None
    resp = client.delete(f"{BASE}/{visit.public_id}?attachment_id={second}", headers=auth)
    assert resp.status_code == 204
    assert client.get(f"{BASE}/{visit.public_id}", headers=auth).get_json() == []
    content = assert_error(client.delete(f"{BASE}/{visit.public_id}", json={"attachment_id": first},
                                         headers=auth), 404, "EntityNotFoundError")
    assert content["id"] == first


def test_delete_errors(client, auth, visit, make_visit, patient, make_token):
    attachment_id = put(client, auth, visit).get_json()
    assert_error(client.delete(f"{BASE}/{visit.public_id}", headers=auth), 400, "BadRequestError")
    assert_error(client.delete(f"{BASE}/{visit.public_id}", json={"attachment_id": 5}, headers=auth),
                 400, "BadRequestError")
    other_visit = make_visit(patient)
    assert_error(client.delete(f"{BASE}/{other_visit.public_id}", json={"attachment_id": attachment_id},
                               headers=auth), 404, "EntityNotFoundError")
    own = {"Authorization": f"Bearer {make_token(patient)}"}
    # Staff's attachment is hidden from the patient: as if it did not exist; once released, 403.
    assert_error(client.delete(f"{BASE}/{visit.public_id}", json={"attachment_id": attachment_id},
                               headers=own), 404, "EntityNotFoundError")
    files.set_visible(accounts.get_user_by_id(files.find_file(attachment_id).creator_id), Origin.cli(),
                      attachment_id, True)
    assert_error(client.delete(f"{BASE}/{visit.public_id}", json={"attachment_id": attachment_id},
                               headers=own), 403, "OrganizationNotAuthorizedError")
    assert files.find_file(attachment_id).deleted_at is None


def test_unsupported_method_is_405(client, auth, visit):
    assert_error(client.post(f"{BASE}/{visit.public_id}", headers=auth), 405, "MethodNotAllowedError")


# --- charge capture ---------------------------------------------------------------------------

def charge(client, auth, external_id="cc-1", **kwargs):
    data = form(**kwargs)
    if external_id is not None:
        data["charge_capture_external_id"] = external_id
    return client.post(f"{BASE}/create-from-charge-capture-external-id", data=data, headers=auth)


def test_charge_capture_file_waits_then_joins_its_visit(client, auth, patient, make_visit, make_token,
                                                        provider):
    resp = charge(client, auth, description="Superbill")
    assert resp.status_code == 200
    attachment_id = resp.get_json()
    assert UUID.match(attachment_id)
    row = files.find_file(attachment_id)
    assert (row.patient_id, row.visit_id, row.target_id, details(row)[2]) == (None, None, None, "cc-1")
    # Waiting: reachable through its external id only, never by id or in any listing.
    vsee = {"X-ApiToken": make_token(provider)}
    assert client.get(f"/api_v3/files/{attachment_id}", headers=vsee).status_code == 404
    listed = client.get(f"{BASE}/by-charge-capture-external-id/cc-1", headers=auth).get_json()
    assert [set(i) for i in listed] == [BASE_KEYS | {"attachment_type"}]
    assert listed[0]["attachment_id"] == attachment_id and listed[0]["description"] == "Superbill"
    assert listed[0]["attachment_type"] == "DOCUMENTATION"
    assert client.get(listed[0]["authed_url"]).data == sample("letter.pdf")
    visit = make_visit(patient, external_id="cc-1")  # the encounter is created
    db.session.refresh(row)
    assert (row.patient_id, row.visit_id, row.target_id) == (patient.id, visit.id, visit.id)
    attached = db.session.scalars(select(AuditEvent).where(
        AuditEvent.file_id == row.id, AuditEvent.action == "attach")).all()
    assert [(e.channel, e.detail["visit"]) for e in attached] == [("cli", visit.public_id)]
    items = client.get(f"{BASE}/{visit.public_id}", headers=auth).get_json()
    assert [i["attachment_id"] for i in items] == [attachment_id]
    data = client.get(f"/api_v3/files?target_type=visit&target_id={visit.public_id}", headers=vsee)
    assert [f["id"] for f in data.get_json()["data"]] == [attachment_id]
    # Still found by its external id afterwards.
    again = client.get(f"{BASE}/by-charge-capture-external-id/cc-1", headers=auth).get_json()
    assert [i["attachment_id"] for i in again] == [attachment_id]


def test_charge_capture_attaches_at_once_when_the_visit_exists(client, auth, patient, make_visit):
    visit = make_visit(patient, external_id="cc-2")
    row = files.find_file(charge(client, auth, "cc-2").get_json())
    assert (row.patient_id, row.visit_id) == (patient.id, visit.id)


def test_waiting_files_are_staff_only(client, auth, patient, make_token, make_visit, make_user):
    charge(client, auth, "cc-3")
    own = {"Authorization": f"Bearer {make_token(patient)}"}
    assert client.get(f"{BASE}/by-charge-capture-external-id/cc-3", headers=own).get_json() == []
    # A patient may not leave files waiting, nor learn whether someone else's visit has the id.
    assert_error(charge(client, own, "cc-4"), 403, "OrganizationNotAuthorizedError")
    make_visit(make_user(Role.PATIENT), external_id="cc-5")
    assert_error(charge(client, own, "cc-5"), 403, "OrganizationNotAuthorizedError")
    mine = make_visit(patient, external_id="cc-6")
    assert files.find_file(charge(client, own, "cc-6").get_json()).visit_id == mine.id
    assert count_files() == 2


def test_waiting_files_stay_in_their_clinic(client, auth, make_account, make_user, make_visit):
    charge(client, auth, "cc-7")
    stranger = make_user(Role.PATIENT, account=make_account("clinic-b"))
    make_visit(stranger, external_id="cc-7")
    assert db.session.scalar(select(StoredFile)).patient_id is None


def test_charge_capture_errors(client, auth, storage_root):
    assert_error(charge(client, auth, None), 400, "BadRequestError")
    assert_error(charge(client, auth, "   "), 400, "BadRequestError")
    assert_error(charge(client, auth, "x" * 201), 400, "BadRequestError")
    assert_error(charge(client, auth, attachment_type="NOPE"), 400, "BadRequestError")
    assert_error(charge(client, auth, name="gif.gif"), 400, "BadRequestError")
    assert count_files() == 0 and blobs(storage_root) == []


def test_delete_by_charge_capture_external_id(client, auth, patient, make_visit):
    waiting = charge(client, auth, "cc-8").get_json()
    other = charge(client, auth, "cc-9").get_json()
    assert_error(client.delete(f"{BASE}/by-charge-capture-external-id/cc-8", json={"attachment_id": other},
                               headers=auth), 404, "EntityNotFoundError")
    resp = client.delete(f"{BASE}/by-charge-capture-external-id/cc-8", json={"attachment_id": waiting},
                         headers=auth)
    assert resp.status_code == 204 and resp.data == b""
    assert files.find_file(waiting).deleted_at is not None
    assert client.get(f"{BASE}/by-charge-capture-external-id/cc-8", headers=auth).get_json() == []
    resp = client.delete(f"{BASE}/by-charge-capture-external-id/cc-9?attachment_id={other}", headers=auth)
    assert resp.status_code == 204
    assert_error(client.delete(f"{BASE}/by-charge-capture-external-id/cc-9", headers=auth),
                 400, "BadRequestError")
    visit = make_visit(patient, external_id="cc-8")  # deleted files join too, ready for a restore
    assert files.find_file(waiting).visit_id == visit.id
    assert client.get(f"{BASE}/{visit.public_id}", headers=auth).get_json() == []


def test_visit_external_ids_stay_unique(patient, make_visit):
    make_visit(patient, external_id="cc-10")
    with pytest.raises(Conflict):
        accounts.create_visit(patient, external_id="cc-10")
    assert accounts.create_visit(patient).external_id is None


def race_a_held_upload_against_its_visit(app, make_user) -> None:
    """An upload for an external id arriving while that visit's transaction is still open must
    end up in the visit: both take the clinic's lock, so it waits, then sees the visit (each
    side commits once). Real threads, each with its own session and connection."""
    import threading

    from app.api.candid import attachment_service
    from app.api.candid.models import AttachmentType
    from app.models import User
    from app.services.audit import Origin

    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    provider_id, outcome = provider.id, {}
    racer: list[threading.Thread] = []

    def upload_meanwhile() -> None:
        with app.app_context():
            uploader = db.session.get(User, provider_id)
            row = attachment_service.upload_for_external_id(
                uploader, Origin("candid"), io.BytesIO(sample("letter.pdf")), "superbill.pdf", "cc-race",
                AttachmentType.EOB)
            outcome["id"], outcome["held"] = row.id, row.is_held
            db.session.remove()

    def race(visit, **_) -> None:  # inside the visit's transaction, before its commit
        racer.append(threading.Thread(target=upload_meanwhile))
        racer[0].start()
        racer[0].join(timeout=2)
        outcome["done_before_the_visit_committed"] = not racer[0].is_alive()

    accounts.visit_opened.connect(race)
    try:
        visit = accounts.create_visit(patient, external_id="cc-race")
    finally:
        accounts.visit_opened.disconnect(race)
    racer[0].join(timeout=30)
    assert outcome["done_before_the_visit_committed"] is False  # it really waited for the visit
    assert outcome["held"] is False
    db.session.expire_all()
    row = db.session.get(StoredFile, outcome["id"])
    assert (row.visit_id, row.patient_id, row.category) == (visit.id, patient.id, Category.INTAKE_ATTACHMENT)


def test_a_held_upload_racing_its_visit_still_joins_it(app, make_user):
    race_a_held_upload_against_its_visit(app, make_user)
