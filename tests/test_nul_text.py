"""A NUL character in any text a client sends is a 4xx, never a 500.

PostgreSQL's text columns cannot hold NUL (the driver refuses the query), SQLite's can; either way
no id, name or search with one in it may reach the database as it is. Runs on either engine
(CHARTBOX_TEST_DATABASE=postgresql is where it matters).
"""
from __future__ import annotations

import io

import pytest
from conftest import sample

from app.models import Category, Role

NUL36 = "0" * 17 + "\x00" + "0" * 18  # as long as a UUID, so it passes the length checks


@pytest.fixture
def world(make_user, make_token, make_visit, make_file):
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    visit = make_visit(patient, external_id="ext-1")
    doc = make_file(provider, "letter.pdf", patient=patient)
    return {"provider": provider, "patient": patient, "visit": visit, "doc": doc, "token": make_token(provider)}


def _api_calls(world):
    p, v, doc = world["patient"], world["visit"], world["doc"]
    vsee = {"X-ApiToken": world["token"]}
    bearer = {"Authorization": f"Bearer {world['token']}"}
    token = {"Authorization": f"Token {world['token']}"}
    return [
        ("GET", f"/api_v3/files/{NUL36}", vsee, {}),
        ("GET", f"/api_v3/files?target_type=visit&target_id={NUL36}", vsee, {}),
        ("POST", f"/api_v3/files/{doc.public_id}", vsee, {"json": {"name": "a\x00b.pdf"}}),
        ("POST", "/api_v3/files", vsee, {"data": {"file": (io.BytesIO(sample("notes.txt")), "n\x00.txt"),
                                                  "meta.target.id": str(p.id)}}),
        ("GET", f"/files/view/{NUL36}?auth_code=00&time=1", {}, {}),
        ("GET", f"/images/v1/{NUL36}", bearer, {}),
        ("GET", "/images/v1?coverage_id=%00&patient_notes=%00&file_type=%00", bearer, {}),
        ("POST", "/images/v1", bearer, {"json": {"file_name": "a\x00.png", "display_name": "D\x00",
                                                 "file_type": "image/png", "status": "PENDING",
                                                 "patient": {"id": str(p.id), "notes": "x\x00"},
                                                 "coverage": {"id": "c\x00", "side": "FRONT"}}}),
        ("GET", f"/api/encounter-attachments/v1/{NUL36}", bearer, {}),
        ("GET", "/api/encounter-attachments/v1/by-charge-capture-external-id/a%00b", bearer, {}),
        ("POST", "/api/encounter-attachments/v1/create-from-charge-capture-external-id", bearer, {"data": {
            "attachment_file": (io.BytesIO(sample("letter.pdf")), "l.pdf"), "attachment_type": '"OTHER"',
            "charge_capture_external_id": "e\x00"}}),
        ("PUT", f"/api/encounter-attachments/v1/{v.public_id}/v2", bearer, {"data": {
            "attachment_file": (io.BytesIO(sample("letter.pdf")), "l\x00.pdf"), "attachment_type": '"OTHER"',
            "description": "d\x00"}}),
        ("POST", "/tscharts/v1/login/", {}, {"json": {"username": "u\x00", "password": "p"}}),
        ("GET", f"/tscharts/v1/image/?patient={p.id}", token, {}),
    ]


def no_500s(calls) -> None:
    """Send each (client, method, url, kwargs); none may escape as an exception or answer 5xx."""
    failures = []
    for client, method, url, kwargs in calls:
        try:
            resp = client.open(url, method=method, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every escape is a finding
            failures.append(f"{method} {url}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        if resp.status_code >= 500:
            failures.append(f"{method} {url}: {resp.status_code}")
    assert not failures, "\n".join(failures)


def test_api_text_with_nul_is_never_a_500(app, client, world):
    no_500s([(client, method, url, {"headers": headers, **kwargs}) for method, url, headers, kwargs in _api_calls(world)])


def test_pages_with_nul_are_never_a_500(app, world, make_page_client):
    page = make_page_client(world["provider"])
    p = world["patient"]
    calls = [
        ("GET", "/patients?q=a%00b", {}),
        ("GET", f"/documents/{NUL36}/history", {}),
        ("POST", f"/patients/{p.id}/visits", {"data": {"csrf_token": page.csrf(f"/patients/{p.id}/visits"),
                                                        "external_id": "v\x00", "reason": "r\x00"}}),
        ("POST", f"/documents/{world['doc'].public_id}/rename", {"data": {"csrf_token": page.csrf("/patients"),
                                                                           "name": "n\x00.pdf"}}),
    ]
    anonymous = make_page_client()
    calls = [(page, *call) for call in calls] + [
        (anonymous, "POST", "/login", {"data": {"csrf_token": anonymous.csrf("/login"), "username": "u\x00",
                                                "password": "p"}})]
    no_500s(calls)


@pytest.mark.parametrize("category", [Category.USER_DOCUMENT])
def test_nul_names_on_upload_are_cleaned(client, world, category):
    resp = client.post("/api_v3/files", headers={"X-ApiToken": world["token"]}, data={
        "file": (io.BytesIO(sample("notes.txt")), "no\x00tes.txt"), "meta.target.id": str(world["patient"].id),
        "meta.category": category.value})
    assert resp.status_code in (200, 400), resp.get_json()
    if resp.status_code == 200:
        assert "\x00" not in resp.get_json()["data"]["name"]
