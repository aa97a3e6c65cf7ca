"""Every 413 says which limit it hit: the whole request (MAX_CONTENT_LENGTH), one file
(UPLOAD_MAX_BYTES), too many parts or files (MAX_FORM_PARTS, UPLOAD_MAX_FILES_PER_REQUEST), a
text field (MAX_FORM_MEMORY_SIZE) — through the pages and the API dialects, nothing stored."""
from __future__ import annotations

import io

import pytest
from builders import tiny_pdf
from conftest import blobs, count_files, sample
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app.models import Role

FILES = "At most 20 files can be uploaded at once."
LETTER = sample("letter.pdf")
FIELD = "A form field is larger than the 500,000-byte limit for text fields."


def encoded(fields: dict, files, name: str) -> dict:
    """Test-client arguments for a multipart body built in memory (the client would spool a
    large one to a temp file it never closes)."""
    values = MultiDict(fields)
    for filename, body in files:
        values.add(name, FileStorage(io.BytesIO(body), filename=filename, name=name))
    boundary, body = encode_multipart(values)
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT)


@pytest.fixture
def page(make_page_client, patient):
    return make_page_client(patient)


@pytest.fixture
def token(make_token, make_user):
    return make_token(make_user(Role.PROVIDER, password=None))


@pytest.fixture
def vsee(client, token, patient):
    def post(fields=None, files=(("letter.pdf", LETTER),)):
        body = encoded({"meta.target.id": str(patient.id), **(fields or {})}, files, "file")
        return client.post("/api_v3/files", headers={"X-ApiToken": token}, **body)

    return post


def upload_page(client, files, fields=None, as_json=False):
    body = encoded({"csrf_token": client.csrf("/documents"), "category": "user_document", "target_type": "user",
                    "target_id": "", "next": "/documents", **(fields or {})}, files, "files")
    headers = {"Accept": "application/json"} if as_json else {}
    return client.post("/documents/upload", headers=headers, **body)


def assert_page_413(resp, message: str) -> None:
    text = resp.get_data(as_text=True)
    assert resp.status_code == 413 and resp.mimetype == "text/html", text[:300]
    assert message in text and "That upload is too large" in text


def assert_vsee_413(resp, message: str) -> None:
    assert resp.status_code == 413 and resp.get_json()["code"] == 413, resp.get_data(as_text=True)[:300]
    assert message in resp.get_json()["message"]


def assert_nothing_stored(storage_root) -> None:
    assert count_files() == 0 and blobs(storage_root) == []


# -- too many files / parts ------------------------------------------------------------------------

def test_900_pdfs_in_one_page_post_stop_at_the_file_count(page, storage_root):
    pdf = tiny_pdf()
    files = [(f"scan-{n}.pdf", pdf) for n in range(900)]
    assert_page_413(upload_page(page, files), FILES)
    resp = upload_page(page, files, as_json=True)
    assert resp.status_code == 413 and FILES in resp.get_json()["message"]
    assert_nothing_stored(storage_root)


def test_one_file_over_the_count_is_refused_before_any_is_stored(page, storage_root):
    files = [(f"note-{n}.txt", b"a short note\n") for n in range(21)]  # under MAX_FORM_PARTS (40)
    assert_page_413(upload_page(page, files), FILES)
    assert_nothing_stored(storage_root)


def test_the_file_count_itself_is_accepted(page):
    files = [(f"note-{n}.txt", f"note {n}\n".encode()) for n in range(20)]
    resp = upload_page(page, files, as_json=True)
    assert resp.status_code == 201 and len(resp.get_json()["files"]) == 20 and count_files() == 20


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_FILES_PER_REQUEST": 3}])
def test_the_cap_and_the_parts_follow_the_setting(app, page, config_overrides):
    assert app.config["MAX_FORM_PARTS"] == 3 + 20
    resp = upload_page(page, [(f"n{n}.txt", b"n\n") for n in range(4)])
    assert_page_413(resp, "At most 3 files can be uploaded at once.")


def test_too_many_parts_through_vsee(vsee, storage_root):
    fields = {f"meta.extra{n}": "x" for n in range(60)}
    assert_vsee_413(vsee(fields), FILES)
    resp = vsee(files=[(f"n{n}.txt", b"n\n") for n in range(60)])
    assert_vsee_413(resp, "(A form may have at most 40 parts.)")
    assert_nothing_stored(storage_root)


def test_too_many_parts_through_candid_and_claros(client, token, make_visit, patient):
    visit = make_visit(patient)
    parts = {f"x{n}": "x" for n in range(60)}
    resp = client.put(f"/api/encounter-attachments/v1/{visit.public_id}/v2", headers={"Authorization": f"Bearer {token}"},
                      data={**parts, "attachment_type": "OTHER",
                            "attachment_file": (io.BytesIO(sample("letter.pdf")), "letter.pdf")})
    body = resp.get_json()
    assert resp.status_code == 413 and body["errorName"] == "PayloadTooLargeError"
    assert FILES in body["content"]["message"]
    resp = client.post(f"/patients/{patient.id}/pdf", headers={"X-API-Key": token},
                       data={**parts, "file": (io.BytesIO(sample("letter.pdf")), "letter.pdf")})
    assert resp.status_code == 413 and FILES in resp.get_json()["detail"]


# -- a text field ----------------------------------------------------------------------------------

def test_a_huge_text_field_on_a_page(page, storage_root):
    resp = upload_page(page, [("letter.pdf", sample("letter.pdf"))], fields={"next": "/" + "x" * 600_000})
    assert_page_413(resp, FIELD)
    assert_nothing_stored(storage_root)


def test_a_huge_text_field_through_vsee(vsee, storage_root):
    assert_vsee_413(vsee({"meta.category": "x" * 10 * 1024 * 1024}), FIELD)
    assert_nothing_stored(storage_root)


# -- the whole body, one file ------------------------------------------------------------------------

@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 10_000, "MAX_CONTENT_LENGTH": 20_000}])
class TestSizes:
    BODY = "The request is larger than the 20,000-byte limit for one request (and each file has a 10,000-byte limit)."
    FILE = "The file is larger than the 10,000-byte limit."

    def test_a_body_over_the_request_limit(self, page, vsee, storage_root):
        assert_page_413(upload_page(page, [("big.txt", b"a" * 30_000)]), self.BODY)
        assert_vsee_413(vsee(files=[("big.txt", b"a" * 30_000)]), self.BODY)
        assert_nothing_stored(storage_root)

    def test_a_chunked_body_read_past_the_limit(self, client, token, storage_root):
        """No Content-Length (chunked): the limit is found while reading, with the same answer."""
        body = encoded({}, [("big.txt", b"a" * 30_000)], "file")
        resp = client.post("/api_v3/files", input_stream=io.BytesIO(body["data"]),
                           headers={"X-ApiToken": token, "Content-Type": body["content_type"],
                                    "Transfer-Encoding": "chunked"},
                           environ_base={"wsgi.input_terminated": True})
        assert_vsee_413(resp, self.BODY)
        assert_nothing_stored(storage_root)

    def test_one_file_over_the_file_limit(self, page, vsee, storage_root):
        assert_vsee_413(vsee(files=[("big.txt", b"a" * 15_000)]), self.FILE)
        resp = upload_page(page, [("big.txt", b"a" * 15_000)], as_json=True)
        assert resp.status_code == 400 and self.FILE in resp.get_json()["files"][0]["error"]
        assert_nothing_stored(storage_root)

