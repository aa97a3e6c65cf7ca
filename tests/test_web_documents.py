"""Patients' pages through the test client: listing, uploads, rename, delete, avatar, access."""
import html
import io
import re

import pytest
from conftest import blobs, sample
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Category, Role, StoredFile
from app.services import files
from app.services.audit import Origin
from app.web import display


def _files(client, *names, category="user_document", target_type="user", target_id="", token=None,
           as_json=False, next_="/documents"):
    data = {"csrf_token": token if token is not None else client.csrf("/documents"), "category": category,
            "target_type": target_type, "target_id": str(target_id), "next": next_,
            "files": [(io.BytesIO(sample(n) if isinstance(n, str) else n[1]), n if isinstance(n, str) else n[0])
                      for n in names]}
    headers = {"Accept": "application/json"} if as_json else {}
    return client.post("/documents/upload", data=data, headers=headers, content_type="multipart/form-data")


def _rows():
    return list(db.session.scalars(select(StoredFile).order_by(StoredFile.id)))


def test_documents_show_own_and_shared_files_newest_first(make_page_client, make_user, make_file, make_visit):
    alice, bob, provider = make_user(), make_user(), make_user("provider")
    make_file(alice, "letter.pdf")
    make_file(alice, "photo.jpg")
    make_file(bob, "lab-results.pdf")
    attachment = make_file(provider, "scan.png", visit=make_visit(alice), category=Category.INTAKE_ATTACHMENT)
    files.set_visible(provider, Origin.cli(), attachment.public_id, True)
    page = make_page_client(alice).get("/documents").get_data(as_text=True)
    assert page.index("scan.png") < page.index("photo.jpg") < page.index("letter.pdf")
    assert "lab-results.pdf" not in page
    assert "From your care team" in page and "3 files" in page
    assert "size=128x128&amp;preview=1" in page  # the PDF's first-page thumbnail
    assert "PDF document, 2 pages" in page and "JPEG image, 640×480" in page


def test_empty_documents_say_what_to_do(make_page_client, make_user):
    page = make_page_client(make_user()).get("/documents").get_data(as_text=True)
    assert "No documents yet" in page and "0 files" in page
    assert 'type="file"' in page and "multiple" in page


def test_form_upload_of_several_files_without_javascript(make_page_client, make_user, storage_root):
    alice = make_user()
    client = make_page_client(alice)
    resp = _files(client, "letter.pdf", "photo.jpg", "gif.gif")
    assert resp.status_code == 303 and resp.location == "/documents"
    rows = _rows()
    assert [r.name for r in rows] == ["letter.pdf", "photo.jpg"]
    assert all(r.patient_id == alice.id and r.creator_id == alice.id for r in rows)
    assert len(blobs(storage_root)) == 2
    page = client.get("/documents").get_data(as_text=True)
    assert "Uploaded “letter.pdf”." in page and "Uploaded “photo.jpg”." in page
    assert "“gif.gif” was not uploaded: This file is a GIF image" in page


@pytest.mark.parametrize("name, message", [
    ("gif.gif", "This file is a GIF image"),
    ("truncated.pdf", "The PDF is damaged or incomplete"),
    ("encrypted.pdf", "password-protected"),
    ("macro.html", "Web pages, SVG and XML files are not accepted"),
    ("not-really.pdf", "rename it to .png"),
])
def test_rejected_files_get_a_clear_message_and_nothing_is_written(make_page_client, make_user, storage_root,
                                                                   name, message):
    resp = _files(make_page_client(make_user()), name, as_json=True)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["files"][0]["ok"] is False and message in body["files"][0]["error"]
    assert _rows() == [] and blobs(storage_root) == []


def test_json_upload_reports_each_file(make_page_client, make_user):
    resp = _files(make_page_client(make_user()), "photo.jpg", as_json=True)
    assert resp.status_code == 201
    assert resp.get_json()["files"] == [{"name": "photo.jpg", "ok": True, "id": _rows()[0].public_id}]


