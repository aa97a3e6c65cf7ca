"""/api/docs in Chromium: Swagger UI renders every dialect under the pages' CSP (the `page`
fixture fails on any console error, which is where Chromium reports CSP violations), passes the
accessibility check, and "Try it out" with a pasted token gets the live server's real answer."""
from __future__ import annotations

import threading

import pytest
from conftest import DATA, base_config
from test_pages_in_chromium import TIMEOUT, browser, page, shot  # noqa: F401  (fixtures)
from werkzeug.serving import make_server

from app import create_app
from app.api.openapi import load_spec
from app.extensions import db
from app.models import Category, Role
from app.services import accounts, files
from app.services.audit import Origin

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    """A live server with one patient, one file of theirs and an API token for them."""
    root = tmp_path_factory.mktemp("docs")
    app = create_app({**base_config(root), "SERVER_NAME": None}, instance_path=str(root / "instance"))
    with app.app_context():
        db.create_all()
        clinic = accounts.create_account("sunrise", "Sunrise Family Clinic")
        alice = accounts.create_user(clinic, Role.PATIENT, "alice", "Alice Moreno", None, "correct horse battery")
        with open(DATA / "lab-results.pdf", "rb") as fh:
            files.upload(alice, Origin.cli(), fh, "lab-results.pdf", Category.USER_DOCUMENT, files.Target.chart(alice))
        token = accounts.create_token(alice, "docs")[1]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", token
    server.shutdown()
    thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()


def test_try_it_out_lists_the_token_holders_files(page, docs_server):
    url, token = docs_server
    page.goto(f"{url}/api/docs")
    for tag in load_spec()["tags"]:  # one group per dialect
        page.locator(f'.opblock-tag[data-tag="{tag["name"]}"]').wait_for()
    shot(page, "20-api-docs", full_page=False)  # and axe finds nothing serious, both sizes and themes

    page.locator(".scheme-container button.authorize").click()
    scheme = page.locator(".auth-container", has_text="vseeToken")
    scheme.locator("input").fill(token)
    scheme.locator("button.authorize").click()
    page.locator(".modal-ux button.close-modal").click()

    listing = page.locator(".opblock-get", has=page.locator('.opblock-summary-path[data-path="/api_v3/files"]'))
    listing.locator(".opblock-summary").click()
    listing.locator("button.try-out__btn").click()
    listing.locator("button.execute").click()
    status = listing.locator(".live-responses-table .response .response-col_status")
    status.wait_for(timeout=TIMEOUT)
    assert status.inner_text().strip().startswith("200")
    body = listing.locator(".live-responses-table .response-col_description pre").first.inner_text()
    assert "lab-results.pdf" in body
    shot(page, "21-api-docs-try-it-out", full_page=False)
    # The request went to this server, with the pasted token in VSee's header.
    curl = listing.locator(".curl-command").inner_text()
    assert f"{url}/api_v3/files" in curl and f"X-ApiToken: {token}" in curl

