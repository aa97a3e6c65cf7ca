"""The OpenAPI document is valid 3.1 and describes every route the app serves."""
import re

import pytest
from openapi_spec_validator import validate

from app.api.openapi import load_spec

# Routes that are not part of the API: pages, static files, and the page-side JSON helpers.
NOT_API = re.compile(r"^/($|static/|login|logout|documents|patients|profile|account|uploads?/|me\b|web/)")


def test_spec_is_valid_openapi_31(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def _openapi_path(rule: str) -> str:
    path = re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule)
    return path


def test_every_api_route_is_documented(app):
    paths = load_spec()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if NOT_API.match(rule.rule) or rule.endpoint == "static":
            continue
        documented = paths.get(_openapi_path(rule.rule))
        methods = sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS"))
        for method in methods:
            if documented is None or method.lower() not in documented:
                missing.append(f"{method} {rule.rule}")
    assert not missing, "undocumented routes: " + ", ".join(missing)


@pytest.mark.parametrize("path", ["/api_v3/files", "/files/view/{file_id}"])
def test_documents_vsee(path):
    assert path in load_spec()["paths"]
