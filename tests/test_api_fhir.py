"""The FHIR R4 door (/fhir/R4): every answer a valid FHIR R4 resource (checked with
fhir.resources' R4B models), searches, paging, sorting, create through both routes, Binary in
both forms with Range, every OperationOutcome, and the door's place among the others."""
from __future__ import annotations

import base64
import hashlib
import io
from datetime import date, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import sample
from fhir.resources.R4B import get_fhir_model_class

from app.api.fhir.capability import declared_routes
from app.extensions import db
from app.models import AuditEvent, Category, Role, StoredFile
from app.models.base import utcnow

FHIR = "application/fhir+json"


def valid(body: dict) -> dict:
    """The body, once FHIR's own model of its resource type accepts it (R4B: R4's shapes)."""
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    if body["resourceType"] == "Bundle":
        for entry in body.get("entry", []):
            valid(entry["resource"])
    return body


@pytest.fixture
def world(make_user, make_token, make_visit, make_file, make_account):
    provider = make_user(Role.PROVIDER, full_name="Dr Nina Park")
    alice = make_user(Role.PATIENT, username="alice", full_name="Alice Moreno")
    alice.birth_date, alice.chart_number = date(1984, 3, 2), "MRN-1001"
    bob = make_user(Role.PATIENT, username="bob", full_name="Bob Moreno")
    db.session.commit()
    far = make_user(Role.PATIENT, account=make_account("clinic-far"))
    visit = make_visit(alice)
    letter = make_file(provider, "letter.pdf", patient=alice)
    own = make_file(alice, "notes.txt")
    intake = make_file(provider, "scan.png", visit=visit, category=Category.INTAKE_ATTACHMENT)
    consent = make_file(provider, "lab-results.pdf", patient=alice, category=Category.USER_CONSENT)
    return {"provider": provider, "alice": alice, "bob": bob, "far": far, "visit": visit, "letter": letter,
            "own": own, "intake": intake, "consent": consent,
            "staff": {"Authorization": f"Bearer {make_token(provider)}"},
            "patient": {"Authorization": f"Bearer {make_token(alice)}"},
            "bob_token": {"Authorization": f"Bearer {make_token(bob)}"},
            "far_token": {"Authorization": f"Bearer {make_token(far)}"}}


def get(client, path, headers, **kwargs):
    resp = client.get(f"/fhir/R4{path}", headers=headers, **kwargs)
    return resp, (resp.get_json(force=True, silent=True) if resp.mimetype == FHIR else None)


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_metadata_is_public_and_matches_the_served_routes(app, client):
    resp, body = get(client, "/metadata", {})
    assert resp.status_code == 200 and resp.mimetype == FHIR
    valid(body)
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("fhir."):
            path = rule.rule.removeprefix("/fhir/R4")
            path = path.replace("<patient_id>", "{id}").replace("<doc_id>", "{id}").replace("<binary_id>", "{id}")
            path = path.replace("<version>", "{vid}")
            served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == declared_routes()
    listed = {r["type"]: {i["code"] for i in r["interaction"]} for r in body["rest"][0]["resource"]}
    assert listed == {"Patient": {"read", "search-type"}, "Binary": {"read", "vread", "create"},
                      "DocumentReference": {"read", "vread", "search-type", "create", "delete"}}


def test_patient_read_and_search(client, world):
    alice = world["alice"]
    resp, body = get(client, f"/Patient/{alice.id}", world["staff"])
    assert resp.status_code == 200, body
    valid(body)
    assert body["id"] == str(alice.id) and body["birthDate"] == "1984-03-02"
    assert body["name"][0] == {"text": "Alice Moreno", "family": "Moreno", "given": ["Alice"]}
    assert body["identifier"][0]["value"] == "MRN-1001"
    for query, expected in (("name=moreno", {alice.id, world["bob"].id}), ("name=alice", {alice.id}),
                            ("birthdate=1984-03-02", {alice.id}), ("birthdate=ge1990", set()),
                            ("birthdate=1984", {alice.id}), ("birthdate=lt1984-03-02", set()),
                            ("identifier=MRN-1001", {alice.id}),
                            ("identifier=https://chartbox.dev/fhir/sid/chart-number|MRN-1001", {alice.id}),
                            ("identifier=http://other.example|MRN-1001", set()),
                            ("name=moreno&birthdate=1984-03-02", {alice.id})):
        resp, bundle = get(client, f"/Patient?{query}", world["staff"])
        assert resp.status_code == 200, (query, bundle)
        valid(bundle)
        assert {int(i) for i in ids(bundle)} == expected, query
        assert bundle["total"] == len(expected)