class TestLimits:
    @pytest.fixture
    def config_overrides(self):
        return {"UPLOAD_MAX_BYTES": 20_000, "MAX_CONTENT_LENGTH": 40_000}

    def test_a_file_over_the_limit_is_refused_by_name(self, make_page_client, make_user, storage_root):
        resp = _files(make_page_client(make_user()), ("big.txt", b"a" * 30_000), as_json=True)
        assert resp.status_code == 400
        assert "larger than the 20,000-byte limit" in resp.get_json()["files"][0]["error"]
        assert _rows() == [] and blobs(storage_root) == []

    def test_a_body_over_the_limit_renders_the_413_page(self, make_page_client, make_user, storage_root):
        client = make_page_client(make_user())
        resp = _files(client, ("huge.txt", b"a" * 50_000))
        page = resp.get_data(as_text=True)
        assert resp.status_code == 413 and "That upload is too large" in page and "Sign out" in page
        resp = _files(client, ("huge.txt", b"a" * 50_000), as_json=True)
        assert resp.status_code == 413 and resp.get_json()["code"] == 413
        assert _rows() == [] and blobs(storage_root) == []


def test_upload_needs_csrf_and_files(make_page_client, make_user, storage_root):
    client = make_page_client(make_user())
    resp = _files(client, "photo.jpg", token="")
    assert resp.status_code == 400 and "form has expired" in resp.get_data(as_text=True)
    assert _rows() == [] and blobs(storage_root) == []
    resp = _files(client)
    assert resp.status_code == 303
    assert "Choose at least one file to upload." in client.get("/documents").get_data(as_text=True)
    assert _files(client, as_json=True).status_code == 400


def test_rename(make_page_client, make_user, make_file):
    alice = make_user()
    row = make_file(alice, "letter.pdf")
    client = make_page_client(alice)
    token = client.csrf("/documents")
    url = f"/documents/{row.public_id}/rename"
    resp = client.post(url, data={"csrf_token": token, "name": "Referral letter.pdf", "next": "/documents"})
    assert resp.status_code == 303 and db.session.get(StoredFile, row.id).name == "Referral letter.pdf"
    assert "Renamed to “Referral letter.pdf”." in client.get("/documents").get_data(as_text=True)
    client.post(url, data={"csrf_token": token, "name": "   "})
    assert "Enter a name." in client.get("/documents").get_data(as_text=True)
    client.post(url, data={"csrf_token": token, "name": "\u202e\u200b"})
    assert "at least one printable character" in client.get("/documents").get_data(as_text=True)
    assert client.post(url, data={"name": "x.pdf"}).status_code == 400
    assert db.session.get(StoredFile, row.id).name == "Referral letter.pdf"


def test_a_page_rename_keeps_the_type_and_refuses_a_mislabel(make_page_client, make_user, make_file):
    alice = make_user()
    row = make_file(alice, "photo.jpg", name="Holiday.jpeg")
    client = make_page_client(alice)
    page = client.get("/documents").get_data(as_text=True)
    assert 'name="name" value="Holiday"' in page and '>.jpeg</span>' in page  # the stem, and the ending beside it
    token = client.csrf("/documents")
    url = f"/documents/{row.public_id}/rename"
    client.post(url, data={"csrf_token": token, "name": "Beach", "next": "/documents"})
    stored = db.session.get(StoredFile, row.id)
    assert (stored.name, stored.ext) == ("Beach.jpeg", "jpeg")
    client.post(url, data={"csrf_token": token, "name": "Beach.jpg", "next": "/documents"})
    assert db.session.get(StoredFile, row.id).name == "Beach.jpg"  # the type's other ending is fine
    client.post(url, data={"csrf_token": token, "name": "Beach.pdf", "next": "/documents"})
    page = client.get("/documents").get_data(as_text=True)
    assert "would make it look like a PDF document, but it is a JPEG image" in page
    assert db.session.get(StoredFile, row.id).name == "Beach.jpg"


def test_delete_asks_then_deletes(make_page_client, make_user, make_file):
    alice = make_user()
    row = make_file(alice, "photo.jpg")
    client = make_page_client(alice)
    confirm = client.get(f"/documents/{row.public_id}/delete?next=/documents")
    assert confirm.status_code == 200 and "Delete “photo.jpg”?" in confirm.get_data(as_text=True)
    assert client.post(f"/documents/{row.public_id}/delete").status_code == 400  # no CSRF token
    assert db.session.get(StoredFile, row.id).deleted_at is None
    resp = client.post(f"/documents/{row.public_id}/delete",
                       data={"csrf_token": client.csrf("/documents"), "next": "/documents"})
    assert resp.status_code == 303 and db.session.get(StoredFile, row.id).deleted_at is not None
    page = client.get("/documents").get_data(as_text=True)
    assert "Deleted “photo.jpg”." in page and "No documents yet" in page


