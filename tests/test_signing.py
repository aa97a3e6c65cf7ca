"""Signed view links: the HMAC, its time window, and every way a link can be wrong."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import sample
from sqlalchemy import select

from app.errors import Forbidden
from app.extensions import db
from app.models import AuditEvent
from app.services import files, signing
from app.services.audit import Origin
from app.urls import view_url

TTL, SKEW = 3600, 60


@pytest.fixture
def patient(make_user):
    return make_user("patient")


@pytest.fixture
def pdf(patient, make_file):
    return make_file(patient, "letter.pdf")


@pytest.fixture
def photo(patient, make_file):
    return make_file(patient, "photo.jpg")


def link(file_id: str, now: int | None = None, purpose: str = signing.VIEW, by: int | None = None, **extra) -> str:
    """A link to a file minted for `by` (the file's uploader when not given)."""
    row = files.find_file(file_id)
    by = by if by is not None else (row.creator_id if row is not None else 1)
    code, stamp = signing.sign(purpose, signing.view_subject(file_id, by), now=now)
    query = "&".join(f"{k}={v}" for k, v in {"by": by, "auth_code": code, "time": stamp, **extra}.items())
    return f"/files/view/{file_id}?{query}"


# -- the primitive -------------------------------------------------------------------------------

def test_sign_and_verify(app):
    code, stamp = signing.sign(signing.VIEW, "abc")
    assert len(code) == 64 and int(code, 16) >= 0
    signing.verify(signing.VIEW, "abc", code, str(stamp))
    signing.verify(signing.VIEW, "abc", code.upper(), str(stamp))  # hex is case-insensitive


def test_code_binds_purpose_object_time_and_secret(app):
    code, stamp = signing.sign(signing.VIEW, "abc", now=1_700_000_000)
    now = 1_700_000_010
    for purpose, obj, when in (("other", "abc", stamp), (signing.VIEW, "abd", stamp),
                               (signing.VIEW, "abc", stamp + 1)):
        with pytest.raises(Forbidden):
            signing.verify(purpose, obj, code, str(when), now=now)
    app.config["SECRET_KEY"] = "another-secret"
    with pytest.raises(Forbidden):
        signing.verify(signing.VIEW, "abc", code, str(stamp), now=now)


@pytest.mark.parametrize("age,ok", [(0, True), (TTL, True), (TTL + 1, False), (10 * TTL, False),
                                    (-SKEW, True), (-SKEW - 1, False), (-10 * TTL, False)])
def test_time_window(app, age, ok):
    now = 1_800_000_000
    code, stamp = signing.sign(signing.VIEW, "abc", now=now - age)
    if ok:
        signing.verify(signing.VIEW, "abc", code, str(stamp), now=now)
    else:
        with pytest.raises(Forbidden, match="expired"):
            signing.verify(signing.VIEW, "abc", code, str(stamp), now=now)


@pytest.mark.parametrize("stamp", ["", "abc", "12a4", "-5", "1e9", " 123", "123 ", "123\n", "1" * 13,
                                   "1.5", "0x10", "\u0661\u0662\u0663", "\uff11\uff12", None])
def test_malformed_time_is_forbidden(app, stamp):
    code, _ = signing.sign(signing.VIEW, "abc")
    with pytest.raises(Forbidden):
        signing.verify(signing.VIEW, "abc", code, stamp)


@pytest.mark.parametrize("code", ["", None, "abc", "g" * 64, "0" * 63, "0" * 65, "\u00e9" * 64,
                                  "\U0001f600" * 16, "0" * 10_000, "\x00" * 64])
def test_malformed_code_is_forbidden(app, code):
    _, stamp = signing.sign(signing.VIEW, "abc")
    with pytest.raises(Forbidden):
        signing.verify(signing.VIEW, "abc", code, str(stamp))


# -- through /files/view -------------------------------------------------------------------------

def test_fresh_link_serves_the_bytes(client, pdf):
    resp = client.get(view_url(pdf))
    assert resp.status_code == 200
    assert resp.data == sample("letter.pdf")
    assert resp.mimetype == "application/pdf"
    url = urlsplit(view_url(pdf))
    assert url.path == f"/files/view/{pdf.public_id}"
    assert set(parse_qs(url.query)) == {"by", "auth_code", "time"}  # minted for a user


def test_same_link_under_api_v3(client, pdf):
    url = urlsplit(view_url(pdf))
    resp = client.get(f"/api_v3/files/view/{pdf.public_id}?{url.query}")
    assert resp.status_code == 200 and resp.data == sample("letter.pdf")


@pytest.mark.parametrize("position", [0, 31, 63])
def test_one_tampered_hex_digit_is_403(client, pdf, position):
    code, stamp = signing.sign(signing.VIEW, signing.view_subject(pdf.public_id, pdf.creator_id))
    digit = "0" if code[position] != "0" else "1"
    bad = code[:position] + digit + code[position + 1:]
    resp = client.get(f"/files/view/{pdf.public_id}?by={pdf.creator_id}&auth_code={bad}&time={stamp}")
    assert resp.status_code == 403
    assert resp.json == {"code": 403, "message": "This link is not valid."}


def test_expired_link_is_403(client, pdf):
    resp = client.get(link(pdf.public_id, now=int(time.time()) - TTL - 5))
    assert resp.status_code == 403 and "expired" in resp.json["message"]


@pytest.mark.parametrize("config_overrides", [{"SIGNED_URL_TTL": 5}])
def test_ttl_is_configurable(client, pdf):
    assert client.get(link(pdf.public_id, now=int(time.time()) - 3)).status_code == 200
    assert client.get(link(pdf.public_id, now=int(time.time()) - 30)).status_code == 403


def test_time_beyond_the_skew_is_403(client, pdf):
    assert client.get(link(pdf.public_id, now=int(time.time()) + 10)).status_code == 200
    assert client.get(link(pdf.public_id, now=int(time.time()) + SKEW + 60)).status_code == 403


@pytest.mark.parametrize("stamp", ["abc", "12%2034", "-1", "99999999999999", "%00", "%EF%BC%91", "1%0A"])
def test_malformed_time_in_the_url_is_403(client, pdf, stamp):
    code, _ = signing.sign(signing.VIEW, signing.view_subject(pdf.public_id, pdf.creator_id))
    resp = client.get(f"/files/view/{pdf.public_id}?by={pdf.creator_id}&auth_code={code}&time={stamp}")
    assert resp.status_code == 403 and resp.json["code"] == 403


@pytest.mark.parametrize("code", ["%C3%A9" * 64, "%F0%9F%98%80", "%FF%FE", "x" * 5000, "%00", "",
                                  "zz%20zz"])
def test_non_ascii_or_junk_auth_code_is_403_not_500(client, pdf, code):
    resp = client.get(f"/files/view/{pdf.public_id}?by={pdf.creator_id}&auth_code={code}&time={int(time.time())}")
    assert resp.status_code == 403


def test_missing_parameters_are_403(client, pdf):
    code, stamp = signing.sign(signing.VIEW, signing.view_subject(pdf.public_id, pdf.creator_id))
    by = pdf.creator_id
    for query in (f"?by={by}", f"?by={by}&auth_code={code}", f"?by={by}&time={stamp}", f"?by={by}&auth_code=&time=",
                  f"?auth_code={code}&time={stamp}"):  # the last: whom it was minted for is missing
        assert client.get(f"/files/view/{pdf.public_id}{query}").status_code == 403


def test_link_for_one_file_does_not_open_another(client, pdf, photo):
    code, stamp = signing.sign(signing.VIEW, signing.view_subject(pdf.public_id, pdf.creator_id))
    assert client.get(f"/files/view/{photo.public_id}?by={pdf.creator_id}&auth_code={code}&time={stamp}").status_code == 403


def test_link_of_another_purpose_is_403(client, pdf):
    assert client.get(link(pdf.public_id, purpose="download")).status_code == 403


def test_deleted_file_is_404_even_with_a_good_link(client, pdf, patient):
    url = view_url(pdf)
    files.delete(patient, Origin.cli(), pdf.public_id)
    resp = client.get(url)
    assert resp.status_code == 404 and resp.json["code"] == 404


def test_restored_file_opens_again(client, pdf, patient):
    url = view_url(pdf)
    files.delete(patient, Origin.cli(), pdf.public_id)
    files.restore(Origin.cli(), pdf.public_id)
    assert client.get(url).status_code == 200


def test_unknown_file(client, app):
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.get(link(unknown)).status_code == 404  # signed by us, but no such file
    assert client.get(f"/files/view/{unknown}?auth_code={'0' * 64}&time={int(time.time())}").status_code == 403
    assert client.get(link("not-a-uuid")).status_code == 404
    assert client.get(link("x" * 300)).status_code == 404


def test_missing_blob_is_404_not_500(client, pdf, storage_root):
    (storage_root / pdf.storage_key).unlink()
    resp = client.get(view_url(pdf))
    assert resp.status_code == 404 and "missing" in resp.json["message"]


@pytest.mark.parametrize("size", ["abc", "0x0", "0x10", "10x0", "5000x10", "10x5000", "10x", "x10",
                                  "10x10x10", "-1x5", "10*10", "%EF%BC%91x1", "99999x1", "1.5x2", "10X"])
def test_junk_size_is_400(client, photo, size):
    resp = client.get(link(photo.public_id, size=size))
    assert resp.status_code == 400
    assert resp.json["code"] == 400 and "size" in resp.json["message"]


def test_junk_size_on_a_bad_link_is_still_403(client, photo):
    resp = client.get(f"/files/view/{photo.public_id}?by={photo.creator_id}&auth_code={'0' * 64}&time=1&size=junk")
    assert resp.status_code == 403


def test_each_use_is_audited(client, pdf, db_events=None):
    from app.extensions import db

    before = len(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).all())
    assert client.get(view_url(pdf)).status_code == 200
    assert client.get(view_url(pdf)).status_code == 200
    assert client.get(link(pdf.public_id, now=1)).status_code == 403  # refusals are not views
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).all()
    assert len(events) == before + 2
    assert {e.channel for e in events} == {"link"} and events[-1].file_id == pdf.id


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "abc", "0", "-1"])
def test_junk_preview_page_is_400(client, pdf, value):
    resp = client.get(link(pdf.public_id, preview=value, size="100x100"))
    assert resp.status_code == 400 and resp.json["code"] == 400


