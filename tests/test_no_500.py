"""A sweep of every route with junk ids, junk queries and junk bodies: never a 500.

Each request goes through the real app with valid credentials for its door, so the junk reaches
the views and services rather than stopping at authentication. Any exception or 5xx is listed.
"""
from __future__ import annotations

import io
import itertools
import json
import re

import pytest
from conftest import sample

from app.models import Category, Role

JUNK_SEGMENTS = ["0", "abc", "\u00b2", "9" * 25, "..%2F..%2Fetc", "%00", "\u00fcn\u00efcode",
                 "00000000-0000-0000-0000-000000000000"]
JUNK_QUERY = ("page=%C2%B2&per_page=-1&target_id=abc&target_type=zzz&category_type=x&include_shared=%00"
              "&size=99999x1&time=abc&auth_code=%C3%BC&preview=%C2%B2&sort=True&newest=x&patient=%C2%B2"
              "&clinic=-1&station=1e9&type=xray&sort_field=x&sort_direction=up&patient_id=%C2%B2"
              "&attachment_id=%00&by=%C2%B2&download=2&q=%25_%5C&next=//evil.example"
              "&_count=%C2%B2&_page=0&_sort=x&date=ge%00&birthdate=2024-02-30&subject=Encounter/1&status=%00"
              "&identifier=%7C&name=%25&_format=%00")


def _bodies():
    yield "none", {}
    yield "bad json", {"data": b'{"name": ', "content_type": "application/json"}
    yield "json list", {"json": [1, 2, 3]}
    yield "json junk types", {"json": {
        "name": 5, "file_name": [], "display_name": {}, "file_type": None, "status": "DONE",
        "coverage": {"id": 1, "side": "LEFT"}, "patient": {"id": [2]}, "type": "Xray", "data": 7,
        "username": None, "password": 3, "attachment_id": {"x": 1}}}
    yield "deep json", {"data": ("[" * 5000 + "]" * 5000).encode(), "content_type": "application/json"}
    yield "multipart junk", {"data": {
        "file": (io.BytesIO(b""), ""), "attachment_file": (io.BytesIO(b"\x00\x01"), "x.pdf"),
        "meta.category": "nope", "meta.target.type": "visit", "meta.target.id": "\u00b2",
        "attachment_type": '"NOPE"', "filename": "a.exe", "name": "\u202e", "files": (io.BytesIO(b"%PDF-"), "t.pdf"),
        "charge_capture_external_id": "x" * 5000}, "content_type": "multipart/form-data"}
    yield "form junk", {"data": {"name": "", "csrf_token": "junk", "username": "x", "password": ""}}


@pytest.fixture
def world(make_user, make_token, make_visit, make_file):
    provider = make_user(Role.PROVIDER)
    patient = make_user(Role.PATIENT)
    visit = make_visit(patient, external_id="ext-1")
    doc = make_file(provider, "letter.pdf", patient=patient)
    image = make_file(patient, "photo.jpg", visit=visit, category=Category.INTAKE_ATTACHMENT)
    token = make_token(provider)
    return {"provider": provider, "patient": patient, "visit": visit, "doc": doc, "image": image,
            "token": token}


def _headers(path: str, token: str) -> dict:
    if path.startswith("/tscharts/"):
        return {"Authorization": f"Token {token}"}
    if path.startswith(("/images/", "/api/encounter-attachments/", "/fhir/")):
        return {"Authorization": f"Bearer {token}"}
    return {"X-ApiToken": token, "X-API-Key": token}


def _urls(rule, world) -> list[str]:
    """The rule with real ids and with junk in each path argument."""
    real = {"file_id": world["doc"].public_id, "encounter_id": world["visit"].public_id,
            "external_id": "ext-1", "image_id": str(world["image"].id), "version": "1",
            "patient_id": str(world["patient"].id), "filename": "chartbox.css",
            "doc_id": world["doc"].public_id, "binary_id": world["doc"].public_id}
    names = re.findall(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([a-z_]+)>", rule.rule)
    values = [real] + [{n: junk for n in names} for junk in JUNK_SEGMENTS] if names else [real]
    urls = []
    for mapping in values:
        url = rule.rule
        for name in names:
            url = re.sub(rf"<(?:[a-z_]+(?:\([^)]*\))?:)?{name}>", mapping.get(name, real.get(name, "1")), url)
        urls.append(url)
    return list(dict.fromkeys(urls))


def test_no_route_answers_500_to_junk(app, world, make_page_client):
    pages = make_page_client(world["provider"])
    api = app.test_client()
    failures = []
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    for rule in sorted(rules, key=lambda r: r.rule):
        methods = [*sorted(rule.methods - {"HEAD", "OPTIONS"}), "PUT"]  # and one method it lacks
        for url, method, (label, body), with_query in itertools.product(
                _urls(rule, world), methods, _bodies(), (False, True)):
            if with_query and label != "none":
                continue  # junk queries once per url and method is enough
            target = f"{url}?{JUNK_QUERY}" if with_query else url
            client = pages if not rule.rule.startswith(("/api", "/files", "/images", "/tscharts", "/fhir")) \
                and not rule.rule.endswith(("/pdf", "/pdf/")) else api
            kwargs = {k: (v if not isinstance(v, dict) else _fresh(v)) for k, v in body.items()}
            try:
                resp = client.open(target, method=method, headers=_headers(url, world["token"]), **kwargs)
                status = resp.status_code
            except Exception as exc:  # noqa: BLE001 - every escape is a finding
                failures.append(f"{method} {target} [{label}]: {type(exc).__name__}: {exc}"[:300])
                continue
            if status >= 500:
                failures.append(f"{method} {target} [{label}]: {status}")
    assert not failures, f"{len(failures)} requests failed:\n" + "\n".join(failures[:40])


def _fresh(data: dict) -> dict:
    """Multipart file tuples are consumed by a request; give each request its own."""
    return {k: ((io.BytesIO(v[0].getvalue()), v[1]) if isinstance(v, tuple) else v) for k, v in data.items()}


def test_the_sweep_reaches_the_views(client, world):
    """Guard against a sweep that only ever sees 401s: real credentials get real answers."""
    resp = client.get(f"/api_v3/files/{world['doc'].public_id}", headers=_headers("/api_v3", world["token"]))
    assert resp.status_code == 200
    resp = client.post("/tscharts/v1/image/", headers=_headers("/tscharts/", world["token"]),
                       data=json.dumps({"type": "Xray", "patient": world["patient"].id, "data": "%%%"}),
                       content_type="application/json")
    assert resp.status_code == 400
    assert sample("letter.pdf")  # the samples the world is made of are real
