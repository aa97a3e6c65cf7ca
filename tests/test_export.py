"""“Download all my records”: a patient's whole chart as one streamed ZIP (services/export.py),
from the patient's page, the provider's chart and GET /api_v3/files/export — with its folders,
manifest.csv and index.html, the view rules, the audit trail and damaged or missing blobs."""
from __future__ import annotations

import csv
import hashlib
import io
import zipfile

import pytest
from conftest import blobs, sample

from app.errors import DamagedFile
from app.extensions import db
from app.models import AuditEvent, Category, Role, StoredFile
from app.services import files
from app.services.audit import Origin


@pytest.fixture
def chart(make_user, make_file, make_visit):
    """Alice's chart: her own uploads (two of one name), a consent and a visit's files from her
    provider (one hidden from her), her profile picture; and a provider elsewhere."""
    alice = make_user(Role.PATIENT, username="alice", full_name="Alice Moreno")
    provider = make_user(Role.PROVIDER, username="rivera", full_name="Dr. Ana Rivera")
    mine = make_file(alice, "letter.pdf")
    again = make_file(alice, "notes.txt", name="letter.pdf.txt")
    twin = make_file(alice, "letter.pdf")  # the same name again: "letter (2).pdf"
    formula = make_file(alice, "vitals.csv", name="=HYPERLINK(evil).csv")
    consent = make_file(provider, "lab-results.pdf", patient=alice, category=Category.USER_CONSENT)
    visit = make_visit(alice)
    visit.reason = "Annual check-up"
    db.session.commit()
    shown = make_file(provider, "xray.png", visit=visit, category=Category.INTAKE_ATTACHMENT)
    hidden = make_file(provider, "scan.png", visit=visit, category=Category.INTAKE_ATTACHMENT,
                       name="<img src=x onerror=alert(1)>.png")
    files.set_visible(provider, Origin.cli(), hidden.public_id, False)
    consent = files.set_visible(provider, Origin.cli(), consent.public_id, True)
    shown = files.set_visible(provider, Origin.cli(), shown.public_id, True)
    avatar = make_file(alice, "photo.jpg", category=Category.USER_AVATAR)
    return {"alice": alice, "provider": provider, "mine": mine, "again": again, "twin": twin, "formula": formula,
            "consent": consent, "shown": shown, "hidden": hidden, "avatar": avatar, "visit": visit}


def archive_of(resp) -> zipfile.ZipFile:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/zip"
    body = resp.get_data()
    assert resp.content_length == len(body)  # the exact length, told before the first byte
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="Chartbox records')
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None  # every CRC right
    return archive


def manifest(archive: zipfile.ZipFile) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))


def test_a_patient_takes_home_everything_they_can_see(make_page_client, chart):
    resp = make_page_client(chart["alice"]).get("/documents/export")
    archive = archive_of(resp)
    visit_folder = f"Visits/{chart['visit'].created_at:%Y-%m-%d} Annual check-up"
    assert sorted(archive.namelist()) == sorted([
        "Documents/letter.pdf", "Documents/letter.pdf.txt", "Documents/letter (2).pdf",
        "Documents/=HYPERLINK(evil).csv", "Consents/lab-results.pdf", f"{visit_folder}/xray.png",
        "manifest.csv", "index.html",
    ])  # not the hidden visit file, not the profile picture
    assert archive.read("Documents/letter.pdf") == sample("letter.pdf")
    assert archive.read(f"{visit_folder}/xray.png") == sample("xray.png")
    rows = manifest(archive)
    assert [r["path"] for r in rows][:3] == ["Documents/letter.pdf", "Documents/letter.pdf.txt", "Documents/letter (2).pdf"]
    for row in rows:
        data = archive.read(row["path"])
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and int(row["size"]) == len(data)
    by_path = {r["path"]: r for r in rows}
    assert by_path["Consents/lab-results.pdf"]["uploaded_by"] == "Dr. Ana Rivera"
    assert by_path["Consents/lab-results.pdf"]["type"] == "a PDF document"
    assert by_path["Documents/=HYPERLINK(evil).csv"]["name"] == "'=HYPERLINK(evil).csv"  # never a formula
    index = archive.read("index.html").decode()
    assert "Records of Alice Moreno" in index and '<a href="Consents/lab-results.pdf">lab-results.pdf</a>' in index
    assert "<script" not in index and "6 files" in index


def test_the_care_team_gets_the_whole_chart_and_nobody_else_gets_anything(make_page_client, make_user, make_account, chart):
    archive = archive_of(make_page_client(chart["provider"]).get(f"/patients/{chart['alice'].id}/export"))
    names = archive.namelist()
    visit_folder = f"Visits/{chart['visit'].created_at:%Y-%m-%d} Annual check-up"
    assert f"{visit_folder}/_img src=x onerror=alert(1)_.png" in names  # the hidden file too, for staff
    assert not any(name.endswith("photo.jpg") for name in names)
    index = archive.read("index.html").decode()
    assert "<img" not in index and "&lt;img src=x onerror=alert(1)&gt;.png" in index  # names are text, never markup
    other_patient = make_user(Role.PATIENT, username="bob")
    far = make_user(Role.PROVIDER, account=make_account("clinic-far"), username="far")
    for who, url in ((other_patient, f"/patients/{chart['alice'].id}/export"),
                     (far, f"/patients/{chart['alice'].id}/export"),
                     (chart["provider"], "/patients/999999/export")):
        resp = make_page_client(who).get(url)
        assert resp.status_code == 404, (who.username, url)
    assert make_page_client().get("/documents/export").status_code in (302, 303)  # signed out: sign in first


