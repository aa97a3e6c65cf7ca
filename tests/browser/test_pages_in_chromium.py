"""The pages in a real browser: Debian's Chromium, driven by Playwright, against a live server.

A werkzeug server runs the app in a thread on a free port, on a tmp_path SQLite database and
storage. Screenshots of the main pages land in test-output/screenshots/.
"""
from __future__ import annotations

import os
import re
import threading
import time
import zipfile
from pathlib import Path

import a11y
import pytest
from conftest import DATA, base_config, service_unavailable
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import Category, Role, User
from app.services import accounts, files
from app.services.audit import Origin

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--headless"]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PASSWORD = "correct horse battery"
TIMEOUT = 15_000  # ms for any one wait


class Live:
    """A running server, its base URL and the people seeded into it."""

    def __init__(self, app, url: str):
        self.app, self.url = app, url
        self.ids: dict[str, int] = {}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    config = {**base_config(root), "SERVER_NAME": None, "WEB_PAGE_SIZE": 10}
    app = create_app(config, instance_path=str(root / "instance"))
    with app.app_context():
        db.create_all()
        clinic = accounts.create_account("sunrise", "Sunrise Family Clinic")
        other = accounts.create_account("elsewhere", "Elsewhere Clinic")
        provider = accounts.create_user(clinic, Role.PROVIDER, "dr.rivera", "Dr. Ana Rivera",
                                        "ana@example.org", PASSWORD)
        alice = accounts.create_user(clinic, Role.PATIENT, "alice", "Alice Moreno", "alice@example.org", PASSWORD)
        accounts.create_user(clinic, Role.PATIENT, "bob", "Bob Okafor", "bob@example.org", PASSWORD)
        accounts.create_user(other, Role.PATIENT, "carol", "Carol Other", None, PASSWORD)
        visit = accounts.create_visit(alice, "v-1", "Skin check")
        with open(DATA / "insurance-front.jpg", "rb") as fh:  # the patient's intake photo
            files.upload(alice, Origin.cli(), fh, "rash-photo.jpg", Category.INTAKE_ATTACHMENT,
                         files.Target.chart(alice, visit))
        with open(DATA / "lab-results.pdf", "rb") as fh:
            files.upload(provider, Origin.cli(), fh, "lab-results.pdf", Category.USER_DOCUMENT,
                         files.Target.chart(alice))
        with open(DATA / "xray.png", "rb") as fh:  # staff's: hidden from Alice until released
            files.upload(provider, Origin.cli(), fh, "wound-scan.png", Category.INTAKE_ATTACHMENT,
                         files.Target.chart(alice, visit))
        ids = {"alice": alice.id}
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = Live(app, f"http://127.0.0.1:{server.server_port}")
    live.ids = ids
    yield live
    server.shutdown()
    thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        service_unavailable("Chromium", f"{CHROMIUM} is missing; install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_unavailable("Playwright", str(exc))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # No script errors and no CSP violations (Chromium reports those on the console).
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def shot(page, name: str, full_page: bool = True, check: bool = True) -> None:
    """A screenshot of a page state, which must also pass the accessibility check (a11y.py;
    `check=False` only where scripts are off, so axe cannot run: the same pages are checked
    with them on)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)
    if check:  # and the same state dark, and on a phone: name-dark, name-phone, name-dark-phone
        a11y.check(page, name, lambda suffix: page.screenshot(path=str(SHOTS / f"{name}{suffix}.png"), full_page=full_page))


def sign_in(page, live: Live, username: str) -> None:
    page.goto(f"{live.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/(documents|patients)$"))


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login$"))


def row(page, name: str):
    return page.locator("li.file", has=page.locator(".file-name", has_text=re.compile(f"^{re.escape(name)}$")))


def from_menu(file_row, item: str):
    """Open a row's "⋯" menu and choose `item` (a menu item's accessible name, or a pattern)."""
    file_row.locator(".row-menu-button").click()
    file_row.get_by_role("menuitem", name=item).click()


def wait_until(page, script: str) -> None:
    """Poll a JS expression until it is true (wait_for_function would need 'unsafe-eval' under our CSP)."""
    deadline = time.monotonic() + TIMEOUT / 1000
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        page.wait_for_timeout(100)


def thumbnail_loaded(page, name: str) -> bool:
    return row(page, name).locator("img.thumb").evaluate("img => img.complete && img.naturalWidth > 0")


def test_patient_uploads_previews_renames_opens_and_deletes(page, live):
    page.goto(f"{live.url}/login")
    shot(page, "01-sign-in")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    assert "do not match" in page.locator("#login-error").inner_text()
    sign_in(page, live, "alice")

    # What the page can tell is wrong (too large, a type never taken) is refused at once, in
    # plain words, whatever waits before it; the rest goes up one by one.
    too_big = {"name": "scan-archive.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7\n" + b"0" * (26 * 1024 * 1024)}
    def given(name: str, media_type: str) -> dict:
        return {"name": name, "mimeType": media_type, "buffer": (DATA / name).read_bytes()}

    page.locator("#main input[type=file]").first.set_input_files(
        [given("letter.pdf", "application/pdf"), too_big, given("photo.jpg", "image/jpeg"),
         given("gif.gif", "image/gif"), given("not-really.pdf", "application/pdf"), given("vitals.csv", "text/csv")])
    failed = page.locator(".upload-item.is-failed")
    refused_big = failed.filter(has_text="scan-archive.pdf")
    refused_big.wait_for()
    assert "the limit is 25 MB" in refused_big.inner_text()
    assert "“.gif” files are not accepted here" in failed.filter(has_text="gif.gif").inner_text()
    row(page, "letter.pdf").wait_for()
    row(page, "photo.jpg").wait_for()
    row(page, "vitals.csv").wait_for()
    summary = page.locator(".upload-summary").first
    wait_until(page, "document.querySelector('.upload-summary').textContent === '3 uploaded, 3 not uploaded'")
    server_refused = failed.filter(has_text="not-really.pdf")
    assert "Not uploaded:" in server_refused.inner_text()
    assert server_refused.get_by_role("button", name="Retry not-really.pdf").count() == 0  # retrying changes nothing
    for name in ("scan-archive.pdf", "gif.gif"):
        failed.filter(has_text=name).get_by_role("button", name=f"Dismiss {name}").click()
    assert page.locator(".upload-item").count() == 1 and summary.inner_text() == "3 uploaded, 1 not uploaded"
    page.get_by_role("button", name="Dismiss not-really.pdf").click()
    assert page.locator(".upload-item").count() == 0
    wait_until(page, "[...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)")
    assert thumbnail_loaded(page, "letter.pdf") and thumbnail_loaded(page, "photo.jpg")
    assert "2 pages" in row(page, "letter.pdf").inner_text()
    shot(page, "02-patient-documents")

    photo = row(page, "photo.jpg")
    from_menu(photo, "Rename")
    # The page focuses the field and selects the stem once the form opens; let it, or that
    # selection can land mid-fill. The field holds the stem; ".jpg" stays beside it.
    wait_until(page, "document.activeElement && document.activeElement.name === 'name'")
    assert photo.get_by_label("New name").input_value() == "photo"
    assert photo.locator(".rename-ext").inner_text() == ".jpg"
    photo.get_by_label("New name").fill("beach-photo")
    photo.get_by_role("button", name="Save").click()
    page.get_by_text("Renamed to “beach-photo.jpg”.").wait_for()
    assert row(page, "beach-photo.jpg").count() == 1
    # Focus comes back to the row renamed, not the top of the page.
    wait_until(page, "document.activeElement && document.activeElement.matches('li.file') && "
                     "document.activeElement.querySelector('.file-name').textContent.trim() === 'beach-photo.jpg'")

    row(page, "letter.pdf").locator(".file-name").click()
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    wait_until(page, "[...document.querySelectorAll('#viewer-body img')].every(i => i.complete && i.naturalWidth > 0)")
    assert viewer.locator("img").count() == 2
    assert page.url.split("#")[0].endswith("/documents")  # the viewer did not leave the app
    for _ in range(8):  # Tab never leaves the open viewer, either way round
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    for _ in range(8):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    assert page.locator("#viewer-page").inner_text() == "Page 1 of 2"
    page.locator("#viewer-body").evaluate("body => body.scrollTo(0, body.scrollHeight)")
    wait_until(page, "document.getElementById('viewer-page').textContent === 'Page 2 of 2'")
    zoom = page.locator("#viewer-zoom")
    zoom.click()
    assert zoom.get_attribute("aria-pressed") == "true" and zoom.inner_text() == "Fit"
    shot(page, "03-pdf-viewer", full_page=False)
    zoom.click()
    # The next and previous files open in place (the list is newest first: the CSV is before the PDF).
    names = page.evaluate("[...document.querySelectorAll('.file-name[data-viewer]')].map(a => a.dataset.name)")
    at = names.index("letter.pdf")
    page.keyboard.press("ArrowRight")
    wait_until(page, f"document.getElementById('viewer-title').textContent === {names[at + 1]!r}")
    page.get_by_role("button", name="Previous file").click()
    wait_until(page, "document.getElementById('viewer-title').textContent === 'letter.pdf'")
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")

    row(page, "vitals.csv").locator(".file-name").click()  # a CSV opens as a table
    viewer.wait_for(state="visible")
    viewer.locator("table.viewer-table th", has_text="heart_rate_bpm").wait_for()
    assert viewer.locator("table.viewer-table tbody tr").count() >= 2
    assert viewer.locator("table.viewer-table tbody tr").first.locator("td").first.inner_text() == "2024-01-01"
    assert viewer.get_by_role("cell", name="note, with comma").count() == 1  # a quoted field stays one cell
    assert not page.locator("#viewer-zoom").is_visible()  # nothing to zoom in a table
    shot(page, "03b-csv-viewer", full_page=False)
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")

    from_menu(row(page, "beach-photo.jpg"), "Delete beach-photo.jpg")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    dialog.get_by_role("button", name="Delete").click()
    page.get_by_text("Deleted “beach-photo.jpg”.").wait_for()
    assert page.evaluate("document.activeElement.textContent.trim()") == "Undo"  # focus on what undoes it
    assert row(page, "beach-photo.jpg").count() == 0 and row(page, "letter.pdf").count() == 1

    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "04-patient-documents-phone")

    # On a phone the rename form stays on the screen, and an ending that would mislabel the
    # PDF is refused in plain words; without an ending the name keeps ".pdf".
    letter = row(page, "letter.pdf")
    from_menu(letter, "Rename")
    wait_until(page, "document.activeElement && document.activeElement.name === 'name'")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "04b-rename-on-phone", full_page=False)
    letter.get_by_label("New name").fill("Referral letter.docx")
    letter.get_by_role("button", name="Save").click()
    page.get_by_text("would make it look like a Word document, but it is a PDF document").wait_for()
    letter = row(page, "letter.pdf")
    from_menu(letter, "Rename")
    wait_until(page, "document.activeElement && document.activeElement.name === 'name'")
    letter.get_by_label("New name").fill("Referral letter")
    letter.get_by_role("button", name="Save").click()
    page.get_by_text("Renamed to “Referral letter.pdf”.").wait_for()

    with page.expect_download() as taken:  # everything, as one archive
        page.get_by_role("link", name="Download all my records").click()
    download = taken.value
    assert download.suggested_filename.startswith("Chartbox records") and download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.path()) as archive:
        assert "Documents/Referral letter.pdf" in archive.namelist() and "manifest.csv" in archive.namelist()


def test_provider_finds_the_patient_and_shares_a_visit_attachment(page, live):
    sign_in(page, live, "dr.rivera")
    assert page.get_by_text("Carol Other").count() == 0  # another clinic's patient
    page.get_by_label("Search patients").fill("alice")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("1 match for “alice”").wait_for()
    shot(page, "05-provider-patients")
    page.get_by_role("link", name=re.compile("Alice Moreno")).click()
    page.wait_for_url(re.compile(r"/patients/\d+$"))
    assert row(page, "lab-results.pdf").count() == 1
    shot(page, "06-provider-chart-documents")

    page.get_by_role("link", name="Visits").click()
    attachment = row(page, "wound-scan.png")
    assert "Hidden from patient" in attachment.inner_text()
    from_menu(attachment, re.compile("Make visible to patient"))
    page.get_by_text("“wound-scan.png” is now visible to Alice Moreno.").wait_for()
    shot(page, "07-provider-chart-visits")
    sign_out(page)

    sign_in(page, live, "alice")
    shared = row(page, "wound-scan.png")
    shared.wait_for()
    assert "From your care team" in shared.inner_text()
    assert shared.get_by_text("Delete").count() == 0  # an attachment: the patient may only look


def test_plain_form_upload_works_without_javascript(browser, live):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1024, "height": 800})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        sign_in(page, live, "bob")
        page.locator("#main input[type=file]").first.set_input_files(
            [str(DATA / "notes.txt"), str(DATA / "truncated.pdf")])
        page.get_by_role("button", name="Upload", exact=True).click()
        page.get_by_text("Uploaded “notes.txt”.").wait_for()
        assert "“truncated.pdf” was not uploaded" in page.locator(".flashes").inner_text()
        assert row(page, "notes.txt").count() == 1
        shot(page, "08-no-javascript-upload", check=False)
        page.goto(f"{live.url}/patients/{live.ids['alice']}")
        assert page.locator("h1").inner_text() == "We couldn't find that"  # another patient's chart
    finally:
        context.close()


def test_every_page_state_is_accessible(page, live):
    """axe (a11y.py) over the pages the tests above do not reach, on desktop and phone: a
    patient's visits, trash, profile, sessions, a file's history, the delete dialog, the
    error page, and a provider's patient search (also with no match), consents and trash."""
    with live.app.app_context():  # a file of her own, so its row offers Delete
        alice = db.session.get(User, live.ids["alice"])
        with open(DATA / "notes.txt", "rb") as fh:
            files.upload(alice, Origin.cli(), fh, "my-notes.txt", Category.USER_DOCUMENT, files.Target.chart(alice))
    sign_in(page, live, "alice")
    for name, path in (("09-patient-visits", "/documents/visits"), ("10-patient-trash", "/documents/trash"),
                       ("11-profile", "/profile"), ("12-sessions", "/account/sessions"),
                       ("13-not-found", "/documents/no-such-file/history")):
        page.goto(live.url + path)
        shot(page, name)
    page.goto(live.url + "/documents")
    first = page.locator("li.file").first
    page.goto(live.url + first.locator("a[data-details]").get_attribute("href"))  # the page itself (no drawer)
    page.wait_for_url(re.compile(r"/details"))
    shot(page, "14-file-history")
    page.goto(live.url + "/documents")
    from_menu(row(page, "my-notes.txt"), "Delete my-notes.txt")
    page.locator("#confirm").wait_for(state="visible")
    shot(page, "15-delete-dialog", full_page=False)
    page.get_by_role("button", name="Cancel").click()
    sign_out(page)

    sign_in(page, live, "dr.rivera")
    chart = f"/patients/{live.ids['alice']}"
    for name, path in (("16-patient-search", "/patients?q=Moreno+Alice"), ("17-patient-search-empty", "/patients?q=zzz"),
                       ("18-chart-consents", chart + "/consents"), ("19-chart-trash", chart + "/trash")):
        page.goto(live.url + path)
        shot(page, name)


def test_pages_in_spanish_after_switching(page, live):
    """The footer's switcher turns the pages (and the script's strings) Spanish, kept for the user."""
    sign_in(page, live, "bob")
    page.get_by_label("Language").select_option("es")
    page.get_by_role("button", name="Change").click()
    page.wait_for_url(re.compile(r"/documents$"))
    assert page.locator("html").get_attribute("lang") == "es"
    page.get_by_role("heading", name="Mis documentos").wait_for()  # the page's title (no nav item repeats it)
    page.get_by_role("link", name="Eliminados recientemente").wait_for()
    shot(page, "20-documents-spanish")  # desktop and phone, light and dark, each checked by axe
    page.goto(f"{live.url}/documents/trash")
    page.get_by_text("No se ha eliminado nada recientemente").wait_for()
    shot(page, "21-trash-spanish")
    page.get_by_label("Idioma").select_option("en")  # bob back to English for the other tests
    page.get_by_role("button", name="Cambiar").click()
    page.get_by_role("heading", name="Recently deleted", level=1).wait_for()  # back on the page it was switched from
    sign_out(page)
