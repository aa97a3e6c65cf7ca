"""Candid pre-encounter images: `/images/v1`, Bearer auth, versioning, signed_url bytes."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import blobs, sample
from sqlalchemy import func, select

from app.api.candid.models import CandidImage
from app.extensions import db
from app.models import AuditEvent, Category, Role, StoredFile

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
COVERAGE = "d5e9c84f-c2b2-4bf4-b4b0-7ffd7a9ffc32"
IMAGE_KEYS = {"deactivated", "display_name", "file_name", "file_type", "id", "organization_id",
              "signed_url", "status", "updated_at", "updating_user_id", "version"}


@pytest.fixture
def provider(make_user):
    return make_user(Role.PROVIDER)


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT)


@pytest.fixture
def auth(make_token, provider):
    return {"Authorization": f"Bearer {make_token(provider)}"}


def body(patient=None, side="FRONT", coverage=COVERAGE, **fields) -> dict:
    data = {"file_name": "card-front.jpg", "display_name": "Insurance card (front)",
            "file_type": "image/jpeg", "status": "PENDING"}
    if coverage:
        data["coverage"] = {"id": coverage, "side": side}
    if patient is not None:
        data["patient"] = {"id": str(patient.id), "notes": "new card"}
    return data | fields


def create(client, auth, data) -> dict:
    resp = client.post("/images/v1", json=data, headers=auth)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def count_images() -> int:
    return db.session.scalar(select(func.count()).select_from(CandidImage))


def assert_error(resp, status: int, name: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    payload = resp.get_json()
    assert set(payload) == {"errorName", "content"}
    assert payload["errorName"] == name
    assert isinstance(payload["content"]["message"], str) and payload["content"]["message"]
    return payload["content"]


# --- auth -------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer not-a-token"},
    {"X-ApiToken": "x"}, {"Authorization": "Basic dXNlcjpwYXNz"},
])
def test_requests_without_a_valid_bearer_token_get_401(client, headers):
    resp = client.get("/images/v1", headers=headers)
    assert_error(resp, 401, "UnauthorizedError")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_other_dialects_headers_do_not_work_but_their_tokens_do(client, make_token, provider):
    token = make_token(provider)
    assert client.get("/images/v1", headers={"Authorization": f"Token {token}"}).status_code == 401
    assert client.get("/images/v1", headers={"Authorization": f"bearer {token}"}).status_code == 200


# --- create / get ----------------------------------------------------------------------------

def test_create_answers_the_image_in_candids_shape(client, auth, provider, patient, clinic):
    image = create(client, auth, body(patient))
    assert set(image) == IMAGE_KEYS | {"coverage", "patient"}
    assert image["deactivated"] is False and image["version"] == 1
    assert image["organization_id"] == clinic.code
    assert image["updating_user_id"] == str(provider.id)
    assert ISO_Z.match(image["updated_at"])
    assert image["status"] == "PENDING" and image["file_type"] == "image/jpeg"
    assert image["coverage"] == {"id": COVERAGE, "side": "FRONT"}
    assert image["patient"] == {"id": str(patient.id), "notes": "new card"}
    assert image["signed_url"].startswith(f"http://chartbox.test/images/v1/{image['id']}/content?")
    row = db.session.get(CandidImage, image["id"])
    assert (row.patient_id, row.coverage_side, row.file_id) == (patient.id, "FRONT", None)


def test_optional_objects_are_left_out_when_absent(client, auth):
    image = create(client, auth, body(coverage=None))
    assert set(image) == IMAGE_KEYS


def test_get_returns_the_image(client, auth, patient):
    image = create(client, auth, body(patient))
    resp = client.get(f"/images/v1/{image['id']}", headers=auth)
    assert resp.status_code == 200
    got = resp.get_json()
    assert {k: v for k, v in got.items() if k != "signed_url"} == \
        {k: v for k, v in image.items() if k != "signed_url"}


@pytest.mark.parametrize("image_id", ["00000000-0000-0000-0000-000000000000", "nope", "1"])
def test_get_unknown_image_is_404(client, auth, image_id):
    assert_error(client.get(f"/images/v1/{image_id}", headers=auth), 404, "NotFoundError")


def test_another_clinics_image_is_404(client, auth, make_account, make_user, make_token):
    other = make_user(Role.PROVIDER, account=make_account("clinic-b"))
    image = create(client, {"Authorization": f"Bearer {make_token(other)}"}, body())
    assert_error(client.get(f"/images/v1/{image['id']}", headers=auth), 404, "NotFoundError")


@pytest.mark.parametrize("bad", [
    None, [], "text", {},
    {"display_name": "x", "file_type": "x", "status": "PENDING"},  # no file_name
    body(status="DONE"), body(status="pending"), body(file_name=7),
    body(file_name="x" * 256),
    body(side="TOP"), body(coverage=None) | {"coverage": {"side": "FRONT"}},
    body(coverage=None) | {"coverage": "front"},
    body(coverage=None) | {"patient": {"notes": "no id"}},
    body(coverage=None) | {"patient": {"id": None}},
    body(coverage=None) | {"patient": {"id": "2", "notes": 5}},
])
def test_malformed_bodies_are_400_and_write_nothing(client, auth, bad):
    assert_error(client.post("/images/v1", json=bad, headers=auth), 400, "BadRequestError")
    assert count_images() == 0


def test_malformed_json_is_400(client, auth):
    resp = client.post("/images/v1", data=b"{not json", headers=auth | {"Content-Type": "application/json"})
    assert_error(resp, 400, "BadRequestError")


def test_patient_must_be_a_patient_of_the_callers_clinic(client, auth, make_account, make_user, provider):
    stranger = make_user(Role.PATIENT, account=make_account("clinic-b"))
    for patient_id in (str(stranger.id), str(provider.id), "999999", "abc", "²", "٣", "99999999999"):
        data = body(coverage=None) | {"patient": {"id": patient_id}}
        assert_error(client.post("/images/v1", json=data, headers=auth), 404, "NotFoundError")
    assert count_images() == 0


def test_patient_id_may_be_an_integer(client, auth, patient):
    image = create(client, auth, body(coverage=None) | {"patient": {"id": patient.id}})
    assert image["patient"] == {"id": str(patient.id)}


def test_patient_tokens_create_images_only_for_themselves(client, make_token, patient, make_user):
    own = {"Authorization": f"Bearer {make_token(patient)}"}
    assert create(client, own, body(patient))["patient"]["id"] == str(patient.id)
    other = make_user(Role.PATIENT)
    assert_error(client.post("/images/v1", json=body(other, side="BACK"), headers=own), 404, "NotFoundError")
    assert_error(client.post("/images/v1", json=body(side="BACK"), headers=own), 400, "BadRequestError")
    assert count_images() == 1


def test_patients_see_only_their_own_images(client, auth, make_token, patient, make_user):
    other = make_user(Role.PATIENT)
    mine = create(client, auth, body(patient))
    theirs = create(client, auth, body(other, coverage="c-2"))
    own = {"Authorization": f"Bearer {make_token(patient)}"}
    assert client.get(f"/images/v1/{mine['id']}", headers=own).status_code == 200
    assert_error(client.get(f"/images/v1/{theirs['id']}", headers=own), 404, "NotFoundError")
    assert [i["id"] for i in client.get("/images/v1", headers=own).get_json()] == [mine["id"]]


# --- update / deactivate -----------------------------------------------------------------------

def test_update_replaces_everything_at_the_current_version(client, auth, patient):
    image = create(client, auth, body(patient))
    new = body(coverage=None, status="FAILED", file_name="again.png", file_type="image/png")
    resp = client.put(f"/images/v1/{image['id']}/1", json=new, headers=auth)
    assert resp.status_code == 200
    got = resp.get_json()
    assert got["version"] == 2 and got["status"] == "FAILED" and got["file_name"] == "again.png"
    assert "coverage" not in got and "patient" not in got  # full replace, not a merge
    assert db.session.get(CandidImage, image["id"]).version == 2


def test_stale_version_is_409_with_the_latest_version(client, auth):
    image = create(client, auth, body())
    assert client.put(f"/images/v1/{image['id']}/1", json=body(), headers=auth).status_code == 200
    for method in (client.put, client.delete):
        for version in ("1", "3"):
            resp = method(f"/images/v1/{image['id']}/{version}", json=body(), headers=auth)
            content = assert_error(resp, 409, "VersionConflictError")
            assert content["latest_version"] == 2
    assert db.session.get(CandidImage, image["id"]).version == 2


def test_update_errors(client, auth):
    image = create(client, auth, body())
    for junk in ("one", "²", "١"):  # Unicode digits are not version numbers
        assert_error(client.put(f"/images/v1/{image['id']}/{junk}", json=body(), headers=auth),
                     400, "BadRequestError")
    assert_error(client.put(f"/images/v1/{image['id']}/1", json={"file_name": "x"}, headers=auth),
                 400, "BadRequestError")
    missing = "00000000-0000-0000-0000-000000000000"
    assert_error(client.put(f"/images/v1/{missing}/1", json=body(), headers=auth), 404, "NotFoundError")
    assert_error(client.delete(f"/images/v1/{missing}/1", headers=auth), 404, "NotFoundError")
    assert db.session.get(CandidImage, image["id"]).version == 1


def test_deactivate_hides_from_search_but_not_from_get(client, auth):
    image = create(client, auth, body())
    resp = client.delete(f"/images/v1/{image['id']}/1", headers=auth)
    assert resp.status_code == 204 and resp.data == b""
    got = client.get(f"/images/v1/{image['id']}", headers=auth).get_json()
    assert got["deactivated"] is True and got["version"] == 2
    assert client.get("/images/v1", headers=auth).get_json() == []
    again = client.delete(f"/images/v1/{image['id']}/2", headers=auth)
    assert again.status_code == 204 and db.session.get(CandidImage, image["id"]).version == 2


def test_updating_a_deactivated_image_reactivates_it(client, auth):
    image = create(client, auth, body())
    client.delete(f"/images/v1/{image['id']}/1", headers=auth)
    got = client.put(f"/images/v1/{image['id']}/2", json=body(), headers=auth).get_json()
    assert got["deactivated"] is False and got["version"] == 3
    assert [i["id"] for i in client.get("/images/v1", headers=auth).get_json()] == [image["id"]]


def test_one_active_image_per_coverage_side(client, auth, make_account, make_user, make_token):
    front = create(client, auth, body())
    assert_error(client.post("/images/v1", json=body(), headers=auth), 409, "VersionConflictError")
    back = create(client, auth, body(side="BACK"))
    # Update may not move an image onto a taken side either.
    assert_error(client.put(f"/images/v1/{back['id']}/1", json=body(side="FRONT"), headers=auth),
                 409, "VersionConflictError")
    # Re-saving an image on its own side is fine.
    assert client.put(f"/images/v1/{front['id']}/1", json=body(), headers=auth).status_code == 200
    # A deactivated image frees its side; reactivating it then clashes.
    client.delete(f"/images/v1/{front['id']}/2", headers=auth)
    create(client, auth, body())
    assert_error(client.put(f"/images/v1/{front['id']}/3", json=body(), headers=auth),
                 409, "VersionConflictError")
    # Coverage ids are per clinic, and per patient.
    other = make_user(Role.PROVIDER, account=make_account("clinic-b"))
    create(client, {"Authorization": f"Bearer {make_token(other)}"}, body())
    assert count_images() == 4


def test_a_patient_learns_nothing_about_other_patients_coverages(client, auth, patient, make_user, make_token):
    """Uniqueness is per patient: one patient cannot probe, nor squat, another's coverage side."""
    squatter = make_user(Role.PATIENT)
    squatter_auth = {"Authorization": f"Bearer {make_token(squatter)}"}
    create(client, squatter_auth, body(squatter))
    create(client, auth, body(patient))  # the provider's own create for the real patient still works
    assert_error(client.post("/images/v1", json=body(patient), headers=auth), 409, "VersionConflictError")


