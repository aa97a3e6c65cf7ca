"""Claros "Upload Patient PDF": POST /patients/<id>/pdf with X-API-Key, Claros' exact shapes."""
from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import pytest
from conftest import assert_detail, blobs, count_files, sample
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Role, StoredFile

KEYS = {"id", "url", "filename", "created_at", "patient_id"}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
def provider(make_user):
    return make_user(Role.PROVIDER, username="dr.claros", password=None)


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT, username="pat.claros", password=None)


@pytest.fixture
def key(make_token, provider):
    return make_token(provider)


def post_pdf(client, patient_id, key, data=None, filename="report.pdf", part_name="upload.pdf",
             slash=False, fields=None):
    form = {} if fields is None else dict(fields)
    if fields is None:
        form["file"] = (io.BytesIO(sample("letter.pdf") if data is None else data), part_name)
        if filename is not None:
            form["filename"] = filename
    headers = {"X-API-Key": key} if key is not None else {}
    path = f"/patients/{patient_id}/pdf" + ("/" if slash else "")
    return client.post(path, data=form, headers=headers, content_type="multipart/form-data")


@pytest.mark.parametrize("slash", [False, True])
def test_upload_returns_claros_shape_and_stores_a_patient_document(client, key, provider, patient,
                                                                   storage_root, slash):
    resp = post_pdf(client, patient.id, key, filename="Discharge Summary.PDF", slash=slash)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == KEYS
    assert isinstance(body["id"], str) and isinstance(body["url"], str)
    assert body["filename"] == "Discharge Summary.PDF"
    assert ISO_Z.match(body["created_at"])
    assert body["patient_id"] == patient.id and type(body["patient_id"]) is int

    row = db.session.scalar(select(StoredFile).where(StoredFile.public_id == body["id"]))
    assert (row.category, row.target_type, row.target_id) == ("user_document", "user", patient.id)
    assert (row.patient_id, row.creator_id, row.media_type, row.page_count) == (
        patient.id, provider.id, "application/pdf", 2)
    assert body["created_at"] == row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [p.read_bytes() for p in blobs(storage_root)] == [sample("letter.pdf")]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.file_id == row.id))
    assert (event.action, event.channel, event.actor_id) == ("upload", "claros", provider.id)

    # `url` is a signed view link that serves the bytes without any API key.
    url = urlsplit(body["url"])
    with client.get(f"{url.path}?{url.query}") as view:
        assert view.status_code == 200 and view.data == sample("letter.pdf")
        assert view.mimetype == "application/pdf"


def test_filename_field_is_required(client, key, patient, storage_root):
    """Claros' document makes `filename` required: the file part's own name does not stand in."""
    resp = post_pdf(client, patient.id, key, filename=None, part_name="scan-2024.pdf")
    assert_detail(resp, 400)
    assert "filename" in resp.get_json()["detail"]
    assert count_files() == 0 and blobs(storage_root) == []


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "0" * 40},
                                     {"Authorization": "Token {key}"}, {"X-ApiToken": "{key}"}])
def test_401_without_a_valid_x_api_key(client, key, patient, storage_root, headers):
    headers = {k: v.format(key=key) for k, v in headers.items()}
    resp = client.post(f"/patients/{patient.id}/pdf", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(sample("letter.pdf")), "a.pdf"), "filename": "a.pdf"})
    assert_detail(resp, 401)
    assert count_files() == 0 and blobs(storage_root) == []


def test_revoked_key_is_401(client, app, provider, patient, make_token):
    from app.services import accounts

    row, token = accounts.create_token(provider)
    accounts.revoke_token(row.id)
    assert_detail(post_pdf(client, patient.id, token), 401)


def test_every_patient_out_of_reach_gets_the_same_404(client, key, patient, make_account, make_user,
                                                      make_token, storage_root):
    """Another clinic's patient, a provider's id, an unknown id and (for a patient's key) another
    patient of the same clinic answer the very same body: no key can map patient ids."""
    other_clinic = make_user(Role.PATIENT, account=make_account("clinic-b"))
    provider = make_user(Role.PROVIDER)
    neighbour = make_user(Role.PATIENT)
    answers = {post_pdf(client, pid, key).get_data() for pid in (other_clinic.id, provider.id, 999999)}
    own_key = make_token(patient)
    answers.add(post_pdf(client, neighbour.id, own_key).get_data())
    assert answers == {b'{"detail":"Patient not found."}\n'}
    assert count_files() == 0 and blobs(storage_root) == []