def test_a_link_view_is_attributed_to_the_person_it_was_minted_for(client, app, make_user, make_token, make_file):
    patient, provider = make_user("patient"), make_user("provider")
    row = make_file(provider, "letter.pdf", patient=patient)
    fullpath = client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": make_token(patient)}).json[
        "data"]["fullpath"]
    assert f"by={patient.id}" in fullpath and client.get(fullpath).status_code == 200
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "view").order_by(AuditEvent.id)).all()[-1]
    assert (event.actor_id, event.channel, event.actor_role) == (patient.id, "link", "patient")


def test_a_link_stops_working_once_its_person_may_not_see_the_file(client, make_user, make_token, make_file):
    patient, provider = make_user("patient"), make_user("provider")
    row = make_file(provider, "letter.pdf", patient=patient)
    fullpath = client.get(f"/api_v3/files/{row.public_id}", headers={"X-ApiToken": make_token(patient)}).json[
        "data"]["fullpath"]
    files.set_visible(provider, Origin.cli(), row.public_id, False)  # hidden from the patient again
    assert client.get(fullpath).status_code == 404
    files.set_visible(provider, Origin.cli(), row.public_id, True)
    assert client.get(fullpath).status_code == 200
    other = make_user("patient")
    forged = fullpath.replace(f"by={patient.id}", f"by={other.id}")
    assert client.get(forged).status_code == 403  # the person is inside the signature


def test_a_rejected_link_is_audited(client, pdf):
    client.get(f"/files/view/{pdf.public_id}?by={pdf.creator_id}&auth_code={'0' * 64}&time={int(time.time())}")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "refused")).one()
    assert event.outcome == "refused" and event.detail["reason"] == "signed link rejected"
