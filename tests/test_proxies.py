"""Behind a load balancer: forwarded headers count only when TRUSTED_PROXIES says so."""
import io

import pytest
from conftest import sample
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Role

FORWARDED = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "docs.clinic.example"}


def _upload(client, make_user, make_token):
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    resp = client.post("/api_v3/files", headers={"X-ApiToken": make_token(provider), **FORWARDED},
                       data={"file": (io.BytesIO(sample("letter.pdf")), "letter.pdf"),
                             "meta.target.id": str(patient.id)})
    assert resp.status_code == 200
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "upload")).one()
    return resp.get_json()["data"]["fullpath"], event.ip


@pytest.mark.parametrize("config_overrides", [{"TRUSTED_PROXIES": 1, "SERVER_NAME": None}])
def test_trusted_proxy_headers_shape_links_and_the_audit_trail(client, make_user, make_token, config_overrides):
    fullpath, ip = _upload(client, make_user, make_token)
    assert fullpath.startswith("https://docs.clinic.example/files/view/")
    assert ip == "198.51.100.7"


@pytest.mark.parametrize("config_overrides", [{"SERVER_NAME": None}])
def test_forwarded_headers_are_ignored_by_default(client, make_user, make_token, config_overrides):
    fullpath, ip = _upload(client, make_user, make_token)
    assert fullpath.startswith("http://localhost/files/view/")
    assert ip == "127.0.0.1"  # a client cannot forge its address into the audit trail


@pytest.mark.parametrize("config_overrides", [{"SERVER_NAME": None}])
def test_a_forged_host_header_never_reaches_a_link(client, make_user, make_token, config_overrides):
    """`Host: evil.example` must not make fullpath (with its auth_code) or Link point elsewhere."""
    provider, patient = make_user(Role.PROVIDER), make_user(Role.PATIENT)
    headers = {"X-ApiToken": make_token(provider), "Host": "evil.example"}
    for _ in range(2):
        client.post("/api_v3/files", headers=headers, data={"file": (io.BytesIO(sample("notes.txt")), "notes.txt"),
                                                            "meta.target.id": str(patient.id)})
    listed = client.get(f"/api_v3/files?target_id={patient.id}&per_page=1", headers=headers)
    assert listed.status_code == 200
    assert listed.json["data"][0]["fullpath"].startswith("http://localhost/files/view/")
    assert listed.headers["Link"].startswith("<http://localhost/api_v3/files?")
    assert "evil.example" not in listed.get_data(as_text=True) + listed.headers["Link"]


@pytest.mark.parametrize("config_overrides", [{"PUBLIC_URL": "https://files.clinic.example/"}])
def test_public_url_decides_every_absolute_link(client, make_user, make_token, config_overrides):
    fullpath, _ = _upload(client, make_user, make_token)
    assert fullpath.startswith("https://files.clinic.example/files/view/")


def test_api_answers_are_never_cached(client, make_user, make_token):
    headers = {"X-ApiToken": make_token(make_user(Role.PROVIDER))}
    for resp in (client.get("/api_v3/files", headers=headers), client.get("/api_v3/files/nope", headers=headers),
                 client.get("/tscharts/v1/image/", headers={"Authorization": "Token nope"})):
        assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Content-Type-Options"] == "nosniff"
