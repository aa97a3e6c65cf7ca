"""The Documents toolbar in Chromium: a patient finds a document by a word inside its PDF, on a
390x844 phone and on a desktop; the toolbar fits the phone without sideways scrolling, its
controls are large enough to tap, and every state passes the accessibility check (shot())."""
from __future__ import annotations

import io
import threading

import pytest
from builders import small_png, text_pdf
from conftest import base_config
from test_pages_in_chromium import PASSWORD, Live, browser, page, row, shot, sign_in  # noqa: F401 - fixtures
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import Category, Role
from app.services import accounts, files
from app.services.audit import Origin

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-search")
    app = create_app({**base_config(root), "SERVER_NAME": None, "WEB_PAGE_SIZE": 10},
                     instance_path=str(root / "instance"))
    with app.app_context():
        db.create_all()
        clinic = accounts.create_account("sunrise", "Sunrise Family Clinic")
        provider = accounts.create_user(clinic, Role.PROVIDER, "dr.rivera", "Dr. Ana Rivera", "ana@example.org",
                                        PASSWORD)
        alice = accounts.create_user(clinic, Role.PATIENT, "alice", "Alice Moreno", "alice@example.org", PASSWORD)
        chart = files.Target.chart(alice)
        uploads = [
            (provider, text_pdf([["Cardiology consultation", "Echocardiogram: normal ejection fraction"]]),
             "Consultation 2026-03.pdf"),
            (alice, text_pdf([["Pharmacy receipt", "Amoxicillin 500 mg"]]), "Receipt.pdf"),
            (alice, small_png(), "Insurance card.png"),
            (alice, b"Blood pressure diary\n118/76 morning\n", "bp diary.txt"),
        ]
        for actor, data, name in uploads:
            files.upload(actor, Origin.cli(), io.BytesIO(data), name, Category.USER_DOCUMENT, chart)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Live(app, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide"


def _tap_targets(page) -> None:
    """Every control of the toolbar is at least 44 px tall on a phone."""
    small = page.evaluate("""() => Array.from(document.querySelectorAll(
        '.toolbar input:not([type=hidden]), .toolbar select, .toolbar button, .view-switch a, .clear-filters'))
        .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height < 44)
        .map(el => (el.name || el.textContent.trim()) + ': ' + el.getBoundingClientRect().height)""")
    assert not small, small


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_patient_finds_a_document_by_a_word_inside_its_pdf(page, live, size):
    page.set_viewport_size(PHONE if size == "phone" else DESKTOP)
    sign_in(page, live, "alice")
    assert page.locator("li.file").count() == 4
    if size == "phone":
        _no_sideways_scroll(page)
        _tap_targets(page)
    search = page.get_by_role("searchbox", name="Search documents by name or by words inside them")
    search.fill("echocardio")  # the start of a word on the PDF's page, as one types it
    search.press("Enter")
    page.wait_for_url("**/documents?q=echocardio*")
    assert page.locator("li.file").count() == 1
    assert row(page, "Consultation 2026-03.pdf").count() == 1
    assert "1 result for “echocardio”" in page.locator("#list-count").inner_text()
    if size == "phone":
        _no_sideways_scroll(page)
        _tap_targets(page)
    shot(page, f"documents-search-{size}")

    # A filter narrows it further; the URL holds the state, so a reload (or a shared link) keeps it.
    page.get_by_label("Type").select_option("image")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**kind=image*")
    assert page.locator("li.file").count() == 0
    assert page.get_by_text("No documents match").is_visible()
    shot(page, f"documents-search-empty-{size}")
    page.reload()
    assert page.get_by_label("Type").input_value() == "image"

    page.get_by_role("link", name="Clear filters").click()
    page.wait_for_url("**/documents")
    assert page.locator("li.file").count() == 4

    page.get_by_role("link", name="Grid").click()
    page.wait_for_url("**view=grid*")
    assert page.locator("ul.files.files-grid li.file").count() == 4
    if size == "phone":
        _no_sideways_scroll(page)
    shot(page, f"documents-grid-{size}")


def test_the_toolbar_works_without_javascript(browser, live):
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live, "alice")
        page.get_by_role("searchbox").fill("amoxicillin")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**q=amoxicillin*")
        assert page.locator("li.file").count() == 1 and row(page, "Receipt.pdf").count() == 1
        _no_sideways_scroll(page)
        shot(page, "documents-search-nojs", check=False)
    finally:
        context.close()
