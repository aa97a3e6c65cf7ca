"""Providers' pages through the test client: patients, chart tabs, sharing, visits, scope."""
import io

import pytest
from conftest import sample
from sqlalchemy import select

from app.extensions import db
from app.models import Category, StoredFile, Visit


@pytest.fixture
def people(make_user, make_account):
    other = make_account("clinic-b", "Clinic B")
    return {
        "provider": make_user("provider", full_name="Dr. Ana Rivera"),
        "alice": make_user(full_name="Alice Moreno"),
        "bob": make_user(full_name="Bob Okafor"),
        "outsider": make_user("provider", account=other, full_name="Dr. Elsewhere"),
        "carol": make_user(account=other, full_name="Carol Other"),
    }


def test_patient_list_and_search(make_page_client, people):
    client = make_page_client(people["provider"])
    page = client.get("/patients").get_data(as_text=True)
    assert "Alice Moreno" in page and "Bob Okafor" in page and "2 patients" in page
    assert "Carol Other" not in page and "patient-name\">Dr. Ana Rivera" not in page
    found = client.get("/patients?q=alice").get_data(as_text=True)
    assert "Alice Moreno" in found and "Bob Okafor" not in found and "1 match for “alice”" in found
    none = client.get("/patients?q=zzz").get_data(as_text=True)
    assert "No patients match “zzz”" in none
    for wildcard in ("%", "_"):  # typed characters, not SQL patterns
        assert "No patients match" in client.get(f"/patients?q={wildcard}").get_data(as_text=True)


def test_patient_list_pages_in_the_database(make_page_client, people, make_user, app):
    app.config["WEB_PAGE_SIZE"] = 2
    make_user(full_name="Zoe Last")
    client = make_page_client(people["provider"])
    first = client.get("/patients").get_data(as_text=True)
    assert "Alice Moreno" in first and "Bob Okafor" in first and "Zoe Last" not in first
    second = client.get("/patients?page=2").get_data(as_text=True)
    assert "Zoe Last" in second and "Alice Moreno" not in second


def test_patients_cannot_use_the_provider_pages(make_page_client, people):
    alice = people["alice"]
    client = make_page_client(alice)
    assert client.get("/patients").status_code == 403
    for tab in ("", "/visits", "/consents"):
        assert client.get(f"/patients/{people['bob'].id}{tab}").status_code == 404
    assert client.get(f"/patients/{alice.id}").location == "/documents"


def test_a_provider_cannot_reach_another_clinics_patients(make_page_client, make_file, people):
    carol_file = make_file(people["carol"], "photo.jpg")
    client = make_page_client(people["provider"])
    for tab in ("", "/visits", "/consents"):
        assert client.get(f"/patients/{people['carol'].id}{tab}").status_code == 404
    assert client.get("/patients/999999").status_code == 404
    assert client.get(f"/patients/{people['provider'].id}").status_code == 404  # not a patient
    token = client.csrf("/patients")
    for action in ("rename", "delete", "visibility"):
        resp = client.post(f"/documents/{carol_file.public_id}/{action}",
                           data={"csrf_token": token, "name": "x.jpg", "visible": "y"})
        assert resp.status_code == 404
    resp = client.post("/documents/upload", content_type="multipart/form-data", data={
        "csrf_token": token, "category": "user_document", "target_type": "user",
        "target_id": str(people["carol"].id), "files": [(io.BytesIO(sample("photo.jpg")), "photo.jpg")]})
    assert resp.status_code == 404
    assert db.session.scalar(select(StoredFile).where(StoredFile.id == carol_file.id)).name == "photo.jpg"


