"""The OpenAPI document is valid 3.1 and describes exactly the API routes the app serves."""
import re

from openapi_spec_validator import validate

from app.api.openapi import load_spec

# Blueprints of the pages (server-rendered HTML, not the API) and Flask's static files.
PAGE_BLUEPRINTS = {"home", "auth", "documents", "chart", "export", "language"}
METHODS = {"get", "put", "post", "delete", "patch"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule)  # <conv(args):name> too


def _api_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.split(".")[0] in PAGE_BLUEPRINTS:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), _openapi_path(rule.rule)))
    return routes


def test_spec_is_valid_openapi_31(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_api_route_is_documented(app):
    paths = load_spec()["paths"]
    missing = sorted(f"{m.upper()} {p}" for m, p in _api_routes(app) if m not in paths.get(p, {}))
    assert not missing, "undocumented routes: " + ", ".join(missing)


def test_every_documented_operation_exists(app):
    served = _api_routes(app)
    stale = sorted(f"{m.upper()} {path}" for path, item in load_spec()["paths"].items()
                   for m in item if m in METHODS and (m, path) not in served)
    assert not stale, "documented but not served: " + ", ".join(stale)


def test_every_dialect_is_described(app):
    paths = load_spec()["paths"]
    for path in ("/api_v3/files", "/files/view/{file_id}", "/patients/{patient_id}/pdf",
                 "/tscharts/v1/image/", "/images/v1", "/api/encounter-attachments/v1/{encounter_id}",
                 "/fhir/R4/DocumentReference", "/fhir/R4/Binary/{binary_id}", "/fhir/R4/Patient"):
        assert path in paths
