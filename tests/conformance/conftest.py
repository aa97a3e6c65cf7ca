"""A live Chartbox for the vendor-SDK conformance tests.

A werkzeug server runs the app in a thread on 127.0.0.1 (a free port), on a tmp_path SQLite
database and storage, as tests/browser/test_pages_in_chromium.py does. It is seeded through the
public service calls only: one clinic, a provider with a password and an API token, a patient,
and a visit of the patient that carries an external id (for Candid's charge capture) plus one
without.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from conftest import base_config
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import Role
from app.services import accounts

PASSWORD = "correct horse battery"
EXTERNAL_ID = "claim-42"


def _visit_uuid(visit) -> str:
    """The visit's UUID, which Candid calls the encounter id (the one model attribute read here)."""
    return visit.public_id


@dataclass
class Live:
    """A running server, its address and what was seeded into it."""

    app: object
    host: str
    port: int
    clinic_code: str
    provider_id: int
    provider_username: str
    provider_email: str
    patient_id: int
    patient_username: str
    token: str
    visit_id: str  # encounter UUID, external id EXTERNAL_ID
    spare_visit_id: str  # encounter UUID, no external id
    external_id: str = EXTERNAL_ID
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def new_visit(self, external_id: str | None = None) -> str:
        """Open another visit of the patient (as `chartbox visits create` would); its UUID."""
        with self.app.app_context():
            visit = accounts.create_visit(accounts.get_user(self.patient_username), external_id)
            return _visit_uuid(visit)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    config = {**base_config(root), "SERVER_NAME": None}  # links name the live host
    app = create_app(config, instance_path=str(root / "instance"))
    with app.app_context():
        db.create_all()
        clinic = accounts.create_account("sunrise", "Sunrise Family Clinic")
        provider = accounts.create_user(clinic, Role.PROVIDER, "dr.rivera", "Ana Maria Rivera",
                                        "ana@example.org", PASSWORD)
        patient = accounts.create_user(clinic, Role.PATIENT, "alice", "Alice Moreno",
                                       "alice@example.org", None)
        token = accounts.create_token(provider, name="conformance")[1]
        visit = accounts.create_visit(patient, EXTERNAL_ID)
        spare = accounts.create_visit(patient)
        seeded = dict(clinic_code=clinic.code, provider_id=provider.id,
                      provider_username=provider.username, provider_email=provider.email,
                      patient_id=patient.id, patient_username=patient.username, token=token,
                      visit_id=_visit_uuid(visit), spare_visit_id=_visit_uuid(spare))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Live(app=app, host="127.0.0.1", port=server.server_port, **seeded)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()