# --- search ----------------------------------------------------------------------------------

def _ids(client, auth, query: str = "") -> list[str]:
    resp = client.get(f"/images/v1{query}", headers=auth)
    assert resp.status_code == 200
    assert isinstance(resp.get_json(), list)
    return [i["id"] for i in resp.get_json()]


def test_search_filters_and_sorts(client, auth, patient, make_user):
    other = make_user(Role.PATIENT)
    a = create(client, auth, body(patient, coverage="cov-a", file_name="b.jpg", display_name="Zed"))
    b = create(client, auth, body(patient, coverage="cov-b", file_name="a.jpg", display_name="Amy",
                                  file_type="image/png", status="UPLOADED"))
    c = create(client, auth, body(other, coverage=None, file_name="c.jpg", display_name="Max")
               | {"patient": {"id": str(other.id), "notes": "old card"}})
    assert _ids(client, auth) == [c["id"], b["id"], a["id"]]  # updatedAt desc by default
    assert _ids(client, auth, "?sort_direction=asc") == [a["id"], b["id"], c["id"]]
    assert _ids(client, auth, "?sort_field=fileName&sort_direction=asc") == [b["id"], a["id"], c["id"]]
    assert _ids(client, auth, "?sort_field=displayName") == [a["id"], c["id"], b["id"]]
    assert _ids(client, auth, "?sort_field=status&sort_direction=desc")[0] == b["id"]
    assert _ids(client, auth, "?sort_field=fileType&sort_direction=desc")[0] == b["id"]
    assert sorted(_ids(client, auth, f"?patient_id={patient.id}")) == sorted([a["id"], b["id"]])
    assert _ids(client, auth, "?coverage_id=cov-b") == [b["id"]]
    assert _ids(client, auth, "?file_type=image/png") == [b["id"]]
    assert _ids(client, auth, "?patient_notes=old%20card") == [c["id"]]
    assert _ids(client, auth, "?patient_id=abc") == []
    assert _ids(client, auth, "?patient_id=&sort_field=") == [c["id"], b["id"], a["id"]]