def test_chart_tabs_and_provider_actions(make_page_client, make_file, make_visit, people):
    alice, provider = people["alice"], people["provider"]
    doc = make_file(alice, "letter.pdf")
    visit = make_visit(alice)
    own_photo = make_file(alice, "photo.jpg", visit=visit, category=Category.INTAKE_ATTACHMENT)
    attachment = make_file(provider, "scan.png", visit=visit, category=Category.INTAKE_ATTACHMENT)
    make_file(provider, "lab-results.pdf", patient=alice, category=Category.USER_CONSENT, name="consent.pdf")
    client = make_page_client(provider)
    documents = client.get(f"/patients/{alice.id}").get_data(as_text=True)
    assert "letter.pdf" in documents and "scan.png" not in documents and "consent.pdf" not in documents
    assert f"/documents/{doc.public_id}/rename" in documents and "Visible to patient" in documents
    # What the patient uploaded is always visible to them: there is nothing to hide.
    assert f"/documents/{doc.public_id}/visibility" not in documents
    assert client.post(f"/documents/{doc.public_id}/visibility",
                       data={"csrf_token": client.csrf(f"/patients/{alice.id}")}).status_code == 409
    visits = client.get(f"/patients/{alice.id}/visits").get_data(as_text=True)
    assert "scan.png" in visits and f"/documents/{attachment.public_id}/visibility" in visits
    assert f"/documents/{own_photo.public_id}/visibility" not in visits and "Hidden from patient" in visits
    consents = client.get(f"/patients/{alice.id}/consents").get_data(as_text=True)
    assert "consent.pdf" in consents and "/delete" not in consents.split("consents-list")[1]

    # Staff's visit attachment is hidden from the patient until released.
    patient = make_page_client(alice)
    assert "scan.png" not in patient.get("/documents/visits").get_data(as_text=True)
    token = client.csrf(f"/patients/{alice.id}")
    resp = client.post(f"/documents/{attachment.public_id}/visibility",
                       data={"csrf_token": token, "visible": "y", "next": f"/patients/{alice.id}/visits"})
    assert resp.status_code == 303 and resp.location == f"/patients/{alice.id}/visits#file-{attachment.public_id}"  # focus returns to the row
    assert db.session.get(StoredFile, attachment.id).visible is True
    assert "“scan.png” is now visible to Alice Moreno." in client.get(resp.location).get_data(as_text=True)
    assert "scan.png" in patient.get("/documents/visits").get_data(as_text=True)
    patient_page = patient.get("/documents").get_data(as_text=True)
    assert "scan.png" in patient_page and "From your care team" in patient_page
    client.post(f"/documents/{attachment.public_id}/visibility", data={"csrf_token": token})
    assert db.session.get(StoredFile, attachment.id).visible is False
    assert "scan.png" not in patient.get("/documents").get_data(as_text=True)


def test_provider_uploads_to_a_visit_and_to_consents(make_page_client, make_visit, people):
    alice = people["alice"]
    visit = make_visit(alice)
    client = make_page_client(people["provider"])
    token = client.csrf(f"/patients/{alice.id}/visits")
    for category, target_type, target_id in (("intake_attachment", "visit", visit.public_id),
                                             ("user_consent", "user", alice.id)):
        resp = client.post("/documents/upload", headers={"Accept": "application/json"},
                           content_type="multipart/form-data", data={
                               "csrf_token": token, "category": category, "target_type": target_type,
                               "target_id": str(target_id),
                               "files": [(io.BytesIO(sample("letter.pdf")), "letter.pdf")]})
        assert resp.status_code == 201
    rows = list(db.session.scalars(select(StoredFile).order_by(StoredFile.id)))
    assert [(r.category, r.visit_id, r.patient_id) for r in rows] == [
        ("intake_attachment", visit.id, alice.id), ("user_consent", None, alice.id)]


def test_open_a_visit(make_page_client, people):
    alice = people["alice"]
    client = make_page_client(people["provider"])
    url = f"/patients/{alice.id}/visits"
    token = client.csrf(url)
    assert "No visits yet" in client.get(url).get_data(as_text=True)
    resp = client.post(url, data={"csrf_token": token, "reason": "Skin check", "external_id": "ext-1"})
    assert resp.status_code == 303
    visit = db.session.scalar(select(Visit))
    assert (visit.patient_id, visit.reason, visit.external_id) == (alice.id, "Skin check", "ext-1")
    assert "Opened a visit: Skin check." in client.get(url).get_data(as_text=True)
    missing = client.post(url, data={"csrf_token": token, "reason": ""})
    assert missing.status_code == 400 and "Say what the visit is for." in missing.get_data(as_text=True)
    again = client.post(url, data={"csrf_token": token, "reason": "Again", "external_id": "ext-1"})
    assert again.status_code == 400 and "already exists" in again.get_data(as_text=True)
    assert client.post(url, data={"reason": "No token"}).status_code == 400
    assert len(db.session.scalars(select(Visit)).all()) == 1


def test_a_visit_shows_all_its_attachments_not_the_first_hundred(make_page_client, people, make_visit, make_file):
    alice = people["alice"]
    visit = make_visit(alice)
    for i in range(101):
        make_file(alice, "notes.txt", visit=visit, category=Category.INTAKE_ATTACHMENT, name=f"note-{i:03}.txt")
    page = make_page_client(people["provider"]).get(f"/patients/{alice.id}/visits").get_data(as_text=True)
    assert "101 attachments" in page and "note-000.txt" in page and "note-100.txt" in page