def test_a_patient_cannot_touch_another_patients_files(make_page_client, make_user, make_file, make_visit):
    alice, bob = make_user(), make_user()
    theirs = make_file(bob, "photo.jpg")
    bobs_visit = make_visit(bob)
    client = make_page_client(alice)
    token = client.csrf("/documents")
    assert client.get(f"/documents/{theirs.public_id}/delete").status_code == 404
    for action in ("rename", "delete", "visibility"):
        resp = client.post(f"/documents/{theirs.public_id}/{action}",
                           data={"csrf_token": token, "name": "mine.jpg", "visible": "y"})
        assert resp.status_code == 404, action
    assert _files(client, "photo.jpg", target_id=bob.id, token=token).status_code == 404
    assert _files(client, "photo.jpg", category="intake_attachment", target_type="visit",
                  target_id=bobs_visit.public_id, token=token).status_code == 404
    row = db.session.get(StoredFile, theirs.id)
    assert (row.name, row.deleted_at, row.visible) == ("photo.jpg", None, True)
    assert len(_rows()) == 1


def test_a_patient_may_look_at_but_not_change_visit_attachments(make_page_client, make_user, make_file, make_visit):
    alice = make_user()
    visit = make_visit(alice)
    row = make_file(alice, "photo.jpg", visit=visit, category=Category.INTAKE_ATTACHMENT)
    own_doc = make_file(alice, "letter.pdf")
    client = make_page_client(alice)
    page = client.get("/documents/visits").get_data(as_text=True)
    assert "photo.jpg" in page and "Attach files to this visit" in page
    assert f"/documents/{row.public_id}/delete" not in page and f"/documents/{row.public_id}/rename" not in page
    token = client.csrf("/documents")
    assert client.post(f"/documents/{row.public_id}/delete", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/documents/{own_doc.public_id}/visibility",
                       data={"csrf_token": token, "visible": "y"}).status_code == 403
    resp = _files(client, "scan.png", category="intake_attachment", target_type="visit",
                  target_id=visit.public_id, token=token, as_json=True)
    assert resp.status_code == 201 and _rows()[-1].visit_id == visit.id


def test_visits_tab_empty_state(make_page_client, make_user):
    page = make_page_client(make_user()).get("/documents/visits").get_data(as_text=True)
    assert "No visits yet" in page


def test_profile_picture_is_replaced_and_shown_in_the_header(make_page_client, make_user):
    alice = make_user()
    client = make_page_client(alice)
    assert "avatar-initials" in client.get("/profile").get_data(as_text=True)
    token = client.csrf("/profile")
    for name in ("photo.jpg", "scan.png"):
        assert _files(client, name, category="user_avatar", target_id=alice.id, token=token,
                      next_="/profile").location == "/profile"
    rows = _rows()
    assert [r.deleted_at is None for r in rows] == [False, True]  # one avatar per user
    page = client.get("/documents").get_data(as_text=True)
    assert 'alt="Your profile picture"' in page and "size=128x128" in page


def test_pagination(make_page_client, make_user, make_file, app):
    app.config["WEB_PAGE_SIZE"] = 2
    alice = make_user()
    for name in ("a.txt", "b.txt", "c.txt"):
        make_file(alice, "notes.txt", name=name)
    client = make_page_client(alice)
    first = client.get("/documents").get_data(as_text=True)
    assert "c.txt" in first and "b.txt" in first and "a.txt" not in first
    assert "Page 1 of 2" in first and 'href="/documents?page=2"' in first
    second = client.get("/documents?page=2").get_data(as_text=True)
    assert "a.txt" in second and "c.txt" not in second
    for junk in ("abc", "0", "\u00b2", "\u0663"):  # Unicode digits must not reach int()
        assert client.get(f"/documents?page={junk}").status_code == 400


def test_a_profile_picture_must_be_an_image(make_page_client, make_user, storage_root):
    alice = make_user()
    client = make_page_client(alice)
    resp = _files(client, "letter.pdf", category="user_avatar", target_id=alice.id,
                  token=client.csrf("/profile"), as_json=True)
    assert resp.status_code == 400
    assert resp.get_json()["files"][0]["error"] == "A profile picture must be a PNG or JPEG image."
    assert _rows() == [] and blobs(storage_root) == []


