"""tscharts: login/logout and /tscharts/v1/image/ with `Authorization: Token`, tscharts' exact shapes."""
from __future__ import annotations

import base64
import io

import pytest
from conftest import assert_detail, blobs, count_files, sample
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken, AuditEvent, Category, Channel, Role, StoredFile
from app.services import files
from app.services.audit import Origin

IMAGE_KEYS = {"id", "patient", "clinic", "station", "type", "data"}


def b64(name: str) -> str:
    return base64.b64encode(sample(name)).decode()


@pytest.fixture
def provider(make_user):
    return make_user(Role.PROVIDER, username="dr.ts", password=None)  # no hashing: fast tests


@pytest.fixture
def patient(make_user):
    return make_user(Role.PATIENT, username="pat.ts", password=None)


@pytest.fixture
def signer(make_user):
    """A provider with a password, for the login tests."""
    return make_user(Role.PROVIDER, username="dr.login", password="provider-password")


@pytest.fixture
def token(make_token, provider):
    return make_token(provider)


@pytest.fixture
def auth(token):
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def post_image(client, auth, patient):
    def post(headers=None, **fields):
        body = {"type": "Xray", "patient": patient.id, "clinic": 276, "station": 117,
                "data": b64("xray.png")} | fields
        return client.post("/tscharts/v1/image/", json=body, headers=auth if headers is None else headers)

    return post


# -- login / logout ------------------------------------------------------------------------------

def test_login_returns_a_new_token_that_works(client, signer):
    resp = client.post("/tscharts/v1/login/", json={"username": "dr.login", "password": "provider-password"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == {"token", "id"} and body["id"] == signer.id and type(body["id"]) is int
    assert len(body["token"]) == 40 and int(body["token"], 16) >= 0
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == signer.id))
    assert row.name == "tscharts login" and row.revoked_at is None
    authed = client.get("/tscharts/v1/image/", headers={"Authorization": f"Token {body['token']}"})
    assert authed.status_code == 404  # authenticated; simply no images yet


@pytest.mark.parametrize("body", [{}, {"username": "dr.login"}, {"password": "provider-password"},
                                  {"username": "", "password": "x"}, {"username": 5, "password": "x"},
                                  [], "text", None])
def test_login_400_for_missing_fields(client, signer, body):
    assert_detail(client.post("/tscharts/v1/login/", json=body), 400)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe\x00", b"[" * 100_000])
def test_login_400_for_malformed_json(client, raw):
    assert_detail(client.post("/tscharts/v1/login/", data=raw, content_type="application/json"), 400)


@pytest.mark.parametrize("username,password", [("dr.login", "wrong-password"), ("nobody", "whatever1"), ("dr.ts", "anything1")])
def test_login_403_for_bad_credentials(client, signer, provider, username, password):
    resp = client.post("/tscharts/v1/login/", json={"username": username, "password": password})
    assert_detail(resp, 403)
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


@pytest.mark.parametrize("config_overrides", [{"LOGIN_ATTEMPTS": 3}])
def test_login_is_throttled_like_the_sign_in_page(client, signer):
    bad = {"username": "dr.login", "password": "wrong-password"}
    good = {"username": "dr.login", "password": "provider-password"}
    assert client.post("/tscharts/v1/login/", json=bad).status_code == 403
    assert client.post("/tscharts/v1/login/", json=good).status_code == 200  # success resets
    for _ in range(3):
        assert client.post("/tscharts/v1/login/", json=bad).status_code == 403
    assert_detail(client.post("/tscharts/v1/login/", json=good), 429)
    other_ip = client.post("/tscharts/v1/login/", json=good, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other_ip.status_code == 200


def test_logout_revokes_the_token_used(client, token, auth):
    resp = client.post("/tscharts/v1/logout/", headers=auth)
    assert resp.status_code == 200 and resp.get_json() == {}
    assert_detail(client.get("/tscharts/v1/image/", headers=auth), 401)
    assert_detail(client.post("/tscharts/v1/logout/", headers=auth), 401)


# -- authentication ------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token"}, {"Authorization": "Token " + "0" * 40},
                                     {"Authorization": "Bearer {token}"}, {"Authorization": "{token}"},
                                     {"X-ApiToken": "{token}"}, {"X-API-Key": "{token}"}])
