"""The VSee `api_v3/files` dialect end to end: the flow, paging, auth, downloads, and junk input."""
from __future__ import annotations

import io
import json
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from conftest import blobs, sample
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, AuditEvent, StoredFile
from app.models.base import utcnow


@pytest.fixture
def patient(make_user):
    return make_user("patient", password=None)


@pytest.fixture
def provider(make_user):
    return make_user("provider", password=None)


@pytest.fixture
def token(provider, make_token):
    return make_token(provider)


@pytest.fixture
def api(client, token):
    """Requests with the provider's X-ApiToken."""

    class Api:
        def __getattr__(self, method):
            def call(path, headers=None, **kwargs):
                return getattr(client, method)(path, headers={"X-ApiToken": token, **(headers or {})}, **kwargs)
            return call

    return Api()


def post_file(api, patient, name="letter.pdf", data=None, **fields):
    body = {"file": (io.BytesIO(sample(name) if data is None else data), name),
            "meta.target.id": str(patient.id), **fields}
    return api.post("/api_v3/files", data=body)


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# -- the whole flow --------------------------------------------------------------------------------

def test_upload_list_get_view_resize_rename_delete(client, api, patient, provider, storage_root):
    # upload
    resp = post_file(api, patient, "photo.jpg", **{"meta.category": "user_document"})
    assert resp.status_code == 200, resp.json
    f = resp.json["data"]
    assert set(f) == {"id", "name", "size", "ext", "fullpath", "meta", "creator", "created", "modified",
                      "is_deletable"}
    assert (f["name"], f["size"], f["ext"]) == ("photo.jpg", len(sample("photo.jpg")), "jpg")
    assert f["meta"] == {"category": "user_document", "target": {"id": str(patient.id), "type": "user"},
                         "account": {"code": "clinic-a"}, "visible": True}
    assert f["creator"] == {"id": str(provider.id), "username": provider.username, "email": provider.email,
                            "full_name": provider.full_name, "type": 400}
    assert isinstance(f["created"], int) and f["created"] == f["modified"]
    assert f["is_deletable"] is True
    row = db.session.scalar(select(StoredFile))
    assert row.public_id == f["id"] and row.sha256 and row.width == 640 and row.height == 480
    assert [p.read_bytes() for p in blobs(storage_root)] == [sample("photo.jpg")]
    assert len(events("upload")) == 1 and events("upload")[0].channel == "vsee"

    # list
    listed = api.get(f"/api_v3/files?target_id={patient.id}&target_type=user")
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json["data"]] == [f["id"]]
    assert listed.headers["X-Total-Count"] == "1"

    # get: a fresh fullpath
    got = api.get(f"/api_v3/files/{f['id']}")
    assert got.status_code == 200 and got.json["data"]["id"] == f["id"]
    link = got.json["data"]["fullpath"]
    assert link.startswith(f"http://chartbox.test/files/view/{f['id']}?")

    # view
    view = client.get(link)
    assert view.status_code == 200 and view.data == sample("photo.jpg")
    assert view.mimetype == "image/jpeg"
    assert view.headers["X-Content-Type-Options"] == "nosniff"
    assert view.headers["Cache-Control"] == "private, no-store"
    assert view.headers["Referrer-Policy"] == "no-referrer"
    assert "sandbox" in view.headers["Content-Security-Policy"]
    assert view.headers["ETag"] == f'"{row.sha256}"'
    assert view.headers["Accept-Ranges"] == "bytes"
    assert view.headers["Content-Disposition"].startswith('inline; filename="photo.jpg"')
    assert len(events("view")) == 1

    # resize: a PNG that fits the box, cached in storage
    small = client.get(link + "&size=100x100")
    assert small.status_code == 200 and small.mimetype == "image/png"
    with Image.open(io.BytesIO(small.data)) as im:
        assert im.format == "PNG" and im.size == (100, 75)
    assert small.headers["Content-Disposition"].startswith('inline; filename="photo-100x100.png"')
    renditions = [p for p in storage_root.rglob("*.png") if "renditions" in p.parts]
    assert len(renditions) == 1
    assert client.get(link + "&size=100x100").data == small.data  # from the cache
    assert client.get(link + "&size=5000x5000").status_code == 400

    # rename: only the name changes; ext follows when the type allows it
    renamed = api.post(f"/api_v3/files/{f['id']}", data={"name": "Holiday.jpeg"})
    assert renamed.status_code == 200
    r = renamed.json["data"]
    assert (r["name"], r["ext"], r["size"], r["created"]) == ("Holiday.jpeg", "jpeg", f["size"], f["created"])
    mislabel = api.post(f"/api_v3/files/{f['id']}", json={"name": "scan.pdf"})  # it is no PDF: refused
    assert mislabel.status_code == 400 and api.get(f"/api_v3/files/{f['id']}").json["data"]["name"] == "Holiday.jpeg"
    kept = api.post(f"/api_v3/files/{f['id']}", json={"name": "scan"})  # no ending: the type's is kept
    assert kept.status_code == 200 and (kept.json["data"]["name"], kept.json["data"]["ext"]) == ("scan", "jpeg")
    db.session.refresh(row)
    assert (row.version, row.sha256, row.media_type) == (3, row.sha256, "image/jpeg")
    view = client.get(kept.json["data"]["fullpath"])
    assert "filename*=UTF-8''scan.jpeg" in view.headers["Content-Disposition"]
    assert len(events("rename")) == 2

    # delete
    gone = api.delete(f"/api_v3/files/{f['id']}")
    assert gone.status_code == 200 and gone.json == {"data": True}
    assert api.get(f"/api_v3/files/{f['id']}").status_code == 404
    assert api.get(f"/api_v3/files?target_id={patient.id}").json["data"] == []
    assert client.get(link).status_code == 404
    assert api.delete(f"/api_v3/files/{f['id']}").status_code == 404
    db.session.refresh(row)
    assert row.deleted_at is not None
    assert [p.read_bytes() for p in blobs(storage_root)] == [sample("photo.jpg")]  # soft delete
    assert len(events("delete")) == 1