def test_the_visits_page_is_titled_for_visits_and_keeps_internal_references_for_staff(
        make_page_client, make_user, make_visit, make_file):
    alice, provider = make_user(), make_user(Role.PROVIDER)
    visit = make_visit(alice, "emr-visit-77")
    make_file(alice, "photo.jpg", visit=visit, category=Category.INTAKE_ATTACHMENT)
    mine = make_page_client(alice).get("/documents/visits").get_data(as_text=True)
    assert "<h1>My visits</h1>" in mine and "My documents</h1>" not in mine
    assert "emr-visit-77" not in mine  # the clinic's own reference means nothing to a patient
    chart = make_page_client(provider).get(f"/patients/{alice.id}/visits").get_data(as_text=True)
    assert "Ref. emr-visit-77" in chart
    when = f"{visit.created_at:%-d %b %Y, %H:%M} UTC"
    assert when in mine and when in chart  # dates come with their time


def test_file_rows_say_when_with_the_time(make_page_client, make_user, make_file):
    alice = make_user()
    row = make_file(alice, "letter.pdf")
    page = make_page_client(alice).get("/documents").get_data(as_text=True)
    assert f"{row.created_at:%-d %b %Y, %H:%M} UTC</time>" in page


def test_text_and_csv_open_in_the_viewer_and_office_files_download(make_page_client, make_user, make_file):
    alice = make_user()
    for name in ("vitals.csv", "notes.txt", "referral.docx", "letter.pdf"):
        make_file(alice, name)
    page = make_page_client(alice).get("/documents").get_data(as_text=True)
    kinds = dict(re.findall(r'data-kind="(\w+)"[^>]*data-name="([^"]+)"', page)[i][::-1] for i in range(3))
    assert kinds == {"vitals.csv": "csv", "notes.txt": "text", "letter.pdf": "pdf"}
    assert 'data-kind="None"' not in page and page.count("data-viewer data-kind") == 3  # not the Word file


# -- a file's row, its details and its thumbnails --------------------------------------------------

def _item(page: str, row) -> str:
    item = page[page.index(f'data-file-id="{row.public_id}"'):]
    return item[:item.index("\n</li>")]  # the row's own end (its menu's items end in </li> too)


def test_a_row_offers_download_first_and_the_rest_in_a_menu_that_works_without_a_script(
        make_page_client, make_user, make_file):
    alice = make_user()
    row = make_file(alice, "letter.pdf")
    item = html.unescape(_item(make_page_client(alice).get("/documents").get_data(as_text=True), row))
    actions = item[item.index('class="file-actions"'):]
    assert re.search(r'<a class="btn btn-small file-download" href="[^"]+&download=1"', actions)
    assert actions.index("file-download") < actions.index('<details class="row-menu">')  # the one primary action
    menu = actions[actions.index('<details class="row-menu">'):actions.index("</details>")]
    # Plain links and forms inside a <details>: each works with scripts off.
    assert f'href="/documents/{row.public_id}/details?next=/documents"' in menu
    assert f'href="/documents/{row.public_id}/delete?next=/documents"' in menu and "data-confirm-delete" in menu
    assert 'aria-label="More actions for letter.pdf"' in menu
    # Rename: its own disclosure beside the menu (the script opens it from the menu instead).
    assert f'<details class="rename" id="rename-{row.public_id}">' in actions
    assert re.search(r'<summary class="btn btn-small btn-ghost nojs-only" aria-label="Rename letter.pdf">', actions)


def test_staff_toggle_visibility_from_the_menu_and_patients_never_see_it(make_page_client, make_user, make_file,
                                                                        make_visit):
    alice, provider = make_user(), make_user("provider")
    row = make_file(provider, "photo.jpg", visit=make_visit(alice), category=Category.INTAKE_ATTACHMENT)
    staff = _item(make_page_client(provider).get(f"/patients/{alice.id}/visits").get_data(as_text=True), row)
    menu = staff[staff.index('<details class="row-menu">'):]
    assert f'action="/documents/{row.public_id}/visibility"' in menu and "Make visible to patient" in menu
    files.set_visible(provider, Origin.cli(), row.public_id, True)
    mine = _item(make_page_client(alice).get("/documents/visits").get_data(as_text=True), row)
    assert "/visibility" not in mine and "/delete" not in mine and "/details" in mine