@pytest.mark.parametrize("path", ["/patients/999999/pdf", "/patients/999999/pdf/", "/patients/abc/pdf",
                                  "/patients/-1/pdf", f"/patients/{2**31}/pdf",
                                  "/patients/99999999999999999999999/pdf"])
def test_404_for_no_such_patient(client, key, path):
    resp = client.post(path, headers={"X-API-Key": key}, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(sample("letter.pdf")), "a.pdf"), "filename": "a.pdf"})
    assert_detail(resp, 404)
    assert count_files() == 0


def test_404_when_the_id_is_a_provider_not_a_patient(client, key, provider):
    assert_detail(post_pdf(client, provider.id, key), 404)


@pytest.mark.parametrize("sample_name,filename", [
    ("letter.pdf", "letter.txt"),          # name lacks .pdf
    ("letter.pdf", "letter"),
    ("letter.pdf", "dir/.pdf"),            # nothing left but "pdf" once cleaned
    ("letter.pdf", ""),
    ("scan.png", "scan.pdf"),              # not a PDF at all
    ("not-really.pdf", "not-really.pdf"),
    ("truncated.pdf", "truncated.pdf"),
    ("encrypted.pdf", "encrypted.pdf"),
    ("polyglot-pdf-in-png.pdf", "x.pdf"),
    ("empty.bin", "empty.pdf"),
    ("notes.txt", "notes.pdf"),
])
def test_400_for_a_bad_name_or_not_a_valid_pdf(client, key, patient, storage_root, sample_name, filename):
    resp = post_pdf(client, patient.id, key, data=sample(sample_name), filename=filename,
                    part_name="part")
    assert_detail(resp, 400)
    assert count_files() == 0 and blobs(storage_root) == []


def test_400_without_a_file_part(client, key, patient):
    assert_detail(post_pdf(client, patient.id, key, fields={"filename": "a.pdf"}), 400)
    resp = client.post(f"/patients/{patient.id}/pdf", headers={"X-API-Key": key},
                       json={"filename": "a.pdf"})
    assert_detail(resp, 400)


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 1000}])
def test_413_over_the_file_size_limit(client, key, patient, storage_root):
    assert len(sample("letter.pdf")) > 1000
    assert_detail(post_pdf(client, patient.id, key), 413)
    assert count_files() == 0 and blobs(storage_root) == []


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 1000, "MAX_CONTENT_LENGTH": 2000}])
def test_413_when_the_body_is_over_the_request_limit(client, key, patient):
    big = sample("letter.pdf") + b" " * 4000
    assert_detail(post_pdf(client, patient.id, key, data=big), 413)
    assert count_files() == 0


def test_405_for_other_methods(client, key, patient):
    resp = client.get(f"/patients/{patient.id}/pdf", headers={"X-API-Key": key})
    assert_detail(resp, 405)
    assert "POST" in resp.headers["Allow"]


def test_patient_token_uploads_to_own_chart_but_not_another_patients(client, patient, make_user,
                                                                     make_token):
    token = make_token(patient)
    resp = post_pdf(client, patient.id, token)
    assert resp.status_code == 200 and resp.get_json()["patient_id"] == patient.id
    # Another patient of the same clinic is outside a patient's reach: 404 like every door.
    assert_detail(post_pdf(client, make_user(Role.PATIENT).id, token), 404)
    assert count_files() == 1


def test_each_upload_adds_a_document(client, key, patient):
    first = post_pdf(client, patient.id, key).get_json()
    second = post_pdf(client, patient.id, key, data=sample("lab-results.pdf"), filename="lab.pdf").get_json()
    assert first["id"] != second["id"]
    assert count_files() == 2


def test_page_errors_under_patients_are_not_rendered_as_claros_json(client):
    # /patients/… also holds the provider's chart pages; only …/pdf speaks Claros.
    resp = client.get("/patients/1/no-such-page", headers={"Accept": "text/html"})
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"