@pytest.mark.parametrize("method,path", [("get", "/tscharts/v1/image/"), ("post", "/tscharts/v1/image/"),
                                         ("get", "/tscharts/v1/image/1/"), ("delete", "/tscharts/v1/image/1/")])
def test_401_without_a_token_header(client, token, headers, method, path):
    headers = {k: v.format(token=token) for k, v in headers.items()}
    resp = getattr(client, method)(path, headers=headers, json={} if method == "post" else None)
    assert_detail(resp, 401)
    assert resp.headers["WWW-Authenticate"] == "Token"


def test_scheme_is_case_insensitive(client, token):
    assert client.get("/tscharts/v1/image/", headers={"Authorization": f"token {token}"}).status_code == 404


# -- create --------------------------------------------------------------------------------------

def tags(file_id: int) -> tuple:
    """(image_type, clinic, station) from tscharts' own table."""
    from app.api.tscharts.models import ChartImage

    row = db.session.get(ChartImage, file_id)
    return (row.image_type, row.clinic, row.station)


def test_create_stores_a_typed_patient_image(client, post_image, provider, patient, storage_root):
    resp = post_image()
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"id"} and type(body["id"]) is int
    row = db.session.get(StoredFile, body["id"])
    assert tags(row.id) == ("Xray", 276, 117)
    assert (row.category, row.target_type, row.target_id, row.patient_id, row.creator_id) == (
        "user_document", "user", patient.id, patient.id, provider.id)
    assert (row.media_type, row.name, row.width, row.height) == ("image/png", f"xray-{patient.id}.png", 512, 512)
    assert [p.read_bytes() for p in blobs(storage_root)] == [sample("xray.png")]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.file_id == row.id))
    assert (event.action, event.channel) == ("upload", "tscharts")


def test_create_accepts_numeric_strings_jpeg_and_no_clinic_or_station(client, auth, patient):
    body = {"type": "Headshot", "patient": str(patient.id), "data": b64("photo.jpg")}
    resp = client.post("/tscharts/v1/image/", json=body, headers=auth)
    assert resp.status_code == 200
    row = db.session.get(StoredFile, resp.get_json()["id"])
    assert (row.media_type, row.name, *tags(row.id)[1:]) == ("image/jpeg", f"headshot-{patient.id}.jpg", None, None)
    resp = client.post("/tscharts/v1/image/", headers=auth,
                       json={"type": "Audiogram", "patient": patient.id, "clinic": "12", "station": 0,
                             "data": b64("scan.png")})
    assert tags(resp.get_json()["id"])[1:] == (12, None)  # 0 means none
    resp = client.post("/tscharts/v1/image/", headers=auth, json={
        "type": "Xray", "patient": patient.id, "clinic": 2**40, "data": b64("xray.png")})
    assert tags(resp.get_json()["id"])[1] == 2**40  # BIGINT


def test_create_without_content_type_header_still_parses(client, auth, patient):
    import json

    raw = json.dumps({"type": "Surgery", "patient": patient.id, "data": b64("scan.png")})
    resp = client.post("/tscharts/v1/image/", data=raw, headers=auth)
    assert resp.status_code == 200


@pytest.mark.parametrize("fields", [
    {"type": None}, {"type": "xray"}, {"type": "XRAY"}, {"type": "Photo"}, {"type": 1},
    {"patient": None}, {"patient": "fffff"}, {"patient": ""}, {"patient": 1.5}, {"patient": True},
    {"patient": -3}, {"patient": "-3"}, {"patient": 10**30}, {"patient": [1]},
    {"clinic": None}, {"clinic": "x"}, {"station": None}, {"station": {"id": 1}},
    {"data": None}, {"data": ""}, {"data": 5}, {"data": "ABCDEFG"}, {"data": "not base64!!"},
])
def test_create_400_for_bad_fields(client, post_image, storage_root, fields):
    assert_detail(post_image(**fields), 400)
    assert count_files() == 0 and blobs(storage_root) == []