@pytest.mark.parametrize("fields", [
    {"meta[category]": "user_consent", "meta[target][type]": "user"},
    {"meta.category": "user_consent", "meta.target.type": "user"},
    {"category": "user_consent"},
])
def test_field_spellings(api, patient, fields):
    resp = post_file(api, patient, "notes.txt", **fields)
    assert resp.status_code == 200
    assert resp.json["data"]["meta"]["category"] == "user_consent"


def test_visit_target_by_uuid(api, patient, make_visit):
    visit = make_visit(patient)
    resp = post_file(api, patient, "notes.txt", **{"meta.category": "intake_attachment",
                                                   "meta.target.type": "visit", "meta.target.id": visit.public_id})
    assert resp.status_code == 200
    assert resp.json["data"]["meta"]["target"] == {"id": visit.public_id, "type": "visit"}
    listed = api.get(f"/api_v3/files?target_type=visit&target_id={visit.public_id}&category_type=intake_attachment")
    assert [x["id"] for x in listed.json["data"]] == [resp.json["data"]["id"]]


def test_patient_uploads_for_self_by_default(client, patient, make_token):
    resp = client.post("/api_v3/files", headers={"X-ApiToken": make_token(patient)},
                       data={"file": (io.BytesIO(sample("notes.txt")), "notes.txt")})
    assert resp.status_code == 200
    assert resp.json["data"]["meta"]["target"]["id"] == str(patient.id)
    assert resp.json["data"]["creator"]["type"] == 200


def test_category_filter_and_alias(api, patient):
    post_file(api, patient, "notes.txt")
    consent = post_file(api, patient, "letter.pdf", **{"meta.category": "user_consent"}).json["data"]
    for query in ("category_type=user_consent", "category=user_consent"):
        listed = api.get(f"/api_v3/files?target_id={patient.id}&{query}").json["data"]
        assert [x["id"] for x in listed] == [consent["id"]]