def test_thumbnails_come_from_the_stored_rendition_sizes_with_a_srcset(app, make_page_client, make_user, make_file):
    alice = make_user()
    pdf, photo = make_file(alice, "letter.pdf"), make_file(alice, "photo.jpg")
    page = html.unescape(make_page_client(alice).get("/documents").get_data(as_text=True))
    assert set(display.THUMB_SIDES) <= set(app.config["RENDITION_SIZES"])  # served as stored, never downscaled
    for row, preview in ((pdf, "&preview=1"), (photo, "")):
        img = re.search(r'<img class="thumb[^"]*" src="([^"]+)" srcset="([^"]+)"\s+sizes="([^"]+)"[^>]*width="96"',
                        _item(page, row))
        assert img, _item(page, row)
        assert img[1].endswith("size=128x128" + preview)
        offered = [c.rsplit(" ", 1) for c in img[2].split(", ")]
        assert [w for _, w in offered] == ["128w", "320w", "640w"]
        assert all(url.endswith(f"size={w[:-1]}x{w[:-1]}{preview}") for url, w in offered)
        assert img[3] == "auto, 96px"  # a grid card's larger box picks a larger one


def test_the_details_page_shows_what_the_file_is_and_who_opened_it(make_page_client, make_user, make_file):
    alice, provider = make_user(full_name="Alice Moreno"), make_user("provider", full_name="Dr. Ana Rivera")
    row = make_file(provider, "letter.pdf", patient=alice)
    files.rename(provider, Origin.cli(), row.public_id, "Referral", keep_extension=True)
    client = make_page_client(alice)
    resp = client.get(f"/documents/{row.public_id}/details?next=/documents")
    page = html.unescape(resp.get_data(as_text=True))
    assert resp.status_code == 200 and "<h1" in page and "X-Chartbox-Partial" in resp.headers["Vary"]
    for said in ("Referral.pdf", "PDF document", "Pages</dt><dd>2", "Uploaded by</dt><dd>Dr. Ana Rivera",
                 "Version</dt><dd>", "2, last changed", " UTC</time>", "You and your care team", "renamed",
                 "Dr. Ana Rivera <span class=\"muted\">(care team)</span>"):
        assert said in page, said
    assert f'href="/documents#file-{row.public_id}"' in page  # Back returns to the row
    # The drawer asks for the same part alone; the old address still answers with the page.
    part = client.get(f"/documents/{row.public_id}/details", headers={"X-Chartbox-Partial": "details"})
    body = part.get_data(as_text=True)
    assert body.strip().startswith("<section") and "<h2" in body
    assert "<html" not in body and "Who opened it" in body
    old = client.get(f"/documents/{row.public_id}/history")
    assert old.status_code == 200 and "Who opened it" in old.get_data(as_text=True)


def test_details_follow_the_files_view_rules(make_page_client, make_user, make_file, make_visit):
    alice, stranger, provider = make_user(), make_user(), make_user("provider")
    row = make_file(alice, "notes.txt")
    hidden = make_file(provider, "photo.jpg", visit=make_visit(alice), category=Category.INTAKE_ATTACHMENT)
    for who, file_id in ((stranger, row.public_id), (alice, hidden.public_id), (alice, "no-such-file")):
        for headers in ({}, {"X-Chartbox-Partial": "details"}):
            resp = make_page_client(who).get(f"/documents/{file_id}/details", headers=headers)
            assert resp.status_code == 404
    # Refusals are audited, as the history page's were, naming the file and who asked.
    refused = db.session.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused",
                                                          AuditEvent.file_id == row.id)).all()
    assert [e.actor_id for e in refused] == [stranger.id, stranger.id]
    staff = html.unescape(make_page_client(provider).get(f"/documents/{hidden.public_id}/details").get_data(as_text=True))
    assert "Size in pixels</dt><dd>640 × 480" in staff and "The care team only (hidden from the patient)" in staff
    assert "Version</dt><dd>1 (as uploaded)" in staff.replace("\n", "").replace("      ", "")


def test_restore_and_visibility_come_back_to_the_row(make_page_client, make_user, make_file):
    alice = make_user()
    row = make_file(alice, "notes.txt")
    files.delete(alice, Origin.cli(), row.public_id)
    client = make_page_client(alice)
    resp = client.post(f"/documents/{row.public_id}/restore",
                       data={"csrf_token": client.csrf("/documents/trash"), "next": "/documents"})
    assert resp.status_code == 303 and resp.location == f"/documents#file-{row.public_id}"


def test_upload_panels_offer_the_camera_except_for_a_profile_picture(make_page_client, make_user):
    client = make_page_client(make_user())
    page = client.get("/documents").get_data(as_text=True)
    assert re.search(r'<input class="dz-input dz-camera-input" id="camera-[^"]+" type="file" name="files" '
                     r'accept="image/\*,\.heic,\.heif" capture="environment">', page)
    assert "Take photo" in page
    assert "capture=" not in client.get("/profile").get_data(as_text=True)