@pytest.mark.parametrize("missing", ["type", "patient", "data"])
def test_create_400_for_missing_fields(client, auth, patient, missing):
    body = {"type": "Xray", "patient": patient.id, "data": b64("xray.png")}
    del body[missing]
    assert_detail(client.post("/tscharts/v1/image/", json=body, headers=auth), 400)
    assert count_files() == 0


@pytest.mark.parametrize("name", ["letter.pdf", "notes.txt", "gif.gif", "svg.svg", "truncated.png",
                                  "truncated.jpg", "pixel-bomb.png", "polyglot.png", "empty.bin"])
def test_create_400_when_data_is_not_a_valid_png_or_jpeg(client, post_image, storage_root, name):
    data = base64.b64encode(sample(name)).decode()
    resp = post_image(data=data) if data else post_image(data="AA==")  # empty.bin: one zero byte
    assert_detail(resp, 400)
    assert count_files() == 0 and blobs(storage_root) == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"a string"', b"null", b"\xff\xff",
                                 b"[" * 100_000, b'{"a": 1e999999}'])
def test_create_400_for_malformed_json(client, auth, raw):
    resp = client.post("/tscharts/v1/image/", data=raw, headers=auth, content_type="application/json")
    assert_detail(resp, 400)


def test_create_404_for_unknown_or_unreachable_patient(client, post_image, provider, make_account, make_user):
    other_clinic_patient = make_user(Role.PATIENT, account=make_account("clinic-b"))
    for patient_id in (999_999, 0, 2**31, 2**40, provider.id, other_clinic_patient.id):
        assert_detail(post_image(patient=patient_id), 404)
    assert count_files() == 0


@pytest.mark.parametrize("config_overrides", [{"JSON_UPLOAD_MAX_BYTES": 4000}])
def test_create_413_when_the_body_is_over_the_json_limit(client, post_image, storage_root):
    resp = post_image()  # xray.png in base64 is far over 4000 bytes
    assert_detail(resp, 413)
    assert "4,000-byte" in resp.get_json()["detail"]
    assert count_files() == 0 and blobs(storage_root) == []


@pytest.mark.parametrize("config_overrides", [{"UPLOAD_MAX_BYTES": 2000}])
def test_create_413_when_the_image_is_over_the_file_limit(client, post_image, storage_root):
    assert_detail(post_image(), 413)
    assert count_files() == 0 and blobs(storage_root) == []


def test_json_limit_is_larger_than_the_multipart_limit(app):
    # A 25 MiB image grows to ~33.3 MiB in base64; the JSON limit must let it through.
    assert app.config["JSON_UPLOAD_MAX_BYTES"] >= -(-app.config["UPLOAD_MAX_BYTES"] * 4 // 3)


# -- get by id -----------------------------------------------------------------------------------

def test_get_returns_the_tscharts_shape(client, post_image, auth, patient):
    image_id = post_image().get_json()["id"]
    resp = client.get(f"/tscharts/v1/image/{image_id}/", headers=auth)
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == IMAGE_KEYS
    assert body == {"id": image_id, "patient": patient.id, "clinic": 276, "station": 117,
                    "type": "Xray", "data": b64("xray.png")}
    assert base64.b64decode(body["data"]) == sample("xray.png")
    views = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).all()
    assert [(v.file_id, v.channel) for v in views] == [(image_id, "tscharts")]


def test_get_without_clinic_and_station_gives_nulls(client, auth, patient):
    image_id = client.post("/tscharts/v1/image/", headers=auth, json={
        "type": "Headshot", "patient": patient.id, "data": b64("photo.jpg")}).get_json()["id"]
    body = client.get(f"/tscharts/v1/image/{image_id}/", headers=auth).get_json()
    assert body["clinic"] is None and body["station"] is None and body["type"] == "Headshot"


