"""Statements per request stay constant as a chart grows: no N+1 in the listings.

Two charts in one clinic, one of 5 files and one of 60 (documents, visit attachments across
several visits, consents; uploaded by the patient and by several providers, so a lazy load per
creator or per visit would show), are listed through every door; a listener on the engine counts
the statements each request runs. Each request starts from an empty session (as a real request
does: the test's app context would otherwise keep the rows loaded by the set-up). Runs on either
engine (CHARTBOX_TEST_DATABASE).
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import db_switch
import pytest
from conftest import base_config, sample
from sqlalchemy import event

from app import create_app
from app.api.candid.models import CandidImage
from app.api.tscharts.models import ChartImage, ImageType
from app.extensions import db
from app.models import Category, Channel, Role, User
from app.services import accounts, files
from app.services.audit import Origin
from app.urls import view_url

SMALL, LARGE = 5, 60
CLI = Origin(Channel.CLI)
PASSWORD = "correct horse battery"


@dataclass
class Chart:
    patient_id: int
    patient_username: str
    visit_ids: list[str]
    file_ids: list[str]


def fill_chart(patient: User, staff: list[User], n: int, make_visit: Callable[[User], object]) -> Chart:
    """`n` files in `patient`'s chart, round-robin over kinds and uploaders (every eighth one
    deleted); every file the patient may see is visible, so
    patient and provider pages list the same rows."""
    visits = [make_visit(patient) for _ in range(4)]
    uploaders = [patient, *staff]
    made = []
    for i in range(n):
        actor = uploaders[i % len(uploaders)]
        name, data = ("scan.png", sample("scan.png")) if i % 3 == 0 else ("notes.txt", sample("notes.txt"))
        kind = i % 4
        if kind == 1:
            target, category = files.Target.chart(patient, visits[(i // 4) % len(visits)]), Category.INTAKE_ATTACHMENT
        elif kind == 2:
            target, category = files.Target.chart(patient), Category.USER_CONSENT
        else:
            target, category = files.Target.chart(patient), Category.USER_DOCUMENT
        row = files.upload(actor, CLI, io.BytesIO(data), f"{i}-{name}", category, target)
        if not row.visible:
            files.set_visible(staff[0], CLI, row.public_id, True)
        if name == "scan.png" and category == Category.USER_DOCUMENT and actor.is_staff:
            db.session.add(ChartImage(file_id=row.id, image_type=ImageType.XRAY.value, clinic=1, station=2))
            db.session.add(CandidImage(account_id=patient.account_id, updating_user_id=actor.id,
                                       file_name=row.name, display_name=row.name, file_type="image/png",
                                       status="UPLOADED", patient_id=patient.id, file_id=row.id))
            db.session.commit()
        made.append(row.public_id)
    for n, file_id in enumerate(made[4::8]):  # documents (i % 4 == 0), deleted by one staff member after another
        files.delete(staff[n % len(staff)], CLI, file_id, reason="duplicate")
    return Chart(patient.id, patient.username, [v.public_id for v in visits], made)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app (and database) for the module: the charts take a while to upload."""
    root = tmp_path_factory.mktemp("query-counts")
    app = create_app(base_config(root), instance_path=str(root / "instance"))
    with app.app_context():
        if not db_switch.ON_POSTGRES:
            db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def charts(app):
    clinic = accounts.create_account("counts", "Counting Clinic")

    def user(role: Role, username: str) -> User:
        return accounts.create_user(clinic, role, username, username.title(), f"{username}@example.org", PASSWORD)

    provider = user(Role.PROVIDER, "dr.first")
    staff = [provider, *(user(Role.PROVIDER, f"dr.{n}") for n in range(5)), user(Role.ADMIN, "admin")]
    small = fill_chart(user(Role.PATIENT, "small.chart"), staff, SMALL, accounts.create_visit)
    large = fill_chart(user(Role.PATIENT, "large.chart"), staff, LARGE, accounts.create_visit)
    # The directory: a search finding 3 patients and one finding a full page (WEB_PAGE_SIZE 25)
    # of 30, a third of them with a profile picture.
    for prefix, n in (("few", 3), ("many", 30)):
        for i in range(n):
            person = user(Role.PATIENT, f"{prefix}.{i}")
            if i % 3 == 0:
                files.upload(person, CLI, io.BytesIO(sample("scan.png")), "me.png", Category.USER_AVATAR,
                             files.Target.chart(person))
    return {"small": small, "large": large, "provider_id": provider.id, "provider_username": provider.username}


class Counter:
    """Counts the statements the app's engine runs inside `count()`."""

    def __init__(self, app):
        self.app = app
        self.statements: list[str] = []

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)

    def count(self, request: Callable[[], object]) -> tuple[object, list[str]]:
        db.session.remove()  # a request's own session: nothing preloaded by the set-up
        self.statements = []
        event.listen(db.engine, "before_cursor_execute", self._seen)
        try:
            resp = request()
        finally:
            event.remove(db.engine, "before_cursor_execute", self._seen)
        db.session.remove()
        return resp, self.statements