# -- pagination ------------------------------------------------------------------------------------

def test_pagination(api, patient, make_file, provider):
    made = [make_file(provider, "notes.txt", patient=patient, name=f"n{i}.txt") for i in range(7)]
    newest_first = [r.public_id for r in reversed(made)]

    plain = api.get(f"/api_v3/files?target_id={patient.id}")
    assert [x["id"] for x in plain.json["data"]] == newest_first  # no paging asked: a plain list
    assert plain.headers["X-Total-Count"] == "7" and "Link" not in plain.headers

    first = api.get(f"/api_v3/files?target_id={patient.id}&per_page=3")
    assert [x["id"] for x in first.json["data"]] == newest_first[:3]
    assert first.headers["X-Total-Count"] == "7"
    assert (first.headers["X-Page"], first.headers["X-Per-Page"]) == ("1", "3")
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    next_url = urlsplit(link[1:link.index(">")])
    assert next_url.path == "/api_v3/files"
    assert parse_qs(next_url.query) == {"target_id": [str(patient.id)], "page": ["2"], "per_page": ["3"]}

    second = api.get(f"{next_url.path}?{next_url.query}")
    assert [x["id"] for x in second.json["data"]] == newest_first[3:6]
    last = api.get(f"/api_v3/files?target_id={patient.id}&per_page=3&page=3")
    assert [x["id"] for x in last.json["data"]] == newest_first[6:]
    assert "Link" not in last.headers
    beyond = api.get(f"/api_v3/files?target_id={patient.id}&per_page=3&page=99")
    assert beyond.status_code == 200 and beyond.json["data"] == [] and beyond.headers["X-Total-Count"] == "7"


@pytest.mark.parametrize("config_overrides", [{"API_PAGE_SIZE": 2, "API_PAGE_SIZE_MAX": 4}])
def test_page_size_default_and_cap(api, patient, make_file, provider):
    for i in range(5):
        make_file(provider, "notes.txt", patient=patient, name=f"n{i}.txt")
    default = api.get(f"/api_v3/files?target_id={patient.id}")
    assert len(default.json["data"]) == 2 and default.headers["X-Per-Page"] == "2"
    capped = api.get(f"/api_v3/files?target_id={patient.id}&per_page=1000")
    assert len(capped.json["data"]) == 4 and capped.headers["X-Per-Page"] == "4"


@pytest.mark.parametrize("query", ["page=abc", "page=-1", "page=1.5", "per_page=x", "per_page=-3",
                                   "page=9999999999", "page=%C2%B2", "per_page=%D9%A3", "page=%00",
                                   "per_page=1e3"])
def test_junk_paging_is_400(api, patient, query):
    resp = api.get(f"/api_v3/files?target_id={patient.id}&{query}")
    assert resp.status_code == 400
    assert resp.json["code"] == 400 and "whole number" in resp.json["message"]


# -- authentication --------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {}, {"X-ApiToken": ""}, {"X-ApiToken": "nope"}, {"X-ApiToken": "0" * 40}, {"X-ApiToken": "x" * 5000},
    {"X-ApiToken": "\u00e9\u00e8"}, {"Authorization": "Bearer whatever"}, {"X-ApiToken": "%00"},
])
@pytest.mark.parametrize("method,path", [("get", "/api_v3/files"), ("post", "/api_v3/files"),
                                         ("get", "/api_v3/files/00000000-0000-4000-8000-000000000000"),
                                         ("post", "/api_v3/files/x"), ("delete", "/api_v3/files/x")])
def test_missing_or_bad_token_is_401(client, headers, method, path):
    resp = getattr(client, method)(path, headers=headers)
    assert resp.status_code == 401
    assert resp.json["code"] == 401 and resp.json["message"]


def test_session_cookie_is_not_accepted(client, provider):
    with client.session_transaction() as session:
        session["_user_id"] = str(provider.id)
    assert client.get("/api_v3/files").status_code == 401