def test_get_404s(client, app, auth, provider, patient, make_file, make_account, make_user, make_token):
    # Files that are not tscharts images (a PDF, a PNG uploaded elsewhere) are not images here.
    pdf = make_file(provider, "letter.pdf", patient=patient)
    png = make_file(provider, "scan.png", patient=patient)
    for file_id in (pdf.id, png.id, 999_999):
        assert_detail(client.get(f"/tscharts/v1/image/{file_id}/", headers=auth), 404)
    for path in ("/tscharts/v1/image/abc/", "/tscharts/v1/image/-1/", f"/tscharts/v1/image/{2**31}/",
                 "/tscharts/v1/image/99999999999999999999999/"):
        assert_detail(client.get(path, headers=auth), 404)
    # Another clinic's staff cannot see it.
    other = make_user(Role.PROVIDER, account=make_account("clinic-b"))
    other_auth = {"Authorization": f"Token {make_token(other)}"}
    image_id = client.post("/tscharts/v1/image/", headers=auth, json={
        "type": "Xray", "patient": patient.id, "data": b64("xray.png")}).get_json()["id"]
    assert_detail(client.get(f"/tscharts/v1/image/{image_id}/", headers=other_auth), 404)


def test_patient_token_sees_own_images_only(client, post_image, patient, make_user, make_token):
    mine = post_image().get_json()["id"]
    other_patient = make_user(Role.PATIENT)
    theirs = post_image(patient=other_patient.id).get_json()["id"]
    own = {"Authorization": f"Token {make_token(patient)}"}
    assert client.get(f"/tscharts/v1/image/{mine}/", headers=own).status_code == 200
    assert_detail(client.get(f"/tscharts/v1/image/{theirs}/", headers=own), 404)
    assert client.get("/tscharts/v1/image/", headers=own).get_json() == [mine]
    assert_detail(client.get(f"/tscharts/v1/image/?patient={other_patient.id}", headers=own), 404)
    # A patient may add to their own chart, not to another's.
    assert client.post("/tscharts/v1/image/", headers=own, json={
        "type": "Headshot", "patient": patient.id, "data": b64("photo.jpg")}).status_code == 200
    assert_detail(client.post("/tscharts/v1/image/", headers=own, json={
        "type": "Headshot", "patient": other_patient.id, "data": b64("photo.jpg")}), 404)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_405_for_other_methods(client, post_image, auth, method):
    image_id = post_image().get_json()["id"]
    resp = getattr(client, method)(f"/tscharts/v1/image/{image_id}/", headers=auth, json={})
    assert_detail(resp, 405)
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}
    assert_detail(client.put("/tscharts/v1/image/", headers=auth, json={}), 405)
    assert_detail(client.delete("/tscharts/v1/image/", headers=auth), 405)


def test_paths_without_trailing_slash_redirect(client, auth):
    resp = client.get("/tscharts/v1/image", headers=auth)
    assert resp.status_code == 308 and resp.headers["Location"].endswith("/tscharts/v1/image/")


# -- search --------------------------------------------------------------------------------------

@pytest.fixture
def gallery(post_image, patient, make_user):
    """Five images of two patients, oldest first."""
    other = make_user(Role.PATIENT)
    made = [
        post_image(type="Headshot", clinic=1, station=10, data=b64("photo.jpg")),
        post_image(type="Xray", clinic=1, station=11),
        post_image(type="Headshot", clinic=2, station=10, data=b64("insurance-front.jpg")),
        post_image(type="Xray", clinic=2, station=11, patient=other.id),
        post_image(type="Audiogram", station=12, data=b64("scan.png")),
    ]
    return [r.get_json()["id"] for r in made], other


SEARCHES = [  # query -> indexes into the gallery, in the order expected
    ("", [0, 1, 2, 3, 4]),
    ("?patient={p}", [0, 1, 2, 4]),
    ("?patient={p}&type=Headshot", [0, 2]),
    ("?type=Xray", [1, 3]),
    ("?clinic=1", [0, 1]),
    ("?station=10", [0, 2]),
    ("?clinic=2&station=11", [3]),
    ("?patient={p}&clinic=0&station=0", [0, 1, 2, 4]),  # 0 means absent
    ("?patient={p}&sort=true", [4, 2, 1, 0]),
    ("?patient={p}&sort=false", [0, 1, 2, 4]),
    ("?patient={o}", [3]),
]


def test_search_returns_matching_ids(client, auth, patient, gallery):
    # One gallery for every query: building it is the slow part.
    ids, other = gallery
    for query, expect in SEARCHES:
        resp = client.get("/tscharts/v1/image/" + query.format(p=patient.id, o=other.id), headers=auth)
        assert resp.status_code == 200, query
        assert resp.get_json() == [ids[i] for i in expect], query


