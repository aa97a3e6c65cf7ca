"""/api/docs: the OpenAPI document for people — vendored Swagger UI, the pages' CSP, one group
per dialect, and a link to it in the staff footer."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from app.api.openapi import load_spec
from app.models import Role
from app.web import PAGE_CSP

VENDOR = Path(__file__).resolve().parents[1] / "static" / "vendor" / "swagger-ui"
# Swagger UI 5.35.0 from the npm registry (swagger-ui-dist), unchanged.
DIGESTS = {
    "swagger-ui-bundle.js": "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    "swagger-ui.css": "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
}


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_the_vendored_files_are_swagger_ui_as_published(name):
    assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == DIGESTS[name]


def test_the_page_loads_only_its_own_files_under_the_pages_csp(client):
    resp = client.get("/api/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.headers["Content-Security-Policy"] == PAGE_CSP
    html = resp.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|svg))"', html)
    assert {"/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/api-docs.js"} <= set(assets)
    for asset in assets:  # every script and style it names is served from here
        assert asset.startswith("/static/")
        assert client.get(asset).status_code == 200
    assert 'data-spec="/api/openapi.json"' in html
    assert "<script>" not in html and " style=" not in html  # nothing inline for the CSP to refuse


def test_each_dialects_group_says_how_it_takes_its_token():
    """The page groups operations by tag; each dialect's tag names its credential."""
    tags = {t["name"]: t["description"] for t in load_spec()["tags"]}
    expected = {"vsee": "X-ApiToken", "claros": "X-API-Key", "tscharts": "Authorization: Token",
                "candid-images": "Authorization: Bearer", "candid-attachments": "Authorization: Bearer",
                "links": "no token"}
    for tag, credential in expected.items():
        assert credential in tags[tag]


def test_the_document_lists_the_page(client):
    assert "/api/docs" in client.get("/api/openapi.json").get_json()["paths"]


def test_staff_see_a_link_to_it_in_the_footer_and_patients_do_not(make_user, make_page_client):
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    staff_page = make_page_client(provider).get("/patients").get_data(as_text=True)
    assert 'href="/api/docs"' in staff_page
    patient_page = make_page_client(patient).get("/documents").get_data(as_text=True)
    assert 'href="/api/docs"' not in patient_page