def _same_count(app, requests: dict[str, Callable[[], object]], status: int = 200) -> dict[str, int]:
    """Run each request (once to warm up, then counted), check its status, and assert the small
    and the large chart take the same number of statements."""
    counter = Counter(app)
    counts, seen = {}, {}
    for label, request in requests.items():
        request()  # warm-up: renditions, first-use caches
        resp, statements = counter.count(request)
        assert resp.status_code == status, (label, resp.status_code, resp.get_data(as_text=True)[:500])
        counts[label], seen[label] = len(statements), statements
    assert counts["small"] == counts["large"], "\n".join(
        f"{label}: {n} statements\n  " + "\n  ".join(s.split("\n")[0][:160] for s in seen[label])
        for label, n in counts.items())
    return counts


def _token(make_token, user_id: int) -> str:
    return make_token(db.session.get(User, user_id))


def test_vsee_list_page(app, client, charts, make_token):
    headers = {"X-ApiToken": _token(make_token, charts["provider_id"])}

    def listing(chart: Chart):
        return lambda: client.get(f"/api_v3/files?target_type=user&target_id={chart.patient_id}&page=1&per_page=50",
                                  headers=headers)

    counts = _same_count(app, {"small": listing(charts["small"]), "large": listing(charts["large"])})
    assert counts["large"] <= 8, counts


def test_vsee_visit_listing(app, client, charts, make_token):
    headers = {"X-ApiToken": _token(make_token, charts["provider_id"])}

    def listing(chart: Chart):
        return lambda: client.get(f"/api_v3/files?target_type=visit&target_id={chart.visit_ids[0]}", headers=headers)

    _same_count(app, {"small": listing(charts["small"]), "large": listing(charts["large"])})


def test_documents_page_of_a_patient(app, charts, make_page_client):
    pages = {}
    for label in ("small", "large"):
        client = make_page_client(db.session.get(User, charts[label].patient_id))
        pages[label] = lambda client=client: client.get("/documents")
    counts = _same_count(app, pages)
    assert counts["large"] <= 12, counts


@pytest.mark.parametrize("query", ["q=chartbox", "q=sample+letter&kind=pdf&sort=name&view=grid",
                                   "source=team&from=2000-01-01&to=2100-01-01&sort=-size"])
def test_searching_documents_takes_the_same_statements(app, charts, make_page_client, query):
    """A search (words in names and inside the PDFs) and filters: as many statements as a
    plain listing, whatever the chart's size."""
    pages = {}
    for label in ("small", "large"):
        client = make_page_client(db.session.get(User, charts[label].patient_id))
        pages[label] = lambda client=client: client.get(f"/documents?{query}")
    counts = _same_count(app, pages)
    assert counts["large"] <= 12, counts
    provider = make_page_client(db.session.get(User, charts["provider_id"]))
    _same_count(app, {label: (lambda chart=charts[label]: provider.get(f"/patients/{chart.patient_id}?{query}"))
                      for label in ("small", "large")})


def test_visits_page_of_a_patient(app, charts, make_page_client):
    pages = {}
    for label in ("small", "large"):
        client = make_page_client(db.session.get(User, charts[label].patient_id))
        pages[label] = lambda client=client: client.get("/documents/visits")
    _same_count(app, pages)


@pytest.mark.parametrize("tab", ["", "/visits", "/consents", "/trash"])
def test_chart_pages_for_a_provider(app, charts, make_page_client, tab):
    client = make_page_client(db.session.get(User, charts["provider_id"]))
    counts = _same_count(app, {label: (lambda chart=charts[label]: client.get(f"/patients/{chart.patient_id}{tab}"))
                               for label in ("small", "large")})
    assert counts["large"] <= 12, counts


def test_patients_directory(app, charts, make_page_client):
    """3 patients found or a page of 25 (with their profile pictures): the same statements."""
    client = make_page_client(db.session.get(User, charts["provider_id"]))
    counts = _same_count(app, {"small": lambda: client.get("/patients?q=few."),
                               "large": lambda: client.get("/patients?q=many.")})
    assert counts["large"] <= 8, counts


def test_candid_image_search(app, client, charts, make_token):
    headers = {"Authorization": f"Bearer {_token(make_token, charts['provider_id'])}"}
    counts = _same_count(app, {
        label: (lambda chart=charts[label]: client.get(f"/images/v1?patient_id={chart.patient_id}", headers=headers))
        for label in ("small", "large")})
    assert counts["large"] <= 8, counts


def test_candid_encounter_attachments(app, client, charts, make_token):
    headers = {"Authorization": f"Bearer {_token(make_token, charts['provider_id'])}"}
    _same_count(app, {
        label: (lambda chart=charts[label]: client.get(f"/api/encounter-attachments/v1/{chart.visit_ids[0]}",
                                                       headers=headers))
        for label in ("small", "large")})


def test_tscharts_image_search(app, client, charts, make_token):
    headers = {"Authorization": f"Token {_token(make_token, charts['provider_id'])}"}
    counts = _same_count(app, {
        label: (lambda chart=charts[label]: client.get(f"/tscharts/v1/image/?patient={chart.patient_id}",
                                                       headers=headers))
        for label in ("small", "large")})
    assert counts["large"] <= 8, counts


@pytest.mark.parametrize("size", [None, "128x128"])
def test_signed_link_view(app, client, charts, size):
    links = {}
    for label in ("small", "large"):
        row = files.find_file(charts[label].file_ids[0])  # a PNG (every third file is one)
        assert row is not None and row.is_image
        url = urlsplit(view_url(row, db.session.get(User, charts[label].patient_id), size=size))
        links[label] = lambda url=url: client.get(f"{url.path}?{url.query}")
    counts = _same_count(app, links)
    assert counts["large"] <= 8, counts
