"""Done when: a generic FHIR client (fhirclient, unchanged code that would work against Medplum
or HAPI) finds a patient, lists and pages their documents, reads one, downloads its bytes and
files a new one, against Chartbox behind gunicorn."""
from __future__ import annotations

import base64

import pytest
from conftest import sample
from fhirclient.models.binary import Binary
from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRServer
from live import LiveApp


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with LiveApp(tmp_path_factory.mktemp("fhir-live"), workers=1) as app:
        yield app


def server(live: LiveApp, token: str) -> FHIRServer:
    found = FHIRServer(None, base_uri=live.url("/fhir/R4"))
    found.session.headers["Authorization"] = f"Bearer {token}"  # any Chartbox API token
    return found


def test_a_generic_fhir_client_finds_lists_reads_downloads_and_files(live):
    seed = live.seed
    fhir = server(live, seed.provider_token)
    patients = [p for bundle in Patient.where({"name": "pat live"}).perform_iter(fhir)
                for p in (e.resource for e in bundle.entry or [])]
    assert [p.id for p in patients] == [str(seed.patient_id)]
    patient = Patient.read(str(seed.patient_id), fhir)
    assert patient.name[0].text == "Pat Live"

    pages = list(DocumentReference.where({"patient": patient.id, "_count": "1"}).perform_iter(fhir))
    docs = [e.resource for bundle in pages for e in bundle.entry or []]
    assert len(pages) == 2 and pages[0].total == 2
    assert {d.id for d in docs} == {seed.small_file_id, seed.pdf_file_id}
    letter = DocumentReference.read(seed.pdf_file_id, fhir)
    attachment = letter.content[0].attachment
    assert attachment.contentType == "application/pdf" and attachment.size == len(sample("letter.pdf"))

    raw = fhir.session.get(attachment.url, headers={"Accept": "application/pdf"})
    assert raw.status_code == 200 and raw.content == sample("letter.pdf")
    ranged = fhir.session.get(attachment.url, headers={"Accept": "*/*", "Range": "bytes=0-4"})
    assert ranged.status_code == 206 and ranged.content == b"%PDF-"
    binary = Binary.read(seed.pdf_file_id, fhir)
    assert base64.b64decode(binary.data) == sample("letter.pdf")

    new = DocumentReference({
        "resourceType": "DocumentReference", "status": "current",
        "subject": {"reference": f"Patient/{patient.id}"},
        "content": [{"attachment": {"contentType": "text/plain", "title": "Phone note",
                                    "data": base64.b64encode(sample("notes.txt")).decode()}}]})
    created = new.create(fhir)
    assert created["resourceType"] == "DocumentReference"
    again = DocumentReference.read(created["id"], fhir)
    assert again.content[0].attachment.title == "Phone note.txt"
    mine = server(live, seed.patient_token)  # the patient's own token sees it too
    listed = DocumentReference.where({"patient": patient.id}).perform_iter(mine)
    assert created["id"] in {e.resource.id for bundle in listed for e in bundle.entry or []}
    assert live.scalar("SELECT count(*) FROM audit_events WHERE channel = 'fhir' AND action = 'upload'") == 1