def test_search_newest_returns_one_image_object(client, auth, patient, gallery):
    ids, _ = gallery
    resp = client.get(f"/tscharts/v1/image/?patient={patient.id}&type=Headshot&newest=true", headers=auth)
    assert resp.status_code == 200
    body = resp.get_json()
    assert set(body) == IMAGE_KEYS
    assert (body["id"], body["type"], body["clinic"], body["station"]) == (ids[2], "Headshot", 2, 10)
    assert base64.b64decode(body["data"]) == sample("insurance-front.jpg")
    resp = client.get(f"/tscharts/v1/image/?patient={patient.id}&newest=false", headers=auth)
    assert resp.get_json() == [ids[0], ids[1], ids[2], ids[4]]


def test_search_404_when_nothing_matches(client, auth, patient, provider, gallery):
    for query in ("?patient={p}&type=Surgery", "?clinic=99", "?station=99",
                  "?patient={p}&type=Surgery&newest=true", "?patient=999999", "?patient={staff}",
                  f"?patient={2**31}", f"?clinic={2**40}"):
        resp = client.get("/tscharts/v1/image/" + query.format(p=patient.id, staff=provider.id), headers=auth)
        assert_detail(resp, 404)


def test_search_404_with_no_images_at_all(client, auth):
    assert_detail(client.get("/tscharts/v1/image/", headers=auth), 404)


@pytest.mark.parametrize("query", ["?sort=True", "?sort=1", "?sort=", "?newest=TRUE", "?newest=yes",
                                   "?patient=abc", "?patient=", "?clinic=1.5", "?station=-1",
                                   "?patient=99999999999999999999999", "?type=xray", "?type="])
def test_search_400_for_bad_parameters(client, auth, query):
    assert_detail(client.get("/tscharts/v1/image/" + query, headers=auth), 400)


@pytest.mark.sqlite_only("SQLite's EXPLAIN QUERY PLAN on a near-empty table; tests/test_query_plans.py checks "
                        "these searches on a filled, analysed PostgreSQL schema")
def test_search_is_an_indexed_query(app, provider, patient):
    from app.api.tscharts.models import ImageType
    from app.api.tscharts.service import ImageQuery, _search

    queries = [ImageQuery(patient_id=patient.id, image_type=ImageType.XRAY), ImageQuery(clinic=3),
               ImageQuery(station=4), ImageQuery()]
    for query in queries:
        stmt = _search(provider, query)
        sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(row[-1] for row in db.session.execute(db.text("EXPLAIN QUERY PLAN " + sql)))
        assert "USING" in plan and "INDEX" in plan, plan
        assert "SCAN stored_files" not in plan.replace("SCAN stored_files USING", ""), plan


# -- delete --------------------------------------------------------------------------------------

def test_delete_then_again_404(client, post_image, auth, provider, storage_root):
    image_id = post_image().get_json()["id"]
    resp = client.delete(f"/tscharts/v1/image/{image_id}/", headers=auth)
    assert resp.status_code == 200 and resp.get_json() == {}
    row = db.session.get(StoredFile, image_id)
    assert row.deleted_at is not None and row.deleted_by_id == provider.id
    assert len(blobs(storage_root)) == 1  # soft delete: bytes kept until `files cleanup`
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "delete"))
    assert (event.file_id, event.channel) == (image_id, "tscharts")
    assert_detail(client.delete(f"/tscharts/v1/image/{image_id}/", headers=auth), 404)
    assert_detail(client.get(f"/tscharts/v1/image/{image_id}/", headers=auth), 404)
    assert_detail(client.get("/tscharts/v1/image/", headers=auth), 404)


def test_delete_404_for_non_images_and_unknown_ids(client, auth, provider, patient):
    pdf = files.upload(provider, Origin(Channel.CLI), io.BytesIO(sample("letter.pdf")), "a.pdf",
                       Category.USER_DOCUMENT, files.Target.chart(patient))
    for file_id in (pdf.id, 999_999):
        assert_detail(client.delete(f"/tscharts/v1/image/{file_id}/", headers=auth), 404)
    assert db.session.get(StoredFile, pdf.id).deleted_at is None
