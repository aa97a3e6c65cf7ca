"""When a backing service fails, clients get a clear answer, never a 500 or a lock-out."""
import base64
import io
import shutil

import pytest
from conftest import sample

from app.extensions import db
from app.models import Role, StoredFile


@pytest.fixture
def broken_storage(app, storage_root):
    """The storage folder turns into a plain file: every write fails with an OS error."""
    shutil.rmtree(storage_root)
    storage_root.write_bytes(b"not a folder")
    yield
    storage_root.unlink()


def test_storage_outage_on_upload_is_503_in_the_dialects_shape(client, make_user, make_token, broken_storage):
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    resp = client.post("/api_v3/files", headers={"X-ApiToken": make_token(provider)},
                       data={"file": (io.BytesIO(sample("letter.pdf")), "letter.pdf"),
                             "meta.target.id": str(patient.id)})
    assert resp.status_code == 503
    assert resp.get_json() == {"code": 503, "message": "File storage is unavailable; try again shortly."}
    assert resp.headers["Retry-After"] == "30"


def test_storage_outage_on_a_page_upload_is_the_503_page(make_page_client, make_user, broken_storage):
    patient = make_user(Role.PATIENT)
    client = make_page_client(patient)
    resp = client.post("/documents/upload", data={
        "csrf_token": client.csrf("/documents"), "files": (io.BytesIO(sample("notes.txt")), "notes.txt")})
    assert resp.status_code == 503 and "Please try again shortly" in resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "30"


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0",
                                               "LOGIN_ATTEMPTS": 1}])
def test_sign_in_still_works_when_the_throttle_store_is_down(make_page_client, make_user, config_overrides):
    user = make_user(Role.PATIENT)
    client = make_page_client()
    bad = client.post("/login", data={"csrf_token": client.csrf(), "username": user.username,
                                      "password": "wrong password"})
    assert bad.status_code == 401  # checked and refused, not a 500
    client.sign_in(user)  # not locked out either
    assert client.get("/documents").status_code == 200


def test_a_lost_blob_is_a_404_that_is_logged(client, make_user, make_token, make_file, storage_root, caplog):
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    row = make_file(provider, "photo.jpg", patient=patient)
    (storage_root / row.storage_key).unlink()
    headers = {"X-ApiToken": make_token(provider)}
    link = client.get(f"/api_v3/files/{row.public_id}", headers=headers).get_json()["data"]["fullpath"]
    resp = client.get(link)
    assert resp.status_code == 404
    assert resp.get_json()["message"] == "The file's contents are missing; an administrator has been told."
    assert f"file {row.public_id} (photo.jpg) has no blob" in caplog.text


def test_a_lost_blob_behind_an_inlined_file_is_a_404(client, make_user, make_token, storage_root, caplog):
    """tscharts inlines the bytes in JSON: the same missing blob, the same clear answer."""
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    auth = {"Authorization": f"Token {make_token(provider)}"}
    data = base64.b64encode(sample("xray.png")).decode()
    created = client.post("/tscharts/v1/image/", headers=auth,
                          json={"type": "Xray", "patient": patient.id, "data": data})
    image_id = created.get_json()["id"]
    row = db.session.get(StoredFile, image_id)
    (storage_root / row.storage_key).unlink()
    resp = client.get(f"/tscharts/v1/image/{image_id}/", headers=auth)
    assert resp.status_code == 404 and "contents are missing" in resp.get_json()["detail"]
    assert "has no blob" in caplog.text