def test_account_code_must_match(api, token, client, make_account, make_user, make_token):
    assert api.get("/api_v3/files", headers={"X-AccountCode": "clinic-a"}).status_code == 200
    assert api.get("/api_v3/files", headers={"X-AccountCode": " clinic-a "}).status_code == 200
    for code in ("clinic-b", "CLINIC-A", "\u00e9", "x" * 1000):
        resp = api.get("/api_v3/files", headers={"X-AccountCode": code})
        assert resp.status_code == 401 and "X-AccountCode" in resp.json["message"]
    other = make_user("provider", account=make_account("clinic-b"), password=None)
    resp = client.get("/api_v3/files", headers={"X-ApiToken": make_token(other), "X-AccountCode": "clinic-a"})
    assert resp.status_code == 401


def test_revoked_token_is_401(api, runner, token):
    assert api.get("/api_v3/files").status_code == 200
    row = db.session.scalar(select(ApiToken))
    assert runner.invoke(args=["tokens", "revoke", str(row.id)]).exit_code == 0
    resp = api.get("/api_v3/files")
    assert resp.status_code == 401 and resp.json == {"code": 401, "message": "The API token is not valid."}


def test_expired_token_is_401(api, token):
    row = db.session.scalar(select(ApiToken))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert api.get("/api_v3/files").status_code == 401


def test_inactive_user_is_401(api, provider):
    provider.active = False
    db.session.commit()
    assert api.get("/api_v3/files").status_code == 401


def test_token_with_expiry_in_the_future_works(client, provider, make_token):
    resp = client.get("/api_v3/files", headers={"X-ApiToken": make_token(provider, expires_days=1)})
    assert resp.status_code == 200


# -- size limits -----------------------------------------------------------------------------------

@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 5_000}])
def test_413_has_the_vsee_error_body(api, patient, storage_root):
    resp = post_file(api, patient, "letter.pdf", data=b"x" * 6_000)
    assert resp.status_code == 413
    assert resp.json == {"code": 413, "message": "The file is larger than the 5,000-byte limit."}
    assert db.session.scalar(select(StoredFile)) is None and blobs(storage_root) == []


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 5_000, "MAX_CONTENT_LENGTH": 8_000}])
def test_413_before_reading_the_body(api, patient):
    resp = post_file(api, patient, "big.txt", data=b"x" * 50_000)
    assert resp.status_code == 413 and resp.mimetype == "application/json"
    assert resp.json["code"] == 413


# -- downloads: Range, ETag, HEAD, names -----------------------------------------------------------

@pytest.fixture
def pdf(api, patient):
    return post_file(api, patient, "letter.pdf").json["data"]


