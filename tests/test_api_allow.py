"""The API contract issue, piece by piece. Undeclared methods answer 405 with the path's own Allow: where a
route's variable segment sits beside a fixed path, the fixed path never borrows its methods."""
from __future__ import annotations

import pytest

from app.models import Role
from app.services import accounts

ATTACHMENTS = "/api/encounter-attachments/v1"


@pytest.fixture
def bearer(make_user, make_token) -> dict:
    return {"Authorization": f"Bearer {make_token(make_user(Role.PROVIDER))}"}


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
def test_the_charge_capture_upload_takes_only_post(client, bearer, method):
    resp = client.open(f"{ATTACHMENTS}/create-from-charge-capture-external-id", method=method, headers=bearer)
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert resp.get_json()["errorName"] == "MethodNotAllowedError"  # Candid's error shape


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_the_vsee_export_takes_only_get(client, make_user, make_token, method):
    """POST /api_v3/files/export was a rename of a file named "export" (400), DELETE its delete."""
    token = make_token(make_user(Role.PROVIDER))
    resp = client.open("/api_v3/files/export", method=method, headers={"X-ApiToken": token})
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert set(resp.get_json()) == {"code", "message"}  # VSee's error shape


def test_an_images_content_never_offers_the_versions_methods(client, bearer):
    allow = client.options("/images/v1/8c7c02fa-718c-4774-917b-dc36a57798c1/content", headers=bearer).headers["Allow"]
    assert set(allow.split(", ")) == {"GET", "HEAD", "PUT", "OPTIONS"}
    resp = client.delete("/images/v1/8c7c02fa-718c-4774-917b-dc36a57798c1/content", headers=bearer)
    assert resp.status_code == 405 and "DELETE" not in resp.headers["Allow"]


def test_encounter_and_version_routes_still_take_any_other_segment(client, bearer, make_user):
    visit = accounts.create_visit(make_user(), reason="Skin check")
    assert client.get(f"{ATTACHMENTS}/{visit.public_id}", headers=bearer).status_code == 200
    unknown = client.put("/images/v1/8c7c02fa-718c-4774-917b-dc36a57798c1/1", headers=bearer, json={})
    assert unknown.status_code == 404 and unknown.get_json()["errorName"]  # the service's answer, as before



@pytest.mark.parametrize("per_page, used", [("1", "1"), ("500", "500"), ("501", "500"), ("100000", "500")])
def test_vsee_page_size_is_capped_as_the_document_says(client, make_user, make_token, per_page, used):
    """The document states no maximum for per_page but the cap, and X-Per-Page tells what was used."""
    from app.api.openapi import load_spec

    [param] = [p for p in load_spec()["paths"]["/api_v3/files"]["get"]["parameters"] if p.get("name") == "per_page"]
    assert "maximum" not in param["schema"] and "capped" in param["description"]
    resp = client.get(f"/api_v3/files?per_page={per_page}", headers={"X-ApiToken": make_token(make_user())})
    assert resp.status_code == 200 and resp.headers["X-Per-Page"] == used
    assert client.get("/api_v3/files?per_page=0", headers={"X-ApiToken": make_token(make_user())}).status_code == 400