def test_a_patient_sees_only_themself(client, world):
    _, bundle = get(client, "/Patient?name=moreno", world["patient"])
    assert ids(bundle) == [str(world["alice"].id)]
    assert get(client, f"/Patient/{world['alice'].id}", world["patient"])[0].status_code == 200
    assert ids(get(client, "/Patient?name=bob", world["patient"])[1]) == []
    for other in (world["bob"].id, world["provider"].id):
        assert get(client, f"/Patient/{other}", world["patient"])[0].status_code == 404


def test_out_of_reach_is_one_404_for_every_kind_of_id(client, world):
    answers = set()
    for ident in (world["bob"].id, world["far"].id, world["provider"].id, 999_999, "abc", "\u00b2"):
        resp, body = get(client, f"/Patient/{ident}", world["patient"])
        valid(body)
        answers.add((resp.status_code, body["issue"][0]["code"], resp.get_data()))
    assert len(answers) == 1 and next(iter(answers))[:2] == (404, "not-found")
    docs = set()
    hidden = world["intake"].public_id  # not released to Alice
    for ident in (hidden, "00000000-0000-0000-0000-000000000000", "junk", world["letter"].id):
        for path in (f"/DocumentReference/{ident}", f"/Binary/{ident}"):
            resp, _ = get(client, path, world["patient"])
            docs.add((resp.status_code, resp.get_data()))
    assert len(docs) == 1 and next(iter(docs))[0] == 404