@pytest.mark.parametrize("query", ["?sort_field=updated_at", "?sort_field=UPDATEDAT",
                                   "?sort_direction=DESC", "?sort_direction=up"])
def test_search_rejects_unknown_sort_values(client, auth, query):
    assert_error(client.get(f"/images/v1{query}", headers=auth), 400, "BadRequestError")


def test_unsupported_method_is_405_in_candids_shape(client, auth):
    image = create(client, auth, body())
    assert_error(client.patch(f"/images/v1/{image['id']}", json=body(), headers=auth),
                 405, "MethodNotAllowedError")


# --- signed_url: bytes -------------------------------------------------------------------------

def test_signed_url_takes_the_bytes_and_serves_them_back(client, auth, make_token, patient, storage_root):
    image = create(client, auth, body(patient))
    url = image["signed_url"]
    data = sample("insurance-front.jpg")
    resp = client.put(url, data=data, headers={"Content-Type": "image/jpeg"})  # no token needed
    assert resp.status_code == 200 and resp.data == b""
    row = db.session.get(CandidImage, image["id"])
    assert (row.status, row.version) == ("UPLOADED", 2)
    stored = row.file
    assert (stored.category, stored.patient_id, stored.media_type) == \
        (Category.USER_DOCUMENT, patient.id, "image/jpeg")
    assert stored.name == "card-front.jpg"
    assert [p.read_bytes() for p in blobs(storage_root)] == [data]
    got = client.get(f"/images/v1/{image['id']}", headers=auth).get_json()
    assert got["status"] == "UPLOADED" and got["version"] == 2
    served = client.get(got["signed_url"])
    assert served.status_code == 200 and served.data == data
    assert served.headers["Content-Type"] == "image/jpeg"
    # One store: the card is a document in the patient's chart for every other door.
    listing = client.get(f"/api_v3/files?target_type=user&target_id={patient.id}",
                         headers={"X-ApiToken": make_token(patient)}).get_json()["data"]
    assert [f["id"] for f in listing] == [stored.public_id]