def test_every_exported_file_is_accounted_for_before_the_first_byte(client, make_page_client, make_token, chart):
    make_page_client(chart["provider"]).get(f"/patients/{chart['alice'].id}/export").get_data()
    events = db.session.query(AuditEvent).filter_by(action="export").all()
    assert len(events) == 7 and {e.actor_id for e in events} == {chart["provider"].id}
    assert len({e.request_id for e in events}) == 1  # one export
    assert chart["hidden"].id in {e.file_id for e in events}
    own = {"X-ApiToken": make_token(chart["alice"])}
    history = client.get(f"/api_v3/files/{chart['mine'].public_id}/access", headers=own).json["data"]
    assert history[0]["action"] == "export" and history[0]["who"] == "Dr. Ana Rivera"
    page = make_page_client(chart["alice"]).get(f"/documents/{chart['mine'].public_id}/history").get_data(as_text=True)
    assert "downloaded with all records" in page


def test_the_api_exports_in_vsees_shape(client, make_token, make_user, chart):
    staff = {"X-ApiToken": make_token(chart["provider"])}
    archive = archive_of(client.get(f"/api_v3/files/export?target_type=user&target_id={chart['alice'].id}", headers=staff))
    assert "Consents/lab-results.pdf" in archive.namelist()
    own = {"X-ApiToken": make_token(chart["alice"])}
    assert "Documents/letter.pdf" in archive_of(client.get("/api_v3/files/export", headers=own)).namelist()
    bob = make_user(Role.PATIENT, username="bob")
    for headers, url, status in (
        ({"X-ApiToken": make_token(bob)}, f"/api_v3/files/export?target_type=user&target_id={chart['alice'].id}", 404),
        (staff, f"/api_v3/files/export?target_type=visit&target_id={chart['visit'].id}", 400),
        (staff, "/api_v3/files/export?target_type=user&target_id=abc", 400),
        ({}, "/api_v3/files/export", 401),
    ):
        resp = client.get(url, headers=headers)
        assert resp.status_code == status and set(resp.json) == {"code", "message"}, (url, resp.json)


def test_an_empty_chart_exports_an_archive_that_says_so(make_page_client, make_user):
    carol = make_user(Role.PATIENT, username="carol")
    archive = archive_of(make_page_client(carol).get("/documents/export"))
    assert sorted(archive.namelist()) == ["index.html", "manifest.csv"] and manifest(archive) == []
    assert "0 files" in archive.read("index.html").decode()
    assert db.session.query(AuditEvent).filter_by(action="export", patient_id=carol.id).count() == 1


def test_a_missing_blob_is_listed_as_unavailable_and_the_rest_still_comes(make_page_client, chart, storage_root):
    gone = db.session.get(StoredFile, chart["consent"].id)
    next(p for p in blobs(storage_root) if p.name == gone.storage_key.rsplit("/", 1)[-1]).unlink()
    archive = archive_of(make_page_client(chart["alice"]).get("/documents/export"))
    assert "Consents/lab-results.pdf" not in archive.namelist() and "Documents/letter.pdf" in archive.namelist()
    row = next(r for r in manifest(archive) if r["name"] == "lab-results.pdf")
    assert row["path"].startswith("(unavailable")


def test_a_blob_of_the_wrong_size_is_left_out_and_audited(make_page_client, chart, storage_root):
    row = db.session.get(StoredFile, chart["twin"].id)
    path = next(p for p in blobs(storage_root) if p.name == row.storage_key.rsplit("/", 1)[-1])
    path.write_bytes(path.read_bytes()[:-10])
    archive = archive_of(make_page_client(chart["alice"]).get("/documents/export"))
    unavailable = [r for r in manifest(archive) if r["path"].startswith("(unavailable")]
    assert [(r["name"], r["sha256"]) for r in unavailable] == [("letter.pdf", row.sha256)]
    assert "Documents/letter (2).pdf" not in archive.namelist() and "Documents/letter.pdf" in archive.namelist()
    assert db.session.query(AuditEvent).filter_by(file_id=row.id, action="view", outcome="ok").filter(
        AuditEvent.detail.isnot(None)).count() == 1  # the mismatch, recorded


def test_a_damaged_blob_cuts_the_archive_short(make_page_client, chart, storage_root):
    row = db.session.get(StoredFile, chart["mine"].id)
    path = next(p for p in blobs(storage_root) if p.name == row.storage_key.rsplit("/", 1)[-1])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    client = make_page_client(chart["alice"])
    resp = client.get("/documents/export", buffered=False)
    assert resp.status_code == 200
    with pytest.raises(DamagedFile):  # the server stops sending: a short download, never a wrong file
        b"".join(resp.response)
    resp.close()
    assert db.session.query(AuditEvent).filter_by(file_id=row.id, action="view").filter(
        AuditEvent.detail.isnot(None)).count() >= 1


def test_the_archive_is_streamed_never_held_whole(make_page_client, make_user):
    import tracemalloc

    dana = make_user(Role.PATIENT, username="dana")
    rows = "\n".join(f"{n},{n * 7 % 1000},reading {n}" for n in range(300_000)).encode()  # ~6 MB each
    for n in range(3):
        files.upload(dana, Origin.cli(), io.BytesIO(b"n,value,label\n" + rows), f"readings-{n}.csv",
                     Category.USER_DOCUMENT, files.Target.chart(dana))
    resp = make_page_client(dana).get("/documents/export", buffered=False)
    assert resp.content_length > 3 * len(rows)
    db.session.remove()  # as a real server's request ends before the body is sent: no rows to read
    tracemalloc.start()
    try:
        sent = sum(len(chunk) for chunk in resp.response)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        resp.close()
    assert sent == resp.content_length
    assert peak < 6 * 1024 * 1024, peak  # a few 1 MiB chunks at a time, not 18 MB
