"""One store, several doors: files uploaded through tscharts or Claros show up through VSee and
on the pages, and a change made through one door is seen by the others."""
from __future__ import annotations

import base64
import io
from urllib.parse import urlsplit

import pytest
from conftest import sample

from app.extensions import db
from app.models import Role, StoredFile


@pytest.fixture
def provider(make_user):
    return make_user(Role.PROVIDER, username="dr.cross")


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT, username="pat.cross")


@pytest.fixture
def token(make_token, provider):
    return make_token(provider)


@pytest.fixture
def page_client(request):
    """A signed-in browser-like client, when the pages exist (issue 3)."""
    try:
        return request.getfixturevalue("make_page_client")
    except pytest.FixtureLookupError:
        pytest.skip("the pages (make_page_client) are not there yet")


def tscharts_upload(client, token, patient, sample_name="xray.png", kind="Xray") -> StoredFile:
    resp = client.post("/tscharts/v1/image/", headers={"Authorization": f"Token {token}"}, json={
        "type": kind, "patient": patient.id, "clinic": 5, "station": 6,
        "data": base64.b64encode(sample(sample_name)).decode()})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return db.session.get(StoredFile, resp.get_json()["id"])


def claros_upload(client, token, patient, name="Referral letter.pdf") -> dict:
    resp = client.post(f"/patients/{patient.id}/pdf", headers={"X-API-Key": token},
                       content_type="multipart/form-data",
                       data={"file": (io.BytesIO(sample("letter.pdf")), "x.pdf"), "filename": name})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def vsee_list(client, token, patient) -> list[dict]:
    resp = client.get(f"/api_v3/files?target_type=user&target_id={patient.id}",
                      headers={"X-ApiToken": token})
    assert resp.status_code == 200
    return resp.get_json()["data"]


def fetch(client, url: str) -> bytes:
    parts = urlsplit(url)
    with client.get(f"{parts.path}?{parts.query}") as resp:
        assert resp.status_code == 200
        return resp.data


def test_tscharts_image_is_in_the_vsee_list_with_its_bytes(client, token, patient):
    row = tscharts_upload(client, token, patient)
    listed = {f["id"]: f for f in vsee_list(client, token, patient)}
    item = listed[row.public_id]
    assert item["name"] == f"xray-{patient.id}.png" and item["ext"] == "png"
    assert item["meta"]["category"] == "user_document"
    assert item["meta"]["target"] == {"id": str(patient.id), "type": "user"}
    assert item["size"] == len(sample("xray.png"))
    assert fetch(client, item["fullpath"]) == sample("xray.png")
    one = client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": token}).get_json()["data"]
    assert one["id"] == row.public_id


def test_claros_pdf_is_in_the_vsee_list_but_is_no_tscharts_image(client, token, patient):
    body = claros_upload(client, token, patient)
    item = {f["id"]: f for f in vsee_list(client, token, patient)}[body["id"]]
    assert item["name"] == "Referral letter.pdf" and item["meta"]["category"] == "user_document"
    assert fetch(client, item["fullpath"]) == sample("letter.pdf")
    row = db.session.scalar(db.select(StoredFile).where(StoredFile.public_id == body["id"]))
    auth = {"Authorization": f"Token {token}"}
    assert client.get(f"/tscharts/v1/image/{row.id}/", headers=auth).status_code == 404
    assert client.get(f"/tscharts/v1/image/?patient={patient.id}", headers=auth).status_code == 404


def test_one_token_speaks_every_dialect(client, token, patient):
    tscharts_upload(client, token, patient)
    claros_upload(client, token, patient)
    assert len(vsee_list(client, token, patient)) == 2


def test_deleting_through_vsee_hides_the_image_from_tscharts(client, token, patient):
    row = tscharts_upload(client, token, patient)
    auth = {"Authorization": f"Token {token}"}
    assert client.delete(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": token}).status_code == 200
    assert client.get(f"/tscharts/v1/image/{row.id}/", headers=auth).status_code == 404
    assert client.get("/tscharts/v1/image/", headers=auth).status_code == 404


def test_deleting_through_tscharts_hides_the_file_from_vsee(client, token, patient):
    row = tscharts_upload(client, token, patient)
    client.delete(f"/tscharts/v1/image/{row.id}/", headers={"Authorization": f"Token {token}"})
    assert vsee_list(client, token, patient) == []
    resp = client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": token})
    assert resp.status_code == 404


def test_renaming_through_vsee_keeps_the_tscharts_image(client, token, patient):
    row = tscharts_upload(client, token, patient)
    client.post(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": token}, json={"name": "chest.png"})
    body = client.get(f"/tscharts/v1/image/{row.id}/", headers={"Authorization": f"Token {token}"}).get_json()
    assert body["type"] == "Xray" and base64.b64decode(body["data"]) == sample("xray.png")


def test_uploads_show_on_the_patients_and_the_providers_documents_pages(client, token, provider, patient,
                                                                        page_client):
    image = tscharts_upload(client, token, patient)
    pdf = claros_upload(client, token, patient)
    own = page_client(patient).get("/documents")
    chart = page_client(provider).get(f"/patients/{patient.id}")
    for resp in (own, chart):
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert image.name in html and pdf["filename"] in html