def test_document_reference_read(client, world):
    row = world["intake"]
    resp, body = get(client, f"/DocumentReference/{row.public_id}", world["staff"])
    assert resp.status_code == 200
    valid(body)
    assert body["status"] == "current" and body["subject"]["reference"] == f"Patient/{world['alice'].id}"
    assert body["context"]["encounter"][0]["reference"] == f"Encounter/{world['visit'].public_id}"
    found = body["content"][0]["attachment"]
    data = sample("scan.png")
    assert found["contentType"] == "image/png" and found["size"] == row.size
    assert found["url"].endswith(f"/fhir/R4/Binary/{row.public_id}")
    stored = db.session.get(StoredFile, row.id)
    assert found["hash"] == base64.b64encode(bytes.fromhex(stored.sha1)).decode()
    if stored.size == len(data):  # unscrubbed PNG: the hash is of exactly these bytes
        assert found["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    codes = {(c["coding"][0]["system"].rsplit("/", 1)[-1], c["coding"][0]["code"]) for c in body["category"]}
    assert codes == {("document-category", "intake_attachment"),
                     ("us-core-documentreference-category", "clinical-note")}
    assert resp.headers["ETag"] == f'W/"{row.version}"'
    consent = valid(get(client, f"/DocumentReference/{world['consent'].public_id}", world["staff"])[1])
    assert consent["type"]["coding"][0]["code"] == "59284-0"
    own = valid(get(client, f"/DocumentReference/{world['own'].public_id}", world["patient"])[1])
    assert own["author"][0]["reference"] == f"Patient/{world['alice'].id}"
    assert len(own["category"]) == 1  # the patient's own upload is not a clinical note
    assert get(client, f"/DocumentReference/{row.public_id}/_history/{row.version}", world["staff"])[0].status_code \
        == 200
    assert get(client, f"/DocumentReference/{row.public_id}/_history/99", world["staff"])[0].status_code == 404


def search(client, world, query, who="staff"):
    resp, bundle = get(client, f"/DocumentReference?{query}", world[who])
    assert resp.status_code == 200, (query, bundle)
    valid(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] >= len(bundle.get("entry", []))
    return bundle


def test_document_search_by_each_parameter(client, world):
    alice = world["alice"]
    letter, own, intake, consent = (world[k].public_id for k in ("letter", "own", "intake", "consent"))
    everything = {letter, own, intake, consent}
    cases = {
        f"patient={alice.id}": everything,
        f"subject=Patient/{alice.id}": everything,
        f"subject:Patient={alice.id}": everything,
        f"patient=Patient/{alice.id}&category=user_consent": {consent},
        f"patient={alice.id}&category=https://chartbox.dev/fhir/CodeSystem/document-category|user_document":
            {letter, own},
        f"patient={alice.id}&category=user_document,user_consent": {letter, own, consent},
        f"patient={alice.id}&category=clinical-note": {letter, intake},
        f"patient={alice.id}&type=http://loinc.org|59284-0": {consent},
        f"patient={alice.id}&type=11111-1": set(),
        f"patient={alice.id}&date=ge2000-01-01&date=le2999": everything,
        f"patient={alice.id}&date=lt2000": set(),
        f"patient={alice.id}&date={utcnow().date().isoformat()}": everything,
        f"patient={alice.id}&status=current": everything,
        f"patient={alice.id}&status=entered-in-error": set(),
        f"patient={world['bob'].id}": set(),
        f"patient={world['far'].id}": set(),
        "patient=999999": set(),
        "patient=abc": set(),
    }
    for query, expected in cases.items():
        assert set(ids(search(client, world, query))) == expected, query
    # a patient: their own chart without naming it, and only what is visible to them
    assert set(ids(search(client, world, "", who="patient"))) == {letter, own}
    assert ids(search(client, world, f"patient={world['bob'].id}", who="patient")) == []


def test_paging_and_sorting(client, world, make_file):
    alice = world["alice"]
    for n in range(3):
        make_file(world["provider"], "notes.txt", patient=alice, name=f"extra-{n}.txt")
    newest = search(client, world, f"patient={alice.id}&_sort=-date&_count=100")
    oldest = search(client, world, f"patient={alice.id}&_sort=date&_count=100")
    assert ids(newest) == list(reversed(ids(oldest))) and len(ids(newest)) == 7
    seen, url, pages = [], f"/fhir/R4/DocumentReference?patient={alice.id}&_count=3", 0
    while url:
        resp = client.get(url, headers=world["staff"])
        bundle = valid(resp.get_json(force=True))
        assert bundle["total"] == 7
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "self" in links and ("previous" in links) == (pages > 0)
        seen += ids(bundle)
        pages += 1
        url = urlsplit(links["next"])._replace(scheme="", netloc="").geturl() if "next" in links else None
        if "next" in links:
            assert dict(parse_qsl(urlsplit(links["next"]).query))["patient"] == str(alice.id)
    assert pages == 3 and seen == ids(newest)
    counted = search(client, world, f"patient={alice.id}&_count=0")
    assert counted["total"] == 7 and ids(counted) == []


def test_deleted_is_entered_in_error_for_staff_only(client, world):
    row = world["letter"]
    resp = client.delete(f"/fhir/R4/DocumentReference/{row.public_id}", headers=world["staff"])
    assert resp.status_code == 204
    assert db.session.get(StoredFile, row.id).deleted_at is not None
    body = valid(get(client, f"/DocumentReference/{row.public_id}", world["staff"])[1])
    assert body["status"] == "entered-in-error"
    alice = world["alice"].id
    assert row.public_id in ids(search(client, world, f"patient={alice}&status=entered-in-error"))
    assert row.public_id not in ids(search(client, world, f"patient={alice}&status=current"))
    assert get(client, f"/DocumentReference/{row.public_id}", world["patient"])[0].status_code == 404
    assert row.public_id not in ids(search(client, world, "", who="patient"))
    assert get(client, f"/Binary/{row.public_id}", world["staff"])[0].status_code == 404
    again = client.delete(f"/fhir/R4/DocumentReference/{row.public_id}", headers=world["staff"])
    assert again.status_code == 204  # deleting what is deleted is done


def test_a_patient_may_not_delete_a_clinical_record(client, world):
    resp = client.delete(f"/fhir/R4/DocumentReference/{world['letter'].public_id}", headers=world["patient"])
    body = valid(resp.get_json(force=True))
    assert resp.status_code == 403 and body["issue"][0]["code"] == "forbidden"
    resp = client.delete(f"/fhir/R4/DocumentReference/{world['own'].public_id}", headers=world["patient"])
    assert resp.status_code == 204


def test_binary_raw_with_range_and_as_a_resource(client, world):
    row, data = world["letter"], sample("letter.pdf")
    resp = client.get(f"/fhir/R4/Binary/{row.public_id}", headers=world["staff"])
    assert resp.status_code == 200 and resp.mimetype == "application/pdf" and resp.data == data
    part = client.get(f"/fhir/R4/Binary/{row.public_id}", headers={**world["staff"], "Range": "bytes=0-9"})
    assert part.status_code == 206 and part.data == data[:10]
    for how in ({"headers": {**world["staff"], "Accept": FHIR}}, {"headers": world["staff"],
                                                                  "query_string": {"_format": "json"}}):
        resp = client.get(f"/fhir/R4/Binary/{row.public_id}", **how)
        body = valid(resp.get_json(force=True))
        assert resp.mimetype == FHIR and base64.b64decode(body["data"]) == data
        assert body["contentType"] == "application/pdf"
    refused = client.get(f"/fhir/R4/Binary/{row.public_id}", headers={**world["staff"], "Accept": "image/gif"})
    assert refused.status_code == 406 and valid(refused.get_json(force=True))["issue"][0]["code"] == "not-supported"
    views = db.session.query(AuditEvent).filter_by(file_id=row.id, action="view", channel="fhir").count()
    assert views == 4


def post(client, path, headers, body=None, **kwargs):
    if body is not None:
        kwargs |= {"json": body}
        kwargs.setdefault("content_type", FHIR)
    return client.post(f"/fhir/R4{path}", headers=headers, **kwargs)


def test_create_with_data_then_read_back_through_vsee_and_the_pages(client, world, make_page_client):
    alice, data = world["alice"], sample("letter.pdf")
    resp = post(client, "/DocumentReference", world["staff"], {
        "resourceType": "DocumentReference", "status": "current",
        "subject": {"reference": f"Patient/{alice.id}"},
        "category": [{"coding": [{"system": "https://chartbox.dev/fhir/CodeSystem/document-category",
                                  "code": "user_document"}]}],
        "content": [{"attachment": {"contentType": "application/pdf", "title": "Discharge summary",
                                    "data": base64.b64encode(data).decode()}}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = valid(resp.get_json(force=True))
    assert resp.headers["Location"].endswith(f"/fhir/R4/DocumentReference/{body['id']}/_history/1")
    assert body["content"][0]["attachment"]["title"] == "Discharge summary.pdf"
    assert body["content"][0]["attachment"]["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    row = db.session.query(StoredFile).filter_by(public_id=body["id"]).one()
    assert row.patient_id == alice.id and row.creator_id == world["provider"].id
    vsee = client.get(f"/api_v3/files?target_type=user&target_id={alice.id}",
                      headers={"X-ApiToken": world["staff"]["Authorization"].split()[1]}).get_json()["data"]
    assert body["id"] in {f["id"] for f in vsee}
    page = make_page_client(alice).get("/documents")
    assert page.status_code == 200 and "Discharge summary.pdf" in page.get_data(as_text=True)
    upload = db.session.query(AuditEvent).filter_by(file_id=row.id, action="upload").one()
    assert upload.channel == "fhir"


def test_create_through_a_binary(client, world):
    png = sample("xray.png")
    resp = post(client, "/Binary", {**world["patient"], "Content-Type": "image/png"}, data=png)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    binary = valid(resp.get_json(force=True))
    resp = post(client, "/DocumentReference", world["patient"], {
        "resourceType": "DocumentReference", "status": "current",
        "content": [{"attachment": {"url": f"Binary/{binary['id']}", "title": "Knee"}}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    doc = valid(resp.get_json(force=True))
    assert doc["id"] == binary["id"] and doc["content"][0]["attachment"]["title"] == "Knee.png"
    row = db.session.query(StoredFile).filter_by(public_id=doc["id"]).one()
    assert (row.patient_id, row.creator_id, row.media_type) == (world["alice"].id, world["alice"].id, "image/png")
    kept = client.get(f"/fhir/R4/Binary/{doc['id']}", headers=world["patient"]).data
    assert hashlib.sha256(kept).hexdigest() == row.sha256 and hashlib.sha1(kept).hexdigest() == row.sha1
    assert db.session.query(StoredFile).filter_by(patient_id=world["alice"].id, name="Knee.png").count() == 1
    resource = post(client, "/Binary", world["staff"], {
        "resourceType": "Binary", "contentType": "application/pdf", "securityContext": {
            "reference": f"Patient/{world['alice'].id}"}, "data": base64.b64encode(sample("letter.pdf")).decode()})
    assert resource.status_code == 201
    assert db.session.query(StoredFile).filter_by(public_id=resource.get_json(force=True)["id"]).one().patient_id \
        == world["alice"].id


@pytest.mark.parametrize("payload, status, code", [
    ({"resourceType": "Patient"}, 400, "invalid"),
    ({"resourceType": "DocumentReference", "content": []}, 400, "invalid"),
    ({"resourceType": "DocumentReference", "content": [{"attachment": {"data": "%%%"}}]}, 400, "invalid"),
    ({"resourceType": "DocumentReference", "content": [{"attachment": {
        "contentType": "image/png", "data": base64.b64encode(sample("letter.pdf")).decode()}}]}, 400, "invalid"),
    ({"resourceType": "DocumentReference", "content": [{"attachment": {
        "data": base64.b64encode(sample("gif.gif")).decode()}}]}, 400, "invalid"),
    ({"resourceType": "DocumentReference", "subject": {"reference": "Patient/999999"}, "content": [{"attachment": {
        "data": base64.b64encode(sample("letter.pdf")).decode()}}]}, 404, "not-found"),
])
def test_uploads_are_validated_like_every_door(client, world, payload, status, code):
    before = db.session.query(StoredFile).count()
    resp = post(client, "/DocumentReference", world["patient"], payload)
    body = valid(resp.get_json(force=True))
    assert (resp.status_code, body["issue"][0]["code"]) == (status, code), body
    assert db.session.query(StoredFile).count() == before


def test_every_operation_outcome(app, client, world):
    cases = [
        (client.get("/fhir/R4/Patient"), 401, "security"),
        (client.get("/fhir/R4/Patient", headers={"Authorization": "Bearer nope"}), 401, "security"),
        (client.get("/fhir/R4/Patient/999999", headers=world["staff"]), 404, "not-found"),
        (client.get("/fhir/R4/DocumentReference", headers=world["staff"]), 400, "too-costly"),
        (client.get("/fhir/R4/DocumentReference?patient=1&date=yesterday", headers=world["staff"]), 400, "invalid"),
        (client.get("/fhir/R4/DocumentReference?patient=1&_sort=title", headers=world["staff"]), 400, "invalid"),
        (client.get("/fhir/R4/Patient?name:exact=x", headers=world["staff"]), 400, "invalid"),
        (client.get("/fhir/R4/Patient", headers={**world["staff"], "Accept": "application/fhir+xml"}), 406,
         "not-supported"),
        (client.get("/fhir/R4/metadata?_format=xml"), 406, "not-supported"),
        (client.post("/fhir/R4/DocumentReference", headers=world["staff"], data=b"x", content_type="text/plain"),
         415, "not-supported"),
        (client.put("/fhir/R4/Patient/1", headers=world["staff"]), 405, "not-supported"),
        (client.delete(f"/fhir/R4/DocumentReference/{world['letter'].public_id}", headers=world["patient"]), 403,
         "forbidden"),
    ]
    for resp, status, code in cases:
        body = valid(resp.get_json(force=True))
        assert resp.mimetype == FHIR
        assert (resp.status_code, body["issue"][0]["code"]) == (status, code), (resp.request.path, body)
    assert cases[0][0].headers["WWW-Authenticate"].startswith("Bearer")
    app.config["UPLOAD_MAX_BYTES"] = 1000
    big = post(client, "/Binary", {**world["patient"], "Content-Type": "application/pdf"}, data=sample("letter.pdf"))
    assert big.status_code == 413 and valid(big.get_json(force=True))["issue"][0]["code"] == "too-costly"


def test_reads_and_searches_are_audited_on_the_fhir_channel(client, world):
    before = db.session.query(AuditEvent).filter_by(channel="fhir", action="list").count()
    get(client, f"/Patient/{world['alice'].id}", world["staff"])
    get(client, "/Patient?name=moreno", world["staff"])
    get(client, f"/DocumentReference?patient={world['alice'].id}", world["staff"])
    get(client, f"/DocumentReference/{world['letter'].public_id}", world["staff"])
    assert db.session.query(AuditEvent).filter_by(channel="fhir", action="list").count() == before + 4


def test_a_document_from_another_door_is_a_document_reference(client, world):
    token = world["staff"]["Authorization"].split()[1]
    resp = client.post("/api_v3/files", headers={"X-ApiToken": token}, content_type="multipart/form-data", data={
        "file": (io.BytesIO(sample("referral.docx")), "referral.docx"),
        "meta.target.type": "user", "meta.target.id": str(world["alice"].id)})
    file_id = resp.get_json()["data"]["id"]
    body = valid(get(client, f"/DocumentReference/{file_id}", world["patient"])[1])
    assert body["content"][0]["attachment"]["contentType"].endswith("wordprocessingml.document")
    # a multipart part is hashed where it lies (spool's take-over): its SHA-1 too
    assert base64.b64decode(body["content"][0]["attachment"]["hash"]) == hashlib.sha1(sample("referral.docx")).digest()
    assert file_id in ids(search(client, world, "", who="patient"))


@pytest.mark.parametrize("name", ["photo.jpg", "insurance-front.jpg", "phone-photo.heic"])
def test_a_photo_has_the_sha1_of_what_is_kept(client, world, make_file, name):
    """Photos lose their metadata on the way in (scrub.py): the SHA-1 is of the bytes served."""
    row = make_file(world["alice"], name)
    kept = client.get(f"/fhir/R4/Binary/{row.public_id}", headers=world["patient"]).data
    assert hashlib.sha1(kept).hexdigest() == row.sha1 and hashlib.sha256(kept).hexdigest() == row.sha256


def test_sha1_backfill(app, runner, world):
    row = db.session.get(StoredFile, world["letter"].id)
    expected = row.sha1
    row.sha1 = None
    db.session.commit()
    result = runner.invoke(args=["files", "backfill-sha1"])
    assert result.exit_code == 0, result.output
    assert db.session.get(StoredFile, row.id).sha1 == expected == hashlib.sha1(sample("letter.pdf")).hexdigest()


def test_dates_are_ranges_as_precise_as_written():
    from app.api.fhir.search import date_bounds, date_range

    start, end = date_range("2024-02", "date")
    assert (start.day, end.month, end.day) == (1, 3, 1)
    since, until = date_bounds(["ge2024-05-17", "lt2024-06"], "date")
    assert since.isoformat() == "2024-05-17T00:00:00+00:00" and until.isoformat() == "2024-06-01T00:00:00+00:00"
    start, _ = date_range("2024-05-17T09:30:00+02:00", "date")
    assert start.hour == 7
    assert date_range("2024-05-17T09:30:00Z", "date")[1] - date_range("2024-05-17T09:30:00Z", "date")[0] \
        == timedelta(seconds=1)