def test_range_requests(client, pdf):
    data = sample("letter.pdf")
    resp = client.get(pdf["fullpath"], headers={"Range": "bytes=0-99"})
    assert resp.status_code == 206 and resp.data == data[:100]
    assert resp.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
    assert resp.headers["Content-Length"] == "100"
    tail = client.get(pdf["fullpath"], headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    middle = client.get(pdf["fullpath"], headers={"Range": f"bytes=100-{len(data) + 1000}"})
    assert middle.status_code == 206 and middle.data == data[100:]


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=5000000-5000001"])
def test_unsatisfiable_range_is_416_json(client, pdf, header):
    resp = client.get(pdf["fullpath"], headers={"Range": header})
    assert resp.status_code == 416
    assert resp.json["code"] == 416


@pytest.mark.parametrize("header", ["bytes=abc", "lines=0-5", "bytes=5-1", "bytes=0-1,4-5", "\u00e9"])
def test_unusable_range_gets_the_whole_file(client, pdf, header):
    resp = client.get(pdf["fullpath"], headers={"Range": header})
    assert resp.status_code in (200, 206, 416)
    if resp.status_code == 200:
        assert resp.data == sample("letter.pdf")


def test_etag_and_if_none_match(client, pdf):
    first = client.get(pdf["fullpath"])
    etag = first.headers["ETag"]
    again = client.get(pdf["fullpath"], headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert client.get(pdf["fullpath"], headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(pdf["fullpath"], headers={"If-None-Match": "*"}).status_code == 304
    ranged = client.get(pdf["fullpath"], headers={"Range": "bytes=0-9", "If-Range": etag})
    assert ranged.status_code == 206
    stale = client.get(pdf["fullpath"], headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.data == sample("letter.pdf")


def test_head(client, pdf):
    resp = client.head(pdf["fullpath"])
    assert resp.status_code == 200 and resp.data == b""
    assert resp.headers["Content-Length"] == str(len(sample("letter.pdf")))
    assert resp.mimetype == "application/pdf"
    assert "sandbox" not in resp.headers["Content-Security-Policy"]  # Chrome's PDF viewer


@pytest.mark.parametrize("name,fallback,stored", [
    ("Zo\u00eb \u00c5ngstr\u00f6m r\u00e9sum\u00e9.pdf", "Zo_ _ngstr_m r_sum_.pdf", None),
    ("\u75c5\u5386.pdf", "__.pdf", None),
    ('quote"percent%.pdf', "quote_percent_.pdf", None),
    ("C:\\Users\\me\\scan.pdf", "scan.pdf", "scan.pdf"),  # a Windows path: the last part only
    ("emoji \U0001f600.pdf", "emoji _.pdf", None),
    ("plain name.pdf", "plain name.pdf", None),
])
def test_content_disposition_with_non_ascii_names(client, api, patient, name, fallback, stored):
    f = post_file(api, patient, "letter.pdf", data=sample("letter.pdf")).json["data"]
    api.post(f"/api_v3/files/{f['id']}", json={"name": name})
    link = api.get(f"/api_v3/files/{f['id']}").json["data"]["fullpath"]
    header = client.get(link).headers["Content-Disposition"]
    header.encode("latin-1")  # a header must be sendable as-is
    assert header == f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(stored or name, safe='')}"
    download = client.get(link + "&download=1").headers["Content-Disposition"]
    assert download.startswith("attachment; ")


def test_upload_with_non_ascii_name_round_trips(api, patient):
    resp = post_file(api, patient, "Befund \u00e4rztlich \u2013 M\u00e4rz.pdf", data=sample("letter.pdf"))
    assert resp.status_code == 200
    assert resp.json["data"]["name"] == "Befund \u00e4rztlich \u2013 M\u00e4rz.pdf"


# -- junk input: always a 4xx in VSee's shape, never a 500 ------------------------------------------

def assert_vsee_error(resp, status):
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/json"
    assert set(resp.json) == {"code", "message"} and resp.json["code"] == status
    assert isinstance(resp.json["message"], str) and resp.json["message"]


@pytest.mark.parametrize("fields,status,words", [
    ({"meta.category": "medical_record"}, 400, "Unknown category"),
    ({"meta.category": "USER_DOCUMENT"}, 400, "Unknown category"),
    ({"meta.category": "\u00e9" * 300}, 400, "Unknown category"),
    ({"meta.target.type": "group"}, 400, "must be 'user' or 'visit'"),
    ({"meta.target.type": "visit", "meta.target.id": ""}, 400, "needs meta.target.id"),
    ({"meta.target.id": "abc"}, 400, "must be a number"),
    ({"meta.target.id": "-1"}, 400, "must be a number"),
    ({"meta.target.id": "1e3"}, 400, "must be a number"),
    ({"meta.target.id": "1.0"}, 400, "must be a number"),
    ({"meta.target.id": "9" * 40}, 400, "must be a number"),
    ({"meta.target.id": "\u00b2"}, 400, "must be a number"),
    ({"meta.target.id": "\u0663"}, 400, "must be a number"),
    ({"meta.target.id": "\uff11"}, 400, "must be a number"),
    ({"meta.target.id": "999999"}, 404, "No such user"),
    ({"meta.target.id": "0"}, 404, "No such user"),
    ({"meta.target.type": "visit", "meta.target.id": "nope"}, 404, "No such visit"),
    ({"meta.target.type": "visit", "meta.target.id": "\u00b2"}, 404, "No such visit"),
    ({"meta.target.type": "visit", "meta.target.id": "99999999"}, 404, "No such visit"),
    ({"meta.target.type": "visit", "meta.target.id": "x" * 10_000}, 404, "No such visit"),
    ({"meta.category": "intake_attachment"}, 400, "belong to a visit"),
])
def test_bad_upload_fields(api, patient, storage_root, fields, status, words):
    resp = post_file(api, patient, "notes.txt", **fields)
    assert_vsee_error(resp, status)
    assert words in resp.json["message"]
    assert db.session.scalar(select(StoredFile)) is None and blobs(storage_root) == []


@pytest.mark.parametrize("kwargs", [
    {"data": {"files": (io.BytesIO(b"hello"), "notes.txt")}},
    {"data": {"upload": (io.BytesIO(b"hello"), "notes.txt")}},
    {"data": {"file": "just a string"}},
    {"data": {}},
    {"json": {"file": "aGVsbG8="}},
    {"data": b"--xx\r\ngarbage", "content_type": "multipart/form-data; boundary=xx"},
    {"data": b"garbage", "content_type": "multipart/form-data"},
    {"data": b"\xff\xfe\x00", "content_type": "application/octet-stream"},
    {"data": "file=%FF%FE", "content_type": "application/x-www-form-urlencoded"},
])
def test_upload_without_a_file_part(api, kwargs):
    assert_vsee_error(api.post("/api_v3/files", **kwargs), 400)


def test_upload_with_empty_file_name_uses_the_type(api, patient):
    resp = post_file(api, patient, "", data=sample("notes.txt"))
    assert resp.status_code in (200, 400)
    if resp.status_code == 200:
        assert resp.json["data"]["name"] == "upload.txt"


@pytest.mark.parametrize("kwargs,words", [
    ({"data": "{bad json", "content_type": "application/json"}, "JSON body"),
    ({"data": "[1, 2]", "content_type": "application/json"}, "JSON body"),
    ({"data": "null", "content_type": "application/json"}, "JSON body"),
    ({"data": '"name"', "content_type": "application/json"}, "JSON body"),
    ({"data": b"\xff\xfe{}", "content_type": "application/json"}, "JSON body"),
    ({"json": {"name": 123}}, "field named 'name'"),
    ({"json": {"name": None}}, "field named 'name'"),
    ({"json": {"name": ["a.pdf"]}}, "field named 'name'"),
    ({"json": {"name": {"x": 1}}}, "field named 'name'"),
    ({"json": {"title": "a.pdf"}}, "field named 'name'"),
    ({"json": {"name": "   "}}, "field named 'name'"),
    ({"json": {"name": "\u202e\u200b"}}, "printable"),
    ({"json": {"name": "..."}}, "printable"),
    ({"data": {"nmae": "a.pdf"}}, "field named 'name'"),
    ({"data": {}}, "field named 'name'"),
    ({"data": b"", "content_type": "text/plain"}, "field named 'name'"),
])
def test_bad_rename_bodies(api, pdf, kwargs, words):
    resp = api.post(f"/api_v3/files/{pdf['id']}", **kwargs)
    assert_vsee_error(resp, 400)
    assert words in resp.json["message"]
    assert api.get(f"/api_v3/files/{pdf['id']}").json["data"]["name"] == "letter.pdf"


@pytest.mark.parametrize("name,claimed", [
    ("Referral letter.docx", "a Word document"), ("scan.PNG", "a PNG image"), ("notes.txt", "a plain-text file"),
    ("photo.gif", "a .gif file"), ("setup.exe", "a .exe file"), ("page.html", "a .html file"),
])
def test_a_rename_whose_ending_names_another_type_is_refused(api, pdf, name, claimed):
    resp = api.post(f"/api_v3/files/{pdf['id']}", json={"name": name})
    assert_vsee_error(resp, 400)
    assert resp.json["message"] == (f"“{name}” would make it look like {claimed}, but it is a PDF document: "
                                    "keep “.pdf” at the end of the name, or leave the ending off.")
    got = api.get(f"/api_v3/files/{pdf['id']}").json["data"]
    assert (got["name"], got["ext"]) == ("letter.pdf", "pdf")


@pytest.mark.parametrize("name", ["Referral letter", "Letter v2.final", "Dr. Smith", "report.2024", "LETTER.PDF"])
def test_a_rename_without_another_types_ending_is_taken_as_given(api, pdf, name):
    resp = api.post(f"/api_v3/files/{pdf['id']}", json={"name": name})
    assert resp.status_code == 200
    assert (resp.json["data"]["name"], resp.json["data"]["ext"]) == (name, "pdf")  # the API renames as asked


def test_rename_accepts_urlencoded_and_cleans_the_name(api, pdf):
    resp = api.post(f"/api_v3/files/{pdf['id']}", data="name=..%2F..%2Fevil%E2%80%AE.pdf",
                    content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200 and resp.json["data"]["name"] == "evil.pdf"
    long = api.post(f"/api_v3/files/{pdf['id']}", json={"name": "n" * 1000 + ".pdf"})
    assert long.status_code == 200 and len(long.json["data"]["name"]) == 255


@pytest.mark.parametrize("file_id", ["abc", "123", "1", "00000000-0000-4000-8000-000000000000",
                                     "%C3%A9" * 12, "x" * 5000, "%00", "..%2F..%2Fetc", "\u00b2",
                                     "00000000-0000-4000-8000-00000000000\u00b2"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_bad_file_ids_are_404(api, method, file_id):
    resp = getattr(api, method)(f"/api_v3/files/{file_id}", data={"name": "x.pdf"} if method == "post" else None)
    assert_vsee_error(resp, 404)


@pytest.mark.parametrize("query,status", [
    ("target_type=group", 400), ("target_id=abc", 400), ("target_id=%C2%B2", 400),
    ("target_id=999999", 404), ("target_type=visit", 400), ("target_type=visit&target_id=nope", 404),
    ("category_type=nope", 400), ("category=%FF", 400), ("include_shared=%FF", 200),
    ("target_id=%00", 400), ("target_id=" + "9" * 30, 400), ("unknown=1", 200), ("%FF=%FF", 200),
])
def test_bad_list_queries(api, patient, query, status):
    resp = api.get(f"/api_v3/files?{query}")
    if status == 200:
        assert resp.status_code == 200 and isinstance(resp.json["data"], list)
    else:
        assert_vsee_error(resp, status)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_unsupported_methods_are_405_json(api, pdf, method):
    resp = getattr(api, method)(f"/api_v3/files/{pdf['id']}")
    assert_vsee_error(resp, 405)
    assert "Allow" in resp.headers


def test_unknown_api_route_is_json(api):
    assert_vsee_error(api.get("/api_v3/nothing-here"), 404)


@pytest.mark.parametrize("path", ["/files/view/", "/files/view/%00?auth_code=1&time=1",
                                  "/api_v3/files/view/x?auth_code=%FF&time=%FF&size=%FF"])
def test_view_junk_is_4xx_json(client, path):
    resp = client.get(path)
    assert 400 <= resp.status_code < 500
    assert resp.mimetype == "application/json"


def test_view_post_is_405(client, pdf):
    resp = client.post(pdf["fullpath"])
    assert resp.status_code == 405 and resp.json["code"] == 405


def test_large_json_rename_is_fine(api, pdf):
    body = json.dumps({"name": "a.pdf", "padding": "x" * 200_000})
    resp = api.post(f"/api_v3/files/{pdf['id']}", data=body, content_type="application/json")
    assert resp.status_code == 200