def _tamper(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def test_signed_url_refuses_bad_links(client, auth, patient, provider, make_user, app):
    image = create(client, auth, body(patient))
    url = image["signed_url"]
    other = make_user(Role.PROVIDER)
    bad = [
        _tamper(url, auth_code="0" * 64), _tamper(url, time="1"), _tamper(url, by=str(other.id)),
        urlsplit(url).path, _tamper(url, time="abc"),
    ]
    for link in bad:
        assert_error(client.put(link, data=sample("insurance-front.jpg")), 403, "OrganizationNotAuthorizedError")
        assert_error(client.get(link), 403, "OrganizationNotAuthorizedError")
    app.config["SIGNED_URL_TTL"] = -120  # every link is now expired
    assert_error(client.put(url, data=sample("insurance-front.jpg")), 403, "OrganizationNotAuthorizedError")
    assert db.session.get(CandidImage, image["id"]).version == 1
    assert db.session.scalar(select(func.count()).select_from(StoredFile)) == 0


@pytest.mark.parametrize("name", ["gif.gif", "not-really.pdf", "empty.bin", "truncated.jpg"])
def test_signed_url_validates_the_bytes(client, auth, patient, storage_root, name):
    image = create(client, auth, body(patient))
    assert_error(client.put(image["signed_url"], data=sample(name)), 400, "BadRequestError")
    row = db.session.get(CandidImage, image["id"])
    assert (row.status, row.version, row.file_id) == ("PENDING", 1, None)
    assert blobs(storage_root) == []


def test_signed_url_needs_a_patient_and_an_active_image(client, auth, patient):
    loose = create(client, auth, body())
    assert_error(client.put(loose["signed_url"], data=sample("photo.jpg")), 400, "BadRequestError")
    assert_error(client.get(loose["signed_url"]), 404, "NotFoundError")  # nothing uploaded yet
    image = create(client, auth, body(patient, side="BACK"))
    client.delete(f"/images/v1/{image['id']}/1", headers=auth)
    assert_error(client.put(image["signed_url"], data=sample("photo.jpg")), 409, "VersionConflictError")


def test_signed_url_upload_over_the_limit_is_413(client, auth, patient, app, storage_root):
    app.config["UPLOAD_MAX_BYTES"] = 10_000
    image = create(client, auth, body(patient))
    assert_error(client.put(image["signed_url"], data=sample("photo.jpg")), 413, "PayloadTooLargeError")
    app.config["MAX_CONTENT_LENGTH"] = 5_000  # refused by the body limit, before the service reads on
    assert_error(client.put(image["signed_url"], data=sample("photo.jpg")), 413, "PayloadTooLargeError")
    assert blobs(storage_root) == []
    assert db.session.get(CandidImage, image["id"]).status == "PENDING"


def test_patient_token_signed_url_uploads_as_the_patient(client, make_token, patient):
    own = {"Authorization": f"Bearer {make_token(patient)}"}
    image = create(client, own, body(patient))
    assert client.put(image["signed_url"], data=sample("insurance-back.jpg")).status_code == 200
    row = db.session.get(CandidImage, image["id"])
    assert row.file.creator_id == patient.id and row.updating_user_id == patient.id


@pytest.mark.parametrize("patient_id", ["\u00b2", "\u0663", "abc", "99999999999"])
def test_search_by_a_junk_patient_id_finds_nothing(client, auth, patient, patient_id):
    create(client, auth, body(patient))
    assert _ids(client, auth, f"?patient_id={patient_id}") == []


def test_metadata_changes_are_audited(client, auth, provider, patient):
    image = create(client, auth, body(patient))
    assert client.put(f"/images/v1/{image['id']}/1", json=body(patient), headers=auth).status_code == 200
    assert client.delete(f"/images/v1/{image['id']}/2", headers=auth).status_code == 204
    assert client.put(f"/images/v1/{image['id']}/2", json=body(patient), headers=auth).status_code == 409
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action.in_(["create", "update", "deactivate"]))
                                .order_by(AuditEvent.id)).all()
    assert [(e.action, e.channel, e.actor_id, e.detail) for e in events] == [
        ("create", "candid", provider.id, {"candid_image": image["id"], "version": 1}),
        ("update", "candid", provider.id, {"candid_image": image["id"], "version": 2}),
        ("deactivate", "candid", provider.id, {"candid_image": image["id"], "version": 3}),
    ]  # the refused stale update left nothing


def test_a_signed_upload_url_works_once_and_for_minutes(client, auth, patient, app):
    """A signed URL copied from anywhere (a log, a proxy) cannot replace the card afterwards."""
    image = create(client, auth, body(patient))
    assert client.put(image["signed_url"], data=sample("insurance-front.jpg")).status_code == 200
    again = client.put(image["signed_url"], data=sample("photo.jpg"))
    assert_error(again, 403, "OrganizationNotAuthorizedError")
    assert client.get(image["signed_url"]).data == sample("insurance-front.jpg")  # reading still works
    fresh = client.get(f"/images/v1/{image['id']}", headers=auth).get_json()["signed_url"]
    assert client.put(fresh, data=sample("insurance-back.jpg")).status_code == 200  # a fresh one uploads
    app.config["SIGNED_UPLOAD_TTL"] = -1  # as if minted longer ago than the upload window
    stale = client.get(f"/images/v1/{image['id']}", headers=auth).get_json()["signed_url"]
    assert_error(client.put(stale, data=sample("photo.jpg")), 403, "OrganizationNotAuthorizedError")
    assert client.get(stale).status_code == 200
